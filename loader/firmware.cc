#include "loader/firmware.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "common/status.h"
#include "fmt/format.h"

namespace kmm::loader {
namespace fs = std::filesystem;

namespace {
absl::Status FromErrorCode(const std::error_code& error, const std::string& what) {
  return ErrnoError(error.value(), what);
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
  const std::string parameter = sys_root + "/module/firmware_class/parameters/path";
  std::string current;
  {
    std::ifstream in(parameter);
    if (!in) return ErrnoError(errno, fmt::format("read {}", parameter));
    std::getline(in, current);
  }
  if (current == host_dir) return absl::OkStatus();
  std::ofstream out(parameter);
  out << host_dir;
  out.flush();
  if (!out) {
    return ErrnoError(errno, fmt::format("set the kernel's firmware search path: write {} to {}",
                                         host_dir, parameter));
  }
  return absl::OkStatus();
}

}  // namespace kmm::loader
