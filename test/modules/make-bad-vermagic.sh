#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make-bad-vermagic.sh IN.ko OUT.ko: copies a module and changes the kernel release in its
# vermagic to another one of the same length (the last digit of the ABI number changes), so
# the module claims to be built for a kernel that is not running. With CONFIG_MODVERSIONS
# the kernel itself skips the release when comparing vermagic, so only a loader that checks
# it (kmm-loader does) refuses such a module.
set -euo pipefail
in=$1 out=$2
release=$(modinfo -F vermagic "$in" | cut -d' ' -f1)
# Change the last digit of the first number run after the first '-' (the ABI number).
bad=$(sed -E 's/^([0-9.]+-[0-9]*)([0-9])/\1X/' <<<"$release")
digit=${bad#*X}; prefix=${bad%%X*}
orig_digit=${release:${#prefix}:1}
bad="${prefix}$(( (orig_digit + 1) % 10 ))${digit}"
[[ ${#bad} -eq ${#release} && $bad != "$release" ]] || { echo "cannot derive a bad vermagic from $release" >&2; exit 1; }
cp "$in" "$out"
LC_ALL=C perl -0777 -pi -e "s/vermagic=\Q$release\E /vermagic=$bad /" "$out"
got=$(modinfo -F vermagic "$out" | cut -d' ' -f1)
[[ $got == "$bad" ]] || { echo "rewriting vermagic failed ($got)" >&2; exit 1; }
echo "$bad"
