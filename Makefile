# kmm: the entry points a developer or CI needs. `make test` and `make demo` work alone on
# a fresh Debian 12 machine: they install what they need first (`make deps`).
SHELL := /bin/bash
.DEFAULT_GOAL := build

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
# Extra CMake options, e.g. CMAKE_ARGS=-DKMM_ASAN=ON
CMAKE_ARGS ?=
# Labels to run; every label that exists by default.
TEST_LABELS ?=
JOBS ?= $(shell nproc)

# Debian packages the build, the tests, the benchmarks and the demo need.
DEB_PACKAGES := \
  build-essential cmake ninja-build pkg-config git \
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc \
  libabsl-dev libkmod-dev libudev-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
  libcli11-dev libre2-dev libcurl4-openssl-dev libcpp-httplib-dev libyaml-cpp-dev \
  libgtest-dev libgmock-dev googletest umockdev libumockdev-dev \
  dpkg-dev autoconf automake libtool libzstd-dev liblzma-dev zstd xz-utils \
  clang-format clang-tidy openssl kmod cpio busybox-static qemu-system-x86 \
  python3 curl procps apache2-utils \
  umoci skopeo docker-registry qemu-utils mmdebstrap e2fsprogs openssh-client ca-certificates \
  linux-image-amd64 linux-headers-amd64 \
  ovmf mtools dosfstools python3-venv python3-cryptography python3-pefile python3-yaml python3-requests

.PHONY: deps build images test test-asan test-tsan bench demo demo-down demo-loader fmt lint clean

# Idempotent: does nothing when every package is already installed.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || echo "$$p"; \
	  done); \
	if [[ -n "$$missing" ]]; then \
	  echo "make deps: installing:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(if $(filter 0,$(shell id -u)),,sudo -E) apt-get update -qq && \
	  $(if $(filter 0,$(shell id -u)),,sudo -E) apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "make deps: all Debian packages present"; \
	fi

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The container images, as OCI image layouts in $(BUILD_DIR)/images/ (images/README.md).
images: build
	images/build-images $(BUILD_DIR) $(BUILD_DIR)/images

test: deps
	$(MAKE) build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(if $(TEST_LABELS),-L '$(TEST_LABELS)')

# The same suite under AddressSanitizer+UBSan, and under ThreadSanitizer.
test-asan: deps
	$(MAKE) test BUILD_DIR=build-asan CMAKE_ARGS=-DKMM_ASAN=ON
test-tsan: deps
	$(MAKE) test BUILD_DIR=build-tsan CMAKE_ARGS=-DKMM_TSAN=ON

# Benchmarks measure an optimised build of their own.
bench: deps
	$(MAKE) build BUILD_DIR=build-bench BUILD_TYPE=Release
	@if [[ -x bench/run ]]; then bench/run build-bench; else echo "make bench: no benchmarks yet"; fi

# The whole flow on a local cluster with a qemu worker node (test/demo/node-demo); it stays up
# to look around until `make demo-down`, which stops every process it started.
demo: deps
	$(MAKE) build
	test/demo/node-demo $(BUILD_DIR)

demo-down:
	test/demo/node-demo $(BUILD_DIR) down

# kmm-loader and the device plugin alone in a qemu VM, without Kubernetes (about a minute).
demo-loader: deps
	$(MAKE) build
	test/demo/loader-demo $(BUILD_DIR)

SOURCES = $(shell git ls-files '*.cc' '*.h')

fmt:
	clang-format -i $(SOURCES)

lint: $(BUILD_DIR)/build.ninja
	clang-format --dry-run -Werror $(SOURCES)
	clang-tidy -p $(BUILD_DIR) --quiet $(filter %.cc,$(SOURCES))

clean:
	rm -rf build build-asan build-tsan
