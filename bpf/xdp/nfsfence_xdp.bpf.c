// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* placeholder: the TC data plane is being written */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "nfsfence_abi.h"

SEC("xdp")
int nfsf_xdp(struct xdp_md *ctx)
{
	return 2; /* XDP_PASS */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
