// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* placeholder: the TC data plane is being written */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "nfsfence_abi.h"

SEC("tc")
int nfsf_egress(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
