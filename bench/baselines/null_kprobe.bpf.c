// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the null program of the kprobe on vfs_write (baselines 1 and 5),
 * the cost reference the baseline's bpf_stats run time is compared with.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("kprobe/vfs_write")
int BPF_KPROBE(null_kprobe)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
