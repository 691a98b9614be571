/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The body of every nfsfence TC/XDP program (nfsf_handle): the L2-L4 parse (nfsf_parse.h),
 * then TCP records (nfsf_records.h) or one UDP datagram, then the verdict. A packet walks
 * the headers in this order:
 *   nfsf_entry.h    nfsf_handle: count, parse, TCP or UDP
 *   nfsf_records.h  the flow's record walk, the retransmission ring, resync
 *   nfsf_split.h    a head cut by an skb end: saved, completed in the carry program
 *   nfsf_heads.h    one call or reply head from a head buffer (one parser for both places)
 *   nfsf_rpc.h      RPC/NFSv3 head parsers over a head buffer
 *   nfsf_verdict.h  judge_write, the in-place refusals, the reply rewrite
 *   nfsf_learn.h    want_xids, in-kernel handle learning
 *   nfsf_events.h   ring buffer events to the agent
 * Below them: nfsf_walk.h (the per-packet state), nfsf_parse.h, nfsf_csum.h, nfsf_maps.h,
 * nfsf_ctx.h (TC or XDP), nfsfence_abi.h (shared with userspace).
 */
#ifndef NFSF_ENTRY_H
#define NFSF_ENTRY_H

#include "nfsf_records.h"

/* UDP: one datagram = one RPC message, no record mark. */
static long dgram_calls(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	handle_head(w, w->pkt.pay_off, 0, w->pkt.pay_end, w->pkt.pay_end - w->pkt.pay_off, 0, 0,
		    NFSF_SIDE_CALLS);
	return 1;
}

static long dgram_replies(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	handle_head(w, w->pkt.pay_off, 0, w->pkt.pay_end, w->pkt.pay_end - w->pkt.pay_off, 0, 0,
		    NFSF_SIDE_REPLIES);
	return 1;
}

/* The entry point's body: returns NFSF_VERDICT_PASS or NFSF_VERDICT_DROP. carried: this is
 * a carry program, tail-called for an skb that completes a cut head (nfsf_split.h). */
static __always_inline int nfsf_handle(struct nfsf_ctx *ctx, const int side, __u32 evflags, const int carried)
{
	struct nfsf_walk w = {};
	int ret;

	if (!carried) /* the carry program runs on an skb the main program counted */
		count(NFSF_C_PACKETS);
	w.ctx = ctx;
	w.side = side;
	w.evflags = evflags;
	ret = parse_fast(ctx, &w.pkt);
	if (ret < 0)
		ret = parse_l2_l4(ctx, &w.pkt);
	if (ret <= 0) {
		count_err(ret);
		return NFSF_VERDICT_PASS;
	}
	if (!is_rpc_flow(&w.pkt))
		return NFSF_VERDICT_PASS;
	if (!carried)
		count(NFSF_C_NFS_PACKETS);

	if (w.pkt.flow.proto == NFSF_IPPROTO_TCP) {
		handle_tcp(&w, side, carried);
		if (w.pkt.tcp_flags & (NFSF_TCP_FIN | NFSF_TCP_RST))
			emit_flow_end(&w);
	} else if (w.pkt.pay_end > w.pkt.pay_off)
		/* NOTE: a one-shot bpf_loop keeps the handler's stack out of the main frame
		 * (main + callback frames share the 512-byte budget) */
		bpf_loop(1, side == NFSF_SIDE_CALLS ? dgram_calls : dgram_replies, &w, 0);

	return w.drop ? NFSF_VERDICT_DROP : NFSF_VERDICT_PASS;
}

#endif /* NFSF_ENTRY_H */
