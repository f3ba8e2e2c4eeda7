#!/usr/bin/env bash
# The Kubernetes client on a real API server (issue #6): an informer over 5,000 Nodes, with
# and without trimming the cached objects, each in its own process so RSS is its own.
# Usage: bench/kube-bench.sh BUILD_DIR. Starts the test cluster in BUILD_DIR/bench-cluster
# and stops it again.
set -euo pipefail
build=$(cd "${1:-build-bench}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster=$here/../test/cluster/kmm-test-cluster
export KMM_TEST_CLUSTER_DIR=$build/bench-cluster
"$cluster" up >/dev/null 2>&1 || { echo "kube bench: the test cluster did not start" >&2; exit 1; }
trap '"$cluster" down >/dev/null 2>&1 || true' EXIT
kubeconfig=$KMM_TEST_CLUSTER_DIR/admin.kubeconfig
nodes=${KMM_BENCH_NODES:-5000}
echo "Kubernetes client: informer over $nodes Nodes on a real kube-apiserver"
for transform in "" --transform; do
  "$build/bin/kmm-kube-bench" --kubeconfig "$kubeconfig" --nodes "$nodes" $transform \
    --idle-seconds "${KMM_BENCH_IDLE_SECONDS:-30}" --updates 2000 | grep '^kube-bench:' |
  awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         printf "  %-28s synced in %5d ms, %d objects; RSS %.1f MiB (anon %.1f MiB, peak %.1f MiB)\n",
           (v["transform"] == "yes" ? "trimmed to what kmm reads:" : "whole objects:"),
           v["sync_ms"], v["cached"], v["rss_trimmed_kib"] / 1024, v["anon_trimmed_kib"] / 1024,
           v["hwm_kib"] / 1024
         printf "  %-28s %d requests in %d idle s (the watch alone); %d patches from 8 connections reached the cache %d ms after the first (%.0f events/s, limited by the API server)\n",
           "", v["idle_requests"], v["idle_seconds"], v["seen"], v["cache_ms"], v["events_per_s"] }'
done
