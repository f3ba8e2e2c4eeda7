#!/usr/bin/env bash
# kmm-operator plan against a real API server: the nodes come from `kubectl get nodes -o
# json` (kwok nodes of three kernels), and every DaemonSet the plan prints must pass the API
# server's own validation (server-side dry run). Usage: plan-test.sh KMM_OPERATOR MODULE_YAML
set -euo pipefail
operator=$1 module=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d); trap 'rm -rf "$work"; kubectl delete namespace kmm-demo --wait=false >/dev/null 2>&1 || true; kubectl delete nodes -l kmm.test/group=kmm-plan --wait=false >/dev/null 2>&1 || true' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$here/kwok-nodes" 6 kmm-plan 5.15.0-43-generic 5.4.196-108.356.amzn2.x86_64 6.1.0-1-amd64 |
  python3 -c 'import json,sys
nodes = json.load(sys.stdin)
for node in nodes["items"]:
    node["metadata"]["labels"]["node-role.kubernetes.io/worker"] = ""  # the Module selects these
json.dump(nodes, sys.stdout)' > "$work/nodes.jsonl"
kubectl apply -f "$work/nodes.jsonl" >/dev/null
kubectl get nodes -l kmm.test/group=kmm-plan -o json > "$work/nodes.json"
kubectl create namespace kmm-demo >/dev/null

"$operator" plan --module "$module" --nodes "$work/nodes.json" -o json > "$work/plan.json" 2> "$work/warnings"
grep -q "no kernel mapping matches kernel 6.1.0-1-amd64 (nodes: kmm-plan-2, kmm-plan-5)" "$work/warnings" ||
  fail "no warning for the unmapped kernel: $(cat "$work/warnings")"
# The status the operator will write, from the same function it uses.
grep -q "expected status: Degraded=True NoKernelMapping: no kernel mapping for kernel 6.1.0-1-amd64 (nodes: kmm-plan-2, kmm-plan-5)" "$work/warnings" ||
  fail "no expected Degraded status: $(cat "$work/warnings")"
grep -q 'expected status: moduleLoader {"availableNumber":4,"desiredNumber":4,"nodesMatchingSelectorNumber":6}' "$work/warnings" ||
  fail "no expected counts: $(cat "$work/warnings")"
python3 - "$work/plan.json" <<'PY' || fail "unexpected plan"
import json, sys
items = json.load(open(sys.argv[1]))["items"]
ds = [i for i in items if i["kind"] == "DaemonSet"]
kernels = sorted(d["spec"]["template"]["spec"]["nodeSelector"]["kmm.node.kubernetes.io/kernel-version.full"] for d in ds)
assert kernels == ["5.15.0-43-generic", "5.4.196-108.356.amzn2.x86_64"], kernels
nodes = sorted(i["metadata"]["name"] for i in items if i["kind"] == "Node")
assert nodes == [], nodes  # kwok-nodes already sets the kernel label
PY
python3 -c 'import json,sys; [print(json.dumps(i)) for i in json.load(open(sys.argv[1]))["items"] if i["kind"] == "DaemonSet"]' \
  "$work/plan.json" > "$work/daemonsets.jsonl"
kubectl create --dry-run=server -n kmm-demo -f "$work/daemonsets.jsonl" > "$work/dry-run" 2>&1 ||
  fail "the API server rejected the planned DaemonSets: $(cat "$work/dry-run")"
# An invalid Module is refused with its problems on stderr.
sed 's/containerImage: registry.example\/kmm\/kmm-ci:${KERNEL_FULL_VERSION}/containerImage: registry.example\/kmm\/kmm-ci/' \
  "$module" > "$work/bad.yaml"
if "$operator" plan --module "$work/bad.yaml" --nodes "$work/nodes.json" > /dev/null 2> "$work/err"; then
  fail "an invalid Module was planned"
fi
grep -q 'has no tag or digest' "$work/err" || fail "no validation error: $(cat "$work/err")"
echo PASS
