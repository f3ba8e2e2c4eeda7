/* SPDX-License-Identifier: GPL-2.0 */
/* Symbols kmm_ci_a exports to kmm_ci_b, so kmm_ci_b depends on kmm_ci_a. */
#ifndef KMM_CI_A_H
#define KMM_CI_A_H

int kmm_ci_a_device_count(void);

#endif
