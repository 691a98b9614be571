/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Record heads cut by the end of an skb (TCP).
 *
 * When an skb ends inside a record's mark, inside its RPC/WRITE head, or inside a small
 * record (a LOOKUP call, a WRITE reply: anything up to NFSF_SPLIT_MAX bytes, which the
 * agent must get whole), the bytes the skb holds are saved in `split_heads` under the flow
 * (save_split) and the flow gets NFSF_FS_SPLIT. The skb that starts exactly where they end
 * (fs->split_seq) makes the main program tail-call a carry program (split_check): the same
 * code as the main program, compiled with `carried`, which first appends that skb's first
 * bytes and handles the head from the buffer with the same head_call/head_reply as a head
 * inside an skb (nfsf_heads.h, carried = 1), then handles the rest of the skb as usual. A program of its own because the verifier's 1M-instruction budget holds the main
 * path or the carry path, not both.
 *
 * - calls: a WRITE to an over-quota tree is refused in the continuation skb, the only one
 *   still in our hands: its handle is poisoned if the handle lies wholly in it; else the
 *   first of the 8-byte offset and the 4-byte count that lies wholly in it becomes all 0xff
 *   (ganesha answers NFS3ERR_INVAL to either and writes nothing, and the reply becomes
 *   NFS3ERR_DQUOT like any poisoned XID's; `stable` all 0xff is accepted, so it is not used);
 *   if the cut falls after the count began (11 byte positions: the rest of count, stable and
 *   the data length) the WRITE passes and is counted in NFSF_C_ERR_HEAD_SPLIT. In drop mode
 *   the continuation is dropped.
 * - replies: a poisoned XID's nfsstat3 is rewritten in whichever skb holds it whole (a
 *   status word cut in two is counted in NFSF_C_ERR_HEAD_SPLIT).
 * - both: the completed head goes to the agent as one event (never WRITE data), READDIR
 *   replies are streamed as usual; NFSF_C_HEAD_CARRIED counts completed heads.
 *
 * Dir-op calls and replies are learned from the buffer (note_dirop, learn_handle). A refused split keeps NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE so that a
 * retransmission of the continuation (TCP resends the original, unpoisoned bytes) is
 * refused again, for NFSF_SPLIT_KEEP bytes of stream; otherwise the flags go at the first
 * later skb. A head cut twice (the continuation skb ends before the head does) is counted
 * in NFSF_C_ERR_HEAD_SPLIT.
 */
#ifndef NFSF_SPLIT_H
#define NFSF_SPLIT_H

#include "nfsf_heads.h"

/* NOTE: split_check() tail-calls through `progs`, a prog array whose values name the
 * object's carry programs, so each .bpf.c declares those programs and defines the map
 * (NFSF_PROGS_MAP, nfsf_maps.h) before it includes the parser. */

#define NFSF_SPLIT_KEEP (64u << 20) /* how far a refused split is remembered (seq bytes) */

/* Save [off, end) of this skb, the start of the record at mseq. Walk callback context. */
static __always_inline void save_split(struct nfsf_walk *w, __u32 off, __u32 end, __u32 wire_len, __u32 mseq,
				       __u32 flags, __u32 fresh)
{
	struct nfsf_split *sp, *t;
	__u32 zero = 0, n = end - off;

	if (!w->fs || n == 0 || n >= NFSF_SPLIT_MAX)
		goto fail;
	sp = bpf_map_lookup_elem(&split_heads, &w->pkt.flow);
	if (!sp) {
		t = bpf_map_lookup_elem(&split_tmpl, &zero);
		if (!t || bpf_map_update_elem(&split_heads, &w->pkt.flow, t, BPF_ANY))
			goto fail;
		sp = bpf_map_lookup_elem(&split_heads, &w->pkt.flow);
		if (!sp)
			goto fail;
	}
	/* NOTE: bounced through the map value and re-bounded, as in emit(): a helper size is
	 * marked precise and must not be tracked back to the walk offset. */
	sp->have = n;
	n = *(volatile __u32 *)&sp->have;
	n = ((n - 1) & (NFSF_SPLIT_MAX - 1)) + 1;
	if (ctx_load(w->ctx, off, sp->ev.data, n))
		goto fail;
	sp->seq = mseq;
	sp->wire_len = wire_len;
	sp->flags = flags;
	sp->fresh = fresh;
	w->fs->split_seq = mseq + n;
	w->fs->flags = (w->fs->flags & ~NFSF_FS_SPLIT_DONE) | NFSF_FS_SPLIT;
	return;
fail:
	count(NFSF_C_ERR_HEAD_SPLIT);
}

/* Complete the saved head with this skb's first bytes and judge it. The skb starts at
 * fs->split_seq (split_check() made sure). */
static __always_inline void carry_one(struct nfsf_walk *w, const int side)
{
	struct nfsf_flow_state *fs = w->fs;
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_split *sp;
	struct nfsf_head h;
	__u32 have, k, total, mark, len;
	int again = !!(fs->flags & NFSF_FS_SPLIT_DONE);

	sp = bpf_map_lookup_elem(&split_heads, &pkt->flow);
	if (!sp || sp->have == 0 || sp->have >= NFSF_SPLIT_MAX || sp->seq + sp->have != pkt->seq) {
		count(NFSF_C_ERR_HEAD_SPLIT); /* evicted (LRU) or overwritten */
		goto done;
	}
	have = sp->have & (NFSF_SPLIT_MAX - 1);
	k = min_u32(pkt->pay_end - pkt->pay_off, NFSF_SPLIT_MAX);
	if ((sp->flags & NFSF_SPLIT_MARK_DONE) && sp->wire_len > have)
		k = min_u32(k, sp->wire_len - have); /* none of the next record's bytes */
	if (k == 0)
		return;
	/* NOTE: bound_mask: clang drops the mask of `have` above and reloads it unbounded */
	if (ctx_load(w->ctx, pkt->pay_off, sp->ev.data + bound_mask(have, NFSF_SPLIT_MAX - 1),
		     ((k - 1) & (NFSF_SPLIT_MAX - 1)) + 1)) {
		count(NFSF_C_ERR_HEAD_SPLIT);
		goto done;
	}
	total = have + k;
	if (!(sp->flags & NFSF_SPLIT_MARK_DONE)) {
		/* the mark was cut: finish what walk_one() does for a record */
		if (total < 4) {
			count(NFSF_C_ERR_HEAD_SPLIT);
			fs->flags &= ~NFSF_FS_SYNCED;
			goto done;
		}
		mark = bpf_ntohl(*(__u32 *)sp->ev.data);
		len = mark & 0x7fffffff;
		if (len > RPC_REC_MAX || (len < RPC_REC_MIN && sp->fresh)) {
			count(NFSF_C_ERR_BAD_RECORD);
			fs->flags &= ~NFSF_FS_SYNCED;
			goto done;
		}
		sp->wire_len = 4 + len;
		sp->flags |= NFSF_SPLIT_MARK_DONE;
		fs->next_mark = sp->seq + 4 + len;
		if (mark & 0x80000000)
			fs->flags &= ~NFSF_FS_IN_MSG;
		else
			fs->flags |= NFSF_FS_IN_MSG;
		if (!sp->fresh)
			goto done; /* a continuation fragment: no RPC header to judge */
		if (total > sp->wire_len)
			total = sp->wire_len;
	}
	h.src.ctx = w->ctx;
	h.src.sp = sp;
	h.src.pos = 0;
	h.src.total = total;
	h.m = 4;
	h.wire_len = sp->wire_len;
	h.seq = sp->seq;
	h.base = pkt->pay_off;
	h.lo = have;
	h.end = pkt->pay_end;
	if ((side == NFSF_SIDE_CALLS ? head_call(w, &h, again, 1) : head_reply(w, &h, again, 1)) ==
	    NFSF_HEAD_REFUSED) {
		fs->flags |= NFSF_FS_SPLIT_DONE; /* kept for retransmissions of this skb */
		return;
	}
done:
	fs->flags &= ~(NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE);
}

static long carry_calls(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	carry_one(w, NFSF_SIDE_CALLS);
	return 1;
}

static long carry_replies(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	carry_one(w, NFSF_SIDE_REPLIES);
	return 1;
}

/* A flow with NFSF_FS_SPLIT. Main program: at the continuation skb, tail-call the carry
 * program (which handles the whole skb; no return here if the call succeeds). Carry program:
 * complete the head (a one-shot bpf_loop keeps its stack out of the main frame). */
static __always_inline void split_check(struct nfsf_walk *w, const int side, const int carried)
{
	struct nfsf_flow_state *fs = w->fs;
	__s32 d = (__s32)(w->pkt.seq - fs->split_seq);

	if (carried) {
		bpf_loop(1, side == NFSF_SIDE_CALLS ? carry_calls : carry_replies, w, 0);
		return;
	}
	if (d < 0)
		return; /* earlier bytes again */
	if (d > 0) {
		if (!(fs->flags & NFSF_FS_SPLIT_DONE))
			count(NFSF_C_ERR_HEAD_SPLIT); /* the continuation was never seen */
		else if ((__u32)d < NFSF_SPLIT_KEEP)
			return;
		fs->flags &= ~(NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE);
		return;
	}
	bpf_tail_call(w->ctx, &progs,
		      side == NFSF_SIDE_CALLS ? NFSF_SLOT_CARRY_CALLS : NFSF_SLOT_CARRY_REPLIES);
	count(NFSF_C_ERR_HEAD_SPLIT); /* no carry program in the slot: the head passes unjudged */
	fs->flags &= ~(NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE);
}

#endif /* NFSF_SPLIT_H */
