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
# The loader reads the build-id of compressed modules itself (loader/module_identity.h).
pkg_check_modules(KMM_DECOMPRESS REQUIRED IMPORTED_TARGET libzstd liblzma)
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

# Static archives for binaries that must start fast and stay small (kmm_fast_start):
# Debian splits abseil into ~30 shared libraries and gRPC pulls in a dozen more, and a
# short-lived kmm-loader process, or a device plugin held to a few MiB, pays for every one.
# kmm_static_archives(NAME pkg...) makes an interface target that links, in pkg-config's
# --static order, the .a of every library that has one and the shared library otherwise.
# EXTRA names libraries Debian's .pc files leave out of --static.
function(kmm_static_archives name)
  cmake_parse_arguments(ARG "" "" "EXTRA" ${ARGN})
  pkg_check_modules(${name}_PC REQUIRED ${ARG_UNPARSED_ARGUMENTS})
  add_library(${name} INTERFACE)
  foreach(lib ${${name}_PC_STATIC_LIBRARIES} ${ARG_EXTRA})
    find_library(KMM_STATIC_${lib} NAMES lib${lib}.a)
    if(KMM_STATIC_${lib})
      target_link_libraries(${name} INTERFACE ${KMM_STATIC_${lib}})
    else()
      target_link_libraries(${name} INTERFACE ${lib})
    endif()
  endforeach()
endfunction()
kmm_static_archives(kmm_absl_static absl_statusor absl_status absl_synchronization absl_time
                    absl_strings absl_cord)
kmm_static_archives(kmm_grpc_static grpc++_unsecure protobuf-lite
                    EXTRA upb address_sorting cares re2 z)

# spdlog and fmt header-only: Debian ships them as shared libraries only, and a short-lived
# kmm-loader process pays for every shared object it maps (see kmm_fast_start). spdlog's own
# header-only target would still link the shared libfmt, hence this one.
add_library(kmm_spdlog INTERFACE)
target_compile_definitions(kmm_spdlog INTERFACE SPDLOG_FMT_EXTERNAL)
target_link_libraries(kmm_spdlog INTERFACE fmt::fmt-header-only Threads::Threads)

# The operator's Kubernetes client: HTTP/2 and TLS from libcurl, kubeconfig YAML from yaml-cpp,
# probes and metrics served by cpp-httplib.
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(YAMLCPP REQUIRED IMPORTED_TARGET yaml-cpp)
pkg_check_modules(CPPHTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# RE2 from its static archive for the KMM_STATIC_ABSL binaries (kmm-loader links it through
# the device plugin's config validation), the shared library otherwise.
add_library(kmm_re2 INTERFACE)
target_link_libraries(kmm_re2 INTERFACE
  "$<$<BOOL:$<TARGET_PROPERTY:KMM_STATIC_ABSL>>:${KMM_STATIC_re2}>"
  "$<$<NOT:$<BOOL:$<TARGET_PROPERTY:KMM_STATIC_ABSL>>>:PkgConfig::RE2>")

# kmm-loader runs as a new process for every load, unload and readiness probe, and under
# emulation a dynamically linked one spends most of that in the dynamic linker. With
# KMM_STATIC_LOADER it is linked fully statically (kmm_static_executable), against a libkmod
# archive built from Debian's source package of the installed libkmod-dev.
option(KMM_STATIC_LOADER "Link kmm-loader statically, with libkmod built from Debian's source" ON)
if(KMM_ASAN OR KMM_TSAN)
  # The sanitizer runtimes cannot be linked into a static executable.
  set(KMM_STATIC_LOADER OFF)
endif()
if(KMM_STATIC_LOADER)
  execute_process(COMMAND ${CMAKE_SOURCE_DIR}/cmake/build-static-libkmod.sh
                  OUTPUT_VARIABLE libkmod_static_out RESULT_VARIABLE libkmod_static_rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX MATCH "[^\n]*$" libkmod_static_dir "${libkmod_static_out}")
  if(NOT libkmod_static_rc EQUAL 0 OR NOT EXISTS "${libkmod_static_dir}/libkmod.a")
    message(FATAL_ERROR "cannot build libkmod.a from Debian's source (cmake/build-static-libkmod.sh "
                        "says why above). Configure with -DKMM_STATIC_LOADER=OFF to link kmm-loader "
                        "dynamically instead; its processes then start slower.")
  endif()
  find_library(KMM_STATIC_zstd NAMES libzstd.a REQUIRED)
  find_library(KMM_STATIC_lzma NAMES liblzma.a REQUIRED)
  add_library(kmm_libkmod_static INTERFACE)
  target_link_libraries(kmm_libkmod_static INTERFACE
    ${libkmod_static_dir}/libkmod.a ${KMM_STATIC_zstd} ${KMM_STATIC_lzma})
endif()
# libkmod for a target: the static archive for kmm_static_executable binaries, else Debian's.
add_library(kmm_libkmod INTERFACE)
target_link_libraries(kmm_libkmod INTERFACE
  "$<$<BOOL:$<TARGET_PROPERTY:KMM_STATIC_LIBKMOD>>:kmm_libkmod_static>"
  "$<$<NOT:$<BOOL:$<TARGET_PROPERTY:KMM_STATIC_LIBKMOD>>>:PkgConfig::LIBKMOD;PkgConfig::KMM_DECOMPRESS>")
