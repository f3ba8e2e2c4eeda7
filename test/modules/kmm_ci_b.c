// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_ci_b: a test module for kmm that needs kmm_ci_a (it calls a symbol kmm_ci_a
 * exports), so loading it proves dependency resolution.
 */
#include <linux/module.h>

#include "kmm_ci_a.h"

static int greeting_count = 1;
module_param(greeting_count, int, 0444);
MODULE_PARM_DESC(greeting_count, "How many times to greet at load (default 1)");

static int __init kmm_ci_b_init(void)
{
	int i;

	for (i = 0; i < greeting_count; i++)
		pr_info("kmm_ci_b: hello %d; kmm_ci_a has %d devices\n", i,
			kmm_ci_a_device_count());
	return 0;
}

static void __exit kmm_ci_b_exit(void)
{
	pr_info("kmm_ci_b: goodbye\n");
}

module_init(kmm_ci_b_init);
module_exit(kmm_ci_b_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmm test module that depends on kmm_ci_a");
