#!/bin/bash
# Regenerates loader/layout/hot_text.ld from callgrind profiles of the short kmm-loader
# processes (load, status, unload of kmm_ci_b and its dependency) on the qemu node: every
# instruction they run, in kmm-loader as it is linked now. kmm-loader is single-threaded
# there, so callgrind sees all of it. Run it after changes that move the code those processes
# run (flags, config, the load path, a library upgrade); code missing from the script still
# runs, it only costs pages. Needs valgrind besides the build's own packages.
# usage: loader/layout/profile.sh [BUILD_DIR]   (a Release build; default build-bench)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build-bench}" && pwd)
kver=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1); kver=${kver#/usr/src/linux-headers-}
valgrind_lib=/usr/libexec/valgrind
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --build "$build" --target kmm-loader kmm_test_modules >/dev/null
mkdir -p "$work/image" "$work/valgrind"
cp "$build/test-modules/$kver"/kmm_ci_{a,b}.ko "$work/image/"
cp "$valgrind_lib"/{callgrind-amd64-linux,vgpreload_core-amd64-linux.so,default.supp} "$work/valgrind/"
# The guest prints kmm-loader's part of each profile (its ob= lines and the addresses of the
# instructions it ran) on the console, the only way out of the VM.
cat > "$work/scenario.sh" <<'SCENARIO'
echo '{"moduleName":"kmm_ci_b","terminationMessagePath":""}' > /tmp/b.json
profile() {
  valgrind.bin --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
    --callgrind-out-file=/tmp/callgrind.out kmm-loader --log-level warn "$1" --config /tmp/b.json \
    > /dev/null 2>&1
  awk '/^ob=/ { keep = /\/kmm-loader$/ } keep && /^(ob=|0x)/' /tmp/callgrind.out
}
profile load && profile status && profile unload
SCENARIO
"$src/test/qemu/run-vm" --work "$work/vm" --scenario "$work/scenario.sh" \
  --bin "$build/bin/kmm-loader" --bin "$(command -v valgrind.bin)" \
  --copy "$work/valgrind:$valgrind_lib" --modules-dir "$work/image" --timeout 900
grep -a -E '^(ob=|0x)' "$work/vm/console.log" > "$work/callgrind.out"
python3 "$src/deviceplugin/layout/make_hot_text.py" --binary kmm-loader \
  --map "$build/loader/kmm-loader.map" --callgrind "$work/callgrind.out" \
  --profiled "kmm-loader load, status and unload on the qemu node (loader/layout/profile.sh)" \
  --output "$src/loader/layout/hot_text.ld"
