// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The null TC program: the baseline the benchmarks measure nfsfence_tc against. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tc")
int null_tc(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
