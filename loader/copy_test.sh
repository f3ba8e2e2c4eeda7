#!/usr/bin/env bash
# kmm-copy: a static binary that copies trees (with symlinks) and names what is missing.
set -euo pipefail
copy=$1 linkage=${2:-static}  # sanitizer builds link it dynamically (loader/CMakeLists.txt)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
if [[ $linkage == static ]] && ldd "$copy" >/dev/null 2>&1; then
  echo "FAIL: $copy is dynamically linked"; exit 1
fi
mkdir -p "$work/opt/lib/modules/6.1.0-1-amd64/extra" "$work/opt/firmware"
echo ko > "$work/opt/lib/modules/6.1.0-1-amd64/extra/kmm_ci_a.ko"
echo dep > "$work/opt/lib/modules/6.1.0-1-amd64/modules.dep"
ln -s extra/kmm_ci_a.ko "$work/opt/lib/modules/6.1.0-1-amd64/link.ko"
echo fw > "$work/opt/firmware/blob.bin"
"$copy" "$work/opt/lib/modules/6.1.0-1-amd64" "$work/opt/firmware" "$work/out/opt" >/dev/null
diff -r "$work/opt/lib/modules/6.1.0-1-amd64" "$work/out/opt/6.1.0-1-amd64"
[[ -L $work/out/opt/6.1.0-1-amd64/link.ko ]] || { echo "FAIL: symlink not kept"; exit 1; }
diff "$work/opt/firmware/blob.bin" "$work/out/opt/firmware/blob.bin"
# Installing itself into a shared volume, as the first init container does.
"$copy" "$copy" "$work/tools" >/dev/null && [[ -x $work/tools/kmm-copy ]]
if message=$("$copy" "$work/missing" "$work/out" 2>&1); then echo "FAIL: missing source accepted"; exit 1; fi
[[ $message == *"$work/missing does not exist in this image"* ]] || { echo "FAIL: $message"; exit 1; }
echo PASS
