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
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
# Emulated devices and uevents for the device plugin's tests (run under umockdev-wrapper).
pkg_check_modules(UMOCKDEV REQUIRED IMPORTED_TARGET umockdev-1.0)
find_program(KMM_UMOCKDEV_WRAPPER umockdev-wrapper REQUIRED)

find_program(KMM_PROTOC protoc REQUIRED)
find_program(KMM_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# CLI11 is header-only; Debian 12 ships no CMake config for it.
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()

# Abseil's static archives, for binaries that start often and must start fast (kmm-loader
# runs as a process per probe and per load). Debian splits abseil into ~30 shared
# libraries, and loading them dominates a short process's run time. Binaries that also link
# gRPC (which uses the shared abseil) keep the shared libraries: one copy per process.
pkg_check_modules(ABSL_LINK REQUIRED absl_statusor absl_status absl_synchronization absl_time
                  absl_strings absl_cord)
add_library(kmm_absl_static INTERFACE)
foreach(name ${ABSL_LINK_STATIC_LIBRARIES})  # in link order, as pkg-config --static gives
  if(name MATCHES "^absl_")
    find_library(KMM_STATIC_${name} NAMES lib${name}.a REQUIRED)
    target_link_libraries(kmm_absl_static INTERFACE ${KMM_STATIC_${name}})
  else()
    target_link_libraries(kmm_absl_static INTERFACE ${name})
  endif()
endforeach()

# spdlog and fmt header-only: Debian ships them as shared libraries only, and a short-lived
# kmm-loader process pays for every shared object it maps (see kmm_fast_start). spdlog's own
# header-only target would still link the shared libfmt, hence this one.
add_library(kmm_spdlog INTERFACE)
target_compile_definitions(kmm_spdlog INTERFACE SPDLOG_FMT_EXTERNAL)
target_link_libraries(kmm_spdlog INTERFACE fmt::fmt-header-only Threads::Threads)
