# Loader benchmark inside the qemu node: kmm_ci_b (pulls in kmm_ci_a) loaded and unloaded
# by modprobe, by the kmm-loader process, and by the Loader in-process, in one boot.
. /guest-lib.sh
N=${KMM_BENCH_ITERATIONS:-40}
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
