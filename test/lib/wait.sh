# Shared by the shell tests: source it, then call fail and wait_for. A test may define
# on_fail (e.g. to print a log) before calling them; it runs before fail exits.
# shellcheck shell=bash

fail() {
  echo "FAIL: $*"
  if declare -F on_fail >/dev/null; then on_fail || true; fi
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every $wait_interval seconds (0.3
# unless the test sets it) until it succeeds, or fails the test.
wait_for() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep "${wait_interval:-0.3}"
  done
}
