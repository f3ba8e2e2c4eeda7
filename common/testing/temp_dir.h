// A temporary directory for tests, removed with everything in it on destruction. Paths stay
// short (under /tmp) so unix sockets inside fit the 108-byte limit.
#ifndef KMM_COMMON_TESTING_TEMP_DIR_H_
#define KMM_COMMON_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace kmm::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/kmm-test-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& relative) const { return path_ + "/" + relative; }

  // Writes `content` to `relative`, creating parent directories; returns the full path.
  std::string WriteFile(const std::string& relative, const std::string& content) const {
    const std::filesystem::path full = Join(relative);
    std::filesystem::create_directories(full.parent_path());
    std::ofstream(full) << content;
    return full;
  }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace kmm::testing

#endif  // KMM_COMMON_TESTING_TEMP_DIR_H_
