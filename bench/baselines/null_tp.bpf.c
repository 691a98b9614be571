// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the null program of the tracepoint sys_enter_write (baseline 4),
 * the cost reference the baseline's bpf_stats run time is compared with.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tracepoint/syscalls/sys_enter_write")
int null_tp(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
