# Loader scenarios run inside the qemu node (see test/qemu/run-vm). Each prints a section
# that loader_e2e_test.cc parses and asserts on; this script checks nothing itself.
. /guest-lib.sh
KVER=$(uname -r)
L="kmm-loader --log-format text"
mkdir -p /etc/kmm /run/kmm

config() {  # config NAME JSON: writes /etc/kmm/NAME.json
  echo "$2" > "/etc/kmm/$1.json"
}

begin load_with_dependency
config b '{"moduleName":"kmm-ci-b","parameters":["greeting_count=3"],
           "terminationMessagePath":"/run/kmm/b.term"}'
run $L load --config /etc/kmm/b.json
loaded
show /sys/module/kmm_ci_b/parameters/greeting_count /sys/module/kmm_ci_a/parameters/devices
show /run/kmm/b.term
ls /dev/ | grep kmm-ci-a | sort | tr '\n' ' '; echo
run $L status --config /etc/kmm/b.json
run $L unload --config /etc/kmm/b.json
loaded
run $L status --config /etc/kmm/b.json
end load_with_dependency

begin compressed_modules
config zst '{"moduleName":"kmm_ci_b","dirName":"/opt-compressed"}'
run $L load --config /etc/kmm/zst.json
loaded
run $L unload --config /etc/kmm/zst.json
loaded
end compressed_modules

begin idempotent_load
config a3 '{"moduleName":"kmm_ci_a","parameters":["devices=3"]}'
run $L load --config /etc/kmm/a3.json
run $L load --config /etc/kmm/a3.json
ls /dev/ | grep kmm-ci-a | sort | tr '\n' ' '; echo
run $L unload --config /etc/kmm/a3.json
run $L unload --config /etc/kmm/a3.json
loaded
end idempotent_load

begin loading_order
config order '{"moduleName":"kmm_ci_b","modulesLoadingOrder":["kmm_ci_b","kmm_ci_a"]}'
run $L load --config /etc/kmm/order.json
loaded
run $L unload --config /etc/kmm/order.json
loaded
end loading_order

begin in_tree_removal
run modprobe dummy numdummies=1
loaded
config intree '{"moduleName":"kmm_ci_a","inTreeModulesToRemove":["dummy","not_a_module"]}'
run $L load --config /etc/kmm/intree.json
loaded
run $L unload --config /etc/kmm/intree.json
end in_tree_removal

begin firmware
config fw '{"moduleName":"kmm_ci_a","parameters":["firmware=kmm-ci-a.bin"],
            "firmwarePath":"/firmware","firmwareHostPath":"/var/lib/kmm-firmware"}'
run $L load --config /etc/kmm/fw.json
echo "installed-firmware-bytes: $(wc -c < /var/lib/kmm-firmware/kmm-ci-a.bin)"
show /sys/module/firmware_class/parameters/path
show /sys/class/misc/kmm-ci-a0/firmware_size
run $L unload --config /etc/kmm/fw.json
show /var/lib/kmm-firmware/kmm-ci-a.bin
# The kernel's search path was empty before the load: the unload (another process) restores it.
echo "search-path-after-unload: [$(cat /sys/module/firmware_class/parameters/path)]"
echo "firmware-dir-after-unload: [$(ls -A /var/lib/kmm-firmware | tr '\n' ' ')]"
end firmware

begin run_until_sigterm
config run '{"moduleName":"kmm_ci_b","readinessFile":"/run/kmm/ready",
             "terminationMessagePath":"/run/kmm/run.term"}'
$L run --config /etc/kmm/run.json > /tmp/run.log 2>&1 &
pid=$!
wait_for_file /run/kmm/ready 30 && echo "ready-file: present"
run $L status --config /etc/kmm/run.json
loaded
kill -TERM $pid
wait $pid
echo "run-exit: $?"
cat /tmp/run.log
loaded
show /run/kmm/ready /run/kmm/run.term
end run_until_sigterm

begin unload_while_busy
config busy '{"moduleName":"kmm_ci_a","terminationMessagePath":"/run/kmm/busy.term"}'
run $L load --config /etc/kmm/busy.json
sleep 3 < /dev/kmm-ci-a0 &
holder=$!
sleep 0.5
run $L unload --config /etc/kmm/busy.json --unload-timeout 30
wait $holder
loaded
run $L load --config /etc/kmm/busy.json
sleep 30 < /dev/kmm-ci-a0 &
holder=$!
sleep 0.5
run $L unload --config /etc/kmm/busy.json --unload-timeout 1
show /run/kmm/busy.term
loaded
kill $holder; wait $holder 2>/dev/null
run $L unload --config /etc/kmm/busy.json
loaded
end unload_while_busy

begin other_build_loaded
# Another build of kmm_ci_a is loaded (as an unload that failed while busy leaves it), then
# the module image's build is asked for: refused while a process holds the old one, replaced
# once nothing does; and replaced under kmm_ci_b, which needs it.
config old '{"moduleName":"kmm_ci_a","dirName":"/opt-other"}'
config new '{"moduleName":"kmm_ci_a","terminationMessagePath":"/run/kmm/new.term"}'
run $L load --config /etc/kmm/old.json
show /sys/module/kmm_ci_a/parameters/build
sleep 60 < /dev/kmm-ci-a0 &
holder=$!
sleep 0.5
run $L load --config /etc/kmm/new.json
show /run/kmm/new.term /sys/module/kmm_ci_a/parameters/build
kill $holder; wait $holder 2>/dev/null
run $L load --config /etc/kmm/new.json
show /sys/module/kmm_ci_a/parameters/build
run $L unload --config /etc/kmm/new.json
run $L load --config /etc/kmm/old.json
config newb '{"moduleName":"kmm_ci_b"}'
run $L load --config /etc/kmm/newb.json
show /sys/module/kmm_ci_a/parameters/build
run $L unload --config /etc/kmm/newb.json
loaded
end other_build_loaded

begin vermagic_mismatch
config bad '{"moduleName":"kmm_ci_a","dirName":"/opt-bad"}'
run $L load --config /etc/kmm/bad.json
loaded
end vermagic_mismatch

begin wrong_kernel
config other '{"moduleName":"kmm_ci_a","kernelVersion":"5.15.0-43-generic"}'
run $L load --config /etc/kmm/other.json
run $L status --config /etc/kmm/other.json
run $L unload --config /etc/kmm/other.json
loaded
end wrong_kernel

begin device_plugin
DP=/var/lib/kubelet/device-plugins
mkdir -p $DP
kmm-test-kubelet --dir $DP --allocate kmm-ci-a1 > /tmp/kubelet.log 2>&1 &
kubelet=$!
config dp '{"moduleName":"kmm_ci_a","parameters":["devices=3"],"readinessFile":"/run/kmm/dp-ready",
  "devicePlugin":{"ueventSource":"kernel","resources":[{"resourceName":"example.com/kmm-ci-a",
    "match":{"subsystem":"misc","kernel":"kmm-ci-a*"},"health":{"attribute":"health"}}]}}'
kmm-loader run --config /etc/kmm/dp.json --device-plugin-dir $DP > /tmp/dp-run.log 2>&1 &
pid=$!
wait_for_file /run/kmm/dp-ready 30 && echo "ready-file: present"
wait_for_line /tmp/kubelet.log "KUBELET-ALLOCATE" 30 && echo "allocated"
echo 0 > /sys/class/misc/kmm-ci-a0/health
wait_for_line /tmp/kubelet.log "KUBELET-LIST kmm-ci-a0:Unhealthy" 30 && echo "saw-unhealthy"
echo 1 > /sys/class/misc/kmm-ci-a0/health
wait_for_line /tmp/kubelet.log "KUBELET-LIST kmm-ci-a0:Healthy,kmm-ci-a1:Healthy,kmm-ci-a2:Healthy" 30
kill -TERM $pid
wait $pid
echo "run-exit: $?"
wait $kubelet
echo "kubelet-exit: $?"
cat /tmp/kubelet.log
cat /tmp/dp-run.log
loaded
end device_plugin
