#!/usr/bin/env bash
# kmm's container images end to end (ctest label `integration`; the kmm_cluster fixture runs
# the registry). Usage: images-test.sh BUILD_DIR
# Builds the images twice and asserts equal digests; pushes them to the test cluster's
# registry and reads back digest, tag, user and entrypoint; pulls them back, unpacks them and
# runs what they hold: the binaries on only the image's libraries, the module image's copy
# step with the loader image's kmm-copy (no shell, no libc in it), the consumer script, and
# the in-cluster build images: kaniko's executor, a module built in the build base and
# signed in the signer image with a throwaway key.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath "$1")
eval "$("$here/../test/cluster/kmm-test-cluster" env)"
fail() { echo "FAIL: $*" >&2; exit 1; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
kernel=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-amd64' | sort -V | tail -n 1)
kernel=${kernel#/usr/src/linux-headers-}
# Kept when the test fails, for a look at what was built.
work=$build/images-test
rm -rf "$work" && mkdir -p "$work/pulled"
rootless=()
[[ $(id -u) == 0 ]] || rootless=(--rootless)

cleanup() {
  if [[ -n ${consumer_pid:-} ]]; then
    pkill -KILL -P "$consumer_pid" 2>/dev/null  # its sleep
    kill -KILL "$consumer_pid" 2>/dev/null
  fi
  [[ -n ${sleeper_pid:-} ]] && kill -KILL "$sleeper_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT

# json EXPRESSION: evaluates a Python expression over the JSON document d read from stdin.
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

echo "--- two builds give the same digests"
start=$SECONDS
"$here/build-images" "$build" "$work/first" > "$work/first.txt"
echo "first build: $((SECONDS - start)) s"
"$here/build-images" "$build" "$work/second" > "$work/second.txt"
cat "$work/first.txt"
diff "$work/first.txt" "$work/second.txt" || fail "two builds of the same inputs differ"
declare -A digest tag
while read -r reference image_digest _; do
  digest[${reference%%:*}]=$image_digest tag[${reference%%:*}]=${reference#*:}
done < "$work/first.txt"
for name in kmm-operator kmm-loader kmm-consumer kmm-builder kmm-signer; do
  [[ ${tag[$name]:-} == "v$version" ]] || fail "$name is tagged '${tag[$name]:-}', not v$version"
done
for name in kmm-ci-modules kmm-build-base; do
  [[ ${tag[$name]:-} == "$kernel" ]] || fail "$name is not tagged $kernel"
done

echo "--- pushed to $KMM_REGISTRY and read back"
"$here/push-images" "$work/first" "$KMM_REGISTRY"
expect_config() {  # expect_config NAME USER ENTRYPOINT: what the registry serves for NAME
  local name=$1 user=$2 entrypoint=$3 ref=docker://$KMM_REGISTRY/$1:${tag[$1]} remote config
  remote=$(skopeo inspect --tls-verify=false "$ref")
  [[ $(json 'd["Digest"]' <<<"$remote") == "${digest[$name]}" ]] || fail "$ref: digest differs"
  [[ " $(json '" ".join(d["RepoTags"])' <<<"$remote") " == *" ${tag[$name]} "* ]] \
    || fail "$ref: the registry lists no tag ${tag[$name]}"
  config=$(skopeo inspect --tls-verify=false --config "$ref")
  [[ $(json 'd["config"].get("User", "")' <<<"$config") == "$user" ]] \
    || fail "$ref: user is not '$user': $config"
  [[ $(json '" ".join(d["config"].get("Entrypoint") or [])' <<<"$config") == "$entrypoint" ]] \
    || fail "$ref: entrypoint is not '$entrypoint': $config"
  [[ $(json 'd["created"]' <<<"$config") == 1970-01-01T00:00:00Z ]] || fail "$ref: creation time"
  skopeo copy --quiet --src-tls-verify=false "$ref" "oci:$work/pulled/$name:${tag[$name]}"
  umoci unpack "${rootless[@]}" --image "$work/pulled/$name:${tag[$name]}" "$work/run/$name" >/dev/null
  echo "$ref: ${digest[$name]}, user '$user', entrypoint '$entrypoint'"
}
expect_config kmm-operator 65532:65532 /usr/bin/kmm-operator
expect_config kmm-loader "" /usr/bin/kmm-loader
expect_config kmm-ci-modules "" ""
expect_config kmm-consumer 65532:65532 /usr/bin/kmm-consumer
expect_config kmm-builder 0:0 /kaniko/executor
expect_config kmm-build-base "" ""
expect_config kmm-signer "" /usr/local/bin/sign-file
# What upstream KMM's kaniko Job relies on besides the entrypoint.
config=$(skopeo inspect --tls-verify=false --config "docker://$KMM_REGISTRY/kmm-builder:v$version")
[[ $(json 'd["config"].get("WorkingDir", "")' <<<"$config") == /workspace ]] \
  || fail "kmm-builder: workdir is not /workspace: $config"
for variable in DOCKER_CONFIG=/kaniko/.docker/ SSL_CERT_DIR=/kaniko/ssl/certs HOME=/root; do
  [[ " $(json '" ".join(d["config"]["Env"])' <<<"$config") " == *" $variable "* ]] \
    || fail "kmm-builder: no $variable in its environment: $config"
done

if [[ $(id -u) != 0 ]]; then
  echo "not root: running the images' contents (chroot) skipped"
  rm -rf "$work"
  exit 0
fi

echo "--- the binaries run on the image's libraries alone, and only those are there"
# interpreter BINARY: the dynamic loader BINARY asks for; nothing for a static binary.
interpreter() { readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'; }
# expect_libraries ROOT BINARY...: the libraries the image's dynamic loader finds for
# BINARY... inside ROOT are all found, and are exactly the files in ROOT besides /usr/bin
# (compared by their real paths: /lib is a symlink to usr/lib). No file has debug info.
expect_libraries() {
  local root=$1 binary loader listed present; shift
  for binary; do
    loader=$(interpreter "$root$binary")
    [[ -n $loader ]] || continue
    echo "$loader"
    chroot "$root" "$loader" --list "$binary"
  done > "$work/libraries.txt"
  ! grep 'not found' "$work/libraries.txt" || fail "$root: libraries missing from the image"
  listed=$(grep -o '/[^ ]*' "$work/libraries.txt" | while read -r library; do
      realpath -m "$root$library"; done | sed "s|^$root||" | sort -u)
  present=$(cd "$root" && find . -type f ! -path './usr/bin/*' ! -path './usr/local/bin/*' \
    ! -path './bin/*' | sed 's|^\.||' | sort)
  [[ -n $present && $listed == "$present" ]] \
    || fail "$root: its libraries differ from what its binaries use: $(diff <(echo "$listed") <(echo "$present"))"
  ! grep -q '\.debug_info' < <(find "$root" -type f -exec readelf -S --wide {} + 2>/dev/null) \
    || fail "$root: a file still has debug info"
  echo "$root: $(wc -l <<<"$present") libraries, the ones its binaries load"
}
# A minimal /dev, as a container runtime provides it.
make_dev() { mkdir -p "$1/dev" && mknod -m 0666 "$1/dev/null" c 1 3; }

root=$work/run/kmm-operator/rootfs
expect_libraries "$root" /usr/bin/kmm-operator
got=$(chroot --userspec=65532:65532 "$root" /usr/bin/kmm-operator --version)
[[ $got == "kmm-operator $version" ]] || fail "kmm-operator --version in its image: $got"
echo "kmm-operator image runs as 65532: $got"

root=$work/run/kmm-loader/rootfs
for binary in kmm-loader kmm-loader-run kmm-copy kmm-device-plugin; do
  [[ -x $root/usr/bin/$binary ]] || fail "the loader image has no /usr/bin/$binary"
done
# kmm-copy runs inside module images, which may have no libc.
[[ -z $(interpreter "$root/usr/bin/kmm-copy") ]] || fail "kmm-copy in the loader image is not static"
expect_libraries "$root" /usr/bin/kmm-loader /usr/bin/kmm-loader-run /usr/bin/kmm-device-plugin
for binary in kmm-loader kmm-loader-run kmm-device-plugin; do
  got=$(chroot "$root" "/usr/bin/$binary" --version)
  # (kmm-loader-run is kmm-loader's other build: it names itself kmm-loader.)
  [[ $got == "${binary%-run} $version" ]] || fail "$binary --version in the loader image: $got"
done
echo "kmm-loader image: its four binaries run"

echo "--- the module image: modules and firmware, no shell, no libc; the loader pod's copy works"
root=$work/run/kmm-ci-modules/rootfs
modules=$root/opt/lib/modules/$kernel
for file in kmm_ci_a.ko kmm_ci_b.ko modules.dep modules.dep.bin; do
  [[ -f $modules/$file ]] || fail "the module image has no /opt/lib/modules/$kernel/$file"
done
grep -qx 'kmm_ci_b.ko: kmm_ci_a.ko' "$modules/modules.dep" \
  || fail "modules.dep does not say kmm_ci_b needs kmm_ci_a: $(cat "$modules/modules.dep")"
[[ $(stat -c %s "$root/opt/firmware/kmm-ci-a.bin") == 1234 ]] || fail "no 1234-byte firmware"
[[ ! -e $root/bin/sh && ! -L $root/bin/sh ]] || fail "the module image has /bin/sh"
[[ -z $(find "$root" -name 'libc.so*') ]] || fail "the module image has a libc"
[[ -z $(find "$root" -type f -perm /111) ]] || fail "the module image has executables"
# As the loader pod's init containers do (loader_daemonset.yaml): kmm-copy from the loader
# image, then run inside the module image to copy its modules and firmware out.
install -D "$work/run/kmm-loader/rootfs/usr/bin/kmm-copy" "$root/kmm-tools/kmm-copy"
chroot "$root" /kmm-tools/kmm-copy "/opt/lib/modules/$kernel" /kmm-modules/opt/lib/modules
chroot "$root" /kmm-tools/kmm-copy /opt/firmware /kmm-modules/opt
cmp "$modules/kmm_ci_a.ko" "$root/kmm-modules/opt/lib/modules/$kernel/kmm_ci_a.ko"
cmp "$root/opt/firmware/kmm-ci-a.bin" "$root/kmm-modules/opt/firmware/kmm-ci-a.bin"
# libkmod resolves the copied tree's dependencies from depmod's index.
got=$(modprobe --show-depends -d "$root/kmm-modules/opt" -S "$kernel" kmm_ci_b)
order=$(grep -o 'kmm_ci_[ab].ko' <<<"$got" | tr '\n' ' ')
[[ $order == "kmm_ci_a.ko kmm_ci_b.ko " ]] || fail "modprobe on the copied tree: $got"
echo "kmm-ci-modules image: copied out by kmm-copy; modprobe kmm_ci_b there loads $order"

echo "--- the consumer: no device, then a device it holds open until SIGTERM"
root=$work/run/kmm-consumer/rootfs
# What a container runtime provides: /dev/null, and the allocated device (a file here that
# reads like kmm_ci_a's device).
make_dev "$root"
consumer() { chroot --userspec=65532:65532 "$root" /usr/bin/kmm-consumer; }
rc=0
got=$(consumer 2>&1) || rc=$?
[[ $rc != 0 && $got == *"kmm-consumer: sees no /dev/kmm-ci-a* device"* ]] \
  || fail "the consumer with no device exited $rc: $got"
printf 'kmm-ci-a\n' > "$root/dev/kmm-ci-a1"
# Not through the function: $! must be the consumer itself.
chroot --userspec=65532:65532 "$root" /usr/bin/kmm-consumer > "$work/consumer.log" 2>&1 &
consumer_pid=$!
deadline=$((SECONDS + 10))
until grep -q 'holding the devices open' "$work/consumer.log"; do
  kill -0 "$consumer_pid" 2>/dev/null || fail "the consumer exited: $(cat "$work/consumer.log")"
  ((SECONDS < deadline)) || fail "the consumer did not open its device: $(cat "$work/consumer.log")"
  sleep 0.1
done
grep -qx 'kmm-consumer: sees /dev/kmm-ci-a1' "$work/consumer.log" || fail "$(cat "$work/consumer.log")"
grep -qx 'kmm-consumer: opened /dev/kmm-ci-a1: kmm-ci-a' "$work/consumer.log" \
  || fail "the consumer did not read the device: $(cat "$work/consumer.log")"
grep -q "$root/dev/kmm-ci-a1" < <(ls -l "/proc/$consumer_pid/fd") \
  || fail "the consumer does not hold /dev/kmm-ci-a1 open"
sleeper_pid=$(pgrep -P "$consumer_pid" sleep || true)
kill -TERM "$consumer_pid"
rc=0
wait "$consumer_pid" || rc=$?
consumer_pid=
[[ $rc == 0 ]] || fail "the consumer exited $rc on SIGTERM: $(cat "$work/consumer.log")"
# Its sleep goes too (a zombie until whoever inherited it reaps it).
[[ -n $sleeper_pid ]] || fail "the consumer was not sleeping: $(cat "$work/consumer.log")"
deadline=$((SECONDS + 5))
until [[ $(ps -o stat= -p "$sleeper_pid" || true) != [^Z]* ]]; do
  ((SECONDS < deadline)) || fail "the consumer left its sleep running"
  sleep 0.1
done
sleeper_pid=
cat "$work/consumer.log"

echo "--- the build images: kaniko's executor, a module built in the base and signed in the signer"
root=$work/run/kmm-builder/rootfs
[[ -s $root/kaniko/ssl/certs/ca-certificates.crt && -d $root/kaniko/.docker ]] \
  || fail "kmm-builder has no CA bundle or no /kaniko/.docker"
[[ -z $(interpreter "$root/kaniko/executor") ]] || fail "kaniko's executor is not static"
got=$(chroot "$root" /kaniko/executor version)
[[ $got == "Kaniko version"*v[0-9]* ]] || fail "/kaniko/executor version: $got"
echo "kmm-builder: $got"
# The module as a Dockerfile FROM kmm-build-base builds it (test/node/build-experiment.md).
root=$work/run/kmm-build-base/rootfs
[[ -d $root/usr/src/linux-headers-$kernel ]] || fail "kmm-build-base has no headers for $kernel"
make_dev "$root"
mkdir -p "$root/src"
cp "$here/../test/modules/kmm_ci_a.c" "$here/../test/modules/kmm_ci_a.h" "$root/src/"
echo 'obj-m += kmm_ci_a.o' > "$root/src/Kbuild"
chroot "$root" /bin/sh -c "make -s -C /usr/src/linux-headers-$kernel M=/src modules \
  && mkdir -p /opt/lib/modules/$kernel && cp /src/kmm_ci_a.ko /opt/lib/modules/$kernel/ \
  && depmod -b /opt $kernel" > "$work/module-build.log" 2>&1 \
  || fail "the module build in kmm-build-base failed: $(tail -n 20 "$work/module-build.log")"
built=$root/opt/lib/modules/$kernel/kmm_ci_a.ko
[[ $(modinfo -F vermagic "$built") == "$kernel "* ]] || fail "vermagic: $(modinfo -F vermagic "$built")"
[[ -f $root/opt/lib/modules/$kernel/modules.dep ]] || fail "depmod wrote no modules.dep"
echo "kmm-build-base: built kmm_ci_a for $(modinfo -F vermagic "$built")"
root=$work/run/kmm-signer/rootfs
expect_libraries "$root" /usr/local/bin/sign-file
make_dev "$root"
mkdir -p "$root/run/secrets/key" "$root/run/secrets/cert" "$root/signroot"
openssl req -new -x509 -nodes -newkey rsa:2048 -days 1 -subj "/CN=kmm-images-test/" \
  -keyout "$root/run/secrets/key/key.pem" -outform PEM -out "$root/run/secrets/cert/cert.pem" 2>/dev/null
cp "$built" "$root/signroot/"
[[ -z $(modinfo -F signer "$root/signroot/kmm_ci_a.ko") ]] || fail "kmm_ci_a is signed before signing"
# As a signing build's RUN does: a busybox loop over the files, skipping the missing ones.
# shellcheck disable=SC2016 # expanded by the image's shell
chroot "$root" /bin/sh -c 'for f in /signroot/kmm_ci_a.ko /signroot/missing.ko; do
    if [ -e "$f" ]; then sign-file sha256 /run/secrets/key/key.pem /run/secrets/cert/cert.pem "$f" || exit 1; fi
  done' || fail "sign-file in kmm-signer failed"
[[ $(modinfo -F signer "$root/signroot/kmm_ci_a.ko") == kmm-images-test ]] \
  || fail "the signed module's signer: $(modinfo "$root/signroot/kmm_ci_a.ko")"
echo "kmm-signer: kmm_ci_a signed, modinfo: signer $(modinfo -F signer "$root/signroot/kmm_ci_a.ko"), $(modinfo -F sig_hashalgo "$root/signroot/kmm_ci_a.ko")"
rm -rf "$work"
echo "PASS"
