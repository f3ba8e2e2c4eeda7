# Run with module.sig_enforce=1 on the kernel command line: unsigned modules are refused.
. /guest-lib.sh
begin unsigned_refused
show /sys/module/module/parameters/sig_enforce
echo '{"moduleName":"kmm_ci_a"}' > /tmp/a.json
run kmm-loader load --config /tmp/a.json
loaded
run modprobe dummy numdummies=1
loaded
end unsigned_refused
