#!/usr/bin/env bash
# The operator's lifecycle against the real API server, controller-manager and kwok nodes
# (test/cluster/kwok-stages.yaml makes pods on *-stuck nodes never Ready, and a module image
# registry.example/kmm-ci:missing unpullable). Usage: lifecycle-test.sh KMM_OPERATOR CRD_YAML
#   1. a rollout with one node whose pod never becomes Ready still updates the others at once;
#   2. a fixed image reaches every node where the old one could not be pulled;
#   3. an ordered upgrade moves only the node an administrator labels;
#   4. 5,000 nodes without a kernel mapping give a status the API server accepts.
set -euo pipefail
operator=$1 crd=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d)
ns=kmm-lifecycle
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # Without the operator nothing removes the Modules' finalizers; the namespace would hang.
  for m in $(kubectl get modules -n "$ns" -o name 2>/dev/null); do
    kubectl patch -n "$ns" "$m" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  kubectl delete nodes -l 'kmm.test/group in (kmm-life,kmm-many)' --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() {
  echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"
  kubectl get pods -n "$ns" -o wide 2>&1 | tail -n 20
}

kubectl apply --server-side -f "$crd" >/dev/null
# The operator's default --priority-class, as manifests/ install it (shared, like the CRD).
kubectl apply --server-side -f "$here/../../manifests/priority-class.yaml" >/dev/null
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null
kubectl create namespace "$ns" >/dev/null
# kmm-life-0..2 and kmm-life-3-stuck, all on one kernel.
"$here/kwok-nodes" 4 kmm-life 6.1.0-life |
  sed 's/"kmm-life-3"/"kmm-life-3-stuck"/; s|kwok://kmm-life-3"|kwok://kmm-life-3-stuck"|' |
  kubectl create -f - >/dev/null
probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$operator" --kubeconfig "$KUBECONFIG" --namespace "$ns" --loader-image kmm-loader:test \
  --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe_port" \
  > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"

module() {  # module NAME IMAGE PARAMETER [VERSION]
  cat <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: $1, namespace: $ns}
spec:
  selector: {kmm.test/group: kmm-life}
  moduleLoader:
    container:
      ${4:+version: $4}
      modprobe: {moduleName: kmm_ci_a, parameters: ["$3"]}
      kernelMappings:
      - {literal: 6.1.0-life, containerImage: "$2"}
YAML
}
status_of() {  # status_of MODULE PYTHON_EXPRESSION over s (status) and c (conditions by type)
  kubectl get module -n "$ns" "$1" -o json | python3 -c "
import json, sys
s = json.load(sys.stdin).get('status', {})
c = {x['type']: x for x in s.get('conditions', [])}
sys.exit(0 if ($2) else 1)"
}
# "node=parameter" for every loader pod of MODULE that is not terminating, sorted.
pods_of() {
  kubectl get pods -n "$ns" -l "kmm.sigs.x-k8s.io/module=$1,kmm.sigs.x-k8s.io/component=loader" -o json |
    python3 -c '
import json, sys
out = []
for p in json.load(sys.stdin)["items"]:
    if "deletionTimestamp" in p["metadata"]: continue
    env = {e["name"]: e.get("value", "") for e in p["spec"]["containers"][0].get("env", [])}
    config = json.loads(env["KMM_LOADER_CONFIG"])
    image = p["spec"]["initContainers"][1]["image"]
    out.append("%s=%s,%s" % (p["spec"].get("nodeName", "?"), ",".join(config.get("parameters", [])), image))
print(" ".join(sorted(out)))'
}
pods_are() { [[ "$(pods_of "$1")" == "$2" ]]; }

# 1. One node never turns Ready: it is reported, and the update still reaches every node
#    (the healthy ones one at a time) well within the 5 minutes a starting pod may take.
module rollout registry.example/kmm-ci:v1 devices=1 | kubectl apply -f - >/dev/null
wait_for 60 "three nodes loaded, the stuck one not" status_of rollout \
  "s['moduleLoader'] == {'nodesMatchingSelectorNumber': 4, 'desiredNumber': 4, 'availableNumber': 3}"
module rollout registry.example/kmm-ci:v1 devices=2 | kubectl apply -f - >/dev/null
start=$SECONDS
img=registry.example/kmm-ci:v1
wait_for 120 "every loader pod on the new parameter" pods_are rollout \
  "kmm-life-0=devices=2,$img kmm-life-1=devices=2,$img kmm-life-2=devices=2,$img kmm-life-3-stuck=devices=2,$img"
wait_for 60 "three nodes loaded again" status_of rollout "s['moduleLoader']['availableNumber'] == 3"
((SECONDS - start < 240)) || fail "the rollout took $((SECONDS - start))s: the stuck node held it back"
echo "ok: a node that never turns Ready does not hold back the rollout ($((SECONDS - start))s)"
kubectl delete module -n "$ns" rollout --wait=false >/dev/null

# 2. A missing image: every node reports it; the fixed image reaches them all at once.
module fix registry.example/kmm-ci:missing devices=1 | kubectl apply -f - >/dev/null
wait_for 60 "ImagePullFailed on the nodes" status_of fix \
  "c['Degraded']['reason'] == 'ImagePullFailed' and s['nodesWithProblemsNumber'] == 4 and 'kmm-ci:missing' in c['Degraded']['message']"
module fix registry.example/kmm-ci:v2 devices=1 | kubectl apply -f - >/dev/null
img=registry.example/kmm-ci:v2
wait_for 60 "the fixed image on every node" pods_are fix \
  "kmm-life-0=devices=1,$img kmm-life-1=devices=1,$img kmm-life-2=devices=1,$img kmm-life-3-stuck=devices=1,$img"
wait_for 60 "the fixed Module loaded where nodes serve" status_of fix \
  "s['moduleLoader']['availableNumber'] == 3 and c['Degraded']['reason'] != 'ImagePullFailed'"
echo "ok: a fixed image rolls out to the nodes where the old one failed"
kubectl delete module -n "$ns" fix --wait=false >/dev/null
wait_for 60 "the earlier Modules gone" bash -c "[[ -z \$(kubectl get modules -n $ns -o name) ]]"

# 3. Ordered upgrade: v1 on the labelled nodes; v2 moves only the node labelled for it.
want=kmm.node.kubernetes.io/version-module.$ns.upgrade
kubectl label node kmm-life-0 kmm-life-1 "$want=v1" >/dev/null
module upgrade registry.example/kmm-ci:v1 devices=1 v1 | kubectl apply -f - >/dev/null
v1=registry.example/kmm-ci:v1 v2=registry.example/kmm-ci:v2
wait_for 60 "v1 on the two labelled nodes only" pods_are upgrade \
  "kmm-life-0=devices=1,$v1 kmm-life-1=devices=1,$v1"
wait_for 60 "both loaded" status_of upgrade "s['moduleLoader']['availableNumber'] == 2"
module upgrade registry.example/kmm-ci:v2 devices=1 v2 | kubectl apply -f - >/dev/null
wait_for 60 "the v2 DaemonSet" bash -c "[[ \$(kubectl get ds -n $ns -l kmm.sigs.x-k8s.io/module-version=v2 -o name | wc -l) == 1 ]]"
sleep 3  # nothing may move without a label: look again after the operator had time to act
pods_are upgrade "kmm-life-0=devices=1,$v1 kmm-life-1=devices=1,$v1" ||
  fail "a version change alone moved nodes: $(pods_of upgrade)"
kubectl label node kmm-life-0 --overwrite "$want=v2" >/dev/null
wait_for 60 "kmm-life-0 on v2, kmm-life-1 still on v1" pods_are upgrade \
  "kmm-life-0=devices=1,$v2 kmm-life-1=devices=1,$v1"
wait_for 60 "both loaded after the move" status_of upgrade "s['moduleLoader']['availableNumber'] == 2"
[[ $(kubectl get node kmm-life-1 -o jsonpath="{.metadata.labels.beta\.kmm\.node\.kubernetes\.io/version-module-loader\.$ns\.upgrade}") == v1 ]] ||
  fail "kmm-life-1 left v1"
echo "ok: an ordered upgrade moves only the labelled node"
kubectl delete module -n "$ns" upgrade --wait=false >/dev/null

# 4. 5,000 nodes no kernel mapping covers: one bounded line, accepted by the API server.
"$here/kwok-nodes" 5000 kmm-many 5.10.0-unmapped | kubectl create -f - >/dev/null
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: many, namespace: $ns}
spec:
  selector: {kmm.test/group: kmm-many}
  moduleLoader:
    container:
      modprobe: {moduleName: kmm_ci_a}
      kernelMappings:
      - {literal: 6.1.0-life, containerImage: "registry.example/kmm-ci:v1"}
YAML
wait_for 120 "NoKernelMapping for 5,000 nodes" status_of many \
  "c['Degraded']['reason'] == 'NoKernelMapping' and s['moduleLoader']['nodesMatchingSelectorNumber'] == 5000 and 'and 4997 more' in c['Degraded']['message'] and len(c['Degraded']['message']) < 4096"
if grep -q "status.*Invalid\|Request entity too large" "$work/operator.log"; then
  fail "the API server refused a status: $(grep -m1 "Invalid\|too large" "$work/operator.log")"
fi
echo "ok: 5,000 failing nodes give a status the API server accepts"
kubectl delete modules -n "$ns" --all --wait=false >/dev/null
wait_for 120 "every Module finalized" bash -c "[[ -z \$(kubectl get modules -n $ns -o name) ]]"
echo PASS
