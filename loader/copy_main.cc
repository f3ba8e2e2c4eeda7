// kmm-copy: copies files and directory trees, statically linked so it runs in any image —
// including module images that have no shell, no cp and no libc. The loader pod's init
// containers use it: the first (loader image) installs kmm-copy into a shared volume, the
// second (the module image) runs it from there to copy <dirName>/lib/modules/<kernel> and the
// firmware out of the image.
//
//   kmm-copy SOURCE... DESTINATION_DIR
// Each SOURCE (file or directory) is copied into DESTINATION_DIR under its own name;
// directories recursively, symlinks as symlinks. Exits non-zero naming the first failure.
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SOURCE... DESTINATION_DIR\n", argv[0]);
    return 2;
  }
  const fs::path destination = argv[argc - 1];
  std::error_code error;
  fs::create_directories(destination, error);
  if (error) {
    std::fprintf(stderr, "kmm-copy: cannot create %s: %s\n", destination.c_str(),
                 error.message().c_str());
    return 1;
  }
  for (int i = 1; i < argc - 1; ++i) {
    const fs::path source = argv[i];
    if (!fs::exists(fs::symlink_status(source, error))) {
      std::fprintf(stderr, "kmm-copy: %s does not exist in this image\n", source.c_str());
      return 1;
    }
    const fs::path target = destination / source.filename();
    fs::copy(source, target,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                 fs::copy_options::overwrite_existing,
             error);
    if (error) {
      std::fprintf(stderr, "kmm-copy: copying %s to %s: %s\n", source.c_str(), target.c_str(),
                   error.message().c_str());
      return 1;
    }
    std::printf("kmm-copy: %s -> %s\n", source.c_str(), target.c_str());
  }
  return 0;
}
