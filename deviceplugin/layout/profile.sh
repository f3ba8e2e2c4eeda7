#!/bin/bash
# Regenerates deviceplugin/layout/hot_text.ld from profiles of kmm-device-plugin under its
# bench (256 emulated devices: start, registration, 10,000 Allocate, 200 uevents, idle).
# Run it after changes that move the plugin's hot code (new code on the serving path, a
# gRPC or abseil upgrade); code missing from the script still runs, it only costs pages.
#   1. callgrind: every instruction the plugin executes, in a binary linked as it is now;
#   2. three rounds of: relink with the new script, then record the page faults of a normal
#      run (perf), which adds what valgrind's serialised threads never run (lock contention)
#      and leaves in the cold part only what a run did not touch at all.
# Needs valgrind and perf (linux-perf) besides the build's own packages.
# usage: deviceplugin/layout/profile.sh [BUILD_DIR]   (a Release build; default build-bench)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build-bench}" && pwd)
script=$src/deviceplugin/layout/hot_text.ld
generate="python3 $src/deviceplugin/layout/make_hot_text.py --map $build/deviceplugin/kmm-device-plugin.map"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# bench RUNNER: rebuilds, then runs the bench with the plugin started as `RUNNER plugin args`.
bench() {
  cmake --build "$build" --target kmm-device-plugin kmm-device-plugin-bench >/dev/null
  printf '#!/bin/sh\nexec %s %s "$@"\n' "$1" "$build/bin/kmm-device-plugin" >"$work/plugin"
  chmod +x "$work/plugin"
  # The exit status is the runner's (perf's, after SIGTERM): judge by the report instead.
  umockdev-wrapper "$build/bin/kmm-device-plugin-bench" --plugin "$work/plugin" \
    --idle-seconds 5 >"$work/bench.txt" 2>&1 || true
  grep -q "CPU while idle" "$work/bench.txt" || { cat "$work/bench.txt"; return 1; }
}

bench "valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file=$work/callgrind.%p \
  --dump-instr=yes --dump-line=no --compress-pos=no --compress-strings=no"
$generate --callgrind "$work"/callgrind.* --output "$script"

for round in 1 2 3; do
  bench "perf record -q -e page-faults -c 1 -d -o $work/faults.data"
  perf script -i "$work/faults.data" -F addr >"$work/faults.txt" 2>/dev/null
  $generate --faults "$work/faults.txt" --keep "$script" --output "$script"
done

bench ""
cat "$work/bench.txt"
