#include "operator/api/kernel_mapping.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "re2/re2.h"

namespace kmm::api {
namespace {

bool IsNameChar(char c) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::optional<std::string_view> Lookup(std::string_view name, const KernelVariables& variables) {
  if (name == "KERNEL_FULL_VERSION") return variables.kernel_full_version;
  if (name == "KERNEL_VERSION") return variables.kernel_version;
  if (name == "KERNEL_XYZ") return variables.kernel_xyz;
  if (name == "KERNEL_X") return variables.kernel_x;
  if (name == "KERNEL_Y") return variables.kernel_y;
  if (name == "KERNEL_Z") return variables.kernel_z;
  if (name == "MOD_NAME") return variables.mod_name;
  if (name == "MOD_NAMESPACE") return variables.mod_namespace;
  return std::nullopt;
}

class Expander {
 public:
  explicit Expander(const KernelVariables& variables) : variables_(variables) {}

  std::string Expand(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      if (text[i] != '$' || i + 1 == text.size()) {
        out += text[i++];
        continue;
      }
      const char next = text[i + 1];
      if (next == '$') {
        out += '$';
        i += 2;
      } else if (next == '{') {
        const size_t consumed = ExpandBraced(text.substr(i), out);
        if (consumed == 0) {
          out += text[i++];  // not a reference: keep the "$" as written
        } else {
          i += consumed;
        }
      } else if (IsNameChar(next)) {
        size_t end = i + 1;
        while (end < text.size() && IsNameChar(text[end])) ++end;
        const std::string_view name = text.substr(i + 1, end - i - 1);
        if (name == "_") {
          out += "$_";  // as envsubst: "$_" alone is text
        } else {
          out += Lookup(name, variables_).value_or("");
        }
        i = end;
      } else {
        out += text[i++];
      }
    }
    return out;
  }

  bool unclosed() const { return unclosed_; }

 private:
  // `text` starts with "${". Appends the expansion and returns the characters consumed, or 0
  // when this is not a well-formed reference.
  size_t ExpandBraced(std::string_view text, std::string& out) {
    size_t pos = 2;
    while (pos < text.size() && IsNameChar(text[pos])) ++pos;
    if (pos == 2) return 0;
    const std::string_view name = text.substr(2, pos - 2);
    // The closing brace, skipping nested "${...}" in a default; a newline ends the search
    // as it does for envsubst.
    size_t close = pos;
    int depth = 0;
    for (; close < text.size(); ++close) {
      const char c = text[close];
      if (c == '\n' || c == '\r') break;
      if (c == '{' && text[close - 1] == '$') ++depth;
      if (c == '}') {
        if (depth == 0) break;
        --depth;
      }
    }
    if (close >= text.size() || text[close] != '}') {
      unclosed_ = true;
      return 0;
    }
    const std::optional<std::string_view> value = Lookup(name, variables_);
    std::string_view op = text.substr(pos, close - pos);
    std::string_view argument;
    if (!op.empty()) {
      const size_t op_length = op.front() == ':' ? 2 : 1;
      if (op.size() < op_length) return 0;
      argument = op.substr(op_length);
      op = op.substr(0, op_length);
    }
    if (op.empty()) {
      out += value.value_or("");
    } else if (op == "-" || op == "=") {
      out += value.has_value() ? std::string(*value) : Expand(argument);
    } else if (op == ":-" || op == ":=") {
      out += value.has_value() && !value->empty() ? std::string(*value) : Expand(argument);
    } else if (op == "+" || op == ":+") {
      if (value.has_value()) out += Expand(argument);
    } else {
      return 0;
    }
    return close + 1;
  }

  const KernelVariables& variables_;
  bool unclosed_ = false;
};

// Compiled regexps, shared by every Module and node: the operator matches the same handful of
// patterns against thousands of nodes. Bounded so edited Modules cannot grow it forever.
std::shared_ptr<const RE2> CompiledRegexp(const std::string& pattern) {
  static constexpr size_t kMaxEntries = 4096;
  static std::mutex mutex;
  static auto* cache = new std::unordered_map<std::string, std::shared_ptr<const RE2>>();
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache->find(pattern); it != cache->end()) return it->second;
  RE2::Options options;
  options.set_log_errors(false);
  auto compiled = std::make_shared<const RE2>(pattern, options);
  if (cache->size() >= kMaxEntries) cache->clear();
  cache->emplace(pattern, compiled);
  return compiled;
}

Build MergeBuild(const Build& container, const Build& mapping) {
  Build merged = container;
  merged.dockerfile_config_map = mapping.dockerfile_config_map;
  merged.build_args = ApplyBuildArgOverrides(std::move(merged.build_args), mapping.build_args);
  merged.secrets.insert(merged.secrets.end(), mapping.secrets.begin(), mapping.secrets.end());
  return merged;
}

Sign MergeSign(const Sign& container, const Sign& mapping) {
  Sign merged = container;
  if (!mapping.unsigned_image.empty()) merged.unsigned_image = mapping.unsigned_image;
  merged.key_secret = mapping.key_secret;
  merged.cert_secret = mapping.cert_secret;
  merged.files_to_sign.insert(merged.files_to_sign.end(), mapping.files_to_sign.begin(),
                              mapping.files_to_sign.end());
  return merged;
}

template <typename T, typename Merge>
std::optional<T> Override(const std::optional<T>& container, const std::optional<T>& mapping,
                          Merge merge) {
  if (!container) return mapping;
  if (!mapping) return container;
  return merge(*container, *mapping);
}

ResolvedMapping Resolve(const Module& module, const ModuleLoaderContainerSpec& container,
                        size_t index, std::string_view kernel) {
  const KernelMapping& mapping = container.kernel_mappings[index];
  ResolvedMapping resolved;
  resolved.mapping_index = index;
  resolved.kernel_version = std::string(kernel);
  resolved.variables =
      KernelVariablesFor(kernel, module.metadata.name, module.metadata.namespace_name);

  resolved.container_image = SubstituteKernelVariables(
      mapping.container_image.empty() ? container.container_image : mapping.container_image,
      resolved.variables);

  resolved.in_tree_modules_to_remove = mapping.in_tree_modules_to_remove.value_or(
      container.in_tree_modules_to_remove.value_or(std::vector<std::string>{}));
  const std::string& single = mapping.in_tree_module_to_remove.empty()
                                  ? container.in_tree_module_to_remove
                                  : mapping.in_tree_module_to_remove;
  if (!single.empty()) resolved.in_tree_modules_to_remove = {single};

  resolved.build = Override(container.build, mapping.build, MergeBuild);
  resolved.sign = Override(container.sign, mapping.sign, MergeSign);
  if (resolved.sign) {
    resolved.sign->unsigned_image =
        SubstituteKernelVariables(resolved.sign->unsigned_image, resolved.variables);
    for (std::string& file : resolved.sign->files_to_sign) {
      file = SubstituteKernelVariables(file, resolved.variables);
    }
  }
  resolved.registry_tls =
      mapping.registry_tls.value_or(container.registry_tls.value_or(TLSOptions{}));
  return resolved;
}

}  // namespace

std::string_view NodeKernelVersion(std::string_view node_info_kernel_version) {
  if (!node_info_kernel_version.empty() && node_info_kernel_version.back() == '+') {
    node_info_kernel_version.remove_suffix(1);
  }
  return node_info_kernel_version;
}

std::string NormalizeKernelVersion(std::string_view kernel_version) {
  std::string out;
  out.reserve(kernel_version.size());
  for (const char c : kernel_version) {
    const auto byte = static_cast<unsigned char>(c);
    if (IsNameChar(c) || c == '-' || c == '.') {
      out += c;
    } else if ((byte & 0xC0) != 0x80) {
      out += '_';  // one per character: UTF-8 continuation bytes add nothing
    }
  }
  return out;
}

KernelVariables KernelVariablesFor(std::string_view kernel_version, std::string_view module_name,
                                   std::string_view module_namespace) {
  KernelVariables variables;
  variables.kernel_full_version = NormalizeKernelVersion(kernel_version);
  variables.kernel_version = variables.kernel_full_version;
  std::vector<std::string_view> components;
  std::string_view rest = variables.kernel_full_version;
  while (components.size() < 3) {
    const size_t separator = rest.find_first_of(".,-");
    components.push_back(rest.substr(0, separator));
    if (separator == std::string_view::npos) break;
    rest.remove_prefix(separator + 1);
  }
  components.resize(3);
  variables.kernel_x = std::string(components[0]);
  variables.kernel_y = std::string(components[1]);
  variables.kernel_z = std::string(components[2]);
  variables.kernel_xyz = variables.kernel_x + "." + variables.kernel_y + "." + variables.kernel_z;
  variables.mod_name = std::string(module_name);
  variables.mod_namespace = std::string(module_namespace);
  return variables;
}

std::string SubstituteKernelVariables(std::string_view text, const KernelVariables& variables) {
  if (text.find('$') == std::string_view::npos) return std::string(text);
  return Expander(variables).Expand(text);
}

bool HasUnclosedVariableReference(std::string_view text) {
  const KernelVariables no_variables;
  Expander expander(no_variables);
  expander.Expand(text);
  return expander.unclosed();
}

std::optional<ResolvedMapping> FindKernelMapping(const Module& module,
                                                 std::string_view node_kernel) {
  if (!module.spec.module_loader) return std::nullopt;
  const ModuleLoaderContainerSpec& container = module.spec.module_loader->container;
  const std::string_view kernel = NodeKernelVersion(node_kernel);
  for (size_t i = 0; i < container.kernel_mappings.size(); ++i) {
    const KernelMapping& mapping = container.kernel_mappings[i];
    if (!mapping.literal.empty() && mapping.literal == kernel) {
      return Resolve(module, container, i, kernel);
    }
    if (mapping.regexp.empty()) continue;
    const std::shared_ptr<const RE2> regexp = CompiledRegexp(mapping.regexp);
    if (!regexp->ok()) return std::nullopt;
    if (RE2::PartialMatch(re2::StringPiece(kernel.data(), kernel.size()), *regexp)) {
      return Resolve(module, container, i, kernel);
    }
  }
  return std::nullopt;
}

std::vector<BuildArg> ApplyBuildArgOverrides(std::vector<BuildArg> args,
                                             const std::vector<BuildArg>& overrides) {
  std::map<std::string, const BuildArg*> by_name;  // ordered: unused ones append sorted
  for (const BuildArg& override_arg : overrides) by_name[override_arg.name] = &override_arg;
  std::map<std::string, const BuildArg*> unused = by_name;
  for (BuildArg& arg : args) {
    if (auto it = by_name.find(arg.name); it != by_name.end()) {
      arg = *it->second;
      unused.erase(arg.name);
    }
  }
  for (const auto& [name, override_arg] : unused) args.push_back(*override_arg);
  return args;
}

std::vector<BuildArg> BuildArgsForKernel(const Build& build, const ResolvedMapping& mapping) {
  return ApplyBuildArgOverrides(build.build_args,
                                {
                                    {"KERNEL_VERSION", mapping.kernel_version},
                                    {"KERNEL_FULL_VERSION", mapping.kernel_version},
                                    {"MOD_NAME", mapping.variables.mod_name},
                                    {"MOD_NAMESPACE", mapping.variables.mod_namespace},
                                });
}

}  // namespace kmm::api
