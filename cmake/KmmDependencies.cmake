# Every third-party dependency comes from Debian's packages (see `make deps`).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 CONFIG QUIET)
pkg_check_modules(LIBKMOD REQUIRED IMPORTED_TARGET libkmod)
pkg_check_modules(LIBUDEV REQUIRED IMPORTED_TARGET libudev)

find_program(KMM_PROTOC protoc REQUIRED)
find_program(KMM_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# CLI11 is header-only; Debian 12 ships no CMake config for it.
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()
