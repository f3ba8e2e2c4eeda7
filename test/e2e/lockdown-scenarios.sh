# Run with lockdown=integrity on the kernel command line (module.sig_enforce off): the kernel
# refuses unsigned modules with a bare EPERM. The guest's init never mounts securityfs, as a
# pod's /sys lacks it too; the loader must still name lockdown.
. /guest-lib.sh
begin lockdown_in_pod
show /sys/module/module/parameters/sig_enforce /sys/kernel/security/lockdown
echo '{"moduleName":"kmm_ci_a","terminationMessagePath":"/tmp/a.term"}' > /tmp/a.json
# A mount namespace like a pod's: no securityfs, and a command line without lockdown= (so the
# mode can only come from the loader's private securityfs mount).
echo "console=ttyS0 quiet" > /tmp/cmdline
run unshare -m sh -c 'umount /sys/kernel/security 2>/dev/null; mount --bind /tmp/cmdline /proc/cmdline;
  kmm-loader load --config /tmp/a.json'
show /tmp/a.term
echo "securityfs-mounts: $(grep -c securityfs /proc/mounts)"
mkdir -p /sys/kernel/security && mount -t securityfs securityfs /sys/kernel/security
show /sys/kernel/security/lockdown
loaded
end lockdown_in_pod
