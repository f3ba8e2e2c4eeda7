# Loader benchmark inside the qemu node: kmm_ci_b (pulls in kmm_ci_a) loaded and unloaded
# by modprobe, by the kmm-loader process, and by the Loader in-process, in one boot; then
# the device plugin's memory with real devices. bench/run writes the parts it wants
# ("loader", "device-plugin") to /bench-parts; without that file both run.
. /guest-lib.sh
N=${KMM_BENCH_ITERATIONS:-40}
parts=$(cat /bench-parts 2>/dev/null || echo loader device-plugin)
wants() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }

if wants loader; then
  echo '{"moduleName":"kmm_ci_b","terminationMessagePath":""}' > /tmp/b.json
  # busybox sh prefers its own applets, so Debian's kmod modprobe is called by path.
  # Warm the page cache and the kernel's module paths once.
  /sbin/modprobe -d /opt kmm_ci_b && /sbin/modprobe -r -d /opt kmm_ci_b
  kmm-loader-bench commands --iterations $N --name modprobe \
    --load "/sbin/modprobe -d /opt kmm_ci_b" --unload "/sbin/modprobe -r -d /opt kmm_ci_b"
  kmm-loader-bench commands --iterations $N --name kmm-loader-process \
    --load "kmm-loader --log-level warn load --config /tmp/b.json" \
    --unload "kmm-loader --log-level warn unload --config /tmp/b.json"
  kmm-loader-bench inprocess --iterations $N --config /tmp/b.json
fi

wants device-plugin || exit 0

# The shipped kmm-device-plugin with 100 real devices (kmm_ci_a devices=100): its memory,
# read from /proc, with no test harness in the process.
modprobe -r -d /opt kmm_ci_b 2>/dev/null
# 100: the kernel has 128 dynamic misc minors, a few already taken.
/sbin/modprobe -d /opt kmm_ci_a devices=100
mkdir -p /var/lib/kubelet/device-plugins
kmm-test-kubelet --dir /var/lib/kubelet/device-plugins > /tmp/kubelet.log 2>&1 &
kubelet_pid=$!
echo '{"ueventSource":"kernel","resources":[{"resourceName":"example.com/kmm-ci-a",
  "match":{"subsystem":"misc","kernel":"kmm-ci-a*"},"health":{"attribute":"health"}}]}' > /tmp/dp.json
kmm-device-plugin --config /tmp/dp.json --log-level warn &
plugin=$!
wait_for_line /tmp/kubelet.log "kmm-ci-a99:Healthy" 60
sleep 1
rss() { grep -E '^(VmRSS|RssAnon|RssFile):' "/proc/$1/status" | tr -s ' \t' ' ' | tr '\n' ' '; }
echo "BENCH-RSS kmm-device-plugin: devices=$(ls /dev/kmm-ci-a* | wc -l) $(rss $plugin)"
kill -TERM $plugin
wait $plugin
kill $kubelet_pid 2>/dev/null; wait $kubelet_pid 2>/dev/null
/sbin/modprobe -r -d /opt kmm_ci_a

# The same plugin inside `kmm-loader run` (the process is kmm-loader-run), as loader pods run it.
kmm-test-kubelet --dir /var/lib/kubelet/device-plugins > /tmp/kubelet-run.log 2>&1 &
kubelet_pid=$!
echo '{"moduleName":"kmm_ci_a","parameters":["devices=100"],"terminationMessagePath":"",
  "devicePlugin":'"$(cat /tmp/dp.json)"'}' > /tmp/run.json
kmm-loader --log-level warn run --config /tmp/run.json &
run=$!
wait_for_line /tmp/kubelet-run.log "kmm-ci-a99:Healthy" 60
sleep 1
echo "BENCH-RSS kmm-loader run: devices=$(ls /dev/kmm-ci-a* | wc -l) $(rss $run)"
kill -TERM $run
wait $run
