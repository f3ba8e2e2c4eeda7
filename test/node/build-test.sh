#!/usr/bin/env bash
# In-cluster module builds and signing on the real node (ctest label `node`): the operator
# (as a pod on the qemu node) finds a Module's image missing in the cluster's registry, runs
# a kaniko build Job on the node that compiles kmm_ci_a from its source in a ConfigMap
# against the node's kernel headers (images/kmm-build-base), pushes it, and the loader then
# loads that build. Then: an operator restart rebuilds nothing (the registry's image labels
# are the record); a changed ConfigMap rebuilds, the build survives a node reboot in its
# middle, and the node loads the new build; a broken Dockerfile fails with its log in the
# Module's status. Last, the node reboots with Secure Boot on (OVMF, shim, a test Machine Owner
# Key enrolled, module.sig_enforce=1; test/node/kmm-node): the unsigned build is refused with
# the loader's reason in the Module's status, a sign Job that cannot sign fails with its
# reason, and the same build signed in the cluster with the node's MOK loads; the signature
# is also checked with modinfo and, independently, with openssl against the certificate.
#
#   build-test.sh BUILD_DIR     (with the cluster and node up: kmm-test-cluster up --node)
#
# Pods reach this machine's registry as 10.0.2.2:PORT (qemu's host address); the node's
# containerd pulls that name from the same registry (test/node/rootfs kmm-node-init), and
# this script reads it as 127.0.0.1:PORT. Timings go to BUILD_DIR/node-build/timings.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/test/lib/wait.sh"
wait_interval=2
eval "$("$repo/test/cluster/kmm-test-cluster" env)"
out=$build/node-build
rm -rf "$out" && mkdir -p "$out"
ns=kmm-build
# Where this run's builds go: a repository of its own, so that a second run on the same
# cluster finds its images missing too.
built=kmm-built-$(date +%s)
node=${KMM_NODE_NAME:-kmm-node-1}
pod_registry=10.0.2.2:${KMM_REGISTRY##*:}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
kver=$(kubectl get node "$node" -o jsonpath='{.status.nodeInfo.kernelVersion}')
[[ -n $kver ]] || { echo "FAIL: node $node has no kernel version"; exit 1; }

step() { printf '\n=== %s\n' "$*"; }
pass() { echo "ok: $*"; }
timing() { echo "$1 $2" >> "$out/timings"; echo "timing: $1 $2 s"; }
on_node() { "$here/kmm-node" ssh "$@"; }
on_fail() {
  echo "--- Modules:"
  kubectl -n "$ns" get modules -o json | python3 -c '
import json, sys
for m in json.load(sys.stdin)["items"]:
    for c in m.get("status", {}).get("conditions", []):
        print(m["metadata"]["name"], c["type"], c["status"], c.get("reason"), c.get("message"))' || true
  echo "--- jobs, pods, events:"
  kubectl -n "$ns" get jobs,pods -o wide || true
  kubectl -n "$ns" get events --sort-by=.lastTimestamp | tail -n 20 || true
  for pod in $(kubectl -n "$ns" get pods -l kmm.sigs.x-k8s.io/component=build -o name 2>/dev/null); do
    echo "--- $pod (last 20 lines):"; kubectl -n "$ns" logs "$pod" --tail 20 || true
  done
  echo "--- operator log (last 30 lines):"
  kubectl -n kmm-system logs deploy/kmm-operator --tail 30 || true
}

# The module's "build" parameter on the node: which build of kmm_ci_a is loaded.
loaded_build() { on_node 'cat /sys/module/kmm_ci_a/parameters/build 2>/dev/null || true'; }
condition() {  # condition MODULE TYPE FIELD
  kubectl -n "$ns" get module "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].$3}"
}
events() {  # events MODULE REASON: how many such events (by count)
  kubectl -n "$ns" get events --field-selector "involvedObject.name=$1,reason=$2" \
    -o jsonpath='{range .items[*]}{.count}{"\n"}{end}' | awk '{ n += $1 } END { print n + 0 }'
}
loader_image() {
  kubectl -n "$ns" get ds -l kmm.sigs.x-k8s.io/module="$1",kmm.sigs.x-k8s.io/component=loader \
    -o jsonpath='{.items[*].spec.template.spec.initContainers[1].image}'
}
# image_label IMAGE(127.0.0.1 name) LABEL: a label of the pushed image, read by skopeo.
image_label() {
  skopeo inspect --tls-verify=false --config "docker://$1" |
    python3 -c "import json, sys; print(json.load(sys.stdin)['config'].get('Labels', {}).get('$2', ''))"
}

step "Images; kmm installed, the operator told where its builder and signer are"
"$repo/images/build-images" "$build" "$build/images" > "$out/images.txt"
"$repo/images/push-images" "$build/images" "$KMM_REGISTRY" > /dev/null
"$repo/manifests/overlay-for" "$KMM_REGISTRY" "v$version" "$out/install" > /dev/null
# The builder runs in pods: it reaches the registry as 10.0.2.2 (plain HTTP), so it pulls
# images named 127.0.0.1:PORT (the signer's, from the overlay) from there; kaniko's faster
# snapshots suit an emulated node (test/node/build-experiment.md).
cat >> "$out/install/kustomization.yaml" <<YAML
patches:
- target: {kind: Deployment, name: kmm-operator}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--builder-image=$KMM_REGISTRY/kmm-builder:v$version"}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--builder-arg=--insecure-registry=$pod_registry"}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--builder-arg=--registry-map=$KMM_REGISTRY=$pod_registry"}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--builder-arg=--snapshot-mode=redo"}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: "--builder-arg=--use-new-run"}
YAML
kubectl apply -k "$out/install" > /dev/null
kubectl -n kmm-system rollout status deploy/kmm-operator --timeout 240s ||
  fail "the operator Deployment did not become available"
pass "the operator runs with --builder-image and --signer-image from $KMM_REGISTRY"

kubectl delete namespace "$ns" --ignore-not-found --wait=true > /dev/null
kubectl create namespace "$ns" > /dev/null
# Steps 1 to 4 load unsigned builds: a node an earlier run left in Secure Boot boots directly.
if [[ $("$here/kmm-node" status) == *"boot: secure-boot"* ]]; then "$here/kmm-node" reboot; fi

# The build context: kmm_ci_a's source, a Kbuild for it alone, and a Dockerfile that
# compiles it in kmm-build-base for the node's kernel and keeps only the module and depmod's
# files (FROM scratch: kmm's loader needs no shell in the image).
build_config_map() {  # build_config_map BUILD_NAME
  local context=$out/context-$1
  mkdir -p "$context"
  cp "$repo/test/modules/kmm_ci_a.c" "$repo/test/modules/kmm_ci_a.h" "$context/"
  cat > "$context/Kbuild" <<'KBUILD'
obj-m += kmm_ci_a.o
CFLAGS_kmm_ci_a.o += -DKMM_CI_A_BUILD='"$(KMM_CI_A_BUILD)"'
KBUILD
  cat > "$context/dockerfile" <<DOCKERFILE
ARG KERNEL_FULL_VERSION
FROM $pod_registry/kmm-build-base:\${KERNEL_FULL_VERSION} AS builder
ARG KERNEL_FULL_VERSION
COPY kmm_ci_a.c kmm_ci_a.h Kbuild /src/
RUN make -C /usr/src/linux-headers-\${KERNEL_FULL_VERSION} M=/src KMM_CI_A_BUILD=$1 modules \\
 && mkdir -p /opt/lib/modules/\${KERNEL_FULL_VERSION} \\
 && cp /src/kmm_ci_a.ko /opt/lib/modules/\${KERNEL_FULL_VERSION}/ \\
 && depmod -b /opt \${KERNEL_FULL_VERSION}
FROM scratch
ARG KERNEL_FULL_VERSION
COPY --from=builder /opt/lib/modules/\${KERNEL_FULL_VERSION} /opt/lib/modules/\${KERNEL_FULL_VERSION}
DOCKERFILE
  kubectl -n "$ns" create configmap kmm-ci-a-build --from-file="$context" --dry-run=client -o yaml
}
module() {  # module NAME CONFIGMAP: builds its image from the ConfigMap
  cat <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: $1, namespace: $ns}
spec:
  selector: {kubernetes.io/hostname: $node}
  moduleLoader:
    container:
      modprobe: {moduleName: kmm_ci_a}
      kernelMappings:
      - literal: $kver
        containerImage: $pod_registry/$built/$1:\${KERNEL_FULL_VERSION}
        registryTLS: {insecure: true}
        build:
          dockerfileConfigMap: {name: $2}
          baseImageRegistryTLS: {insecure: true}
YAML
}
signed_module() {  # signed_module NAME UNSIGNED [FILE]: signs FILE (kmm_ci_a.ko) of the image UNSIGNED
  cat <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata: {name: $1, namespace: $ns}
spec:
  selector: {kubernetes.io/hostname: $node}
  moduleLoader:
    container:
      modprobe: {moduleName: kmm_ci_a}
      kernelMappings:
      - literal: $kver
        containerImage: $pod_registry/$built/$1:\${KERNEL_FULL_VERSION}
        registryTLS: {insecure: true}
        sign:
          unsignedImage: $2
          unsignedImageRegistryTLS: {insecure: true}
          keySecret: {name: signing-key}
          certSecret: {name: signing-cert}
          filesToSign: ["/opt/lib/modules/\${KERNEL_FULL_VERSION}/${3:-kmm_ci_a.ko}"]
YAML
}

step "1. A Module whose image is missing: a build Job on $node, then the loader loads that build"
started=$SECONDS
build_config_map first | kubectl apply -f - > /dev/null
module kmm-ci-a kmm-ci-a-build | kubectl apply -f - > /dev/null
wait_for 60 "a BuildCreated event" bash -c "(( \$($(declare -f events); ns=$ns; events kmm-ci-a BuildCreated) >= 1 ))"
wait_for 30 "Progressing=True ImageBuild" bash -c "[[ \$($(declare -f condition); ns=$ns; condition kmm-ci-a Progressing reason) == ImageBuild ]]"
[[ -z $(loader_image kmm-ci-a) ]] || fail "a loader DaemonSet exists before the image does"
job_node=$(kubectl -n "$ns" get pods -l kmm.sigs.x-k8s.io/component=build -o jsonpath='{.items[0].spec.nodeName}')
pass "build Job created (image missing), loaders wait; its pod runs on ${job_node:-?}"
wait_for 900 "the build to finish and the loader to load kmm_ci_a" bash -c "[[ \$($(declare -f loaded_build on_node); here=$here; loaded_build) == first ]]"
timing build-to-loaded $((SECONDS - started))
image=$(loader_image kmm-ci-a)
[[ $image == "$pod_registry/$built/kmm-ci-a:$kver@sha256:"* ]] || fail "the loader pulls '$image', not the built image by digest"
built_hash=$(image_label "$KMM_REGISTRY/$built/kmm-ci-a:$kver" kmm.sigs.x-k8s.io/build-hash)
job_hash=$(kubectl -n "$ns" get jobs -l kmm.sigs.x-k8s.io/component=build -o jsonpath='{.items[0].metadata.annotations.kmm\.sigs\.x-k8s\.io/inputs-hash}')
[[ -n $built_hash && $built_hash == "$job_hash" ]] || fail "the image's build-hash label '$built_hash' is not the Job's '$job_hash'"
((  $(events kmm-ci-a BuildSucceeded) == 1 )) || fail "no BuildSucceeded event"
wait_for 120 "kmm-ci-a Ready" bash -c "[[ \$($(declare -f condition); ns=$ns; condition kmm-ci-a Ready status) == True ]]"
pass "/sys/module/kmm_ci_a/parameters/build says 'first'; the loader pulls ${image##*/}; the image carries the Job's inputs hash"

step "2. An operator restart rebuilds nothing: the image's label says it was built from these inputs"
kubectl -n kmm-system delete pod -l app.kubernetes.io/name=kmm-operator --wait=true > /dev/null
kubectl -n kmm-system rollout status deploy/kmm-operator --timeout 240s > /dev/null
sleep 20  # a few reconciles
(( $(events kmm-ci-a BuildCreated) == 1 )) || fail "the restarted operator started another build"
[[ $(loader_image kmm-ci-a) == "$image" ]] || fail "the loader DaemonSet changed after a restart: $(loader_image kmm-ci-a)"
pass "one BuildCreated in all, the same loader image"

step "3. A changed ConfigMap rebuilds, the node reboots in the middle of that build, and then moves to the new build"
started=$SECONDS
build_config_map second | kubectl apply -f - > /dev/null
wait_for 60 "a second BuildCreated" bash -c "(( \$($(declare -f events); ns=$ns; events kmm-ci-a BuildCreated) >= 2 ))"
[[ $(loaded_build) == first ]] || fail "the first build was unloaded before the second was there"
second_job() {  # the build Job that is not the first one's
  kubectl -n "$ns" get jobs -l kmm.sigs.x-k8s.io/module=kmm-ci-a,kmm.sigs.x-k8s.io/component=build \
    -o jsonpath="{range .items[?(@.metadata.annotations.kmm\.sigs\.x-k8s\.io/inputs-hash!='$built_hash')]}{.metadata.name}{end}"
}
job_running() {
  [[ $(kubectl -n "$ns" get pods -l job-name="$(second_job)" -o jsonpath='{.items[*].status.phase}') == Running ]]
}
wait_for 300 "the second build's pod to run" job_running
sleep 20  # kaniko is unpacking the base image or compiling
job=$(second_job)
"$here/kmm-node" reboot
wait_for 240 "the loader to load the first build again after the reboot" bash -c "[[ \$($(declare -f loaded_build on_node); here=$here; loaded_build) == first ]]"
wait_for 900 "the node to load the second build" bash -c "[[ \$($(declare -f loaded_build on_node); here=$here; loaded_build) == second ]]"
timing rebuild-with-reboot-to-loaded $((SECONDS - started))
[[ $(loader_image kmm-ci-a) != "$image" ]] || fail "the loader image did not change"
pods=$(kubectl -n "$ns" get pods -l job-name="$job" -o name | wc -l)
(( pods >= 2 )) || fail "Job $job ran $pods pod(s): the reboot did not interrupt the build"
(( $(events kmm-ci-a BuildFailed) == 0 )) || fail "the interrupted build was reported as failed"
pass "the reboot ended the build's first pod, Job $job ran another ($pods in all) and succeeded; /sys/module/kmm_ci_a/parameters/build says 'second'"

step "4. A broken Dockerfile: BuildFailed with the build's own words in the status"
started=$SECONDS
kubectl -n "$ns" create configmap broken-build --dry-run=client -o yaml --from-literal=dockerfile="FROM $pod_registry/kmm-signer:v$version
RUN echo 'kmm_ci_a.c:1:1: error: broken on purpose' >&2; exit 1" | kubectl apply -f - > /dev/null
module kmm-broken broken-build | kubectl apply -f - > /dev/null
wait_for 600 "kmm-broken Degraded with BuildFailed" bash -c "[[ \$($(declare -f condition); ns=$ns; condition kmm-broken Degraded reason) == BuildFailed ]]"
timing broken-to-failed $((SECONDS - started))
message=$(condition kmm-broken Degraded message)
echo "kmm-broken: $message"
[[ $message == *"broken on purpose"* ]] || fail "the status does not carry the build's error: $message"
(( $(events kmm-broken BuildFailed) >= 1 )) || fail "no BuildFailed event"
[[ -z $(loader_image kmm-broken) ]] || fail "kmm-broken got a loader DaemonSet"
[[ -n $(kubectl -n "$ns" get jobs -l kmm.sigs.x-k8s.io/module=kmm-broken -o name) ]] || fail "the failed Job is gone"
pass "Degraded BuildFailed naming the error, a BuildFailed event, the Job kept for its logs, no loader"
kubectl -n "$ns" delete module kmm-broken --wait=false > /dev/null

step "5. Secure Boot on: the unsigned build is refused, with the kernel's reason in the Module's status"
# kmm-ci-a (step 3's unsigned build) stays applied while the node reboots through shim.
started=$SECONDS
"$here/kmm-node" reboot --secure-boot
# The node's test MOK exists from its first Secure Boot on. A sign Job told to sign a file
# the image does not have fails meanwhile (checked in step 6).
mok=$KMM_TEST_CLUSTER_DIR/node/secure-boot
kubectl -n "$ns" create secret generic signing-key --from-file=key="$mok/mok.key" > /dev/null
kubectl -n "$ns" create secret generic signing-cert --from-file=cert="$mok/mok.crt" > /dev/null
signed_module kmm-bad-sign "$pod_registry/$built/kmm-ci-a:\${KERNEL_FULL_VERSION}" no_such_module.ko |
  kubectl apply -f - > /dev/null
timing secure-boot-reboot $((SECONDS - started))
[[ $(on_node cat /sys/module/module/parameters/sig_enforce) == Y ]] || fail "module.sig_enforce is not on"
[[ $(on_node cat /sys/kernel/security/lockdown) == *"[integrity]"* ]] ||
  fail "the kernel is not locked down: $(on_node cat /sys/kernel/security/lockdown)"
on_node 'grep -q "kmm-node test MOK" /proc/keys' || fail "the node's kernel does not hold its test MOK"
wait_for 300 "kmm-ci-a Degraded with LoaderCrashLooping" bash -c "[[ \$($(declare -f condition); ns=$ns; condition kmm-ci-a Degraded reason) == LoaderCrashLooping ]]"
message=$(condition kmm-ci-a Degraded message)
echo "kmm-ci-a: $message"
[[ $message == *"enforces module signatures and rejected kmm_ci_a (EKEYREJECTED)"* ]] ||
  fail "the status does not say the kernel rejected the unsigned module: $message"
[[ -z $(loaded_build) ]] || fail "an unsigned build of kmm_ci_a is loaded on a Secure Boot node"
[[ $(on_node dmesg) == *"Loading of unsigned module is rejected"* ]] || fail "the kernel log does not show the refusal"
pass "sig_enforce Y, lockdown integrity, the test MOK in the kernel's keys; Degraded LoaderCrashLooping: the kernel rejected the unsigned kmm_ci_a"
kubectl -n "$ns" delete module kmm-ci-a --wait=true --timeout 240s > /dev/null

step "6. A sign Job that cannot sign fails with its reason; the same build signed in the cluster with the node's MOK loads"
wait_for 600 "kmm-bad-sign Degraded with SignFailed" bash -c "[[ \$($(declare -f condition); ns=$ns; condition kmm-bad-sign Degraded reason) == SignFailed ]]"
message=$(condition kmm-bad-sign Degraded message)
echo "kmm-bad-sign: $message"
[[ $message == *"kmm: /opt/lib/modules/$kver/no_such_module.ko (filesToSign) is not in the unsigned image"* ]] ||
  fail "the status does not name the file that could not be signed as filesToSign does: $message"
(( $(events kmm-bad-sign SignFailed) >= 1 )) || fail "no SignFailed event"
[[ -z $(loader_image kmm-bad-sign) ]] || fail "kmm-bad-sign got a loader DaemonSet"
pass "Degraded SignFailed naming no_such_module.ko, a SignFailed event, no loader"
kubectl -n "$ns" delete module kmm-bad-sign --wait=false > /dev/null
started=$SECONDS
signed_module kmm-ci-a-signed "$pod_registry/$built/kmm-ci-a:\${KERNEL_FULL_VERSION}" | kubectl apply -f - > /dev/null
wait_for 60 "a SignCreated event" bash -c "(( \$($(declare -f events); ns=$ns; events kmm-ci-a-signed SignCreated) >= 1 ))"
[[ -z $(loader_image kmm-ci-a-signed) ]] || fail "a loader DaemonSet exists before the signed image does"
wait_for 900 "the signed build to be loaded" bash -c "[[ \$($(declare -f loaded_build on_node); here=$here; loaded_build) == second ]]"
timing sign-to-loaded $((SECONDS - started))
(( $(events kmm-ci-a-signed SignSucceeded) == 1 )) || fail "no SignSucceeded event"
# A module that loads unsigned where signatures are not enforced taints the kernel with E.
[[ $(on_node cat /sys/module/kmm_ci_a/taint) != *E* ]] || fail "kmm_ci_a loaded as an unsigned module"
signed=$KMM_REGISTRY/$built/kmm-ci-a-signed:$kver
[[ -n $(image_label "$signed" kmm.sigs.x-k8s.io/sign-hash) ]] || fail "the signed image has no sign-hash label"
# The module file as the registry serves it, checked on this machine.
rm -rf "$out/signed" && mkdir -p "$out/signed"
skopeo copy --src-tls-verify=false "docker://$signed" "oci:$out/signed/layout:x" > /dev/null
umoci unpack --rootless --image "$out/signed/layout:x" "$out/signed/bundle" > /dev/null
ko=$out/signed/bundle/rootfs/opt/lib/modules/$kver/kmm_ci_a.ko
[[ -f $ko ]] || fail "no kmm_ci_a.ko in the signed image"
[[ $(modinfo -F signer "$ko") == "kmm-node test MOK" ]] || fail "modinfo: signer is '$(modinfo -F signer "$ko")'"
[[ $(modinfo -F sig_hashalgo "$ko") == sha256 ]] || fail "modinfo: sig_hashalgo is '$(modinfo -F sig_hashalgo "$ko")'"
"$here/verify-module-signature" "$ko" "$mok/mok.crt" || fail "the module's signature does not verify against the MOK"
openssl req -new -x509 -nodes -newkey rsa:2048 -days 2 -subj "/CN=another signer/" \
  -keyout "$out/other.key" -out "$out/other.crt" 2> /dev/null
! "$here/verify-module-signature" "$ko" "$out/other.crt" 2> /dev/null ||
  fail "the signature verifies against a certificate that did not sign it"
# What the node loaded is that signed image (by digest).
signed_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$signed")
[[ $(loader_image kmm-ci-a-signed) == *"@$signed_digest" ]] ||
  fail "the loader pulls $(loader_image kmm-ci-a-signed), not the signed image $signed_digest"
pass "the Secure Boot node loaded the signed image (no E taint); modinfo: signer kmm-node test MOK, sha256; its PKCS#7 signature verifies against the MOK with openssl, and not against another certificate"

kubectl delete namespace "$ns" --wait=false > /dev/null
echo
echo "node build: every step passed"
