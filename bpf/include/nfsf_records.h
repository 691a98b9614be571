/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP record marking (RFC 5531 section 11) across skbs, with per-flow state.
 *
 * `flows` keeps, per direction, the seq of the next record mark. An skb is walked from that
 * mark record by record (bpf_loop, NFSF_MAX_RECORDS), each record's head handled by
 * handle_head (nfsf_heads.h). An skb that ends before the mark is the middle of a record (or
 * a retransmission) and is not parsed; heads that were refused/rewritten are remembered in
 * a small ring so that a retransmission carrying them gets the same treatment. Flows without
 * state (opened before attach, evicted) or with a gap resync on an skb that starts with a
 * plausible record head. A head or mark cut by the skb end is carried to the next skb and
 * handled there (nfsf_split.h).
 */
#ifndef NFSF_RECORDS_H
#define NFSF_RECORDS_H

#include "nfsf_split.h"

/* bpf_loop body: one record at the flow's next_mark. Returns 1 to stop. `side` is a
 * constant so that each program verifies only its own handler.
 * NOTE: the record cursor lives in the map value (fs->next_mark), not on the stack: a
 * stack cursor is a loop-carried scalar whose range grows every iteration, and the
 * verifier's bpf_loop convergence check then walks all NFSF_MAX_RECORDS iterations. */
static __always_inline long walk_one(__u32 i, void *arg, const int side)
{
	struct nfsf_walk *w = arg;
	struct nfsf_flow_state *fs = w->fs;
	__u32 end = w->pkt.pay_end, d, off, mark, len, rec_end, mseq;

	if (!fs)
		goto stop;
	d = fs->next_mark - w->pkt.seq;
	if (d >= end - w->pkt.pay_off || d >= NFSF_MAX_PKT)
		goto stop;
	off = w->pkt.pay_off + d;
	if (end - off < 4) {
		/* the mark itself is cut: carried to the next skb (nfsf_split.h) */
		save_split(w, off, end, 0, fs->next_mark, 0, !(fs->flags & NFSF_FS_IN_MSG));
		goto stop;
	}
	if (load_at(w->ctx, off, end, &mark, 4)) {
		fs->flags &= ~NFSF_FS_SYNCED;
		count(NFSF_C_ERR_SHORT);
		goto stop;
	}
	mark = bpf_ntohl(mark);
	len = mark & 0x7fffffff;
	if (len > RPC_REC_MAX || (len < RPC_REC_MIN && !(fs->flags & NFSF_FS_IN_MSG))) {
		fs->flags &= ~NFSF_FS_SYNCED;
		count(NFSF_C_ERR_BAD_RECORD);
		goto stop;
	}
	mseq = fs->next_mark;
	rec_end = off + 4 + len;
	if (!(fs->flags & NFSF_FS_IN_MSG) &&
	    handle_head(w, off, 4, min_u32(rec_end, end), 4 + len, mseq, 0, side) == NFSF_HEAD_CUT)
		save_split(w, off, end, 4 + len, mseq, NFSF_SPLIT_MARK_DONE, 1);
	if (mark & 0x80000000)
		fs->flags &= ~NFSF_FS_IN_MSG;
	else
		fs->flags |= NFSF_FS_IN_MSG;
	fs->next_mark = mseq + 4 + len;
	return 0;
stop:
	w->stopped = 1;
	return 1;
}

static long walk_calls(__u32 i, void *arg)
{
	return walk_one(i, arg, NFSF_SIDE_CALLS);
}

static long walk_replies(__u32 i, void *arg)
{
	return walk_one(i, arg, NFSF_SIDE_REPLIES);
}

static __always_inline void walk_records(struct nfsf_walk *w, const int side)
{
	bpf_loop(NFSF_MAX_RECORDS, side == NFSF_SIDE_CALLS ? walk_calls : walk_replies, w, 0);
	if (!w->stopped && w->fs) {
		count(NFSF_C_ERR_LOOP);
		w->fs->flags &= ~NFSF_FS_SYNCED;
	}
}

/* Remembered heads inside a retransmitted skb: same verdict again (bpf_loop body). */
static __always_inline long ring_one(__u32 i, void *arg, const int side)
{
	struct nfsf_walk *w = arg;
	struct nfsf_flow_state *fs = w->fs;
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 r, d, mark, off, plen = pkt->pay_end - pkt->pay_off;

	if (!fs || i >= NFSF_FLOW_RING)
		return 1;
	/* NOTE: clang drops a plain `& 7` after the check above; the verifier needs it */
	i = bound_mask(i, NFSF_FLOW_RING - 1);
	if (!(fs->ring_valid & (1u << i)))
		return 0;
	r = fs->ring[i];
	d = r - pkt->seq;
	if ((__s32)d < 0 || d >= plen || (__s32)(r - fs->next_mark) >= 0)
		return 0;
	off = pkt->pay_off + d;
	if (load_at(w->ctx, off, pkt->pay_end, &mark, 4))
		return 0;
	mark = bpf_ntohl(mark) & 0x7fffffff;
	count(NFSF_C_RETRANS_HEAD);
	handle_head(w, off, 4, min_u32(off + 4 + mark, pkt->pay_end), 4 + mark, r, 1, side);
	return 0;
}

static long ring_calls(__u32 i, void *arg)
{
	return ring_one(i, arg, NFSF_SIDE_CALLS);
}

static long ring_replies(__u32 i, void *arg)
{
	return ring_one(i, arg, NFSF_SIDE_REPLIES);
}

static __always_inline void handle_tcp(struct nfsf_walk *w, const int side, const int carried)
{
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_flow_state *fs, nfs = {};
	__u32 plen = pkt->pay_end - pkt->pay_off, d;

	if (pkt->tcp_flags & NFSF_TCP_RST) {
		bpf_map_delete_elem(&flows, &pkt->flow);
		return;
	}
	if (pkt->tcp_flags & NFSF_TCP_SYN) {
		nfs.next_mark = pkt->seq + 1;
		nfs.flags = NFSF_FS_SYNCED | NFSF_FS_NEW_CONN;
		bpf_map_update_elem(&flows, &pkt->flow, &nfs, BPF_ANY);
		count(NFSF_C_FLOW_NEW);
		return;
	}
	if (plen == 0)
		return;

	fs = bpf_map_lookup_elem(&flows, &pkt->flow);
	if (fs) {
		w->fs = fs;
		if (fs->flags & NFSF_FS_SPLIT)
			split_check(w, side, carried);
		if (fs->ring_valid)
			bpf_loop(NFSF_FLOW_RING, side == NFSF_SIDE_CALLS ? ring_calls : ring_replies, w, 0);
		/* NOTE: emit_until means nothing without the flag: an unset 0 compares as ahead
		 * of every seq in the upper half of the sequence space. */
		if (fs->flags & NFSF_FS_STREAM) {
			d = fs->emit_until - pkt->seq;
			if ((__s32)d <= 0)
				fs->flags &= ~NFSF_FS_STREAM;
			else if ((__s32)(fs->next_mark - pkt->seq) > 0)
				emit_chunks(w, pkt->pay_off, pkt->pay_off + min_u32(d, plen));
		}
		if (fs->flags & NFSF_FS_SYNCED) {
			d = fs->next_mark - pkt->seq;
			if ((__s32)d >= 0 && d < plen) {
				walk_records(w, side);
				return;
			}
			if ((__s32)d >= 0) {
				count(NFSF_C_MID_RECORD);
				return;
			}
			/* next_mark lies before this skb: a gap; resync below */
		}
	}
	if (!plausible_head(w->ctx, pkt->pay_off, pkt->pay_end, side)) {
		count(NFSF_C_MID_RECORD);
		return;
	}
	count(NFSF_C_RESYNC);
	if (!fs) {
		nfs.next_mark = pkt->seq;
		nfs.flags = NFSF_FS_SYNCED;
		bpf_map_update_elem(&flows, &pkt->flow, &nfs, BPF_ANY);
		fs = bpf_map_lookup_elem(&flows, &pkt->flow);
		if (!fs)
			return;
		w->fs = fs;
	}
	fs->next_mark = pkt->seq;
	fs->flags = NFSF_FS_SYNCED;
	walk_records(w, side);
}

#endif /* NFSF_RECORDS_H */
