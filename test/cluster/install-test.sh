#!/usr/bin/env bash
# kmm installed from manifests/ and the operator working under exactly its RBAC.
# Usage: install-test.sh KMM_OPERATOR MANIFESTS_DIR PROJECT_VERSION
#
# The manifests render, pass a server-side dry run and apply; the operator pod is admitted in
# the `restricted` kmm-system namespace; an overlay from manifests/overlay-for moves both images.
# Then kmm-operator runs on this machine as the kmm-system:kmm-operator ServiceAccount (a token
# from `kubectl create token`) with leader election in kmm-system, on kwok nodes: DaemonSets,
# .ready labels, status, events (created and patched), an ordered pod replacement, a Module
# whose loader pods use their own ServiceAccount, and deletion. No request may be forbidden,
# and `kubectl auth can-i` shows what the ServiceAccount may and may not do.
set -euo pipefail
operator=$1 manifests=$2 version=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d)
system=kmm-system ns=kmm-install-test group=kmm-install
sa=system:serviceaccount:$system:kmm-operator
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  # Without the operator nobody removes the Modules' finalizers, which would hold the namespace.
  for module in $(kubectl get modules -n "$ns" -o name 2>/dev/null); do
    kubectl patch -n "$ns" "$module" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kubectl delete namespace "$ns" "$system" --wait=false >/dev/null 2>&1 || true
  # Everything else the manifests made, except the CRD and the PriorityClass that other tests
  # share.
  kubectl delete clusterrole,clusterrolebinding -l app.kubernetes.io/part-of=kmm >/dev/null 2>&1 || true
  for node in $(kubectl get nodes -l "kmm.test/group=$group" -o name 2>/dev/null); do
    kubectl delete events -n default --field-selector "involvedObject.name=${node#node/}" >/dev/null 2>&1 || true
  done
  kubectl delete nodes -l "kmm.test/group=$group" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() { echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# This test installs kmm and removes it again: it needs a cluster without kmm (a previous
# run's namespace may still be terminating).
phase=$(kubectl get namespace "$system" -o jsonpath='{.status.phase}' 2>/dev/null || true)
[[ $phase != Active ]] || { trap - EXIT; rm -rf "$work"; echo "FAIL: kmm is installed already ($system exists)"; exit 1; }
wait_for 120 "the old $system namespace to go" bash -c "! kubectl get namespace $system"

# 1. Render: both images carry the project's version, which is also the operator's default.
kubectl kustomize "$manifests" > "$work/rendered.yaml" || fail "kubectl kustomize failed"
images() {  # the operator's image, its KMM_LOADER_IMAGE and KMM_SIGNER_IMAGE, from rendered manifests
  kubectl create --dry-run=client -o json -f "$1" | python3 -c '
import json, sys
text, docs, at = sys.stdin.read(), [], 0
while text[at:].strip():  # one JSON object after another
    doc, at = json.JSONDecoder().raw_decode(text, len(text) - len(text[at:].lstrip()))
    docs.append(doc)
for doc in docs:
    if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "kmm-operator":
        c = doc["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert "--loader-image=$(KMM_LOADER_IMAGE)" in c["args"], c["args"]
        assert "--signer-image=$(KMM_SIGNER_IMAGE)" in c["args"], c["args"]
        print(c["image"], env["KMM_LOADER_IMAGE"], env["KMM_SIGNER_IMAGE"])'
}
[[ $(images "$work/rendered.yaml") == "kmm-operator:v$version kmm-loader:v$version kmm-signer:v$version" ]] ||
  fail "manifests/ name $(images "$work/rendered.yaml"), not version v$version of both images"
"$operator" --help | grep -q -- "--loader-image TEXT=kmm-loader:v$version" ||
  fail "the operator's default loader image is not kmm-loader:v$version"
"$operator" --help | grep -q -- "--signer-image TEXT=kmm-signer:v$version" ||
  fail "the operator's default signer image is not kmm-signer:v$version"
# The operator's default priority class is the one manifests/ create.
class=$(kubectl create --dry-run=client -o jsonpath='{.metadata.name}' -f "$manifests/priority-class.yaml")
"$operator" --help | grep -q -- "--priority-class TEXT=$class" ||
  fail "the operator's default --priority-class is not $class, the PriorityClass manifests/ create"
# One small overlay moves both images.
"$manifests/overlay-for" registry.example/kmm "v$version-test" "$work/overlay" >/dev/null
kubectl kustomize "$work/overlay" > "$work/overlay.yaml" || fail "the overlay does not render"
[[ $(images "$work/overlay.yaml") == "registry.example/kmm/kmm-operator:v$version-test registry.example/kmm/kmm-loader:v$version-test registry.example/kmm/kmm-signer:v$version-test" ]] ||
  fail "the overlay gives $(images "$work/overlay.yaml")"
echo "ok: manifests and overlay render, image versions"

# 2. Server-side dry run (namespaced objects need their namespace to exist first), then apply.
kubectl apply -f "$manifests/namespace.yaml" >/dev/null
kubectl apply -k "$manifests" --dry-run=server > "$work/dry-run.log" 2>&1 ||
  fail "server-side dry run: $(cat "$work/dry-run.log")"
kubectl apply -k "$manifests" > "$work/apply.log" 2>&1 || fail "apply: $(cat "$work/apply.log")"
# The namespace enforces (and warns about) the `restricted` Pod Security Standard.
if grep -i "PodSecurity" "$work/dry-run.log" "$work/apply.log"; then
  fail "the operator's pod template breaks the restricted Pod Security Standard"
fi
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null
# The Deployment's pod passes admission in kmm-system; then it goes, so that only the operator
# below campaigns for the Lease (kwok and the test kubelet would not run it anyway).
wait_for 60 "the operator pod to be admitted" bash -c \
  "kubectl get pods -n $system -l app.kubernetes.io/name=kmm-operator -o name | grep -q ."
kubectl scale deployment -n "$system" kmm-operator --replicas 0 >/dev/null
wait_for 60 "the operator pod to go" bash -c \
  "! kubectl get pods -n $system -l app.kubernetes.io/name=kmm-operator -o name | grep -q ."
echo "ok: dry run, apply, pod admitted under restricted"

# 3. What the ServiceAccount may do: exactly the rules of manifests/rbac on top of what every
# ServiceAccount may (discovery, self reviews), each verb the operator uses, nothing around it.
rules() {  # rules USER NAMESPACE: what USER may do there, one normalized line per rule
  kubectl auth can-i --list --as "$1" -n "$2" | tail -n +2 | tr -s ' ' | sed 's/ $//' | sort
}
own_rules() {  # own_rules NAMESPACE: the operator's rules beyond an unbound ServiceAccount's
  comm -23 <(rules "$sa" "$1") <(rules "system:serviceaccount:$system:nobody" "$1")
}
cluster_rules='configmaps [] [] [list watch]
daemonsets.apps [] [] [list watch create patch delete]
events [] [] [create patch]
jobs.batch [] [] [list watch create delete]
modules.kmm.sigs.x-k8s.io [] [] [list watch patch]
modules.kmm.sigs.x-k8s.io/finalizers [] [] [update]
modules.kmm.sigs.x-k8s.io/status [] [] [patch]
nodes [] [] [list watch patch]
pods [] [] [list watch create patch delete]
secrets [] [] [get]'
lease_rules='leases.coordination.k8s.io [] [] [create]
leases.coordination.k8s.io [] [kmm-operator.kmm.sigs.x-k8s.io] [get update]'
[[ $(own_rules "$ns") == "$cluster_rules" ]] ||
  fail "the operator's rules in $ns are not the expected ones:"$'\n'"$(own_rules "$ns")"
[[ $(own_rules "$system") == "$(sort <<< "$cluster_rules"$'\n'"$lease_rules")" ]] ||
  fail "the operator's rules in $system are not the expected ones:"$'\n'"$(own_rules "$system")"
can() {  # can yes|no VERB RESOURCE [kubectl auth can-i flags]
  local want=$1; shift
  local got; got=$(kubectl auth can-i --as "$sa" "$@" 2>/dev/null || true)
  [[ $got == "$want" ]] || fail "can-i $*: expected $want, got ${got:-an error}"
}
for verb in list watch patch; do
  can yes "$verb" modules.kmm.sigs.x-k8s.io -A
  can yes "$verb" nodes
done
can yes patch modules.kmm.sigs.x-k8s.io --subresource status -n "$ns"
can yes update modules.kmm.sigs.x-k8s.io --subresource finalizers -n "$ns"
for verb in list watch create patch delete; do can yes "$verb" daemonsets.apps -A; done
for verb in list watch create patch delete; do can yes "$verb" pods -A; done
for verb in list watch create delete; do can yes "$verb" jobs.batch -A; done
for verb in list watch; do can yes "$verb" configmaps -A; done
can yes get secrets -n "$ns"
for verb in create patch; do
  can yes "$verb" events -n "$ns"
  can yes "$verb" events -n default
done
can yes create leases.coordination.k8s.io -n "$system"
for verb in get update; do
  can yes "$verb" leases.coordination.k8s.io/kmm-operator.kmm.sigs.x-k8s.io -n "$system"
  can no "$verb" leases.coordination.k8s.io/some-other-lease -n "$system"
  can no "$verb" leases.coordination.k8s.io/kmm-operator.kmm.sigs.x-k8s.io -n kube-system
done
can no create leases.coordination.k8s.io -n kube-system
# Secrets are read one by one (imageRepoSecret, signing keys), never listed or watched;
# ConfigMaps are watched, never read one by one or changed.
for verb in list watch; do
  can no "$verb" secrets -A
  can no "$verb" secrets -n "$system"
done
for verb in create update patch delete; do can no "$verb" secrets -n "$ns"; done
for verb in get create update patch delete; do can no "$verb" configmaps -n "$ns"; done
for verb in update patch; do can no "$verb" jobs.batch -n "$ns"; done
for verb in create update delete; do can no "$verb" nodes; done
can no patch nodes --subresource status
can no get modules.kmm.sigs.x-k8s.io -n "$ns"
for verb in create update delete; do can no "$verb" modules.kmm.sigs.x-k8s.io -n "$ns"; done
can no update modules.kmm.sigs.x-k8s.io --subresource status -n "$ns"
can no update daemonsets.apps -n "$ns"
can no update pods -n "$ns"
can no create pods --subresource exec -n "$ns"
can no create pods --subresource eviction -n "$ns"
can no delete events -n "$ns"
can no create deployments.apps -n "$ns"
can no create serviceaccounts -n "$ns"
can no create serviceaccounts --subresource token -n "$system"
can no create clusterrolebindings.rbac.authorization.k8s.io
can no create rolebindings.rbac.authorization.k8s.io -n "$ns"
can no escalate clusterroles.rbac.authorization.k8s.io
can no bind clusterroles.rbac.authorization.k8s.io
can no impersonate users
can no delete namespaces
can no update customresourcedefinitions.apiextensions.k8s.io
echo "ok: RBAC allows exactly what the operator uses"

# 4. The operator as that ServiceAccount.
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' |
  base64 -d > "$work/ca.crt"
token=$(kubectl create token kmm-operator -n "$system" --duration 1h)
KUBECONFIG_SA=$work/operator.kubeconfig
kubectl config --kubeconfig "$KUBECONFIG_SA" set-cluster kmm --server "$server" \
  --certificate-authority "$work/ca.crt" --embed-certs >/dev/null
kubectl config --kubeconfig "$KUBECONFIG_SA" set-credentials kmm-operator --token "$token" >/dev/null
kubectl config --kubeconfig "$KUBECONFIG_SA" set-context kmm --cluster kmm --user kmm-operator \
  --namespace "$system" >/dev/null
kubectl config --kubeconfig "$KUBECONFIG_SA" use-context kmm >/dev/null
[[ $(kubectl --kubeconfig "$KUBECONFIG_SA" auth whoami -o jsonpath='{.status.userInfo.username}') == "$sa" ]] ||
  fail "the kubeconfig is not the ServiceAccount's"

kubectl create namespace "$ns" >/dev/null
# Loader pods need hostPath volumes and CAP_SYS_MODULE: the `privileged` level (README.md).
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=privileged >/dev/null
# kmm-install-0..5: kernels 5.15 (0, 2, 4) with a mapping, 6.1 (1, 3, 5) without.
"$here/kwok-nodes" 6 "$group" 5.15.0-43-generic 6.1.0-1-amd64 | kubectl create -f - >/dev/null

probe_port=$(free_port) metrics_port=$(free_port)
# Only the test's namespace (nodes are cluster-wide anyway): other tests' Modules on this
# cluster belong to their own operators.
"$operator" --kubeconfig "$KUBECONFIG_SA" --leader-elect --leader-election-namespace "$system" \
  --namespace "$ns" --loader-image "kmm-loader:v$version" \
  --metrics-bind-address "127.0.0.1:$metrics_port" --health-probe-bind-address "127.0.0.1:$probe_port" \
  > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz (caches synced, Lease held)" curl -sf "http://127.0.0.1:$probe_port/readyz"
holder=$(kubectl get lease -n "$system" kmm-operator.kmm.sigs.x-k8s.io -o jsonpath='{.spec.holderIdentity}')
[[ -n $holder ]] || fail "no Lease holder in $system"

# A Module whose loader pods run as the namespace's default ServiceAccount, and one whose
# pods name their own (created beforehand, as README.md says; it needs no permissions).
kubectl create serviceaccount kmm-loader -n "$ns" >/dev/null
for name in kmm-ci-a kmm-ci-b; do
  account=
  [[ $name == kmm-ci-b ]] && account="serviceAccountName: kmm-loader"
  cat <<YAML
---
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: $name, namespace: $ns}
spec:
  selector: {kmm.test/group: $group}
  moduleLoader:
    $account
    container:
      modprobe: {moduleName: ${name//-/_}, parameters: ["devices=2"]}
      kernelMappings:
      - literal: 5.15.0-43-generic
        containerImage: registry.example/$name:\${KERNEL_FULL_VERSION}
YAML
done > "$work/modules.yaml"
kubectl apply -f "$work/modules.yaml" >/dev/null

ready_nodes() {  # ready_nodes MODULE
  kubectl get nodes -l "kmm.node.kubernetes.io/$ns.$1.ready" -o name | sed 's|node/||' | sort | tr '\n' ' '
}
status_is() {  # status_is MODULE PYTHON_EXPRESSION over `s` (its status) and `c` (conditions)
  kubectl get module -n "$ns" "$1" -o json | python3 -c "
import json, sys
s = json.load(sys.stdin).get('status', {})
c = {x['type']: x for x in s.get('conditions', [])}
sys.exit(0 if ($2) else 1)"
}
for name in kmm-ci-a kmm-ci-b; do
  wait_for 60 "$name's loader DaemonSet" bash -c \
    "[[ \$(kubectl get ds -n $ns -l kmm.sigs.x-k8s.io/module=$name,kmm.sigs.x-k8s.io/component=loader -o name | wc -l) == 1 ]]"
  wait_for 60 "$name's finalizer" bash -c \
    "kubectl get module -n $ns $name -o jsonpath='{.metadata.finalizers}' | grep -q kmm.sigs.x-k8s.io/module-loaded"
  wait_for 90 ".ready labels for $name" bash -c \
    "[[ \"\$($(declare -f ready_nodes); ns=$ns; ready_nodes $name)\" == '$group-0 $group-2 $group-4 ' ]]"
  wait_for 60 "$name's status" status_is "$name" \
    "s['moduleLoader'] == {'nodesMatchingSelectorNumber': 6, 'desiredNumber': 3, 'availableNumber': 3} and c['Degraded']['reason'] == 'NoKernelMapping' and c['Progressing']['status'] == 'False'"
done
accounts=$(kubectl get pods -n "$ns" -l kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys
print(" ".join(sorted({p["metadata"]["labels"]["kmm.sigs.x-k8s.io/module"] + "=" + p["spec"]["serviceAccountName"]
                        for p in json.load(sys.stdin)["items"]})))')
[[ $accounts == "kmm-ci-a=default kmm-ci-b=kmm-loader" ]] || fail "loader pods' ServiceAccounts: $accounts"
# Admitted with the default priority class, resolved from the PriorityClass manifests/ made.
priorities=$(kubectl get pods -n "$ns" -l kmm.sigs.x-k8s.io/component=loader \
  -o jsonpath='{range .items[*]}{.spec.priorityClassName}={.spec.priority}{"\n"}{end}' | sort -u)
[[ $priorities == "$class=1000000000" ]] || fail "loader pods' priority: $priorities"
kubectl get ds -n "$ns" -l kmm.sigs.x-k8s.io/component=loader \
  -o jsonpath='{.items[*].spec.template.spec.containers[0].image}' | grep -qx "kmm-loader:v$version kmm-loader:v$version" ||
  fail "the loader DaemonSets do not run kmm-loader:v$version"
echo "ok: DaemonSets, labels, status, both ServiceAccount choices"

# Events: on the Module (a Warning, counted up by patches as reconciles repeat it) and on the
# nodes (in "default").
event_count() {
  kubectl get events -n "$ns" --field-selector reason=NoKernelMapping,involvedObject.name=kmm-ci-a \
    -o jsonpath='{.items[*].count}'
}
wait_for 60 "a NoKernelMapping event counted more than once" bash -c \
  "for n in \$($(declare -f event_count); ns=$ns; event_count); do ((n > 1)) && exit 0; done; exit 1"
# Recorded right after the label patch, so it is normally there already; wait a little anyway
# and, if it never comes, show what the node's events and labels were.
module_loaded_event() {
  # Not `| grep -q`: under pipefail, grep leaving at the first line can fail the pipeline with
  # kubectl's SIGPIPE while it writes the next (this check's earlier flake).
  [[ -n $(kubectl get events -n default --field-selector "reason=ModuleLoaded,involvedObject.name=$group-0" -o name) ]]
}
deadline=$((SECONDS + 30))
until module_loaded_event || ((SECONDS >= deadline)); do sleep 0.3; done
if ! module_loaded_event; then
  kubectl get events -n default --field-selector "involvedObject.name=$group-0" >&2 || true
  kubectl get node "$group-0" -o jsonpath='{.metadata.labels}' >&2 || true
  fail "no ModuleLoaded event on $group-0"
fi
echo "ok: events created and patched"

# An update: the operator deletes the outdated loader pods one node at a time.
kubectl patch module -n "$ns" kmm-ci-a --type merge \
  -p '{"spec":{"moduleLoader":{"container":{"modprobe":{"parameters":["devices=4"]}}}}}' >/dev/null
wait_for 120 "every kmm-ci-a loader pod replaced" bash -c "
  kubectl get pods -n $ns -l kmm.sigs.x-k8s.io/module=kmm-ci-a,kmm.sigs.x-k8s.io/component=loader -o json | python3 -c '
import json, sys
pods = [p for p in json.load(sys.stdin)[\"items\"] if \"deletionTimestamp\" not in p[\"metadata\"]]
env = [e[\"value\"] for p in pods for e in p[\"spec\"][\"containers\"][0][\"env\"] if e[\"name\"] == \"KMM_LOADER_CONFIG\"]
sys.exit(0 if len(env) == 3 and all(\"devices=4\" in v for v in env) else 1)'"
wait_for 60 "kmm-ci-a settled after the update" status_is kmm-ci-a \
  "c['Progressing']['status'] == 'False' and s['moduleLoader']['availableNumber'] == 3"
echo "ok: ordered replacement"

# Deletion: labels, DaemonSets, then the finalizer go.
kubectl delete module -n "$ns" kmm-ci-a kmm-ci-b --wait=false >/dev/null
wait_for 120 "the Modules to be gone" bash -c "[[ -z \$(kubectl get modules -n $ns -o name) ]]"
wait_for 60 "the DaemonSets to be gone" bash -c "[[ -z \$(kubectl get ds -n $ns -o name) ]]"
[[ -z $(ready_nodes kmm-ci-a)$(ready_nodes kmm-ci-b) ]] || fail ".ready labels left behind"
echo "ok: deletion"

# No request was refused: neither in the log nor in the operator's own request counter.
if grep -iE "forbidden|HTTP 40[13]" "$work/operator.log"; then fail "the operator was refused a request"; fi
curl -sf "http://127.0.0.1:$metrics_port/metrics" > "$work/metrics"
grep -q '^kmm_api_requests_total{.*code="200"' "$work/metrics" || fail "no requests counted"
if grep -E '^kmm_api_requests_total\{.*code="40[13]"' "$work/metrics"; then fail "refused requests counted"; fi
# A clean shutdown hands the Lease back.
kill -TERM "$pid"; wait "$pid" || fail "the operator exited with $?"; pid=
grep -q "leader election: released" "$work/operator.log" || fail "the Lease was not released"
echo PASS
