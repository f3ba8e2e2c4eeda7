#!/usr/bin/env bash
# Boots the qemu node three times for the loader e2e suite (normal, module.sig_enforce=1, then
# lockdown=integrity) and
# leaves the console logs in OUT for loader_e2e_test. Usage: run-loader-vms.sh BUILD_DIR OUT
set -euo pipefail
build=$(cd "$1" && pwd) out=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kver=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1); kver=${kver#/usr/src/linux-headers-}
modules=$build/test-modules/$kver
rm -rf "$out" && mkdir -p "$out/assets/firmware" "$out/assets/opt-bad/lib/modules/$kver/extra"
head -c 1234 /dev/urandom > "$out/assets/firmware/kmm-ci-a.bin"
# A module image whose kmm_ci_a claims another kernel in its vermagic.
"$here/../modules/make-bad-vermagic.sh" "$modules/kmm_ci_a.ko" \
  "$out/assets/opt-bad/lib/modules/$kver/extra/kmm_ci_a.ko" > "$out/assets/bad-vermagic"
depmod -b "$out/assets/opt-bad" "$kver" 2>/dev/null
# A module image of compressed modules, as Ubuntu and others ship them: libkmod (built into
# the static kmm-loader) decompresses them.
compressed=$out/assets/opt-compressed/lib/modules/$kver/extra
mkdir -p "$compressed"
zstd -q "$modules/kmm_ci_a.ko" -o "$compressed/kmm_ci_a.ko.zst"
xz -c "$modules/kmm_ci_b.ko" > "$compressed/kmm_ci_b.ko.xz"
depmod -b "$out/assets/opt-compressed" "$kver" 2>/dev/null
mkdir -p "$out/assets/image"
cp "$modules"/kmm_ci_{a,b}.ko "$out/assets/image/"
# A module image with another build of kmm_ci_a (other build-id): an older build left loaded.
other=$out/assets/opt-other/lib/modules/$kver/extra
mkdir -p "$other"
cp "$modules/other-build/kmm_ci_a.ko" "$other/"
depmod -b "$out/assets/opt-other" "$kver" 2>/dev/null

rc=0
"$here/../qemu/run-vm" --work "$out/normal" --scenario "$here/loader-scenarios.sh" \
  --bin "$build/bin/kmm-loader" --bin "$build/bin/kmm-loader-run" --bin "$build/bin/kmm-test-kubelet" \
  --modules-dir "$out/assets/image" \
  --copy "$out/assets/firmware:/opt/firmware" --copy "$out/assets/opt-bad:/opt-bad" \
  --copy "$out/assets/opt-compressed:/opt-compressed" \
  --copy "$out/assets/opt-other:/opt-other" || rc=$?
"$here/../qemu/run-vm" --work "$out/sig-enforce" --scenario "$here/sig-enforce-scenarios.sh" \
  --bin "$build/bin/kmm-loader" --modules-dir "$out/assets/image" \
  --append "module.sig_enforce=1" || rc=$?
"$here/../qemu/run-vm" --work "$out/lockdown" --scenario "$here/lockdown-scenarios.sh" \
  --bin "$build/bin/kmm-loader" --modules-dir "$out/assets/image" \
  --append "lockdown=integrity" || rc=$?
exit "$rc"
