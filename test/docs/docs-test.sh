#!/usr/bin/env bash
# integration_docs: every ```sh block of the docs, run on the local test cluster (a real API
# server, kwok nodes) in the order of test/docs/docs.list, as an administrator would run them:
# from the repository's root, with kubectl and this build's kmm binaries in PATH and the docs'
# placeholders set below. kmm-operator runs on this machine as the cluster's operator (kwok
# only pretends to run the operator pod the docs install). Between two docs this script puts
# the cluster in the state the next doc starts from (hooks below). ```sh node and
# ```sh on-node blocks need a real node: test/node/flow-test.sh runs those.
#
#   docs-test.sh BUILD_DIR
#
# The docs install kmm and remove it again, the CRD and PriorityClass included, so this test
# runs alone (RUN_SERIAL) and puts those two back at the end for the tests that share them.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/test/lib/wait.sh"
eval "$("$repo/test/cluster/kmm-test-cluster" env)"
export PATH="$build/bin:$PATH"
work=$(mktemp -d)
group=kmm-docs
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[[ -n $version ]] || { echo "FAIL: no project version in $build/CMakeCache.txt"; exit 1; }

# The docs' placeholders (their doc-vars lines). kwok pulls no image, so the registry is the
# docs' example.
mkdir -p "$work/files"
export WORKDIR=$work/files
export REGISTRY=registry.example.com/kmm TAG=v$version NEW_TAG=v$version-next
export NAMESPACE=my-modules MODULE=my-driver NODE=$group-0
export KMOD=my_driver RESOURCE=example.com/my-device DEVICE=my-device0

pid='' cordoned=''
cleanup() {
  if [[ -n $cordoned ]]; then kubectl uncordon "$cordoned" >/dev/null 2>&1 || true; fi
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  # Without the operator nobody removes the finalizers of the Modules and of the loader pods
  # (kmm.sigs.x-k8s.io/unload-confirmed), which would hold the namespace.
  for object in $(kubectl get modules,pods -n "$NAMESPACE" -o name 2>/dev/null); do
    kubectl patch -n "$NAMESPACE" "$object" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kubectl delete namespace "$NAMESPACE" kmm-system --wait=false >/dev/null 2>&1 || true
  kubectl delete clusterrole,clusterrolebinding -l app.kubernetes.io/part-of=kmm >/dev/null 2>&1 || true
  kubectl delete nodes -l "kmm.test/group=$group" --wait=false >/dev/null 2>&1 || true
  # What the other tests share, as they apply it.
  kubectl apply --server-side -f "$repo/manifests/crd/modules.kmm.sigs.x-k8s.io.yaml" \
    -f "$repo/manifests/priority-class.yaml" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() { echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; }

# A cluster without kmm (a previous run's namespaces may still be terminating).
for namespace in kmm-system "$NAMESPACE"; do
  phase=$(kubectl get namespace "$namespace" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [[ $phase != Active ]] || fail "namespace $namespace exists already: the docs start without it"
  wait_for 120 "the old $namespace namespace to go" bash -c "! kubectl get namespace $namespace"
done
kubectl apply --server-side -f "$repo/manifests/crd/modules.kmm.sigs.x-k8s.io.yaml" \
  -f "$repo/manifests/priority-class.yaml" >/dev/null
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null

# The cluster's real kubelet (on a fake container runtime) cannot run the operator pod the docs
# install, and would leave its rollout unfinished: kwok nodes run it, as the only schedulable
# Linux nodes.
if kubectl get node kmm-kubelet >/dev/null 2>&1; then
  kubectl cordon kmm-kubelet >/dev/null
  cordoned=kmm-kubelet
fi

# The docs' Module selects node-role.kubernetes.io/worker: only this test's nodes may have it
# (plan-test.sh's are deleted without waiting).
no_other_workers() { [[ -z $(kubectl get nodes -l node-role.kubernetes.io/worker -o name) ]]; }
wait_for 60 "other tests' nodes labelled node-role.kubernetes.io/worker to go" no_other_workers

# Two worker nodes: a Debian and an Ubuntu kernel, both mapped by the docs' Module.
worker_nodes() {  # worker_nodes COUNT PREFIX KERNEL...: kwok-nodes, labelled as the docs expect
  "$repo/test/cluster/kwok-nodes" "$@" | python3 -c '
import json, sys
nodes = json.load(sys.stdin)
for node in nodes["items"]:
    node["metadata"]["labels"].update({"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux",
                                       "kmm.test/group": "'"$group"'"})
json.dump(nodes, sys.stdout)'
}
worker_nodes 2 "$group" 6.1.0-57-amd64 5.15.0-43-generic | kubectl create -f - >/dev/null

# The operator, watching every namespace as the installed one would.
probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kmm-operator --kubeconfig "$KUBECONFIG" --metrics-bind-address 0 \
  --health-probe-bind-address "127.0.0.1:$probe_port" > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
# install.md waits for every Module in the cluster and deletes them all: another test's
# Modules must be gone first (a test that stopped its operator before its namespace went leaves
# them with their finalizers, which this operator now removes).
no_modules() { [[ -z $(kubectl get modules -A -o name) ]]; }
wait_for 120 "other tests' Modules to go ($(kubectl get modules -A -o name | head -n 3 | tr '\n' ' '))" no_modules

# kmm installed, as install.md does it; install.md itself runs last, since it also removes kmm.
"$repo/manifests/overlay-for" "$REGISTRY" "$TAG" "$WORKDIR/kmm" >/dev/null
kubectl apply -k "$WORKDIR/kmm" >/dev/null

module_has() {  # module_has JSONPATH VALUE
  [[ $(kubectl -n "$NAMESPACE" get module "$MODULE" -o jsonpath="$1") == "$2" ]]
}
before() {  # the state each doc starts from
  case $1 in
    docs/troubleshooting.md)
      # module.md deleted its Module: apply it again, with a node whose kernel no mapping covers.
      kubectl apply -f "$WORKDIR/my-driver.yaml" >/dev/null
      worker_nodes 1 "$group-rhel" 5.14.0-427.el9.x86_64 | kubectl create -f - >/dev/null
      wait_for 120 "the Module to be Degraded with NoKernelMapping" \
        module_has '{.status.conditions[?(@.type=="Degraded")].reason}' NoKernelMapping
      wait_for 120 "the Module to be loaded on 2 nodes" module_has '{.status.moduleLoader.availableNumber}' 2
      ;;
  esac
}
after() {
  case $1 in
    docs/troubleshooting.md)
      # The Module is Ready again for install.md's upgrade, which waits for that.
      kubectl delete node "$group-rhel-0" >/dev/null
      wait_for 120 "the Module to be Ready" module_has '{.status.conditions[?(@.type=="Ready")].status}' True
      ;;
  esac
}

cd "$repo"
mapfile -t docs < <(grep -v -e '^#' -e '^\s*$' "$here/docs.list")
for doc in "${docs[@]}"; do
  before "$doc"
  started=$SECONDS
  "$here/run-doc-blocks" cluster "$doc" || fail "$doc"
  echo "ok: $doc ($((SECONDS - started))s)"
  after "$doc"
done
echo PASS
