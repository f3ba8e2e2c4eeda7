#!/usr/bin/env bash
# The operator at scale on kwok (issue #7): NODES simulated nodes over KERNELS kernel versions,
# MODULES Modules (each selecting one pool of NODES/MODULES nodes, with a regexp mapping for
# every kernel). Measures the time from applying the Modules to every loader DaemonSet existing
# with a correct status, and to every loader pod available; the time to converge after 10% of
# the nodes change kernel; the operator's RSS and CPU; API requests per minute at steady state.
# Usage: bench/operator-bench.sh BUILD_DIR. Starts and stops its own test cluster.
set -euo pipefail
build=$(cd "${1:-build-bench}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster=$here/../test/cluster/kmm-test-cluster
nodes=${KMM_BENCH_NODES:-5000} kernels=${KMM_BENCH_KERNELS:-50} modules=${KMM_BENCH_MODULES:-20}
export KMM_TEST_CLUSTER_DIR=$build/bench-operator-cluster
work=$build/bench-operator; rm -rf "$work"; mkdir -p "$work"
# The controller-manager at its upstream default API rate (20 qps, burst 30), as on a real control
# plane. The test cluster otherwise raises it to 500 for quick tests; here, with every component
# on the same two cores, that lets the DaemonSet controller's 5,000 pod creations crowd out
# everything else, the operator's requests included.
KMM_TEST_CLUSTER_KCM_QPS=20 KMM_TEST_CLUSTER_KCM_BURST=30 "$cluster" up >/dev/null 2>&1 ||
  { echo "operator bench: the test cluster did not start" >&2; exit 1; }
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; "$cluster" down >/dev/null 2>&1 || true' EXIT
eval "$("$cluster" env)"
ns=kmm-bench

kubectl apply --server-side -f "$here/../manifests/crd/modules.kmm.sigs.x-k8s.io.yaml" >/dev/null
kubectl apply --server-side -f "$here/../manifests/priority-class.yaml" >/dev/null  # --priority-class
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null
kubectl create namespace "$ns" >/dev/null
# Nodes: pool <i mod MODULES>, kernel 5.15.0-<100 + (i div MODULES) mod KERNELS>-generic, so
# every pool spans every kernel; created in chunks of 500.
python3 - "$nodes" "$kernels" "$modules" "$work/nodes" <<'PY'
import json, os, sys
n, k, m, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
for chunk in range(0, n, 500):
    items = []
    for i in range(chunk, min(n, chunk + 500)):
        kernel = f"5.15.0-{100 + (i // m) % k}-generic"  # every pool spans every kernel
        items.append({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"bench-{i:05}", "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kmm.test/group": "bench", "pool": f"p{i % m}"}},
            "spec": {"providerID": f"kwok://bench-{i:05}"},
            "status": {"nodeInfo": {"kernelVersion": kernel, "architecture": "amd64",
                       "operatingSystem": "linux", "osImage": "kwok", "containerRuntimeVersion": "kwok",
                       "kubeletVersion": "kwok", "kubeProxyVersion": "kwok", "machineID": "",
                       "systemUUID": "", "bootID": ""}}})
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{out}/{chunk:05}.json", "w"))
PY
for f in "$work"/nodes/*.json; do kubectl create -f "$f" >/dev/null; done

probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/bin/kmm-operator" --kubeconfig "$KUBECONFIG" --namespace "$ns" --loader-image kmm-loader:bench \
  --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe_port" > "$work/operator.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$probe_port/readyz" >/dev/null; do sleep 0.2; done
# Start from a settled cluster, as when Modules are applied to a running operator: wait for the
# kernel label the operator puts on every node at start-up. (Those 5,000 node updates would
# otherwise overlap the measurement, and make the DaemonSet controller re-check every
# DaemonSet against each updated node.)
until [[ -z $(kubectl get nodes -l '!kmm.node.kubernetes.io/kernel-version.full' -o name) ]]; do
  sleep 1
done
sleep 5

# wait_until START TIMEOUT CONDITION: polls every second until CONDITION, a Python expression
# over ds (loader DaemonSets), right (Modules whose status counts the right nodes) and avail
# (Modules with every loader pod available), holds; prints the seconds since START
# ($EPOCHREALTIME). Each poll is two requests with curl, the DaemonSets as metadata only, so
# that measuring adds little load to the API server or the machine.
per_pool=$((nodes / modules))
server=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')
pki=$KMM_TEST_CLUSTER_DIR/pki
api() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
wait_until() {
  local start=$1 timeout=$2 condition=$3 verdict
  while :; do
    api -H 'Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' \
      "$server/apis/apps/v1/namespaces/$ns/daemonsets?labelSelector=kmm.sigs.x-k8s.io%2Fcomponent%3Dloader" \
      > "$work/poll-daemonsets.json" || true
    api "$server/apis/kmm.sigs.x-k8s.io/v1beta1/namespaces/$ns/modules" > "$work/poll-modules.json" || true
    verdict=$(python3 -c "
import json, time
ds = len(json.load(open('$work/poll-daemonsets.json'))['items'])
loader = [m.get('status', {}).get('moduleLoader', {}) for m in json.load(open('$work/poll-modules.json'))['items']]
right = sum(1 for s in loader if s.get('nodesMatchingSelectorNumber') == $per_pool)
avail = sum(1 for s in loader if s.get('availableNumber') == $per_pool)
elapsed = time.time() - $start
print(f'{elapsed:.1f}' if $condition else f'waiting: {ds} DaemonSets, {right} right, {avail} available')" 2>/dev/null)
    [[ $verdict == waiting* || -z $verdict ]] || { echo "$verdict"; return 0; }
    if ((${EPOCHREALTIME%.*} - ${start%.*} > timeout)); then
      echo "timeout (${verdict#waiting: })"; return 0
    fi
    sleep 1
  done
}
requests() {  # total non-watch API requests so far, from /metrics
  curl -sf "http://127.0.0.1:$probe_port/metrics" | awk '/^kmm_api_requests_total/ && !/verb="watch"/ { s += $2 } END { print s + 0 }'
}

for ((m = 0; m < modules; m++)); do
  cat <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: bench-$m, namespace: $ns}
spec:
  selector: {pool: p$m}
  moduleLoader:
    container:
      modprobe: {moduleName: bench_$m}
      kernelMappings:
      - regexp: '^5\.15\.0-[0-9]+-generic$'
        containerImage: registry.example/bench-$m:\${KERNEL_FULL_VERSION}
---
YAML
done > "$work/modules.yaml"
start=$EPOCHREALTIME
kubectl apply -f "$work/modules.yaml" >/dev/null
t_ds=$(wait_until "$start" 600 "ds == $modules * min($kernels, $per_pool) and right == $modules")
t_avail=$(wait_until "$EPOCHREALTIME" 900 "avail == $modules")
echo "Operator on kwok: $nodes nodes, $kernels kernels, $modules Modules ($((modules * kernels)) loader DaemonSets, $nodes loader pods)"
echo "  every DaemonSet created and every status right: ${t_ds} s after applying the Modules"
# How fast the API server took our applies, while it also served the DaemonSet controller's pod
# creations: on a small machine this, not the operator, sets the time above.
grep -o '^[^ ]* info kmm-operator: applying DaemonSet' "$work/operator.log" | python3 -c '
import sys, datetime
stamps = [datetime.datetime.fromisoformat(line.split()[0].rstrip("Z")) for line in sys.stdin]
if len(stamps) > 1:
    span = (stamps[-1] - stamps[0]).total_seconds()
    print(f"    of which the operator applying {len(stamps)} DaemonSets: {span:.1f} s, {len(stamps) / span:.0f} per second")
'
echo "  every loader pod available (DaemonSet controller, scheduler and kwok included): +${t_avail} s"

# Steady state: requests over 60 s.
sleep 10
r0=$(requests); sleep 60; r1=$(requests)
echo "  API requests at steady state (not counting watches): $((r1 - r0)) per minute"

# 10% of the nodes reboot into another kernel.
moved=$((nodes / 10))
for ((i = 0; i < moved; i++)); do
  printf 'bench-%05d\n' "$i"
done | xargs -P 8 -I{} kubectl patch node {} --subresource=status --type merge \
  -p '{"status":{"nodeInfo":{"kernelVersion":"5.15.0-999-generic"}}}' >/dev/null
moved_at=$EPOCHREALTIME
t_move_ds=$(wait_until "$moved_at" 600 "ds == $modules * (min($kernels, $per_pool) + 1) and right == $modules")
t_move=$(wait_until "$moved_at" 900 "ds == $modules * (min($kernels, $per_pool) + 1) and avail == $modules")
echo "  $moved nodes changed kernel: new DaemonSets and statuses right in ${t_move_ds} s;" \
  "every pod moved and available in ${t_move} s"

read -r rss_kib < <(awk '/^VmRSS/ { print $2 }' /proc/$pid/status)
read -r hwm_kib < <(awk '/^VmHWM/ { print $2 }' /proc/$pid/status)
cpu_s=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' /proc/$pid/stat)
echo "  operator RSS $((rss_kib / 1024)) MiB (peak $((hwm_kib / 1024)) MiB, target <= 64), CPU ${cpu_s} s in total"
