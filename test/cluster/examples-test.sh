#!/usr/bin/env bash
# The platform examples (manifests/examples/<platform>/) against the real API server and kwok
# nodes carrying each platform's kernels, plus one kernel per platform that no mapping covers.
# Usage: examples-test.sh KMM_OPERATOR CRD_YAML EXAMPLES_DIR
#   1. every example as `kubectl kustomize` renders it (what `kubectl apply -k` applies) passes
#      a server-side dry run, and each ConfigMap holds its directory's Dockerfile, ARGs after
#      FROM;
#   2. `kmm-operator plan` plans a loader DaemonSet per covered kernel (the image tag and the
#      module directory it copies), warns about the uncovered kernel and that each covered
#      kernel's image is built first, and the API server accepts the planned DaemonSets;
#   3. one operator for all six namespaces, the examples applied with `kubectl apply -k`, their
#      images renamed into the test cluster's registry ($KMM_REGISTRY, plain HTTP: nothing
#      leaves this machine): a build Job per covered kernel (its build args, the ConfigMap as
#      its build context) and no loader for those kernels yet, since kwok never runs a build;
#      Progressing ImageBuild, Degraded NoKernelMapping naming the uncovered kernel, the
#      BuildCreated events. One kernel's image is pushed beforehand without kmm's labels: it is
#      used as it is (no build), its loader DaemonSet pinned to the image's digest, its loader
#      pod on exactly that node;
#   4. the commands of each example's README run (test/docs/run-doc-blocks), the operator
#      stopped: the READMEs apply the examples as they are, naming registry.example.com.
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
    # Their kwok nodes go too, so no kubelet would ever confirm the pods gone.
    kubectl delete pods --all -n "$ns" --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
  done
  kubectl delete nodes -l kmm.test/examples --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
on_fail() {
  if [[ -s $work/problems ]]; then echo "--- still wrong at the last check:"; cat "$work/problems"; fi
  if [[ -f $work/operator.log ]]; then echo "--- operator log (last 30 lines):"; tail -n 30 "$work/operator.log"; fi
  for ns in "${namespaces[@]}"; do
    echo "--- $ns:"
    kubectl get modules,ds,pods,jobs -n "$ns" -o wide 2>&1 | tail -n 14
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

# What the checks below know of each platform, for python.
python3 - "${platforms[@]}" > "$work/platforms.json" <<'PY'
import json, sys
out = []
for spec in sys.argv[1:]:
    platform, _, covered, uncovered = spec.split("|")
    out.append({"platform": platform, "ns": "kmm-example-" + platform,
                "covered": covered.split(), "uncovered": uncovered})
json.dump(out, sys.stdout)
PY

# 1. kubectl apply -k, server-side dry run: what `kubectl kustomize` renders for each example
# (the namespaces must exist for a dry run of what goes in them: those are created first).
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  kubectl kustomize "$examples/$platform" > "$work/rendered-$platform.yaml" ||
    fail "$platform: kubectl kustomize failed"
done
python3 - "$work/platforms.json" "$work" "$examples" > "$work/namespaces.json" <<'PY' || fail "a rendered example is wrong"
import json, sys, yaml
platforms, work, examples = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
namespaces = []
for p in platforms:
    name = p["platform"]
    docs = [d for d in yaml.safe_load_all(open(f"{work}/rendered-{name}.yaml")) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert sorted(by_kind) == ["ConfigMap", "Module", "Namespace", "Pod"] and len(docs) == 4, (name, sorted(d["kind"] for d in docs))
    assert all(d["metadata"].get("namespace", p["ns"]) == p["ns"] for d in docs), name
    assert by_kind["Namespace"]["metadata"]["name"] == p["ns"], name
    dockerfile = by_kind["ConfigMap"]["data"]["dockerfile"]
    assert dockerfile == open(f"{examples}/{name}/Dockerfile").read(), f"{name}: the ConfigMap does not hold the Dockerfile"
    build = by_kind["Module"]["spec"]["moduleLoader"]["container"]["build"]
    assert build["dockerfileConfigMap"]["name"] == by_kind["ConfigMap"]["metadata"]["name"], name
    # An ARG before the first FROM is visible to FROM lines only: RUN would see it empty.
    instructions = [l.split()[0].upper() for l in dockerfile.splitlines()
                    if l.strip() and not l.startswith((" ", "#"))]
    assert instructions[0] == "FROM", f"{name}: {instructions[0]} before the first FROM"
    assert "ARG" in instructions, f"{name}: the Dockerfile takes no build argument"
    limits = by_kind["Pod"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"example.com/kmm-ci-a": 1}, (name, limits)
    namespaces.append(by_kind["Namespace"])
json.dump({"apiVersion": "v1", "kind": "List", "items": namespaces}, sys.stdout)
PY
kubectl apply -f "$work/namespaces.json" >/dev/null
files=()
for rendered in "$work"/rendered-*.yaml; do files+=(-f "$rendered"); done
kubectl apply --dry-run=server "${files[@]}" > "$work/dry-run" 2>&1 ||
  fail "the API server rejected an example: $(cat "$work/dry-run")"
echo "ok: kubectl apply -k --dry-run=server accepts all ${#platforms[@]} examples"

# 2. kmm-operator plan on each platform's nodes.
kubectl get nodes -l kmm.test/examples -o json > "$work/all-nodes.json"
python3 - "$work/all-nodes.json" "$work" <<'PY'
import json, sys, collections
groups = collections.defaultdict(list)
for node in json.load(open(sys.argv[1]))["items"]:
    groups[node["metadata"]["labels"]["kmm.test/group"]].append(node)
for group, items in groups.items():
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{sys.argv[2]}/nodes-{group}.json", "w"))
PY
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  "$operator" plan --module "$examples/$platform/module.yaml" --nodes "$work/nodes-kmm-ex-$platform.json" \
    -o json > "$work/plan-$platform.json" 2> "$work/warnings-$platform" ||
    fail "$platform: kmm-operator plan failed: $(cat "$work/warnings-$platform")"
done
python3 - "$work/platforms.json" "$work" > "$work/daemonsets.jsonl" <<'PY' || fail "unexpected plan"
import json, sys
platforms, work = json.load(open(sys.argv[1])), sys.argv[2]
for p in platforms:
    name, covered, uncovered = p["platform"], p["covered"], p["uncovered"]
    warnings = open(f"{work}/warnings-{name}").read()
    unmapped = f"kmm-ex-{name}-{len(covered)}"  # the last node
    builds = [f"Module default/kmm-ci-a: kernel {k}: the operator first asks the registry for "
              f"registry.example.com/kmm-examples/kmm-ci-a:{k.rstrip('+')}; if it is missing or was "
              "made from other inputs, a build Job makes it, and this loader DaemonSet waits for "
              "it (it then pulls the image by digest)" for k in covered]
    for expected in [f"no kernel mapping matches kernel {uncovered} (nodes: {unmapped})",
                     f"expected status: Degraded=True NoKernelMapping: no kernel mapping for kernel {uncovered} (nodes: {unmapped})",
                     f'"desiredNumber":{len(covered)}'] + builds:
        assert expected in warnings, f"{name}: plan did not say {expected!r}:\n{warnings}"
    for gone in ["not supported yet", "Unsupported=True", "FieldNotSupportedYet"]:
        assert gone not in warnings, f"{name}: plan still says {gone!r}:\n{warnings}"
    items = json.load(open(f"{work}/plan-{name}.json"))["items"]
    ds = [i for i in items if i["kind"] == "DaemonSet"]
    by_label = {d["spec"]["template"]["spec"]["nodeSelector"]["kmm.node.kubernetes.io/kernel-version.full"]: d for d in ds}
    # The label and the image tag drop COS's trailing '+'; the module directory keeps it (uname -r).
    assert sorted(by_label) == sorted(k.rstrip("+") for k in covered), (name, sorted(by_label))
    for kernel in covered:
        spec = by_label[kernel.rstrip("+")]["spec"]["template"]["spec"]
        copy = [c for c in spec["initContainers"] if c["name"] == "copy-modules"][0]
        assert copy["image"] == "registry.example.com/kmm-examples/kmm-ci-a:" + kernel.rstrip("+"), (name, copy["image"])
        assert copy["command"][1] == "/opt/lib/modules/" + kernel, (name, copy["command"])
        assert spec["hostNetwork"] is True, name  # the built-in device plugin
    for d in ds:
        # The Module was never created, so its uid, which the owner reference needs, is made up.
        d["metadata"]["ownerReferences"][0]["uid"] = "2b1f4c1e-0000-4000-8000-000000000001"
        print(json.dumps(d))
PY
kubectl create --dry-run=server -f "$work/daemonsets.jsonl" > "$work/ds-dry-run" 2>&1 ||
  fail "the API server rejected the planned DaemonSets: $(cat "$work/ds-dry-run")"
echo "ok: kmm-operator plan: a DaemonSet per covered kernel, each built first; the uncovered kernel reported"

# 3. The operator, for all six namespaces at once. The examples are applied with one
# kubectl apply -k of overlays that add the platform's node group to the selector (three
# examples select every Linux node) and registryTLS.insecure, on a copy of the examples whose
# images are in the test cluster's registry: the operator asks the registry about every image
# it builds, and must never ask registry.example.com. The overlays also put kmm_ci_a's sources
# in the Dockerfile's ConfigMap, as the READMEs do for a build in the cluster: its other keys
# are the build context.
cp -r "$examples" "$work/examples"
sed -i "s|registry\.example\.com/|$KMM_REGISTRY/|" "$work/examples"/*/module.yaml
grep -rq registry.example.com "$work/examples"/*/module.yaml && fail "an example's image still names registry.example.com"
sources=(Kbuild Makefile kmm_ci_a.c kmm_ci_a.h kmm_ci_b.c)

# One kernel's image is in the registry already, pushed by someone else (no kmm labels): the
# operator uses it as it is, pinned to its digest, and builds nothing for it.
pushed_platform=aks-ubuntu pushed_kernel=5.4.0-1089-azure
pushed_image=$KMM_REGISTRY/kmm-examples/kmm-ci-a:$pushed_kernel
umoci init --layout "$work/layout"
umoci new --image "$work/layout:$pushed_kernel"
rootless=()
((EUID == 0)) || rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$work/layout:$pushed_kernel" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/opt/lib/modules/$pushed_kernel"
echo "not really a module" > "$work/bundle/rootfs/opt/lib/modules/$pushed_kernel/kmm_ci_a.ko"
umoci repack --image "$work/layout:$pushed_kernel" "$work/bundle"
skopeo copy --quiet --insecure-policy --dest-tls-verify=false --digestfile "$work/pushed-digest" \
  "oci:$work/layout:$pushed_kernel" "docker://$pushed_image"
pushed_digest=$(cat "$work/pushed-digest")
[[ $pushed_digest == sha256:* ]] || fail "skopeo reported no digest for $pushed_image"

probe_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$operator" --kubeconfig "$KUBECONFIG" --namespace "$(IFS=,; echo "${namespaces[*]}")" \
  --loader-image kmm-loader:test --metrics-bind-address 0 \
  --health-probe-bind-address "127.0.0.1:$probe_port" > "$work/operator.log" 2>&1 &
pid=$!
wait_for 60 "the operator's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
started=$SECONDS
mkdir -p "$work/overlays"
echo "resources:" > "$work/overlays/kustomization.yaml"
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  mkdir -p "$work/overlays/$platform"
  echo "- $platform" >> "$work/overlays/kustomization.yaml"
  for f in "${sources[@]}"; do cp "$here/../modules/$f" "$work/overlays/$platform/"; done
  cat > "$work/overlays/$platform/kustomization.yaml" <<YAML
resources:
- $(realpath --relative-to "$work/overlays/$platform" "$work/examples/$platform")
configMapGenerator:
- name: kmm-ci-a-dockerfile
  behavior: merge
  files: [$(IFS=,; echo "${sources[*]}")]
  options: {disableNameSuffixHash: true}
patches:
- target: {kind: Module, name: kmm-ci-a}
  patch: |
    - {op: add, path: /spec/selector/kmm.test~1group, value: kmm-ex-$platform}
    - {op: add, path: /spec/moduleLoader/container/registryTLS, value: {insecure: true}}
YAML
done
kubectl apply -k "$work/overlays" > "$work/apply" 2>&1 || fail "kubectl apply -k failed: $(cat "$work/apply")"

# Every platform at once: a build Job per covered kernel and no loader for it (kwok never runs
# a build, so the image never appears), the pushed kernel's loader pinned to its digest, the
# Module's status and its events. What is still wrong goes to $work/problems.
cat > "$work/check-operator.py" <<'PY'
import json, sys, collections
platforms = json.load(open(sys.argv[1]))
objects = json.load(open(sys.argv[2]))["items"]
events = json.load(open(sys.argv[3]))["items"]
registry, pushed_platform, pushed_kernel, pushed_digest, sources = sys.argv[4:9]
sources = sources.split()
problems = []
kernel_label = "kmm.node.kubernetes.io/kernel-version.full"
for p in platforms:
    name, ns, covered, uncovered = p["platform"], p["ns"], p["covered"], p["uncovered"]
    pushed = [pushed_kernel] if name == pushed_platform else []
    built = [k for k in covered if k not in pushed]
    mine = [o for o in objects if o["metadata"].get("namespace") == ns]
    def component(o):
        return o["metadata"].get("labels", {}).get("kmm.sigs.x-k8s.io/component")
    # Loaders: only for the pushed kernel, pulling it by digest.
    ds = {o["metadata"]["labels"][kernel_label]: o for o in mine
          if o["kind"] == "DaemonSet" and component(o) == "loader"}
    if sorted(ds) != sorted(k.rstrip("+") for k in pushed):
        problems.append(f"{name}: loader DaemonSets for {sorted(ds)}, want {pushed}")
    for kernel in pushed:
        init = ds.get(kernel, {}).get("spec", {}).get("template", {}).get("spec", {}).get("initContainers", [])
        images = [c["image"] for c in init if c["name"] == "copy-modules"]
        want = f"{registry}/kmm-examples/kmm-ci-a:{kernel}@{pushed_digest}"
        if images != [want]:
            problems.append(f"{name}: kernel {kernel}'s loader pulls {images}, want {want}")
    placement = collections.defaultdict(list)
    for pod in mine:
        if pod["kind"] == "Pod" and component(pod) == "loader" and "deletionTimestamp" not in pod["metadata"]:
            placement[pod["spec"]["nodeSelector"][kernel_label]].append(pod["spec"].get("nodeName", "?"))
    placement = {k: sorted(v) for k, v in placement.items()}
    want_placement = {k: [f"kmm-ex-{name}-{covered.index(k)}"] for k in pushed}
    if placement != want_placement:
        problems.append(f"{name}: loader pods {placement}, want {want_placement}")
    # Build Jobs: one per kernel without an image, named after the kernel's hash.
    jobs = {o["metadata"].get("annotations", {}).get("kmm.sigs.x-k8s.io/kernel-version", "?"): o
            for o in mine if o["kind"] == "Job" and component(o) == "build"}
    if sorted(k.rstrip("+") for k in jobs) != sorted(k.rstrip("+") for k in built):
        problems.append(f"{name}: build Jobs for kernels {sorted(jobs)}, want {built}")
    for kernel, job in jobs.items():
        k = kernel.rstrip("+")
        job_name = job["metadata"]["name"]
        if not job_name.startswith("kmm-ci-a-build-") or \
                job_name != "kmm-ci-a-build-" + job["metadata"]["labels"].get("kmm.sigs.x-k8s.io/kernel-hash", "?"):
            problems.append(f"{name}: build Job {job_name} is not kmm-ci-a-build-<kernel hash>")
        pod = job["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        for want in [f"--build-arg=KERNEL_FULL_VERSION={k}", f"--destination={registry}/kmm-examples/kmm-ci-a:{k}",
                     "--insecure", "--dockerfile=/workspace/Dockerfile"]:
            if want not in args:
                problems.append(f"{name}: build Job {job_name} has no {want} in {args}")
        volumes = {v["name"]: v for v in pod["volumes"]}
        if volumes.get("build-context", {}).get("configMap", {}).get("name") != "kmm-ci-a-dockerfile":
            problems.append(f"{name}: build Job {job_name} does not mount ConfigMap kmm-ci-a-dockerfile: {pod['volumes']}")
        mounts = {m["mountPath"]: m.get("subPath") for m in pod["containers"][0]["volumeMounts"]
                  if m["name"] == "build-context"}
        want_mounts = {"/workspace/Dockerfile": "dockerfile", **{f"/workspace/{f}": f for f in sources}}
        if mounts != want_mounts:
            problems.append(f"{name}: build Job {job_name} mounts {mounts}, want {want_mounts}")
    module = [o for o in mine if o["kind"] == "Module"]
    s = module[0].get("status", {}) if module else {}
    c = {x["type"]: x for x in s.get("conditions", [])}
    n = len(covered)
    counts = {"nodesMatchingSelectorNumber": n + 1, "desiredNumber": len(pushed), "availableNumber": len(pushed)}
    if s.get("moduleLoader") != counts:  # the tainted control-plane node is not counted
        problems.append(f"{name}: moduleLoader {s.get('moduleLoader')}, want {counts}")
    degraded = c.get("Degraded", {})
    unmapped = f"no kernel mapping for kernel {uncovered} (nodes: kmm-ex-{name}-{n})"
    if (degraded.get("status"), degraded.get("reason")) != ("True", "NoKernelMapping") or unmapped not in degraded.get("message", ""):
        problems.append(f"{name}: Degraded is {degraded}, want NoKernelMapping saying {unmapped!r}")
    if c.get("Unsupported", {}).get("status") == "True":
        problems.append(f"{name}: Unsupported is {c['Unsupported']}: build is supported")
    progressing = c.get("Progressing", {})
    if (progressing.get("status"), progressing.get("reason")) != ("True", "ImageBuild") or \
            any(f"kernel {k.rstrip('+')}" not in progressing.get("message", "") for k in built):
        problems.append(f"{name}: Progressing is {progressing}, want ImageBuild naming {built}")
    reasons = collections.defaultdict(str)
    for e in events:
        if e["metadata"]["namespace"] == ns and e["involvedObject"]["name"] == "kmm-ci-a":
            reasons[e["reason"]] += e.get("message", "") + "\n"
    if uncovered not in reasons["NoKernelMapping"]:
        problems.append(f"{name}: no NoKernelMapping event naming {uncovered}")
    for kernel in built:
        # Jobs and their messages name the kernel as mappings see it: COS's '+' dropped.
        if f"Build for kernel {kernel.rstrip('+')} started" not in reasons["BuildCreated"]:
            problems.append(f"{name}: no BuildCreated event for kernel {kernel}")
    if "FieldNotSupportedYet" in reasons:
        problems.append(f"{name}: a FieldNotSupportedYet event: {reasons['FieldNotSupportedYet']}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
operator_state_is_right() {
  kubectl get modules,daemonsets,pods,jobs -A -o json > "$work/state.json" &&
    kubectl get events -A --field-selector involvedObject.kind=Module -o json > "$work/events.json" &&
    python3 "$work/check-operator.py" "$work/platforms.json" "$work/state.json" "$work/events.json" \
      "$KMM_REGISTRY" "$pushed_platform" "$pushed_kernel" "$pushed_digest" "${sources[*]}" > "$work/problems"
}
wait_interval=1 wait_for 90 "each example's build Jobs, loaders, status and events" operator_state_is_right
for spec in "${platforms[@]}"; do
  IFS='|' read -r platform _ covered uncovered <<< "$spec"
  [[ $platform != "$pushed_platform" ]] || covered=$(tr ' ' '\n' <<< "$covered" | grep -vxF "$pushed_kernel" | xargs)
  echo "ok: $platform: a build Job for each of $covered, no loader yet; $uncovered reported"
done
echo "ok: $pushed_platform: $pushed_kernel's image without kmm labels is used as it is: $pushed_image@$pushed_digest"
echo "operator phase: $((SECONDS - started))s"
# The READMEs apply the examples as they are, naming registry.example.com: no operator may
# ask that registry about them.
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=

# 4. Each example's README, its commands run as an administrator would, from the repository's
# root (test/docs/run-doc-blocks; the image build is shown as text: no container engine here).
repo=$(cd "$examples/../.." && pwd)
mkdir -p "$work/readme"
for spec in "${platforms[@]}"; do
  platform=${spec%%|*}
  (cd "$repo" && PATH="$(dirname "$operator"):$PATH" WORKDIR="$work/readme" \
    "$repo/test/docs/run-doc-blocks" cluster "manifests/examples/$platform/README.md") \
    > "$work/readme/$platform.log" 2>&1 ||
    fail "the commands of manifests/examples/$platform/README.md failed:
$(tail -n 20 "$work/readme/$platform.log")"
done
echo "ok: the commands of every example's README"
echo PASS
