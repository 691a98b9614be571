// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsfence XDP program, attached on an NFS server's interface (ingress): the same
 * parser as the TC programs through nfsf_ctx.h; WRITE calls to over-quota trees are
 * dropped (XDP_DROP) or poisoned in place (handle -> 0xff, L4 checksum fixed by hand).
 * Multi-buffer aware (xdp.frags): heads past the first buffer are read with
 * bpf_xdp_load_bytes.
 */
#define NFSF_CTX_XDP 1
#include "nfsf_maps.h"

/* The programs, then the tail-call array that names the carry programs, then the parser:
 * split_check() (nfsf_split.h) tail-calls through `progs`, so it must be defined first. */
int nfsf_xdp(struct xdp_md *ctx);
int nfsf_xdp_carry(struct xdp_md *ctx);
NFSF_PROGS_MAP(struct xdp_md, nfsf_xdp_carry, nfsf_xdp_carry);

#include "nfsf_entry.h"

SEC("xdp.frags")
int nfsf_xdp(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_CALLS, NFSF_EVF_INGRESS, 0);
}

/* Tail-call target only: a call head cut by the previous packet's end (nfsf_split.h). */
SEC("xdp.frags")
int nfsf_xdp_carry(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_CALLS, NFSF_EVF_INGRESS, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
