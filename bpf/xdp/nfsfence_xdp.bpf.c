// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsfence XDP programs, the same parser as the TC programs through nfsf_ctx.h:
 *   nfsf_xdp          on an NFS server's interface (`attach --hook xdp --side server`):
 *                     WRITE calls arriving for over-quota trees are poisoned in place
 *                     (handle -> 0xff, L4 checksum fixed by hand) or dropped (XDP_DROP); the
 *                     replies leave through TC egress (nfsfence_tc.bpf.c: nfsf_srv_egress).
 *   nfsf_xdp_replies  on an NFS client's interface (`--hook xdp --side client`): replies
 *                     arrive here; with NFSF_ACTION_DROP_REPLY the reply to a WRITE that TC
 *                     egress marked is dropped (the survey's idea: the server has stored the
 *                     data already). Replies also feed the agent, as TC ingress does.
 * Multi-buffer aware (xdp.frags): heads past the first buffer are read with
 * bpf_xdp_load_bytes. nfsf_xdp_carry / nfsf_xdp_replies_carry are reached by tail call only.
 */
#define NFSF_CTX_XDP 1
#include "nfsf_maps.h"

/* The programs, then the tail-call array that names the carry programs, then the parser:
 * split_check() (nfsf_split.h) tail-calls through `progs`, so it must be defined first. */
int nfsf_xdp(struct xdp_md *ctx);
int nfsf_xdp_carry(struct xdp_md *ctx);
int nfsf_xdp_replies(struct xdp_md *ctx);
int nfsf_xdp_replies_carry(struct xdp_md *ctx);
NFSF_PROGS_MAP(struct xdp_md, nfsf_xdp_carry, nfsf_xdp_replies_carry);

#include "nfsf_entry.h"

SEC("xdp.frags")
int nfsf_xdp(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_CALLS, NFSF_EVF_INGRESS, 0);
}

SEC("xdp.frags")
int nfsf_xdp_replies(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_REPLIES, NFSF_EVF_INGRESS, 0);
}

/* Tail-call targets only: a head cut by the previous packet's end (nfsf_split.h). */
SEC("xdp.frags")
int nfsf_xdp_carry(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_CALLS, NFSF_EVF_INGRESS, 1);
}

SEC("xdp.frags")
int nfsf_xdp_replies_carry(struct xdp_md *ctx)
{
	return nfsf_handle(ctx, NFSF_SIDE_REPLIES, NFSF_EVF_INGRESS, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
