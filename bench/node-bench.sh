#!/usr/bin/env bash
# The real node in qemu (test/node): boot to Ready on a fresh disk and after a reboot (as
# kmm-node records it, from qemu's start to the Node's Ready condition with a new boot ID); the
# memory the guest uses (free -m) and qemu's RSS on the host, with the node Ready and with a
# loader running; the time from `kubectl apply` of a Module to its devices in the node's
# Allocatable (`kubectl describe node`): first with the images still to pull, again with them
# on the node, and after a reboot with the Module applied.
# Usage: bench/node-bench.sh BUILD_DIR. Starts and stops its own cluster (BUILD_DIR/bench-node-cluster).
set -euo pipefail
build=$(cd "${1:-build-bench}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cluster=$repo/test/cluster/kmm-test-cluster
node_cmd=$repo/test/node/kmm-node
export KMM_TEST_CLUSTER_DIR=$build/bench-node-cluster
state=$KMM_TEST_CLUSTER_DIR
work=$build/bench-node; rm -rf "$work"; mkdir -p "$work"
node=${KMM_NODE_NAME:-kmm-node-1}
ns=kmm-bench module=kmm-ci resource=example.com/kmm-ci-a

# A cluster left by an interrupted run goes first.
"$cluster" down >/dev/null 2>&1 || true
trap '"$cluster" down >/dev/null 2>&1 || true' EXIT
"$cluster" up --node > "$work/up.log" 2>&1 ||
  { echo "node bench: the cluster did not start; see $work/up.log" >&2; exit 1; }
eval "$("$cluster" env)"
boot_fresh=$(cat "$state/node/boot-to-ready-seconds")

on_node() { "$node_cmd" ssh "$@"; }
guest_used_mb() { on_node free -m | awk '/^Mem:/ { print $3 }'; }
qemu_rss_mb() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$(cat "$state/pids/node")/status"; }
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "node bench: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}
# allocatable RESOURCE: the node's Allocatable has some.
allocatable() {
  kubectl describe node "$node" | awk -v key="$1:" '
    /^[A-Z]/ { in_section = ($1 == "Allocatable:") }
    in_section && $1 == key && $2 > 0 { found = 1 }
    END { exit !found }'
}
# apply_to_capacity RESOURCE: seconds from applying the Module (its devices named RESOURCE)
# to them in `describe node`.
apply_to_capacity() {
  local start=$EPOCHREALTIME
  module_yaml "$1" | kubectl apply -f - >/dev/null
  wait_for 300 "$1 in the node's Allocatable" allocatable "$1"
  echo "$EPOCHREALTIME - $start" | bc | xargs printf '%.1f'
}

# Settled: the first minute after Ready has containerd and the kubelet still starting things.
sleep 20
ready_guest=$(guest_used_mb) ready_rss=$(qemu_rss_mb)

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
"$repo/images/build-images" "$build" "$work/images" > /dev/null
"$repo/images/push-images" "$work/images" "$KMM_REGISTRY" > /dev/null
"$repo/manifests/overlay-for" "$KMM_REGISTRY" "v$version" "$work/install" > /dev/null
kubectl apply -k "$work/install" > /dev/null
kubectl -n kmm-system rollout status deploy/kmm-operator --timeout 300s > /dev/null
kubectl create namespace "$ns" > /dev/null
kver=$(kubectl get node "$node" -o jsonpath='{.status.nodeInfo.kernelVersion}')
module_yaml() { "$repo/test/node/sample-module" "$ns" "$module" "$kver" "$KMM_REGISTRY" "$1"; }
first=$(apply_to_capacity "$resource")
sleep 10
loader_guest=$(guest_used_mb) loader_rss=$(qemu_rss_mb)
kubectl -n "$ns" delete module "$module" --timeout 300s > /dev/null
wait_for 120 "the loader pod to go" bash -c "[[ -z \$(kubectl -n $ns get pods -o name) ]]"
# Again, under another resource name: the kubelet keeps a resource whose plugin left in
# Allocatable for minutes (its grace period), so the first name would show at once.
again=$(apply_to_capacity "$resource-again")

# A reboot with the Module applied: the node comes back, then the loader loads again.
rebooted_at=$EPOCHREALTIME
"$node_cmd" reboot > "$work/reboot.log" 2>&1
boot_reboot=$(cat "$state/node/boot-to-ready-seconds")
wait_for 300 "$resource-again after the reboot" allocatable "$resource-again"
reboot_capacity=$(echo "$EPOCHREALTIME - $rebooted_at" | bc | xargs printf '%.1f')
kubectl -n "$ns" delete module "$module" --timeout 300s > /dev/null

memory=$(sed -n 's/.*memory_mb=\${KMM_NODE_MEMORY_MB:-\([0-9]*\)}.*/\1/p' "$node_cmd")
echo "Real node in qemu (TCG, 2 vCPUs, ${KMM_NODE_MEMORY_MB:-$memory} MB; test/node):"
printf '  boot to Ready, fresh disk:             %6s s  (target <= 180)\n' "$boot_fresh"
printf '  boot to Ready, reboot:                 %6s s  (target <= 180)\n' "$boot_reboot"
printf '  Module applied to capacity, first:     %6s s  (target <= 60; pulls the loader and module images)\n' "$first"
printf '  Module applied to capacity, again:     %6s s  (target <= 60; images on the node)\n' "$again"
printf '  reboot to capacity again:              %6s s\n' "$reboot_capacity"
printf '  guest memory used (free -m):  Ready %4s MB, with the loader running %4s MB\n' "$ready_guest" "$loader_guest"
printf '  qemu RSS on the host:         Ready %4s MB, with the loader running %4s MB\n' "$ready_rss" "$loader_rss"
