#!/usr/bin/env bash
# The platform examples (manifests/examples/<platform>/) against the real API server and kwok
# nodes carrying each platform's kernels, plus one kernel per platform that no mapping covers.
# Usage: examples-test.sh KMM_OPERATOR CRD_YAML EXAMPLES_DIR
#   1. `kubectl apply -k <platform> --dry-run=server` accepts every example, and each
#      ConfigMap holds its directory's Dockerfile, ARGs after FROM;
#   2. `kmm-operator plan` plans a loader DaemonSet per covered kernel (the image tag and the
#      module directory it copies), warns about the uncovered kernel and the build field, and
#      the API server accepts the planned DaemonSets;
#   3. one operator for all six namespaces: the loader DaemonSets for the covered kernels and no
#      other, loader pods on exactly those nodes (not on a tainted control-plane node), and each
#      Module's status, conditions (Degraded NoKernelMapping naming the kernel, Unsupported for
#      build) and events.
set -euo pipefail
operator=$1 crd=$2 examples=$(cd "$3" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d)
pid=

# platform|node labels its selector needs|kernels a mapping covers|a kernel none covers
platforms=(
  "eks-amazonlinux|kubernetes.io/os=linux|5.4.196-108.356.amzn2.x86_64 5.4.181-99.354.amzn2.x86_64|5.10.184-175.731.amzn2.x86_64"
  "eks-ubuntu|kubernetes.io/os=linux|5.15.0-1040-aws|5.4.0-1103-aws"
  "gke-ubuntu|cloud.google.com/gke-os-distribution=ubuntu|5.4.0-1049-gke 5.4.0-1043-gke|5.15.0-1048-gke"
  "gke-cos|cloud.google.com/gke-os-distribution=cos|5.10.109+|5.10.123+"
  "aks-ubuntu|kubernetes.azure.com/os-sku=Ubuntu|5.4.0-1089-azure 5.4.0-1065-azure|5.15.0-1049-azure"
  "ubuntu-bare-metal|kubernetes.io/os=linux|5.15.0-91-generic 5.15.0-43-generic|6.8.0-52-generic"
)
namespaces=()
for spec in "${platforms[@]}"; do namespaces+=("kmm-example-${spec%%|*}"); done

cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # Without the operator nothing removes the Modules' and loader pods' finalizers; the
  # namespaces would hang. Deleted first, so that no new loader pod appears meanwhile.
  for ns in "${namespaces[@]}"; do
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
    for object in $(kubectl get modules,pods -n "$ns" -o name 2>/dev/null); do
      kubectl patch -n "$ns" "$object" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
  done
  kubectl delete nodes -l kmm.test/examples --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() {
  if [[ -f $work/operator.log ]]; then echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; fi
  for ns in "${namespaces[@]}"; do
    echo "--- $ns:"
    kubectl get modules,ds,pods -n "$ns" -o wide 2>&1 | tail -n 12
    kubectl get module -n "$ns" kmm-ci-a -o jsonpath='{.status}' 2>/dev/null || true
    echo
  done
}

kubectl apply --server-side -f "$crd" >/dev/null
# The operator's default --priority-class, as manifests/ install it (shared, like the CRD).
kubectl apply --server-side -f "$here/../../manifests/priority-class.yaml" >/dev/null
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null

# Nodes kmm-ex-<platform>-<i>, one per kernel (the uncovered one last), with the labels the
# platform's selector needs; ubuntu-bare-metal also gets a control-plane node on a covered
# kernel, tainted as kubeadm does.
for spec in "${platforms[@]}"; do
  IFS='|' read -r platform _ covered uncovered <<< "$spec"
  # shellcheck disable=SC2086
  "$here/kwok-nodes" $(($(wc -w <<< "$covered") + 1)) "kmm-ex-$platform" $covered "$uncovered"
  if [[ $platform == ubuntu-bare-metal ]]; then
    "$here/kwok-nodes" 1 "kmm-ex-$platform" "${covered%% *}" |
      sed "s/\"kmm-ex-$platform-0\"/\"kmm-ex-$platform-cp\"/; s|kwok://kmm-ex-$platform-0\"|kwok://kmm-ex-$platform-cp\"|"
  fi
done > "$work/nodes.txt"
python3 - "$work/nodes.txt" "${platforms[@]}" > "$work/nodes.json" <<'PY'
import json, sys
text, specs = open(sys.argv[1]).read(), sys.argv[2:]
labels = {}
for spec in specs:
    platform, pairs = spec.split("|")[:2]
    labels["kmm-ex-" + platform] = dict(pair.split("=", 1) for pair in pairs.split(","))
decoder, items, at = json.JSONDecoder(), [], 0
while at < len(text):  # kwok-nodes prints one List per call
    if text[at].isspace():
        at += 1
        continue
    node_list, at = decoder.raw_decode(text, at)
    items += node_list["items"]
for node in items:
    meta = node["metadata"]
    meta["labels"].update(labels[meta["labels"]["kmm.test/group"]])
    meta["labels"]["kmm.test/examples"] = ""
    if meta["name"].endswith("-cp"):
        meta["labels"]["node-role.kubernetes.io/control-plane"] = ""
        node["spec"]["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
PY
kubectl create -f "$work/nodes.json" >/dev/null

# 1. kubectl apply -k, server-side dry run (the namespace must exist for that: created first).
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  dir=$examples/$platform
  kubectl kustomize "$dir" > "$work/$platform.yaml" || fail "$platform: kubectl kustomize failed"
  python3 - "$work/$platform.yaml" "$dir/Dockerfile" "$work/$platform-namespace.json" <<'PY' || fail "$platform: rendered example is wrong"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["ConfigMap", "Module", "Namespace", "Pod"], kinds
by_kind = {d["kind"]: d for d in docs}
dockerfile = by_kind["ConfigMap"]["data"]["dockerfile"]
assert dockerfile == open(sys.argv[2]).read(), "the ConfigMap does not hold the Dockerfile"
name = by_kind["Module"]["spec"]["moduleLoader"]["container"]["build"]["dockerfileConfigMap"]["name"]
assert name == by_kind["ConfigMap"]["metadata"]["name"], (name, by_kind["ConfigMap"]["metadata"]["name"])
instructions = [l.split()[0].upper() for l in dockerfile.splitlines() if l.strip() and not l.startswith((" ", "#"))]
assert instructions[0] == "FROM", "an instruction before the first FROM: " + instructions[0]
assert "ARG" in instructions, "the Dockerfile takes no build argument"
limits = by_kind["Pod"]["spec"]["containers"][0]["resources"]["limits"]
assert limits == {"example.com/kmm-ci-a": 1}, limits
json.dump(by_kind["Namespace"], open(sys.argv[3], "w"))
PY
  kubectl apply -f "$work/$platform-namespace.json" >/dev/null
  kubectl apply -k "$dir" --dry-run=server > "$work/$platform.dry-run" 2>&1 ||
    fail "$platform: the API server rejected the example: $(cat "$work/$platform.dry-run")"
done
echo "ok: kubectl apply -k --dry-run=server accepts all ${#platforms[@]} examples"

# 2. kmm-operator plan on each platform's nodes.
for spec in "${platforms[@]}"; do
  IFS='|' read -r platform _ covered uncovered <<< "$spec"
  kubectl get nodes -l "kmm.test/group=kmm-ex-$platform" -o json > "$work/$platform-nodes.json"
  "$operator" plan --module "$examples/$platform/module.yaml" --nodes "$work/$platform-nodes.json" \
    -o json > "$work/$platform-plan.json" 2> "$work/$platform-warnings" ||
    fail "$platform: kmm-operator plan failed: $(cat "$work/$platform-warnings")"
  last=$(wc -w <<< "$covered")
  for expected in "no kernel mapping matches kernel $uncovered (nodes: kmm-ex-$platform-$last)" \
                  "spec.moduleLoader.container.build is not supported yet" \
                  "expected status: Degraded=True NoKernelMapping: no kernel mapping for kernel $uncovered (nodes: kmm-ex-$platform-$last)" \
                  "expected status: Unsupported=True FieldNotSupportedYet"; do
    grep -qF "$expected" "$work/$platform-warnings" ||
      fail "$platform: plan did not say \"$expected\": $(cat "$work/$platform-warnings")"
  done
  python3 - "$work/$platform-plan.json" "$covered" <<'PY' || fail "$platform: unexpected plan"
import json, sys
items = json.load(open(sys.argv[1]))["items"]
covered = sys.argv[2].split()
ds = [i for i in items if i["kind"] == "DaemonSet"]
by_label = {d["spec"]["template"]["spec"]["nodeSelector"]["kmm.node.kubernetes.io/kernel-version.full"]: d for d in ds}
# The label and the image tag drop COS's trailing '+'; the module directory keeps it (uname -r).
assert sorted(by_label) == sorted(k.rstrip("+") for k in covered), sorted(by_label)
for kernel in covered:
    spec = by_label[kernel.rstrip("+")]["spec"]["template"]["spec"]
    copy = [c for c in spec["initContainers"] if c["name"] == "copy-modules"][0]
    assert copy["image"] == "registry.example.com/kmm-examples/kmm-ci-a:" + kernel.rstrip("+"), copy["image"]
    assert copy["command"][1] == "/opt/lib/modules/" + kernel, copy["command"]
    assert spec["hostNetwork"] is True  # the built-in device plugin
PY
  # The Module was never created, so its uid, which the owner reference needs, is made up.
  python3 - "$work/$platform-plan.json" > "$work/$platform-daemonsets.jsonl" <<'PY'
import json, sys
for item in json.load(open(sys.argv[1]))["items"]:
    if item["kind"] != "DaemonSet": continue
    item["metadata"]["ownerReferences"][0]["uid"] = "2b1f4c1e-0000-4000-8000-000000000001"
    print(json.dumps(item))
PY
  kubectl create --dry-run=server -f "$work/$platform-daemonsets.jsonl" > "$work/$platform-ds-dry-run" 2>&1 ||
    fail "$platform: the API server rejected the planned DaemonSets: $(cat "$work/$platform-ds-dry-run")"
done
echo "ok: kmm-operator plan: a DaemonSet per covered kernel, the uncovered kernel and build reported"

# 3. The operator, for all six namespaces at once. Each example is applied with kubectl apply -k
# through an overlay that only adds the node group to its selector (three examples select
# every Linux node).
probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$operator" --kubeconfig "$KUBECONFIG" --namespace "$(IFS=,; echo "${namespaces[*]}")" \
  --loader-image kmm-loader:test --metrics-bind-address 0 \
  --health-probe-bind-address "127.0.0.1:$probe_port" > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
started=$SECONDS
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  mkdir -p "$work/overlay-$platform"
  cat > "$work/overlay-$platform/kustomization.yaml" <<YAML
resources:
- $(realpath --relative-to "$work/overlay-$platform" "$examples/$platform")
patches:
- target: {kind: Module, name: kmm-ci-a}
  patch: |
    - {op: add, path: /spec/selector/kmm.test~1group, value: kmm-ex-$platform}
YAML
  kubectl apply -k "$work/overlay-$platform" > "$work/$platform.apply" 2>&1 ||
    fail "$platform: kubectl apply -k failed: $(cat "$work/$platform.apply")"
done

# "kernel-label:node,node ..." for NAMESPACE's loader pods that are not terminating.
placement() {
  kubectl get pods -n "$1" -l kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys, collections
by = collections.defaultdict(list)
for p in json.load(sys.stdin)["items"]:
    if "deletionTimestamp" in p["metadata"]: continue
    by[p["spec"]["nodeSelector"]["kmm.node.kubernetes.io/kernel-version.full"]].append(p["spec"].get("nodeName", "?"))
print(" ".join(sorted(k + ":" + ",".join(sorted(v)) for k, v in by.items())))'
}
status_is() {  # status_is NAMESPACE PYTHON_EXPRESSION over s (status) and c (conditions by type)
  kubectl get module -n "$1" kmm-ci-a -o json | python3 -c "
import json, sys
s = json.load(sys.stdin).get('status', {})
c = {x['type']: x for x in s.get('conditions', [])}
sys.exit(0 if ($2) else 1)"
}
for spec in "${platforms[@]}"; do
  IFS='|' read -r platform _ covered uncovered <<< "$spec"
  ns=kmm-example-$platform
  expected=() i=0
  for kernel in $covered; do expected+=("${kernel%+}:kmm-ex-$platform-$i"); i=$((i + 1)); done
  expected_placement=$(printf '%s\n' "${expected[@]}" | sort | tr '\n' ' ')
  wait_for 60 "$platform: loader pods on kmm-ex-$platform-0..$((i - 1)) only" \
    bash -c "[[ \"\$($(declare -f placement); placement $ns) \" == '$expected_placement' ]]"
  n=$i
  wait_for 60 "$platform: status counts and conditions" status_is "$ns" \
    "s['moduleLoader'] == {'nodesMatchingSelectorNumber': $((n + 1)), 'desiredNumber': $n, 'availableNumber': $n} \
     and c['Degraded']['status'] == 'True' and c['Degraded']['reason'] == 'NoKernelMapping' \
     and 'no kernel mapping for kernel $uncovered (nodes: kmm-ex-$platform-$n)' in c['Degraded']['message'] \
     and c['Unsupported']['status'] == 'True' and c['Unsupported']['reason'] == 'FieldNotSupportedYet' \
     and 'spec.moduleLoader.container.build' in c['Unsupported']['message'] \
     and c['Progressing']['status'] == 'False'"
  daemonsets=$(kubectl get ds -n "$ns" -l kmm.sigs.x-k8s.io/component=loader \
    -o jsonpath='{range .items[*]}{.metadata.labels.kmm\.node\.kubernetes\.io/kernel-version\.full}{" "}{end}')
  [[ $(tr ' ' '\n' <<< "$daemonsets" | grep -c .) == "$n" ]] ||
    fail "$platform: expected $n loader DaemonSets, got: $daemonsets"
  for reason in NoKernelMapping FieldNotSupportedYet; do
    kubectl get events -n "$ns" --field-selector "reason=$reason,involvedObject.name=kmm-ci-a" -o name | grep -q . ||
      fail "$platform: no $reason event"
  done
  kubectl get events -n "$ns" --field-selector reason=NoKernelMapping -o jsonpath='{.items[*].message}' |
    grep -qF "$uncovered" || fail "$platform: the NoKernelMapping event does not name $uncovered"
  echo "ok: $platform: loaders for $covered; $uncovered reported; build Unsupported"
done
echo "operator phase: $((SECONDS - started))s"
echo PASS
