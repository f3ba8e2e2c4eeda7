# Helpers that give every target of ours the same warnings and test wiring.

# Warnings are errors on our own code only; generated and third-party code is exempt.
function(kmm_strict_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                           -Wnon-virtual-dtor -Wformat=2 -Werror)
  # GCC 12 at -O3 reports -Wrestrict inside libstdc++'s std::string (GCC bug 105329), not in
  # our code; Release builds (make bench) would fail on it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()

# kmm_library(NAME SOURCES ... DEPS ...): a component library with strict warnings.
function(kmm_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  kmm_strict_warnings(${name})
endfunction()

# kmm_executable(NAME SOURCES ... DEPS ...): a thin binary written to build/bin/.
function(kmm_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  kmm_strict_warnings(${name})
endfunction()

# kmm_fast_start(TARGET): for binaries that run as many short processes (kmm-loader is
# exec'd for every load, unload and readiness probe): fewer shared objects to map and
# relocate at start-up. Matters most on slow nodes and under emulation.
function(kmm_fast_start target)
  set_target_properties(${target} PROPERTIES KMM_STATIC_ABSL ON)
  target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc -Wl,--as-needed -no-pie
                                        -Wl,--gc-sections)
endfunction()

# kmm_static_executable(TARGET): kmm_fast_start and, with KMM_STATIC_LOADER, a fully static
# executable: no dynamic linker at all, so a process costs little more than its own work.
# Such a binary cannot dlopen (libudev), so it must not link the device plugin's runtime.
function(kmm_static_executable target)
  kmm_fast_start(${target})
  if(KMM_STATIC_LOADER)
    set_target_properties(${target} PROPERTIES KMM_STATIC_LIBKMOD ON)
    target_link_options(${target} PRIVATE -static)
  endif()
endfunction()

# kmm_test(NAME LABEL unit|integration|e2e SOURCES ... DEPS ... [WRAPPER cmd...]):
# a GoogleTest binary whose tests ctest discovers one by one, tagged with LABEL.
function(kmm_test name)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;DEPS;WRAPPER;PROPERTIES" ${ARGN})
  if(NOT ARG_LABEL)
    set(ARG_LABEL unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  kmm_strict_warnings(${name})
  if(ARG_WRAPPER)
    if(KMM_ASAN)
      # A preloading wrapper (umockdev) puts its library before ASan's runtime; allow it.
      list(PREPEND ARG_WRAPPER ${CMAKE_COMMAND} -E env ASAN_OPTIONS=verify_asan_link_order=0)
    endif()
    # gtest_discover_tests runs the binary through this, for listing and for each test.
    set_target_properties(${name} PROPERTIES CROSSCOMPILING_EMULATOR "${ARG_WRAPPER}")
  endif()
  gtest_discover_tests(${name}
    TEST_PREFIX "${name}."
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT} ${ARG_PROPERTIES}
    DISCOVERY_TIMEOUT 30)
endfunction()

# kmm_hot_code_first(TARGET SCRIPT): links TARGET with SCRIPT, a GNU ld script generated from
# a profile that puts the code TARGET runs at the start of .text, ahead of the rest. The
# kernel maps the 64 KiB around every file page a process touches, so a few hundred KiB of hot
# code spread over megabytes of statically linked text makes all of it resident. Also writes
# TARGET's link map, which the script is regenerated from, beside TARGET's objects.
function(kmm_hot_code_first target script)
  target_link_options(${target} PRIVATE "LINKER:-T,${script}"
                      "LINKER:-Map=${CMAKE_CURRENT_BINARY_DIR}/${target}.map")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${script})
endfunction()
