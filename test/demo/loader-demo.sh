# The demo, inside the qemu node: kmm-loader loading and unloading the sample modules.
. /guest-lib.sh
say() { echo; echo "==> $*"; }
KVER=$(uname -r)
mkdir -p /etc/kmm /run/kmm

say "This VM runs Debian's kernel $KVER under qemu and plays a Kubernetes node."
say "The module image (dirName /opt) holds two out-of-tree modules built for that kernel:"
ls /opt/lib/modules/$KVER/extra/
echo "kmm_ci_b needs a symbol from kmm_ci_a: $(modinfo -F depends /opt/lib/modules/$KVER/extra/kmm_ci_b.ko)"

cat > /etc/kmm/loader.json <<'JSON'
{
  "moduleName": "kmm_ci_b",
  "parameters": ["greeting_count=2"],
  "modulesLoadingOrder": ["kmm_ci_b", "kmm_ci_a"],
  "terminationMessagePath": "/run/kmm/termination-log",
  "readinessFile": "/run/kmm/ready",
  "devicePlugin": {
    "resources": [{
      "resourceName": "example.com/kmm-ci-a",
      "match": {"subsystem": "misc", "kernel": "kmm-ci-a*"},
      "health": {"attribute": "health"}
    }]
  }
}
JSON
say "The loader pod's config, as the operator would write it from a Module:"
cat /etc/kmm/loader.json

DP=/var/lib/kubelet/device-plugins
mkdir -p $DP
say "No kubelet runs in this VM: kmm-test-kubelet plays its device-plugin side on $DP."
kmm-test-kubelet --dir $DP --allocate kmm-ci-a1 > /tmp/kubelet.log 2>&1 &
kubelet=$!

say "kmm-loader run: loads with libkmod (no modprobe), starts the device plugin, reports ready."
kmm-loader run --config /etc/kmm/loader.json >> /tmp/loader.log 2>&1 &
pid=$!
wait_for_file /run/kmm/ready 30
cat /tmp/loader.log
say "Modules now in the kernel (/proc/modules):"
grep kmm /proc/modules
say "Their parameters:"
echo "kmm_ci_b greeting_count = $(cat /sys/module/kmm_ci_b/parameters/greeting_count)"
echo "kmm_ci_a devices        = $(cat /sys/module/kmm_ci_a/parameters/devices)"
say "The devices kmm_ci_a created, which the device plugin will advertise:"
ls -l /dev/kmm-ci-a*
echo "health of kmm-ci-a0: $(cat /sys/class/misc/kmm-ci-a0/health)"

wait_for_line /tmp/kubelet.log KUBELET-ALLOCATE 30
say "What the kubelet saw: the registration, the device list, and an Allocate answer:"
cat /tmp/kubelet.log
say "A device turns unhealthy (echo 0 > /sys/class/misc/kmm-ci-a0/health), then recovers:"
echo 0 > /sys/class/misc/kmm-ci-a0/health
wait_for_line /tmp/kubelet.log "kmm-ci-a0:Unhealthy" 30
echo 1 > /sys/class/misc/kmm-ci-a0/health
wait_for_line /tmp/kubelet.log "KUBELET-LIST kmm-ci-a0:Healthy,kmm-ci-a1:Healthy" 30 || true
sleep 0.5
grep KUBELET-LIST /tmp/kubelet.log | tail -n 2
say "The readiness probe, kmm-loader status:"
kmm-loader status --config /etc/kmm/loader.json && echo "status: every module is live (exit 0)"

say "The kubelet stops the pod: SIGTERM. The device plugin stops first, then the modules go."
: > /tmp/loader.log
kill -TERM $pid
wait $pid
echo "kmm-loader exited with $?"
cat /tmp/loader.log
wait $kubelet
say "Modules left in the kernel:"
grep kmm /proc/modules || echo "(none)"
say "Termination message the operator reads: $(cat /run/kmm/termination-log)"

say "A module built for another kernel is refused before the kernel sees it:"
echo '{"moduleName":"kmm_ci_a","dirName":"/opt-bad"}' > /etc/kmm/bad.json
kmm-loader load --config /etc/kmm/bad.json || true
