#!/usr/bin/env bash
# The Module CRD's validation rules on a real API server (kmm has no admission webhook; the
# CRD's x-kubernetes-validations carry upstream's webhook rules):
#   1. every invalid fixture (manifests/crd/testdata/invalid/*.yaml) is rejected, and the
#      message is the one its first line names ("# expect: ...");
#   2. every valid Module in the repository passes a strict server-side dry run;
#   3. the update rule: moduleLoader.container.version cannot go between empty and set, but
#      may change from one version to another;
#   4. `kubectl get modules` prints loaded/desired per component and the Ready condition.
# Usage: validation-test.sh CRD_YAML REPO_ROOT
set -euo pipefail
crd=$1 repo=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/wait.sh
source "$here/../lib/wait.sh"
eval "$("$here/kmm-test-cluster" env)"
ns=kmm-validation
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$crd" >/dev/null
kubectl wait --for condition=Established --timeout 60s crd/modules.kmm.sigs.x-k8s.io >/dev/null
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null

# 1. Each invalid fixture is rejected with its own message.
invalid=0
for fixture in "$repo"/manifests/crd/testdata/invalid/*.yaml; do
  expected=$(sed -n '1s/^# expect: //p' "$fixture")
  [[ -n $expected ]] || fail "$fixture: its first line must be '# expect: <message>'"
  if output=$(kubectl apply --dry-run=server -n "$ns" -f "$fixture" 2>&1); then
    fail "$fixture was accepted; expected: $expected"
  fi
  grep -qF -- "$expected" <<<"$output" ||
    fail "$fixture was rejected without the expected message
  expected: $expected
  got:      $output"
  invalid=$((invalid + 1))
done
((invalid >= 30)) || fail "only $invalid invalid fixtures found"
echo "ok: $invalid invalid Modules rejected, each with its message"

# 2. Every valid Module in the repository is accepted unchanged, with strict field validation
# (an unknown field would be an error, not silently pruned).
valid=0
for module in "$repo"/manifests/crd/testdata/valid/*.yaml "$repo"/manifests/crd/testdata/*.json \
  "$repo"/operator/api/testdata/*.json "$repo"/operator/desired/testdata/module.yaml \
  "$repo"/manifests/examples/*/module.yaml; do
  [[ -f $module ]] || continue
  # Into this test's namespace: other tests own the namespaces the fixtures name.
  kubectl create --dry-run=client -o json -f "$module" |
    python3 -c 'import json, sys; m = json.load(sys.stdin); m["metadata"]["namespace"] = sys.argv[1]; json.dump(m, sys.stdout)' \
      "$ns" > "$work/module.json"
  output=$(kubectl apply --dry-run=server --validate=strict -f "$work/module.json" 2>&1) ||
    fail "$module was rejected: $output"
  valid=$((valid + 1))
done
((valid >= 8)) || fail "only $valid valid Modules found"
echo "ok: $valid valid Modules accepted (strict server-side dry run)"

# 3. The update rule, on a stored Module.
versioned() {
  cat <<EOF
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata:
  name: kmm-ci-a-versioned
  namespace: $ns
spec:
  selector: {}
  moduleLoader:
    container:
      ${1:+version: \"$1\"}
      modprobe:
        moduleName: kmm_ci_a
      kernelMappings:
        - regexp: ^.+$
          containerImage: registry.example.com/kmm/kmm-ci-a:\${KERNEL_FULL_VERSION}
EOF
}
versioned 1.0 | kubectl apply -f - >/dev/null
versioned 1.1 | kubectl apply -f - >/dev/null || fail "changing version 1.0 to 1.1 was refused"
if output=$(versioned "" | kubectl apply -f - 2>&1); then
  fail "removing the version was accepted"
fi
grep -qF "spec.moduleLoader.container.version: Invalid value: cannot change between empty and set" \
  <<<"$output" || fail "removing the version was refused without the rule's message: $output"
kubectl delete module -n "$ns" kmm-ci-a-versioned >/dev/null
versioned "" | kubectl apply -f - >/dev/null
if output=$(versioned 2.0 | kubectl apply -f - 2>&1); then
  fail "adding a version to a Module without one was accepted"
fi
grep -qF "cannot change between empty and set" <<<"$output" ||
  fail "adding a version was refused without the rule's message: $output"
echo "ok: version may change but not between empty and set"

# 4. Printer columns, from a status the operator would write.
kubectl patch module -n "$ns" kmm-ci-a-versioned --subresource status --type merge -p '{"status": {
  "moduleLoader": {"nodesMatchingSelectorNumber": 5, "desiredNumber": 4, "availableNumber": 3},
  "devicePlugin": {"nodesMatchingSelectorNumber": 5, "desiredNumber": 3, "availableNumber": 2},
  "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing", "message": "m",
                  "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}' >/dev/null
kubectl get modules -n "$ns" > "$work/get"
kubectl get modules -n "$ns" -o wide > "$work/wide"
python3 - "$work/get" "$work/wide" <<'PY' || fail "unexpected columns: $(cat "$work/get" "$work/wide")"
import sys
def table(path):
    header, row = open(path).read().splitlines()[:2]
    return dict(zip(header.split(), row.split()))
get, wide = table(sys.argv[1]), table(sys.argv[2])
expected = {"NAME": "kmm-ci-a-versioned", "LOADED": "3", "DESIRED": "4", "PLUGINS": "2",
            "PLUGINS-DESIRED": "3", "READY": "False"}
assert {k: get.get(k) for k in expected} == expected, get
assert list(get)[-1] == "AGE", get
assert wide.get("SELECTED") == "5" and wide.get("REASON") == "Progressing", wide
PY
echo "ok: kubectl get modules shows loaded/desired per component and Ready"
