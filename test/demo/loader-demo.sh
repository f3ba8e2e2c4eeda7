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
  "readinessFile": "/run/kmm/ready"
}
JSON
say "The loader pod's config, as the operator would write it from a Module:"
cat /etc/kmm/loader.json

say "kmm-loader run: loads with libkmod (no modprobe), reports ready, waits for SIGTERM."
kmm-loader run --config /etc/kmm/loader.json &
pid=$!
wait_for_file /run/kmm/ready 30
say "Modules now in the kernel (/proc/modules):"
grep kmm /proc/modules
say "Their parameters:"
echo "kmm_ci_b greeting_count = $(cat /sys/module/kmm_ci_b/parameters/greeting_count)"
echo "kmm_ci_a devices        = $(cat /sys/module/kmm_ci_a/parameters/devices)"
say "The devices kmm_ci_a created, which the device plugin will advertise:"
ls -l /dev/kmm-ci-a*
echo "health of kmm-ci-a0: $(cat /sys/class/misc/kmm-ci-a0/health)"
say "The readiness probe, kmm-loader status:"
kmm-loader status --config /etc/kmm/loader.json && echo "status: every module is live (exit 0)"

say "The kubelet stops the pod: SIGTERM. kmm-loader unloads, busy modules are retried."
kill -TERM $pid
wait $pid
echo "kmm-loader exited with $?"
say "Modules left in the kernel:"
grep kmm /proc/modules || echo "(none)"
say "Termination message the operator reads: $(cat /run/kmm/termination-log)"

say "A module built for another kernel is refused before the kernel sees it:"
echo '{"moduleName":"kmm_ci_a","dirName":"/opt-bad"}' > /etc/kmm/bad.json
kmm-loader load --config /etc/kmm/bad.json || true
