#!/usr/bin/env bash
# kaniko on the real node, by hand, without the operator: the experiment of
# build-experiment.md made repeatable. A Job running the kmm-builder image builds kmm_ci_a
# from a ConfigMap (a multi-stage Dockerfile FROM kmm-build-base) and pushes the module image;
# a second Job signs it in the kmm-signer image with a throwaway key. Each pushed image is
# pulled back and checked with modinfo. Exits non-zero on any failure; prints timings.
#
#   kaniko-smoke.sh BUILD_DIR     (with the cluster and node up: kmm-test-cluster up --node)
#
# Not a ctest test. Timings go to BUILD_DIR/kaniko-smoke/timings; the namespace stays on
# failure for a look (kubectl -n kmm-kaniko-smoke ...).
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
eval "$("$repo/test/cluster/kmm-test-cluster" env)"
out=$build/kaniko-smoke
rm -rf "$out" && mkdir -p "$out"
ns=kmm-kaniko-smoke
node=${KMM_NODE_NAME:-kmm-node-1}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
# Pods reach this machine's registry at the qemu user network's host address, not at
# 127.0.0.1 (that is the pod's own loopback); only the node's containerd maps the latter.
pod_registry=10.0.2.2:${KMM_REGISTRY##*:}

step() { printf '\n=== %s\n' "$*"; }
pass() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*" >&2
  kubectl -n "$ns" get pods -o wide >&2 || true
  exit 1
}
timing() { echo "$1 $2" >> "$out/timings"; echo "timing: $1 $2 s"; }

kver=$(kubectl get node "$node" -o jsonpath='{.status.nodeInfo.kernelVersion}')
[[ -n $kver ]] || fail "node $node has no kernel version"

step "Images: build, push the build images to $KMM_REGISTRY"
"$repo/images/build-images" "$build" "$out/images" > "$out/images.txt"
mkdir -p "$out/push"
for name in kmm-builder kmm-build-base kmm-signer; do ln -s "$out/images/$name" "$out/push/$name"; done
"$repo/images/push-images" "$out/push" "$KMM_REGISTRY"

kubectl delete namespace "$ns" --ignore-not-found --wait=true
kubectl create namespace "$ns"

# job NAME CONFIGMAP DESTINATION [secrets]: a kaniko Job as upstream KMM's build Job, on the
# node. Each ConfigMap key is mounted by subPath: a whole-ConfigMap mount gives kaniko
# symlinks into ..data, which COPY copies as dangling symlinks (build-experiment.md).
job() {
  local name=$1 configmap=$2 destination=$3 secrets=${4:-} key keys
  # shellcheck disable=SC2016 # a Go template
  keys=$(kubectl -n "$ns" get configmap "$configmap" -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')
  cat <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $name
  namespace: $ns
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector:
        kubernetes.io/hostname: $node
      containers:
      - name: kaniko
        image: $KMM_REGISTRY/kmm-builder:v$version
        args:
        - --dockerfile=/workspace/dockerfile
        - --context=dir:///workspace
        - --destination=$destination
        - --build-arg=KERNEL_VERSION=$kver
        - --build-arg=KERNEL_FULL_VERSION=$kver
        - --build-arg=MOD_NAME=kmm-ci-a
        - --build-arg=MOD_NAMESPACE=$ns
        - --insecure
        - --skip-tls-verify
        - --insecure-pull
        - --skip-tls-verify-pull
        - --registry-map=$KMM_REGISTRY=$pod_registry
        - --snapshot-mode=redo
        - --use-new-run
        - --cache=false
        - --log-timestamp
        volumeMounts:
YAML
  for key in $keys; do
    echo "        - {name: context, mountPath: /workspace/$key, subPath: $key, readOnly: true}"
  done
  if [[ -n $secrets ]]; then
    echo "        - {name: key, mountPath: /run/secrets/key, readOnly: true}"
    echo "        - {name: cert, mountPath: /run/secrets/cert, readOnly: true}"
  fi
  cat <<YAML
      volumes:
      - name: context
        configMap:
          name: $configmap
YAML
  if [[ -n $secrets ]]; then
    cat <<YAML
      - name: key
        secret:
          secretName: kmm-smoke-key
          items: [{key: key, path: key.pem}]
      - name: cert
        secret:
          secretName: kmm-smoke-cert
          items: [{key: cert, path: cert.pem}]
YAML
  fi
}

# run_job NAME: applies $out/NAME.yaml, waits up to 15 minutes, keeps the log, prints timings.
run_job() {
  local name=$1 started phase
  started=$SECONDS
  kubectl apply -f "$out/$name.yaml"
  while :; do
    phase=$(kubectl -n "$ns" get pods -l "job-name=$name" -o jsonpath='{.items[0].status.phase}' 2>/dev/null || true)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    ((SECONDS - started < 900)) || fail "$name: still ${phase:-not started} after 15 minutes"
    sleep 3
  done
  kubectl -n "$ns" logs "job/$name" | sed 's/\x1b\[[0-9;]*m//g' > "$out/$name.log" || true
  [[ $phase == Succeeded ]] || { tail -n 30 "$out/$name.log" >&2; fail "$name: the build failed"; }
  timing "$name-job" $((SECONDS - started))
  # kaniko's own phases, from its log's timestamps: every step of 2 s or more, and the
  # base's unpacking and the RUNs into the timings.
  python3 - "$out/$name.log" "$name" >> "$out/timings" <<'PY'
import re, sys
from datetime import datetime
marks = []
for line in open(sys.argv[1]):
    m = re.match(r'INFO\[(\S+?)Z?\] (.*)', line)
    if m:
        marks.append((datetime.fromisoformat(m.group(1)), m.group(2).strip()))
totals = {"unpack": 0, "run": 0}
for (t, what), (t_next, _) in zip(marks, marks[1:]):
    seconds = (t_next - t).total_seconds()
    if seconds >= 2:
        print(f"  {seconds:5.0f} s  {what[:90]}", file=sys.stderr)
    if what.startswith("Unpacking rootfs"):
        totals["unpack"] += seconds
    elif what.startswith("Running:"):
        totals["run"] += seconds
for phase, seconds in totals.items():
    print(f"{sys.argv[2]}-{phase} {seconds:.0f}")
PY
}

# image_root IMAGE DIR: pulls IMAGE from the registry and unpacks it into DIR; prints DIR/rootfs.
image_root() {
  skopeo copy --quiet --src-tls-verify=false "docker://$KMM_REGISTRY/$1" "oci:$2-oci:smoke"
  umoci unpack --rootless --image "$2-oci:smoke" "$2" > /dev/null
  echo "$2/rootfs"
}

step "1. Build kmm_ci_a from a ConfigMap with kaniko on $node (kernel $kver)"
mkdir -p "$out/context"
cp "$repo/test/modules/kmm_ci_a.c" "$repo/test/modules/kmm_ci_a.h" "$out/context/"
echo 'obj-m += kmm_ci_a.o' > "$out/context/Kbuild"
# The registry in FROM is the one the cluster pulls from; --registry-map sends kaniko to it.
cat > "$out/context/dockerfile" <<DOCKERFILE
ARG KERNEL_FULL_VERSION
FROM $KMM_REGISTRY/kmm-build-base:\${KERNEL_FULL_VERSION} AS builder
ARG KERNEL_FULL_VERSION
COPY kmm_ci_a.c kmm_ci_a.h Kbuild /src/
RUN make -C /usr/src/linux-headers-\${KERNEL_FULL_VERSION} M=/src modules \\
 && mkdir -p /opt/lib/modules/\${KERNEL_FULL_VERSION} \\
 && cp /src/kmm_ci_a.ko /opt/lib/modules/\${KERNEL_FULL_VERSION}/ \\
 && depmod -b /opt \${KERNEL_FULL_VERSION}

FROM scratch
ARG KERNEL_FULL_VERSION
COPY --from=builder /opt/lib/modules/\${KERNEL_FULL_VERSION} /opt/lib/modules/\${KERNEL_FULL_VERSION}
DOCKERFILE
kubectl -n "$ns" create configmap kmm-ci-a-build --from-file="$out/context"
job kmm-ci-a-build kmm-ci-a-build "$pod_registry/kmm-smoke-built:$kver" > "$out/kmm-ci-a-build.yaml"
run_job kmm-ci-a-build
root=$(image_root "kmm-smoke-built:$kver" "$out/built")
ko=$root/opt/lib/modules/$kver/kmm_ci_a.ko
[[ -f $ko ]] || fail "the built image has no /opt/lib/modules/$kver/kmm_ci_a.ko: $(find "$root" | head)"
[[ $(modinfo -F vermagic "$ko") == "$kver "* ]] || fail "vermagic: $(modinfo -F vermagic "$ko")"
[[ -f $root/opt/lib/modules/$kver/modules.dep ]] || fail "the built image has no modules.dep"
pass "$KMM_REGISTRY/kmm-smoke-built:$kver holds kmm_ci_a.ko for $(modinfo -F vermagic "$ko")"

step "2. Sign it with kaniko in the kmm-signer image, key and certificate from Secrets"
openssl req -new -x509 -nodes -newkey rsa:2048 -days 1 -subj "/CN=kmm-kaniko-smoke/" \
  -keyout "$out/key.pem" -outform PEM -out "$out/cert.pem" 2> /dev/null
kubectl -n "$ns" create secret generic kmm-smoke-key --from-file=key="$out/key.pem"
kubectl -n "$ns" create secret generic kmm-smoke-cert --from-file=cert="$out/cert.pem"
file=/opt/lib/modules/$kver/kmm_ci_a.ko
mkdir -p "$out/sign"
cat > "$out/sign/dockerfile" <<DOCKERFILE
FROM $KMM_REGISTRY/kmm-smoke-built:$kver AS source

FROM $KMM_REGISTRY/kmm-signer:v$version AS signimage
COPY --from=source $file /signroot$file
RUN for f in /signroot$file; do \\
      if [ -e "\$f" ]; then sign-file sha256 /run/secrets/key/key.pem /run/secrets/cert/cert.pem "\$f" || exit 1; fi; \\
    done

FROM source
COPY --from=signimage /signroot$file $file
DOCKERFILE
kubectl -n "$ns" create configmap kmm-ci-a-sign --from-file="$out/sign"
job kmm-ci-a-sign kmm-ci-a-sign "$pod_registry/kmm-smoke-signed:$kver" secrets > "$out/kmm-ci-a-sign.yaml"
run_job kmm-ci-a-sign
root=$(image_root "kmm-smoke-signed:$kver" "$out/signed")
ko=$root$file
[[ $(modinfo -F signer "$ko") == kmm-kaniko-smoke ]] || fail "the signed module: $(modinfo "$ko")"
[[ $(modinfo -F vermagic "$ko") == "$kver "* ]] || fail "the signed module's vermagic: $(modinfo -F vermagic "$ko")"
pass "$KMM_REGISTRY/kmm-smoke-signed:$kver: kmm_ci_a signed by $(modinfo -F signer "$ko") ($(modinfo -F sig_hashalgo "$ko"))"

kubectl delete namespace "$ns" --wait=false
echo
cat "$out/timings"
echo "PASS"
