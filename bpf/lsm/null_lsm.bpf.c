// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The trivial LSM program the benchmarks compare nfsfence's hook with: file_permission that
 * passes every call (bench/, tests/vm: "a trivial LSM program"). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("lsm/file_permission")
int BPF_PROG(nfsf_null_file_permission, struct file *file, int mask, int ret)
{
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
