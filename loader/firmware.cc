#include "loader/firmware.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::loader {
namespace fs = std::filesystem;

namespace {
// kmm's bookkeeping in the firmware host directory: the search path it replaced, and one file
// per kmm module with firmware there (several Modules may share the directory).
constexpr char kPreviousSearchPath[] = ".kmm-firmware-class-path";
constexpr char kFirmwareUsers[] = ".kmm-firmware-users";

absl::Status FromErrorCode(const std::error_code& error, const std::string& what) {
  return ErrnoError(error.value(), what);
}

std::string SearchPathParameter(const std::string& sys_root) {
  return sys_root + "/module/firmware_class/parameters/path";
}

// sysfs shows the value with a newline; a lone NUL (below) reads back as "".
absl::StatusOr<std::string> ReadParameter(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoError(errno, fmt::format("read {}", path));
  std::string value;
  std::getline(in, value);
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

absl::Status WriteParameter(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  // The kernel keeps what is written verbatim (a newline too), and an empty write never
  // reaches it: the empty value is set with one NUL byte, where the kernel's copy stops.
  if (value.empty()) {
    out.put('\0');
  } else {
    out << value;
  }
  out.flush();
  if (!out) {
    return ErrnoError(
        errno,
        fmt::format("set the kernel's firmware search path: write \"{}\" to {}", value, path));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const fs::path& path, const std::string& content) {
  const fs::path temporary = path.string() + ".kmm-tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << content;
    out.flush();
    if (!out) return ErrnoError(errno, fmt::format("write {}", temporary.string()));
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) return FromErrorCode(error, fmt::format("write {}", path.string()));
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::vector<std::string>> InstallFirmware(const std::string& source_dir,
                                                         const std::string& host_dir) {
  std::error_code error;
  if (!fs::is_directory(source_dir, error)) {
    return absl::NotFoundError(fmt::format(
        "firmware directory {} does not exist in the module image; fix config.firmwarePath "
        "(it is relative to dirName) or add the firmware to the image",
        source_dir));
  }
  std::vector<std::string> copied;
  for (auto it = fs::recursive_directory_iterator(source_dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const fs::path relative = fs::relative(it->path(), source_dir, error);
    const fs::path target = fs::path(host_dir) / relative;
    fs::create_directories(target.parent_path(), error);
    if (error) return FromErrorCode(error, fmt::format("create {}", target.parent_path().string()));
    const fs::path temporary = target.string() + ".kmm-tmp";
    fs::copy_file(it->path(), temporary, fs::copy_options::overwrite_existing, error);
    if (error) return FromErrorCode(error, fmt::format("copy firmware to {}", temporary.string()));
    fs::rename(temporary, target, error);
    if (error) return FromErrorCode(error, fmt::format("install firmware {}", target.string()));
    copied.push_back(relative.string());
  }
  if (error) return FromErrorCode(error, fmt::format("read firmware directory {}", source_dir));
  return copied;
}

absl::Status RemoveFirmware(const std::string& source_dir, const std::string& host_dir) {
  std::error_code error;
  if (!fs::is_directory(source_dir, error)) return absl::OkStatus();
  std::vector<fs::path> directories;
  for (auto it = fs::recursive_directory_iterator(source_dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    const fs::path relative = fs::relative(it->path(), source_dir, error);
    if (it->is_directory(error)) {
      directories.push_back(fs::path(host_dir) / relative);
      continue;
    }
    const fs::path target = fs::path(host_dir) / relative;
    if (!fs::remove(target, error) && error) {
      return FromErrorCode(error, fmt::format("remove firmware {}", target.string()));
    }
  }
  if (error) return FromErrorCode(error, fmt::format("read firmware directory {}", source_dir));
  // Deepest first, and only when empty: the host directory may hold other firmware.
  for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
    if (fs::is_empty(*it, error)) fs::remove(*it, error);
  }
  return absl::OkStatus();
}

absl::Status SetFirmwareSearchPath(const std::string& sys_root, const std::string& host_dir) {
  const std::string parameter = SearchPathParameter(sys_root);
  ASSIGN_OR_RETURN(const std::string current, ReadParameter(parameter));
  if (current == host_dir) return absl::OkStatus();
  // Saved before the change, on the host next to the firmware: the loader that unloads may be
  // another process (a restarted container, the operator's unload pod).
  std::error_code error;
  fs::create_directories(host_dir, error);
  if (error) return FromErrorCode(error, fmt::format("create {}", host_dir));
  RETURN_IF_ERROR(WriteFileAtomically(fs::path(host_dir) / kPreviousSearchPath, current));
  return WriteParameter(parameter, host_dir);
}

absl::Status AddFirmwareUser(const std::string& host_dir, const std::string& user) {
  const fs::path users = fs::path(host_dir) / kFirmwareUsers;
  std::error_code error;
  fs::create_directories(users, error);
  if (error) return FromErrorCode(error, fmt::format("create {}", users.string()));
  return WriteFileAtomically(users / user, "");
}

absl::Status RemoveFirmwareUser(const std::string& host_dir, const std::string& user) {
  const fs::path users = fs::path(host_dir) / kFirmwareUsers;
  std::error_code error;
  if (!fs::remove(users / user, error) && error) {
    return FromErrorCode(error, fmt::format("remove {}", (users / user).string()));
  }
  if (fs::is_empty(users, error)) fs::remove(users, error);
  return absl::OkStatus();
}

absl::Status RestoreFirmwareSearchPath(const std::string& sys_root, const std::string& host_dir) {
  const fs::path saved = fs::path(host_dir) / kPreviousSearchPath;
  std::error_code error;
  if (!fs::exists(saved, error)) return absl::OkStatus();  // kmm did not change it
  if (fs::exists(fs::path(host_dir) / kFirmwareUsers, error)) {
    spdlog::info("the firmware search path stays {}: other modules have firmware there", host_dir);
    return absl::OkStatus();
  }
  const std::string parameter = SearchPathParameter(sys_root);
  ASSIGN_OR_RETURN(const std::string current, ReadParameter(parameter));
  if (current == host_dir) {
    ASSIGN_OR_RETURN(const std::string previous, ReadParameter(saved.string()));
    RETURN_IF_ERROR(WriteParameter(parameter, previous));
    spdlog::info("restored the kernel's firmware search path to \"{}\"", previous);
  } else {
    spdlog::info("the firmware search path was changed to \"{}\" since kmm set it; leaving it",
                 current);
  }
  if (!fs::remove(saved, error) && error) {
    return FromErrorCode(error, fmt::format("remove {}", saved.string()));
  }
  return absl::OkStatus();
}

}  // namespace kmm::loader
