#!/usr/bin/env bash
# kmm-operator against the real API server, controller-manager, scheduler and kwok nodes
# (issue #7). Usage: operator-test.sh KMM_OPERATOR CRD_YAML
#
# Nodes of three kernels; a Module with two kernel mappings and a third-party device plugin:
# exactly two loader DaemonSets on the right nodes, .ready labels once kwok makes the pods
# Ready, the plugin DaemonSet on those nodes, status counts and conditions; a node changes
# kernel; a Module update replaces pods one by one; an invalid Module is Degraded while the
# other keeps working; the operator killed and restarted converges without duplicates; the
# Module deleted leaves no labels, DaemonSets or finalizer behind.
set -euo pipefail
operator=$1 crd=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d)
ns=kmm-operator-test
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  kubectl delete nodes -l kmm.test/group=kmm-op --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() { echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; }
start_operator() {
  "$operator" --kubeconfig "$KUBECONFIG" --namespace "$ns" --leader-elect \
    --leader-election-namespace "$ns" --loader-image kmm-loader:test \
    --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe_port" \
    >> "$work/operator.log" 2>&1 &
  pid=$!
  wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
}
probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

kubectl apply --server-side -f "$crd" >/dev/null
# The operator's default --priority-class, as manifests/ install it (shared, like the CRD).
kubectl apply --server-side -f "$here/../../manifests/priority-class.yaml" >/dev/null
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null
kubectl create namespace "$ns" >/dev/null
# kmm-op-0..8: kernels cycle 5.15 (0,3,6), gke (1,4,7), 6.1 without a mapping (2,5,8).
"$here/kwok-nodes" 9 kmm-op 5.15.0-43-generic 5.4.0-1049-gke 6.1.0-1-amd64 | kubectl create -f - >/dev/null

cat > "$work/module.yaml" <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: kmm-ci-a, namespace: $ns}
spec:
  selector: {kmm.test/group: kmm-op}
  moduleLoader:
    container:
      modprobe: {moduleName: kmm_ci_a, parameters: ["devices=2"]}
      kernelMappings:
      - literal: 5.15.0-43-generic
        containerImage: registry.example/kmm-ci:\${KERNEL_FULL_VERSION}
      - regexp: '-gke$'
        containerImage: registry.example/kmm-ci:gke-\$KERNEL_XYZ
  devicePlugin:
    container: {image: registry.example/kmm-ci-plugin:v1}
YAML
start_operator
kubectl apply -f "$work/module.yaml" >/dev/null

loader_ds() { kubectl get ds -n "$ns" -l kmm.sigs.x-k8s.io/component=loader -o json; }
# "kernel node,node" per loader DaemonSet, from where its pods run.
placement() {
  kubectl get pods -n "$ns" -l kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys, collections
by = collections.defaultdict(list)
for p in json.load(sys.stdin)["items"]:
    if "deletionTimestamp" in p["metadata"]: continue
    by[p["metadata"]["labels"]["kmm.sigs.x-k8s.io/kernel-hash"]].append(p["spec"].get("nodeName", "?"))
print(" ".join(sorted(",".join(sorted(v)) for v in by.values())))'
}
ready_nodes() {
  kubectl get nodes -l "kmm.node.kubernetes.io/$ns.kmm-ci-a.ready" -o name | sed 's|node/||' | sort | tr '\n' ' '
}
status_is() {  # status_is PYTHON_EXPRESSION over `s` (the Module's status)
  kubectl get module -n "$ns" kmm-ci-a -o json | python3 -c "
import json, sys
s = json.load(sys.stdin).get('status', {})
c = {x['type']: x for x in s.get('conditions', [])}
sys.exit(0 if ($1) else 1)"
}

# 1. Two DaemonSets, each on its kernel's nodes; .ready labels; the plugin follows.
wait_for 60 "two loader DaemonSets" bash -c "[[ \$(kubectl get ds -n $ns -l kmm.sigs.x-k8s.io/component=loader -o name | wc -l) == 2 ]]"
python3 - <(loader_ds) <<'PY' || fail "loader DaemonSets are wrong"
import json, sys
items = json.load(open(sys.argv[1]))["items"]
kernels = sorted(d["spec"]["template"]["spec"]["nodeSelector"]["kmm.node.kubernetes.io/kernel-version.full"] for d in items)
assert kernels == ["5.15.0-43-generic", "5.4.0-1049-gke"], kernels
for d in items:
    assert d["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert d["metadata"]["ownerReferences"][0]["kind"] == "Module"
PY
wait_for 60 "loader pods on the right nodes" bash -c "[[ \"\$($(declare -f placement); ns=$ns; placement)\" == 'kmm-op-0,kmm-op-3,kmm-op-6 kmm-op-1,kmm-op-4,kmm-op-7' ]]"
wait_for 60 ".ready labels on the six mapped nodes" bash -c "[[ \"\$($(declare -f ready_nodes); ns=$ns; ready_nodes)\" == 'kmm-op-0 kmm-op-1 kmm-op-3 kmm-op-4 kmm-op-6 kmm-op-7 ' ]]"
wait_for 60 "the device plugin on the ready nodes" bash -c "[[ \$(kubectl get pods -n $ns -l kmm.sigs.x-k8s.io/component=device-plugin --field-selector status.phase=Running -o name | wc -l) == 6 ]]"
wait_for 60 "status counts and conditions" status_is "s['moduleLoader'] == {'nodesMatchingSelectorNumber': 9, 'desiredNumber': 6, 'availableNumber': 6} and s['devicePlugin']['availableNumber'] == 6 and c['Degraded']['status'] == 'True' and c['Degraded']['reason'] == 'NoKernelMapping' and 'kmm-op-2' in c['Degraded']['message'] and c['Progressing']['status'] == 'False'"
[[ -n $(kubectl get events -n "$ns" --field-selector reason=NoKernelMapping -o name) ]] || fail "no NoKernelMapping event"
echo "ok: DaemonSets, labels, plugin, status"

# 2. A node reboots into another kernel: its pod moves to that kernel's DaemonSet.
kubectl patch node kmm-op-1 --subresource=status --type merge \
  -p '{"status":{"nodeInfo":{"kernelVersion":"5.15.0-43-generic"}}}' >/dev/null
wait_for 60 "kmm-op-1 relabelled with its new kernel" bash -c "[[ \$(kubectl get node kmm-op-1 -o jsonpath='{.metadata.labels.kmm\.node\.kubernetes\.io/kernel-version\.full}') == 5.15.0-43-generic ]]"
wait_for 60 "kmm-op-1's pod in the 5.15 DaemonSet" bash -c "[[ \"\$($(declare -f placement); ns=$ns; placement)\" == 'kmm-op-0,kmm-op-1,kmm-op-3,kmm-op-6 kmm-op-4,kmm-op-7' ]]"
echo "ok: kernel change"

# 3. A Module update replaces loader pods one node at a time.
replaced_before=$(grep -c "replacing the outdated loader pod" "$work/operator.log" || true)
kubectl patch module -n "$ns" kmm-ci-a --type merge \
  -p '{"spec":{"moduleLoader":{"container":{"modprobe":{"parameters":["devices=4"]}}}}}' >/dev/null
wait_for 120 "every loader pod replaced" status_is "c['Progressing']['status'] == 'False' and s['moduleLoader']['availableNumber'] == 6"
wait_for 60 "every loader pod on the new template" bash -c "
  kubectl get pods -n $ns -l kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys
pods = [p for p in json.load(sys.stdin)[\"items\"] if \"deletionTimestamp\" not in p[\"metadata\"]]
env = [e[\"value\"] for p in pods for e in p[\"spec\"][\"containers\"][0][\"env\"] if e[\"name\"] == \"KMM_LOADER_CONFIG\"]
sys.exit(0 if len(env) == 6 and all(\"devices=4\" in v for v in env) else 1)'"
replaced=$(( $(grep -c "replacing the outdated loader pod" "$work/operator.log") - replaced_before ))
((replaced == 6)) || fail "expected 6 one-by-one replacements, saw $replaced"
echo "ok: ordered update"

# 4. An invalid Module is reported; the valid one is untouched. The API server's rules reject
# most mistakes (validation-test.sh); this one passes them, because CEL cannot see the
# namespace: name and namespace together are 42 characters, over the 41 kmm's label keys allow.
bad=broken-name-and-namespace
cat > "$work/bad.yaml" <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: $bad, namespace: $ns}
spec:
  selector: {kmm.test/group: kmm-op}
  moduleLoader:
    container:
      modprobe: {moduleName: broken}
      kernelMappings:
      - {literal: 5.15.0-43-generic, containerImage: 'registry.example/broken:v1'}
YAML
kubectl apply -f "$work/bad.yaml" >/dev/null
wait_for 60 "the invalid Module's Degraded condition" bash -c "
  kubectl get module -n $ns $bad -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].message}' |
    grep -q 'are 42 characters together, more than the 41 KMM allows'"
[[ -n $(kubectl get events -n "$ns" --field-selector reason=InvalidSpec,involvedObject.name=$bad -o name) ]] ||
  fail "no InvalidSpec event"
[[ $(kubectl get ds -n "$ns" -l kmm.sigs.x-k8s.io/module=$bad -o name | wc -l) == 0 ]] || fail "the invalid Module got DaemonSets"
status_is "s['moduleLoader']['availableNumber'] == 6" || fail "the valid Module was disturbed"
echo "ok: invalid Module"

# 5. The operator killed mid-change and restarted: it converges, nothing duplicated.
kubectl patch module -n "$ns" kmm-ci-a --type merge \
  -p '{"spec":{"moduleLoader":{"container":{"modprobe":{"parameters":["devices=3"]}}}}}' >/dev/null
sleep 0.5
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
start_operator  # takes over the Lease once the dead leader's lease expires
wait_for 120 "convergence after the restart" bash -c "
  kubectl get pods -n $ns -l kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys
pods = [p for p in json.load(sys.stdin)[\"items\"] if \"deletionTimestamp\" not in p[\"metadata\"]]
env = [e[\"value\"] for p in pods for e in p[\"spec\"][\"containers\"][0][\"env\"] if e[\"name\"] == \"KMM_LOADER_CONFIG\"]
sys.exit(0 if len(env) == 6 and all(\"devices=3\" in v for v in env) else 1)'"
[[ $(kubectl get ds -n "$ns" -l kmm.sigs.x-k8s.io/module=kmm-ci-a -o name | wc -l) == 3 ]] ||
  fail "duplicate DaemonSets: $(kubectl get ds -n "$ns" -o name)"
echo "ok: restart"

# 6. Deletion: labels first, DaemonSets and pods gone, then the finalizer goes.
kubectl delete module -n "$ns" kmm-ci-a --wait=false >/dev/null
wait_for 120 "the Module to be gone" bash -c "! kubectl get module -n $ns kmm-ci-a"
[[ -z $(ready_nodes) ]] || fail ".ready labels left: $(ready_nodes)"
wait_for 60 "the DaemonSets to be gone" bash -c "[[ -z \$(kubectl get ds -n $ns -l kmm.sigs.x-k8s.io/module=kmm-ci-a -o name) ]]"
echo "ok: deletion"
echo PASS
