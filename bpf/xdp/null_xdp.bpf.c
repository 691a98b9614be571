// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The null XDP program: what the XDP per-packet cost is measured against
 * (tests/lab/e2e_xdp.sh), and the "another program already attached" of its bad-input
 * checks. Multi-buffer aware, like nfsf_xdp, so that it attaches where nfsf_xdp does. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp.frags")
int null_xdp(struct xdp_md *ctx)
{
	return 2; /* XDP_PASS */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
