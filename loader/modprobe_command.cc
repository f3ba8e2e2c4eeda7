#include "loader/modprobe_command.h"

#include <map>

#include "fmt/format.h"

namespace kmm::loader {
namespace {

enum class Flag { kDirName, kSetVersion, kRemove, kAll, kFirstTime, kNoOp, kRefused };

struct FlagInfo {
  Flag flag;
  const char* refusal = "";  // why a refused flag is refused
};

const std::map<std::string, FlagInfo, std::less<>>& LongFlags() {
  static const auto* flags = new std::map<std::string, FlagInfo, std::less<>>{
      {"dirname", {Flag::kDirName}},
      {"set-version", {Flag::kSetVersion}},
      {"remove", {Flag::kRemove}},
      {"all", {Flag::kAll}},
      {"first-time", {Flag::kFirstTime}},
      // Logging is always on and no modprobe.d install/remove commands run in a loader pod.
      {"verbose", {Flag::kNoOp}},
      {"quiet", {Flag::kNoOp}},
      {"syslog", {Flag::kNoOp}},
      {"ignore-install", {Flag::kNoOp}},
      {"ignore-remove", {Flag::kNoOp}},
      {"use-blacklist", {Flag::kNoOp}},
      {"force",
       {Flag::kRefused,
        "forcing skips the kernel's version checks and can crash the "
        "node; build the module for the node's kernel instead"}},
      {"force-vermagic",
       {Flag::kRefused,
        "forcing skips the kernel's version checks and can "
        "crash the node; build the module for the node's "
        "kernel instead"}},
      {"force-modversion",
       {Flag::kRefused,
        "forcing skips the kernel's symbol version checks "
        "and can crash the node; build the module for the "
        "node's kernel instead"}},
      {"dry-run",
       {Flag::kRefused,
        "a loader pod always loads; use `kmm-operator plan` to see "
        "what would happen"}},
      {"show-depends", {Flag::kRefused, "it only prints; the loader logs what it loads"}},
      {"config",
       {Flag::kRefused,
        "modprobe.d configuration is not read; use parameters and "
        "modulesLoadingOrder"}},
  };
  return *flags;
}

const std::map<char, std::string>& ShortFlags() {
  static const auto* flags = new std::map<char, std::string>{
      {'d', "dirname"},       {'S', "set-version"}, {'r', "remove"},  {'a', "all"},
      {'v', "verbose"},       {'q', "quiet"},       {'s', "syslog"},  {'i', "ignore-install"},
      {'b', "use-blacklist"}, {'f', "force"},       {'n', "dry-run"}, {'D', "show-depends"},
      {'C', "config"},
  };
  return *flags;
}

bool TakesValue(Flag flag) { return flag == Flag::kDirName || flag == Flag::kSetVersion; }

}  // namespace

absl::StatusOr<ModprobeCommand> ParseModprobeCommand(const std::vector<std::string>& argv,
                                                     std::string_view field) {
  ModprobeCommand command;
  auto error = [&](size_t index, std::string_view message) {
    return absl::InvalidArgumentError(
        fmt::format("{}[{}]: \"{}\": {}", field, index, argv[index], message));
  };
  // Applies one flag; `value` is the inline value (--dirname=/opt, -d/opt) if any.
  auto apply = [&](size_t& index, const std::string& name,
                   std::optional<std::string> value) -> absl::Status {
    auto it = LongFlags().find(name);
    if (it == LongFlags().end()) {
      return error(index, fmt::format("unknown modprobe flag \"{}\"; kmm-loader understands -d, "
                                      "-S, -r, -a, --first-time, -v, -q, -i, -b",
                                      name.size() == 1 ? "-" + name : "--" + name));
    }
    const FlagInfo& info = it->second;
    if (info.flag == Flag::kRefused) {
      return error(index,
                   fmt::format("modprobe flag --{} is not supported: {}", name, info.refusal));
    }
    if (TakesValue(info.flag) && !value.has_value()) {
      if (index + 1 >= argv.size()) {
        return error(index, fmt::format("modprobe flag --{} needs a value", name));
      }
      value = argv[++index];
    } else if (!TakesValue(info.flag) && value.has_value()) {
      return error(index, fmt::format("modprobe flag --{} takes no value", name));
    }
    switch (info.flag) {
      case Flag::kDirName:
        command.dir_name = *value;
        break;
      case Flag::kSetVersion:
        command.kernel_version = *value;
        break;
      case Flag::kRemove:
        command.remove = true;
        break;
      case Flag::kAll:
        command.all = true;
        break;
      case Flag::kFirstTime:
        command.first_time = true;
        break;
      case Flag::kNoOp:
      case Flag::kRefused:
        break;
    }
    return absl::OkStatus();
  };

  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (word.size() > 2 && word.starts_with("--")) {
      const size_t equals = word.find('=');
      std::optional<std::string> value;
      if (equals != std::string::npos) value = word.substr(equals + 1);
      if (absl::Status s =
              apply(i, word.substr(2, equals == std::string::npos ? std::string::npos : equals - 2),
                    value);
          !s.ok()) {
        return s;
      }
    } else if (word.size() > 1 && word[0] == '-') {
      // Bundled short flags: "-rv", "-vd/opt", "-vd" followed by "/opt".
      const size_t start = i;
      for (size_t j = 1; j < word.size(); ++j) {
        auto it = ShortFlags().find(word[j]);
        if (it == ShortFlags().end()) {
          return error(start, fmt::format("unknown modprobe flag \"-{}\"; kmm-loader understands "
                                          "-d, -S, -r, -a, --first-time, -v, -q, -i, -b",
                                          word[j]));
        }
        const bool takes_value = TakesValue(LongFlags().at(it->second).flag);
        std::optional<std::string> value;
        if (takes_value && j + 1 < word.size()) value = word.substr(j + 1);
        if (absl::Status s = apply(i, it->second, value); !s.ok()) return s;
        if (takes_value) break;
      }
    } else {
      command.words.push_back(word);
    }
  }
  return command;
}

std::vector<std::string> MapModprobeDirNames(
    std::vector<std::string> argv, const std::function<std::string(std::string_view)>& map) {
  // Same grammar as ParseModprobeCommand: a flag's value is the rest of its word or the
  // next word.
  auto take_value = [&](size_t& i, std::string_view name, std::string_view prefix,
                        std::optional<std::string> inline_value) {
    if (inline_value.has_value()) {
      if (name == "dirname") argv[i] = fmt::format("{}{}", prefix, map(*inline_value));
    } else if (i + 1 < argv.size()) {
      ++i;
      if (name == "dirname") argv[i] = map(argv[i]);
    }
  };
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string word = argv[i];
    if (word.size() > 2 && word.starts_with("--")) {
      const size_t equals = word.find('=');
      const std::string name =
          word.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
      auto it = LongFlags().find(name);
      if (it == LongFlags().end() || !TakesValue(it->second.flag)) continue;
      std::optional<std::string> value;
      if (equals != std::string::npos) value = word.substr(equals + 1);
      take_value(i, name, word.substr(0, equals + 1), value);
    } else if (word.size() > 1 && word[0] == '-') {
      for (size_t j = 1; j < word.size(); ++j) {
        auto it = ShortFlags().find(word[j]);
        if (it == ShortFlags().end()) break;  // refused by the parser
        if (!TakesValue(LongFlags().at(it->second).flag)) continue;
        std::optional<std::string> value;
        if (j + 1 < word.size()) value = word.substr(j + 1);
        take_value(i, it->second, word.substr(0, j + 1), value);
        break;
      }
    }
  }
  return argv;
}

}  // namespace kmm::loader
