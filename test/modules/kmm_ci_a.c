// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_ci_a: a test module for kmm that creates character devices.
 *
 * devices=N creates misc devices /dev/kmm-ci-a0..N-1. Each has a writable sysfs attribute
 * "health" (1 healthy, 0 unhealthy); writing it notifies pollers (sysfs_notify) and emits a
 * "change" uevent, so a device plugin can react without polling. Holding a device open
 * pins the module (rmmod gets EBUSY). firmware=NAME loads that firmware at init and shows
 * its size in each device's "firmware_size" attribute. The read-only parameter "build" tells
 * builds apart: KMM_CI_A_BUILD (default "a") is compiled in, so a build with another value is
 * another module file with another build-id (kmm's loader tests load one over the other).
 */
#include <linux/device.h>
#include <linux/firmware.h>
#include <linux/fs.h>
#include <linux/kobject.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sysfs.h>

#include "kmm_ci_a.h"

#define KMM_CI_A_MAX_DEVICES 256

static int devices = 2;
module_param(devices, int, 0444);
MODULE_PARM_DESC(devices, "Number of /dev/kmm-ci-aN devices to create (1-256, default 2)");

#ifndef KMM_CI_A_BUILD
#define KMM_CI_A_BUILD "a"
#endif
static char *build = KMM_CI_A_BUILD;
module_param(build, charp, 0444);
MODULE_PARM_DESC(build, "Which build of kmm_ci_a this is (compiled in, read-only)");

static char *firmware = "";
module_param(firmware, charp, 0444);
MODULE_PARM_DESC(firmware, "Firmware file to request at load time (default: none)");

struct kmm_ci_a_device {
	struct miscdevice misc;
	char name[16];
	bool healthy;
};

static struct kmm_ci_a_device *kmm_devices;
static int kmm_registered;
static size_t kmm_firmware_size;

static struct kmm_ci_a_device *to_kmm_device(struct device *dev)
{
	struct miscdevice *misc = dev_get_drvdata(dev);

	return container_of(misc, struct kmm_ci_a_device, misc);
}

static ssize_t health_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_kmm_device(dev)->healthy ? 1 : 0);
}

static ssize_t health_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	struct kmm_ci_a_device *kdev = to_kmm_device(dev);
	bool healthy;

	if (sysfs_streq(buf, "1"))
		healthy = true;
	else if (sysfs_streq(buf, "0"))
		healthy = false;
	else
		return -EINVAL;

	if (healthy != kdev->healthy) {
		kdev->healthy = healthy;
		sysfs_notify(&dev->kobj, NULL, "health");
		kobject_uevent(&dev->kobj, KOBJ_CHANGE);
	}
	return count;
}
static DEVICE_ATTR_RW(health);

static ssize_t firmware_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%zu\n", kmm_firmware_size);
}
static DEVICE_ATTR_RO(firmware_size);

static struct attribute *kmm_ci_a_attrs[] = {
	&dev_attr_health.attr,
	&dev_attr_firmware_size.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kmm_ci_a);

static ssize_t kmm_ci_a_read(struct file *file, char __user *buf, size_t len, loff_t *ppos)
{
	static const char text[] = "kmm-ci-a\n";

	return simple_read_from_buffer(buf, len, ppos, text, sizeof(text) - 1);
}

static const struct file_operations kmm_ci_a_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.read = kmm_ci_a_read,
	.llseek = no_llseek,
};

int kmm_ci_a_device_count(void)
{
	return kmm_registered;
}
EXPORT_SYMBOL_GPL(kmm_ci_a_device_count);

static void kmm_ci_a_unregister_all(void)
{
	while (kmm_registered > 0)
		misc_deregister(&kmm_devices[--kmm_registered].misc);
	kfree(kmm_devices);
	kmm_devices = NULL;
}

static int __init kmm_ci_a_init(void)
{
	const struct firmware *fw;
	int i, err;

	if (devices < 1 || devices > KMM_CI_A_MAX_DEVICES)
		return -EINVAL;

	kmm_devices = kcalloc(devices, sizeof(*kmm_devices), GFP_KERNEL);
	if (!kmm_devices)
		return -ENOMEM;

	for (i = 0; i < devices; i++) {
		struct kmm_ci_a_device *kdev = &kmm_devices[i];

		snprintf(kdev->name, sizeof(kdev->name), "kmm-ci-a%d", i);
		kdev->healthy = true;
		kdev->misc.minor = MISC_DYNAMIC_MINOR;
		kdev->misc.name = kdev->name;
		kdev->misc.fops = &kmm_ci_a_fops;
		kdev->misc.groups = kmm_ci_a_groups;
		kdev->misc.mode = 0666;
		err = misc_register(&kdev->misc);
		if (err) {
			kmm_ci_a_unregister_all();
			return err;
		}
		kmm_registered++;
	}

	if (firmware && firmware[0]) {
		err = request_firmware(&fw, firmware, kmm_devices[0].misc.this_device);
		if (err) {
			pr_err("kmm_ci_a: cannot load firmware %s: %d\n", firmware, err);
			kmm_ci_a_unregister_all();
			return err;
		}
		kmm_firmware_size = fw->size;
		release_firmware(fw);
		pr_info("kmm_ci_a: loaded firmware %s (%zu bytes)\n", firmware, kmm_firmware_size);
	}

	pr_info("kmm_ci_a: created %d devices\n", kmm_registered);
	return 0;
}

static void __exit kmm_ci_a_exit(void)
{
	kmm_ci_a_unregister_all();
	pr_info("kmm_ci_a: removed\n");
}

module_init(kmm_ci_a_init);
module_exit(kmm_ci_a_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmm test module: misc devices with a health attribute");
