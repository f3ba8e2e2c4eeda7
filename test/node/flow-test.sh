#!/usr/bin/env bash
# The whole flow on a real node (ctest label `node`): kmm installed with `kubectl apply -k`
# from images in the cluster's registry, the operator running as a pod on the qemu node, a
# Module for kmm_ci_b (which needs kmm_ci_a) with the built-in device plugin, and a pod that
# uses one of its devices. Every step checks what a user would look at: kubectl's output and
# the node's /proc/modules. Step 1b runs the docs' commands that need a real node
# (test/docs/run-doc-blocks node).
#
#   flow-test.sh BUILD_DIR     (with the cluster and node up: kmm-test-cluster up --node)
#
# Timings for the benchmark go to BUILD_DIR/node-flow/timings (seconds).
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/test/lib/wait.sh"
wait_interval=1  # most checks ssh into the node
eval "$("$repo/test/cluster/kmm-test-cluster" env)"
out=$build/node-flow
rm -rf "$out" && mkdir -p "$out"
ns=kmm-flow
module=kmm-ci
resource=example.com/kmm-ci-a
node=${KMM_NODE_NAME:-kmm-node-1}
ready_label=kmm.node.kubernetes.io/$ns.$module.ready

step() { printf '\n=== %s\n' "$*"; }
pass() { echo "ok: $*"; }
on_fail() {
  echo "--- Module status:"
  kubectl -n "$ns" get module "$module" -o jsonpath='{.status}' 2>/dev/null || true
  echo
  echo "--- pods:"
  kubectl get pods -A -o wide || true
  echo "--- operator log (last 30 lines):"
  kubectl -n kmm-system logs deploy/kmm-operator --tail 30 || true
}
on_node() { "$here/kmm-node" ssh "$@"; }


loaded_modules() { on_node "grep -o '^kmm_ci_[ab] ' /proc/modules | sort | tr -d ' ' | tr '\n' ' '"; }
device_count() { on_node 'ls /dev/kmm-ci-a* 2>/dev/null | wc -l'; }
# The resource's count in a section ("Capacity" or "Allocatable") of `kubectl describe node`.
described() {
  kubectl describe node "$node" \
    | awk -v section="$1:" -v key="$resource:" '
        /^[A-Z]/ { in_section = ($1 == section) }
        in_section && $1 == key { print $2 }'
}
capacity_is() { [[ $(described Capacity) == "$1" && $(described Allocatable) == "$2" ]]; }
has_ready_label() { kubectl get node "$node" -o jsonpath='{.metadata.labels}' | grep -q "\"$ready_label\""; }
loader_pod() { kubectl -n "$ns" get pods -l kmm.sigs.x-k8s.io/module=$module,kmm.sigs.x-k8s.io/component=loader -o name; }
loader_log() { kubectl -n "$ns" logs "$(loader_pod)" -c loader; }
registrations() { loader_log | grep -c "registered $resource with the kubelet" || true; }

# The test modules are unsigned: a node an earlier run (build-test.sh) left in Secure Boot
# boots directly again.
if [[ $("$here/kmm-node" status) == *"boot: secure-boot"* ]]; then "$here/kmm-node" reboot; fi
kver=$(kubectl get node "$node" -o jsonpath='{.status.nodeInfo.kernelVersion}')
[[ -n $kver ]] || fail "node $node has no kernel version"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

step "Images: build, push to the cluster's registry ($KMM_REGISTRY)"
"$repo/images/build-images" "$build" "$build/images" > "$out/images.txt"
"$repo/images/push-images" "$build/images" "$KMM_REGISTRY"

step "Install kmm with kubectl apply -k (an overlay of manifests/ for this registry)"
"$repo/manifests/overlay-for" "$KMM_REGISTRY" "v$version" "$out/install" > /dev/null
kubectl apply -k "$out/install"
kubectl -n kmm-system rollout status deploy/kmm-operator --timeout 240s \
  || fail "the operator Deployment did not become available"
operator_node=$(kubectl -n kmm-system get pods -l app.kubernetes.io/name=kmm-operator \
  -o jsonpath='{.items[0].spec.nodeName}')
[[ $operator_node == "$node" ]] || fail "the operator runs on '$operator_node', not on $node"
pass "the operator runs as a pod on $node"

step "1. A Module for kmm_ci_b with the built-in device plugin, selecting nodes by kernel $kver"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
"$here/sample-module" "$ns" "$module" "$kver" "$KMM_REGISTRY" "$resource" > "$out/module.yaml"
applied=$SECONDS
kubectl apply -f "$out/module.yaml"
has_daemonset() { [[ -n $(kubectl -n "$ns" get ds -l kmm.sigs.x-k8s.io/module=$module -o name) ]]; }
wait_for 60 "the loader DaemonSet" has_daemonset
daemonsets=$(kubectl -n "$ns" get ds -l kmm.sigs.x-k8s.io/module=$module \
  -o jsonpath='{range .items[*]}{.spec.template.spec.nodeSelector.kmm\.node\.kubernetes\.io/kernel-version\.full}{"\n"}{end}')
[[ $daemonsets == "$kver" ]] || fail "expected one loader DaemonSet for $kver, got: $daemonsets"
kubectl -n "$ns" get ds -o wide
pass "one loader DaemonSet, for kernel $kver"
wait_for 180 "the loader pod to be Ready" kubectl -n "$ns" wait --for condition=Ready \
  pods -l kmm.sigs.x-k8s.io/module=$module --timeout 5s
[[ $(loaded_modules) == "kmm_ci_a kmm_ci_b " ]] || fail "/proc/modules shows '$(loaded_modules)'"
pass "the node's /proc/modules lists kmm_ci_a and kmm_ci_b"
wait_for 60 "the node label $ready_label" has_ready_label
pass "the node has the label $ready_label"
devices=$(device_count)
((devices > 0)) || fail "no /dev/kmm-ci-a* on the node"
wait_for 60 "$resource: $devices in Capacity and Allocatable" capacity_is "$devices" "$devices"
echo "$((SECONDS - applied))" > "$out/apply-to-capacity-seconds"
kubectl describe node "$node" | sed -n '/^Capacity:/,/^System Info:/p' | grep -E "Capacity|Allocatable|$resource"
pass "kubectl describe node: $resource: $devices (the node has $devices /dev/kmm-ci-a* devices), $(cat "$out/apply-to-capacity-seconds")s after the Module was applied"
wait_for 60 "kubectl get modules to show 1 loaded and Ready" \
  bash -c "kubectl -n $ns get modules $module --no-headers | awk '{ exit !(\$2 == 1 && \$3 == 1 && \$6 == \"True\") }'"
kubectl -n "$ns" get modules
pass "kubectl get modules: $module loaded on 1 of 1 nodes"

step "1b. The docs' commands that need a real node (test/docs/run-doc-blocks node)"
# The ```sh node, ```sh cluster node and ```sh on-node blocks of the docs, with this Module
# loaded: its placeholders name it, kmm-operator (for `plan`) comes from this build, and
# on-node blocks go to the node through ssh.
mkdir -p "$out/docs"
(
  cd "$repo"
  mapfile -t docs < <(grep -v -e '^#' -e '^\s*$' test/docs/docs.list)
  PATH="$build/bin:$PATH" WORKDIR=$out/docs NAMESPACE=$ns MODULE=$module NODE=$node KMOD=kmm_ci_b RESOURCE=$resource \
    DEVICE=kmm-ci-a0 KMM_DOC_ON_NODE="$here/kmm-node ssh" \
    test/docs/run-doc-blocks node "${docs[@]}"
) > "$out/docs.log" 2>&1 || { tail -n 40 "$out/docs.log"; fail "a node block of the docs failed (log: $out/docs.log)"; }
pass "every node block of the docs ran ($(grep -c '^--- ' "$out/docs.log") blocks; log: $out/docs.log)"

step "2. A pod requesting one $resource gets exactly that device"
consumer_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: consumer
  namespace: $ns
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: consumer
    image: $KMM_REGISTRY/kmm-consumer:v$version
    resources:
      limits: {$resource: 1}
YAML
}
consumer_pod | kubectl apply -f -
wait_for 120 "the consumer pod to be Ready" kubectl -n "$ns" wait --for condition=Ready pod/consumer --timeout 5s
kubectl -n "$ns" logs consumer | tee "$out/consumer.log"
# The device the kubelet allocated, from its checkpoint on the node.
allocated=$(on_node cat /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint | python3 -c '
import json, sys
entries = json.load(sys.stdin)["Data"]["PodDeviceEntries"]
ids = [i for e in entries if e["ContainerName"] == "consumer" for l in e["DeviceIDs"].values() for i in l]
print(" ".join(ids))')
[[ $allocated == kmm-ci-a* && $allocated != *" "* ]] || fail "the kubelet allocated '$allocated', expected one device"
seen=$(sed -n 's/^kmm-consumer: sees //p' "$out/consumer.log" | tr '\n' ' ')
[[ $seen == "/dev/$allocated " ]] || fail "the container sees '$seen', expected exactly /dev/$allocated"
grep -q "^kmm-consumer: opened /dev/$allocated: kmm-ci-a" "$out/consumer.log" \
  || fail "the consumer did not open and read /dev/$allocated"
pass "the container sees only /dev/$allocated, the device the kubelet allocated, and read from it"

step "3. A device turns unhealthy, then healthy again"
free_device=$(on_node "ls /dev/kmm-ci-a*" | sed 's|/dev/||' | grep -v -x "$allocated" | head -n 1)
if [[ -z $free_device ]]; then free_device=$allocated; fi
on_node "echo 0 > /sys/class/misc/$free_device/health"
wait_for 60 "Allocatable to drop to $((devices - 1))" capacity_is "$devices" "$((devices - 1))"
pass "$free_device unhealthy: Capacity $devices, Allocatable $((devices - 1))"
on_node "echo 1 > /sys/class/misc/$free_device/health"
wait_for 60 "Allocatable to return to $devices" capacity_is "$devices" "$devices"
pass "$free_device healthy again: Allocatable $devices"

step "4a. The kubelet restarts: the plugin registers again"
before=$(registrations)
on_node kmm-node-kubelet restart
registered_again() { (($(registrations) > before)); }
wait_for 120 "the plugin to register with the new kubelet" registered_again
wait_for 60 "$resource: $devices again" capacity_is "$devices" "$devices"
pass "registered again ($(registrations) registrations in the loader's log); capacity $devices"

step "4b. The node reboots into the same kernel"
# A pod that uses a device may be refused at the node's restart if the plugin is not back yet
# (the kubelet's UnexpectedAdmissionError); the consumer is started afresh afterwards.
kubectl -n "$ns" delete pod consumer --wait=true
"$here/kmm-node" reboot
# The loader pod's Ready condition may still be the one from before the reboot until the
# kubelet reports again, so the modules themselves are waited for first.
loaded_again() { [[ $(loaded_modules) == "kmm_ci_a kmm_ci_b " ]]; }
wait_for 240 "kmm_ci_a and kmm_ci_b in /proc/modules after the reboot" loaded_again
wait_for 120 "the loader pod to be Ready after the reboot" kubectl -n "$ns" wait --for condition=Ready \
  pods -l kmm.sigs.x-k8s.io/module=$module --timeout 5s
pass "after the reboot, /proc/modules lists kmm_ci_a and kmm_ci_b again"
wait_for 120 "$resource: $devices after the reboot" capacity_is "$devices" "$devices"
pass "capacity $devices after the reboot"

step "5. The Module is deleted while a pod holds the device open"
consumer_pod | kubectl apply -f -
wait_for 120 "the consumer pod to be Ready" kubectl -n "$ns" wait --for condition=Ready pod/consumer --timeout 5s
kubectl -n "$ns" delete module "$module" --wait=false
node_status() {
  kubectl -n "$ns" get module "$module" \
    -o jsonpath="{range .status.nodes[?(@.node==\"$node\")]}{.reason}: {.message}{end}"
}
wait_for 180 "the Module's status to name $node as blocked" \
  bash -c "kubectl -n $ns get module $module -o jsonpath='{.status.nodes}' | grep -q UnloadBlocked"
echo "status.nodes: $(node_status)"
[[ $(node_status) == *"in use"* ]] || fail "the status does not give the loader's reason: $(node_status)"
# kmm_ci_b, which nothing holds, is gone; kmm_ci_a, whose device is open, stays.
[[ $(loaded_modules) == "kmm_ci_a " ]] || fail "/proc/modules shows '$(loaded_modules)' while the device is open"
[[ $(kubectl -n "$ns" get module "$module" -o jsonpath='{.metadata.finalizers}') == *kmm* ]] \
  || fail "the Module's finalizer is gone while the module is still loaded"
pass "kmm_ci_a stays loaded, the status names $node with the loader's reason, the finalizer holds"
kubectl -n "$ns" delete pod consumer --wait=true
wait_for 300 "the Module to be gone" bash -c "! kubectl -n $ns get module $module"
[[ -z $(loaded_modules) ]] || fail "the Module is gone but /proc/modules shows '$(loaded_modules)'"
has_ready_label && fail "the node still has $ready_label"
has_daemonset && fail "a loader DaemonSet remains"
pass "consumer gone: modules unloaded, label and DaemonSet gone, finalizer removed"

step "6. Modules that cannot load: a missing module image, parameters the kernel refuses"
broken_module() {  # broken_module NAME IMAGE_TAG PARAMETER
  cat <<YAML
apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata:
  name: $1
  namespace: $ns
spec:
  selector:
    kmm.node.kubernetes.io/kernel-version.full: "$kver"
  moduleLoader:
    container:
      modprobe:
        moduleName: kmm_ci_a
        parameters: ["$3"]
      kernelMappings:
      - regexp: '^.+-amd64$'
        containerImage: $KMM_REGISTRY/kmm-ci-modules:$2
YAML
}
broken_module kmm-missing-image no-such-tag "devices=1" | kubectl apply -f -
broken_module kmm-bad-parameter "$kver" "devices=many" | kubectl apply -f -
degraded_with() {  # degraded_with MODULE REASON TEXT: status.nodes names the node so
  kubectl -n "$ns" get module "$1" -o jsonpath="{.status.nodes[?(@.node==\"$node\")]}" \
    | grep "\"$2\"" | grep -q "$3"
}
wait_for 180 "kmm-missing-image to be Degraded with ImagePullFailed on $node" \
  degraded_with kmm-missing-image ImagePullFailed no-such-tag
echo "kmm-missing-image: $(kubectl -n "$ns" get module kmm-missing-image -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')"
pass "a missing module image: Degraded, ImagePullFailed on $node, naming the image"
wait_for 180 "kmm-bad-parameter to be Degraded with LoaderCrashLooping on $node" \
  degraded_with kmm-bad-parameter LoaderCrashLooping devices
echo "kmm-bad-parameter: $(kubectl -n "$ns" get module kmm-bad-parameter -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')"
pass "a parameter the kernel refuses: Degraded, LoaderCrashLooping on $node with the loader's reason"
[[ -z $(loaded_modules) ]] || fail "/proc/modules shows '$(loaded_modules)' though nothing could load"
labels=$(kubectl get node "$node" -o jsonpath='{.metadata.labels}')
[[ $labels == *kmm-missing-image.ready* || $labels == *kmm-bad-parameter.ready* ]] \
  && fail "a Module that did not load has its .ready label on $node"
pass "nothing loaded, no .ready label"
kubectl -n "$ns" delete module kmm-missing-image kmm-bad-parameter --wait=false
module_gone() { ! kubectl -n "$ns" get module "$1" >/dev/null 2>&1; }
wait_for 180 "kmm-missing-image to be gone" module_gone kmm-missing-image
wait_for 180 "kmm-bad-parameter to be gone" module_gone kmm-bad-parameter
pass "both deleted: nothing was loaded, so nothing held their finalizers"

step "7. An older build of kmm_ci_a is loaded and in use: Degraded with the loader's reason, not Ready"
# What an unload that gave up while the module was busy leaves behind: another build of
# kmm_ci_a (test-modules/<kernel>/other-build, another build-id) loaded, a device held open.
stale_started=$SECONDS
on_node 'cat > /tmp/kmm_ci_a-other.ko' < "$build/test-modules/$kver/other-build/kmm_ci_a.ko"
on_node 'insmod /tmp/kmm_ci_a-other.ko &&
  { sleep 600 < /dev/kmm-ci-a0 > /dev/null 2>&1 & echo $! > /run/kmm-stale-holder; }'
broken_module kmm-stale-build "$kver" "devices=1" | kubectl apply -f -
wait_for 180 "kmm-stale-build to be Degraded with LoaderCrashLooping on $node" \
  degraded_with kmm-stale-build LoaderCrashLooping "another build"
stale_message=$(kubectl -n "$ns" get module kmm-stale-build \
  -o jsonpath="{.status.nodes[?(@.node==\"$node\")].message}")
echo "kmm-stale-build on $node: $stale_message"
for part in "kmm_ci_a is loaded from another build" "build-id" "in use" "stop what uses it"; do
  [[ $stale_message == *"$part"* ]] || fail "the status does not say '$part': $stale_message"
done
[[ $(on_node cat /sys/module/kmm_ci_a/parameters/build) == other ]] \
  || fail "the loader touched the build in use"
has_stale_label() { kubectl get node "$node" -o jsonpath='{.metadata.labels}' | grep -q "kmm-stale-build.ready"; }
has_stale_label && fail "kmm-stale-build has its .ready label on $node"
pass "another build in use: Degraded, LoaderCrashLooping with both builds and the fix; not Ready, the old build untouched"
on_node 'kill $(cat /run/kmm-stale-holder); rm -f /run/kmm-stale-holder'
kubectl -n "$ns" delete module kmm-stale-build --wait=false
wait_for 180 "kmm-stale-build to be gone" module_gone kmm-stale-build
on_node 'rmmod kmm_ci_a 2>/dev/null; rm -f /tmp/kmm_ci_a-other.ko; true'
[[ -z $(loaded_modules) ]] || fail "after kmm-stale-build /proc/modules shows '$(loaded_modules)'"
echo "$((SECONDS - stale_started))" > "$out/stale-build-seconds"
pass "cleaned up in $(cat "$out/stale-build-seconds")s: nothing of kmm_ci_a left"

kubectl delete namespace "$ns" --wait=false
echo
echo "node flow: every step passed"
