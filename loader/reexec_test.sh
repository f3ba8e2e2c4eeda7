#!/usr/bin/env bash
# The static kmm-loader's `run` with a devicePlugin continues as the kmm-loader-run beside it,
# with the same arguments and environment; without one it fails clearly, before loading.
# (The real kmm-loader-run takes over in the qemu e2e suite.) Usage: reexec_test.sh KMM_LOADER
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$work/log" >&2 || true; exit 1; }
cp "$1" "$work/kmm-loader"
cat > "$work/dp.json" <<JSON
{"moduleName":"kmm_ci_a","terminationMessagePath":"$work/term",
 "devicePlugin":{"resources":[{"resourceName":"example.com/kmm-ci-a","match":{"subsystem":"misc"}}]}}
JSON

# No kmm-loader-run: exit 1, the reason in the log and the termination message.
rc=0
"$work/kmm-loader" run --config "$work/dp.json" --device-plugin-dir /dp >"$work/log" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "exit $rc, want 1"
grep -q "cannot execute $work/kmm-loader-run, which runs the device plugin" "$work/log" ||
  fail "the log does not name the missing kmm-loader-run"
grep -q "cannot execute $work/kmm-loader-run" "$work/term" || fail "termination message: $(cat "$work/term")"

# A stand-in kmm-loader-run records how it was started.
printf '#!/bin/sh\necho "$0 $* KMM_MARK=$KMM_MARK" > %s/args\n' "$work" > "$work/kmm-loader-run"
chmod +x "$work/kmm-loader-run"
KMM_MARK=kept "$work/kmm-loader" run --config "$work/dp.json" --device-plugin-dir /dp >"$work/log" 2>&1 ||
  fail "exit $?"
want="$work/kmm-loader-run run --config $work/dp.json --device-plugin-dir /dp KMM_MARK=kept"
[[ $(cat "$work/args") == "$want" ]] || fail "started as: $(cat "$work/args"); want: $want"

# Without a devicePlugin, run stays in kmm-loader (the stand-in is not started).
rm "$work/args"
echo '{"moduleName":"kmm_ci_a","kernelVersion":"0.0.0-other"}' > "$work/plain.json"
timeout -s INT 2 "$work/kmm-loader" run --config "$work/plain.json" >"$work/log" 2>&1 || true
[[ ! -e $work/args ]] || fail "kmm-loader-run started for a config without a devicePlugin"
grep -q "0.0.0-other" "$work/log" || fail "run did not handle the config itself"
echo PASS
