#!/usr/bin/env bash
# kmm-operator with a kubeconfig whose user is an exec credential plugin, as EKS, GKE and AKS
# kubeconfigs are, against the real API server. Usage: exec-auth-test.sh KMM_OPERATOR CRD_YAML
#
# The plugin (client.authentication.k8s.io/v1beta1, a path relative to the kubeconfig) gets
# tokens of a ServiceAccount bound to cluster-admin with `kubectl create token`, but answers
# its first run with a token the API server refuses. The operator must run it once more (not
# once per request or per thread), get ready (lists, watches and its Lease authenticated),
# reconcile a Module (its finalizer added and removed) and keep using the same token. A
# kubeconfig whose plugin is not installed stops the operator at start with the install hint.
set -euo pipefail
operator=$1 crd=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
work=$(mktemp -d)
ns=kmm-exec-auth-$$  # its own per run: a previous one may still be terminating
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  kubectl delete clusterrolebinding "$ns" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() { echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; }
runs() { [[ -f $work/runs ]] && wc -l < "$work/runs" || echo 0; }

kubectl apply --server-side -f "$crd" >/dev/null
kubectl wait --for condition=Established crd/modules.kmm.sigs.x-k8s.io --timeout 60s >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl create serviceaccount operator -n "$ns" >/dev/null
kubectl create clusterrolebinding "$ns" --clusterrole cluster-admin \
  --serviceaccount "$ns:operator" >/dev/null

mkdir -p "$work/bin"
cat > "$work/bin/get-token" <<SH
#!/bin/sh
set -e
echo run >> "$work/runs"
if [ "\$(wc -l < "$work/runs")" -eq 1 ]; then
  token=not-a-valid-token
else
  token=\$(kubectl --kubeconfig "$KUBECONFIG" create token operator -n "$ns" --duration 10m)
fi
echo "get-token: issued a token" >&2
printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s"}}\n' "\$token"
SH
chmod +x "$work/bin/get-token"
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
write_kubeconfig() {  # write_kubeconfig FILE COMMAND
  cat > "$1" <<YAML
apiVersion: v1
kind: Config
current-context: eks-like
contexts:
- name: eks-like
  context: {cluster: test, user: plugin}
clusters:
- name: test
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: $2
      installHint: install get-token from the test's work directory
YAML
}
write_kubeconfig "$work/kubeconfig" bin/get-token

probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$operator" --kubeconfig "$work/kubeconfig" --namespace "$ns" --leader-elect \
  --leader-election-namespace "$ns" --loader-image kmm-loader:test \
  --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe_port" \
  > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
[[ $(runs) == 2 ]] || fail "the plugin ran $(runs) times to get ready, expected 2 (refused, then replaced once)"
grep -q "refused the credential (401); running the plugin again" "$work/operator.log" ||
  fail "no log line about the refused credential"
grep -q "get-token: issued a token" "$work/operator.log" || fail "the plugin's stderr is not in the log"
holder=$(kubectl get lease -n "$ns" kmm-operator.kmm.sigs.x-k8s.io -o jsonpath='{.spec.holderIdentity}')
[[ -n $holder ]] || fail "the operator holds no Lease"

cat > "$work/module.yaml" <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: exec-auth, namespace: $ns}
spec:
  selector: {kmm.test/group: kmm-exec-auth-none}
  moduleLoader:
    container:
      modprobe: {moduleName: kmm_ci_a}
      kernelMappings:
      - literal: 5.15.0-43-generic
        containerImage: registry.example/kmm-ci:\${KERNEL_FULL_VERSION}
YAML
kubectl apply -f "$work/module.yaml" >/dev/null
has_finalizer() { [[ -n $(kubectl get module -n "$ns" exec-auth -o jsonpath='{.metadata.finalizers}') ]]; }
wait_for 60 "the operator's finalizer on the Module" has_finalizer
kubectl delete module -n "$ns" exec-auth --timeout 60s >/dev/null ||
  fail "the operator did not release the deleted Module"
[[ $(runs) == 2 ]] || fail "the plugin ran $(runs) times, expected 2: the token is not cached"
kill "$pid"
wait "$pid" || true
pid=

# Not installed: the operator stops at once, saying so with the install hint.
write_kubeconfig "$work/missing.kubeconfig" kmm-no-such-get-token
if timeout 30 "$operator" --kubeconfig "$work/missing.kubeconfig" --metrics-bind-address 0 \
  --health-probe-bind-address 0 > "$work/missing.log" 2>&1; then
  fail "the operator ran without its credential plugin"
fi
grep -q "credential plugin kmm-no-such-get-token: not found" "$work/missing.log" ||
  fail "no not-found error: $(cat "$work/missing.log")"
grep -q "install get-token from the test's work directory" "$work/missing.log" ||
  fail "no install hint: $(cat "$work/missing.log")"
echo PASS
