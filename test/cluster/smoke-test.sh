#!/usr/bin/env bash
# The test cluster's smoke test (ctest label `integration`; the cluster_up fixture starts
# the cluster): the API server answers, a CRD and a custom object work, 100 kwok nodes with
# 5 kernel versions become Ready, 1,000 more are created and Ready within a minute, and a
# DaemonSet selecting one kernel runs exactly on that kernel's nodes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/kmm-test-cluster" env)"
fail() { echo "FAIL: $*" >&2; exit 1; }
ns=kmm-smoke-$$

kubectl get --raw /readyz | grep -qx ok || fail "/readyz is not ok"
kubectl version -o json | grep -q '"gitVersion": "v1\.' || fail "kubectl version has no real version"
kubectl create namespace "$ns" >/dev/null

kubectl apply -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.kmm.test
spec:
  group: smoke.kmm.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
YAML
kubectl wait --for condition=Established crd/widgets.smoke.kmm.test --timeout 60s >/dev/null
kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: smoke.kmm.test/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
YAML
[[ $(kubectl get widget w1 -n "$ns" -o jsonpath='{.spec.size}') == 3 ]] || fail "custom object"
echo "ok: readyz, namespace, CRD and custom object"

kernels=(5.4.196-108.356.amzn2.x86_64 5.4.0-1049-gke 5.10.123 5.4.0-1089-azure 5.15.0-43-generic)
start=$SECONDS
"$here/kwok-nodes" 100 smoke "${kernels[@]}" | kubectl create -f - >/dev/null
# One list per check: `kubectl wait` on many nodes makes a request per node.
deadline=$((SECONDS + 120))
until [[ $("$here/ready-count" kmm.test/group=smoke) == 100 ]]; do
  ((SECONDS < deadline)) || fail "only $("$here/ready-count" kmm.test/group=smoke) of 100 nodes Ready"
  sleep 0.2
done
echo "ok: 100 kwok nodes Ready in $((SECONDS - start))s"
[[ $(kubectl get node smoke-4 -o jsonpath='{.status.nodeInfo.kernelVersion}') == 5.15.0-43-generic ]] \
  || fail "kwok did not keep the node's kernelVersion"

start=$SECONDS
"$here/kwok-nodes" 1000 bulk $(for k in $(seq 50); do echo "6.1.0-$k-amd64"; done) \
  | kubectl create -f - >/dev/null
until [[ $("$here/ready-count" kmm.test/group=bulk) == 1000 ]]; do
  ((SECONDS - start < 60)) || fail "1,000 nodes not Ready within a minute"
  sleep 0.2
done
echo "ok: 1,000 kwok nodes created and Ready in $((SECONDS - start))s"
kubectl delete node -l kmm.test/group=bulk --wait=false >/dev/null

kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: only-5-15}
spec:
  selector: {matchLabels: {app: only-5-15}}
  template:
    metadata: {labels: {app: only-5-15}}
    spec:
      nodeSelector: {kmm.node.kubernetes.io/kernel-version.full: 5.15.0-43-generic, kmm.test/group: smoke}
      containers: [{name: c, image: "registry.invalid/pause:1"}]
YAML
deadline=$((SECONDS + 120))
until [[ $(kubectl get ds only-5-15 -n "$ns" -o jsonpath='{.status.numberReady}') == 20 ]]; do
  ((SECONDS < deadline)) || fail "DaemonSet pods not Ready: $(kubectl get ds only-5-15 -n "$ns" -o jsonpath='{.status}')"
  sleep 0.5
done
[[ $(kubectl get ds only-5-15 -n "$ns" -o jsonpath='{.status.desiredNumberScheduled}') == 20 ]] \
  || fail "DaemonSet wants other than the 20 nodes of that kernel"
wrong=$(kubectl get pods -n "$ns" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' \
  | while read -r node; do
      kubectl get node "$node" -o jsonpath='{.status.nodeInfo.kernelVersion}{"\n"}'
    done | grep -vc '^5.15.0-43-generic$' || true)
((wrong == 0)) || fail "$wrong DaemonSet pods on nodes of another kernel"
echo "ok: the DaemonSet runs Ready on exactly the 20 nodes of 5.15.0-43-generic"

kubectl delete namespace "$ns" --wait=false >/dev/null
kubectl delete node -l kmm.test/group=smoke --wait=false >/dev/null
kubectl delete crd widgets.smoke.kmm.test --wait=false >/dev/null
echo "smoke test passed"
