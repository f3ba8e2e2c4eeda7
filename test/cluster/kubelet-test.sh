#!/usr/bin/env bash
# kmm-device-plugin against the real kubelet of the test cluster (ctest label
# `integration`). Usage: kubelet-test.sh PATH/TO/kmm-device-plugin
# A pod requesting example.com/kmm-it stays Pending while no plugin offers it; once the
# plugin registers (advertising two real device nodes of this machine, /dev/null and
# /dev/zero), `kubectl describe node` shows the resource under Capacity and Allocatable,
# the pod is admitted and runs, and the runtime receives the device from the allocation.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plugin=$1
state=${KMM_TEST_CLUSTER_DIR:-/tmp/kmm-test-cluster}
eval "$("$here/kmm-test-cluster" env)"
fail() { echo "FAIL: $*" >&2; exit 1; }
node=kmm-kubelet
[[ -f $state/pids/kubelet ]] || { echo "no kubelet in this cluster (not root?): skipped"; exit 0; }
pod=wants-kmm-it-$$

cleanup() {
  [[ -n ${plugin_pid:-} ]] && kill -TERM "$plugin_pid" 2>/dev/null && wait "$plugin_pid" 2>/dev/null
  kubectl delete pod "$pod" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  containers:
  - name: app
    image: registry.invalid/kmm-it:1
    resources: {limits: {example.com/kmm-it: "1"}}
YAML
deadline=$((SECONDS + 60))
until kubectl get pod "$pod" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].message}' \
    | grep -q 'Insufficient example.com/kmm-it'; do
  ((SECONDS < deadline)) || fail "the pod was not held back for want of example.com/kmm-it"
  sleep 0.5
done
[[ $(kubectl get pod "$pod" -o jsonpath='{.status.phase}') == Pending ]] || fail "pod not Pending"
echo "ok: without a device plugin the pod stays Pending (Insufficient example.com/kmm-it)"

config=$state/kmm-it-plugin.json
echo '{"resources":[{"resourceName":"example.com/kmm-it","match":{"subsystem":"mem","kernel":"[nz]*"}}]}' > "$config"
"$plugin" --config "$config" --device-plugin-dir /var/lib/kubelet/device-plugins \
  > "$state/logs/kmm-it-plugin.log" 2>&1 &
plugin_pid=$!

deadline=$((SECONDS + 90))
until [[ $(kubectl get node "$node" -o jsonpath='{.status.allocatable.example\.com/kmm-it}') == 2 ]]; do
  ((SECONDS < deadline)) || fail "node allocatable never showed 2 example.com/kmm-it; plugin log: $(tail -n 5 "$state/logs/kmm-it-plugin.log")"
  sleep 0.5
done
described=$(kubectl describe node "$node")
[[ $(grep -cE '^\s+example.com/kmm-it:\s+2$' <<<"$described") == 2 ]] \
  || fail "kubectl describe node does not list example.com/kmm-it: 2 under Capacity and Allocatable"
echo "ok: kubectl describe node shows example.com/kmm-it: 2 under Capacity and Allocatable"

deadline=$((SECONDS + 120))
until [[ $(kubectl get pod "$pod" -o jsonpath='{.status.phase}') == Running ]]; do
  ((SECONDS < deadline)) || fail "the pod never ran: $(kubectl get pod "$pod" -o jsonpath='{.status}')"
  sleep 0.5
done
echo "ok: the pod was admitted and runs"

grep -F "\"pod\":\"$pod\"" "$state/containers.jsonl" | grep -Eq '"host_path":"/dev/(null|zero)"' \
  || fail "the runtime did not receive the allocated device: $(grep -F "$pod" "$state/containers.jsonl" || true)"
echo "ok: the runtime received the allocated device node"
# A kubelet restart wipes the plugin's socket; the plugin serves and registers again.
kubectl delete pod "$pod" --wait=true --timeout 60s >/dev/null
"$here/kmm-test-cluster" restart-kubelet
deadline=$((SECONDS + 90))
until grep -q "the kubelet (re)started" "$state/logs/kmm-it-plugin.log" \
    && [[ -S /var/lib/kubelet/device-plugins/kmm-example.com_kmm-it.sock ]] \
    && [[ $(kubectl get node "$node" -o jsonpath='{.status.allocatable.example\.com/kmm-it}') == 2 ]]; do
  ((SECONDS < deadline)) || fail "no re-registration after the kubelet restart: $(tail -n 5 "$state/logs/kmm-it-plugin.log")"
  sleep 0.5
done
[[ $(grep -c "registered example.com/kmm-it with the kubelet" "$state/logs/kmm-it-plugin.log") -ge 2 ]] \
  || fail "the plugin did not register a second time"
echo "ok: after a kubelet restart the plugin registered again and the node offers 2 devices"
echo "kubelet device-plugin test passed"
