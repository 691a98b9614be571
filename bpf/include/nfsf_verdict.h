/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The verdict on a WRITE (judge_write: tree lookup, quota and room, counters) and the
 * in-place refusals it leads to: the WRITE's handle (or, when only they are in this skb,
 * its offset or count) turned into bytes the server refuses, the XID remembered, and the
 * reply's nfsstat3 turned into NFS3ERR_DQUOT (rewrite_status). Every store is paired with
 * its L4 checksum update (nfsf_csum.h). A refused TCP head goes into the flow's
 * retransmission ring so that a resent copy gets the same verdict.
 */
#ifndef NFSF_VERDICT_H
#define NFSF_VERDICT_H

#include "nfsf_rpc.h"
#include "nfsf_csum.h"

static __always_inline void ring_push(struct nfsf_flow_state *fs, __u32 seq)
{
	__u32 i;

	if (!fs)
		return;
	i = fs->ring_pos & (NFSF_FLOW_RING - 1);
	fs->ring[i] = seq;
	fs->ring_valid |= 1u << i;
	fs->ring_pos = i + 1;
}

/* The flow key of the other direction: what the reply path looks XIDs up with. */
static __always_inline void flow_reverse(const struct nfsf_flow_key *in, struct nfsf_flow_key *out)
{
	__builtin_memcpy(out->saddr, in->daddr, 16);
	__builtin_memcpy(out->daddr, in->saddr, 16);
	out->sport = in->dport;
	out->dport = in->sport;
	out->family = in->family;
	out->proto = in->proto;
	out->pad[0] = 0;
	out->pad[1] = 0;
}

/* The reply to this XID gets NFS3ERR_DQUOT (rewrite_status), or with flags
 * NFSF_POISON_DROP_REPLY is dropped (head_reply). */
static __always_inline void remember_poisoned(struct nfsf_walk *w, struct nfsf_call *call, __u32 tree,
					      __u32 flags)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_poisoned pv = {};

	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	pv.ts_ns = bpf_ktime_get_ns();
	pv.tree = tree;
	pv.flags = flags;
	bpf_map_update_elem(&poisoned, &xk, &pv, BPF_ANY);
}

/* Overwrite the handle with NFSF_FH_POISON bytes, fix the L4 checksum, remember the XID. */
static __always_inline int poison_write(struct nfsf_walk *w, struct nfsf_call *call, struct nfsf_write *wr,
					__u32 tree)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 len = wr->fh.len;
	__u64 plen;
	__s64 diff;

	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	/* NOTE: plen is masked and checked as one 64-bit register: as a __u32, clang checked a
	 * zero-extended copy and passed the unextended register to bpf_csum_diff, which 6.1's
	 * verifier saw unbounded (6.18's took it). len <= 64 here, so & 0x7c is xdr_pad(). */
	plen = len + 3;
	asm volatile("%[p] &= 0x7c" : [p] "+r"(plen));
	if (plen > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	/* The handle bytes are turned into the poison in place (the key is not needed any
	 * more; NOTE: a separate 64-byte buffer overflowed the 512-byte stack budget).
	 * Bytes past len must stay zero so that they add nothing to the diff: all 0xff, then
	 * the last XDR word masked (little-endian BPF target). NOTE: a per-byte
	 * `i < len ? 0xff : 0` loop made the verifier fork on every byte. */
	diff = bpf_csum_diff((__be32 *)wr->fh.data, plen, NULL, 0, 0);
	if (diff < 0)
		return -NFSF_C_ERR_STORE;
	__builtin_memset(wr->fh.data, NFSF_FH_POISON, sizeof(wr->fh.data));
	*(__u32 *)&wr->fh.data[(plen - 4) & (NFSF_FH_MAX - 4)] = 0xffffffffu >> (8 * ((plen - len) & 3));
	diff = bpf_csum_diff(NULL, 0, (__be32 *)wr->fh.data, plen, (__wsum)diff);
	if (diff < 0)
		return -NFSF_C_ERR_STORE;
	/* NOTE: no packet pointers are held across the store, so none need re-deriving.
	 * Same [1, 64] re-bounding of len as in head_read_fh(). */
	if (ctx_store(w->ctx, wr->fh_off, wr->fh.data, ((len - 1) & (NFSF_FH_MAX - 1)) + 1))
		return -NFSF_C_ERR_STORE;
	if (ctx_l4_csum_apply(w->ctx, pkt->csum_off, csum_diff_at(diff, (wr->fh_off - pkt->l4_off) & 1),
			      pkt->flow.proto == NFSF_IPPROTO_UDP))
		return -NFSF_C_ERR_STORE;
	remember_poisoned(w, call, tree, 0);
	return 0;
}

/* Overwrite n (4 or 8) bytes at `at` with 0xff (same checksum treatment as the handle): the
 * WRITE's offset or count, when its handle went out in an earlier skb (nfsf_heads.h). The
 * server refuses such a WRITE (ganesha: NFS3ERR_INVAL for either, nothing written;
 * tests/lab/poison_probe.py). */
static __always_inline int poison_field(struct nfsf_walk *w, struct nfsf_call *call, __u32 at, const __u32 n,
					__u32 tree)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 old[2] = {}, bad[2] = {0xffffffffu, 0xffffffffu};
	__s64 diff;

	if (ctx_load(w->ctx, at, old, n))
		return -NFSF_C_ERR_SHORT;
	diff = bpf_csum_diff(old, n, bad, n, 0);
	if (diff < 0 || ctx_store(w->ctx, at, bad, n) ||
	    ctx_l4_csum_apply(w->ctx, pkt->csum_off, csum_diff_at(diff, (at - pkt->l4_off) & 1),
			      pkt->flow.proto == NFSF_IPPROTO_UDP))
		return -NFSF_C_ERR_STORE;
	remember_poisoned(w, call, tree, 0);
	return 0;
}

enum nfsf_refuse_at {
	NFSF_REFUSE_FH = 0,	/* the handle is in this skb at wr->fh_off */
	NFSF_REFUSE_OFFSET = 1, /* not the handle but the 8-byte offset is: at wr->fh_off */
	NFSF_REFUSE_COUNT = 2,	/* only the 4-byte count is: at wr->fh_off */
	NFSF_REFUSE_NONE = 3,	/* none of them: they went out in earlier skbs */
};

/* The verdict on a parsed WRITE head: tree lookup, counters, and (over quota, or past the
 * room bound in tree_room) the refusal. Returns 1 when the WRITE was refused (poisoned or
 * dropped). */
static __always_inline int judge_write(struct nfsf_walk *w, struct nfsf_call *call, struct nfsf_write *wr,
				       __u32 mark_seq, int again, int where)
{
	struct nfsf_tree *t;
	__u32 *tid, id, refused = 0;
	int ret;

	tid = bpf_map_lookup_elem(&handles, &wr->fh);
	id = tid ? *tid : 0;
	t = id ? bpf_map_lookup_elem(&trees, &id) : NULL;
	if (!t) {
		if (!again)
			count(NFSF_C_WRITE_UNKNOWN_FH);
		return 0;
	}
	/* again: a head refused before (the retransmission ring, a refused cut head) is refused
	 * again, whatever the tree's state now: the same verdict as the original. */
	if (!t->over && !again) {
		__u64 *full_at = bpf_map_lookup_elem(&tree_room, &id), sent;

		sent = __sync_fetch_and_add(&t->write_bytes, wr->count) + wr->count;
		if (!full_at || !*full_at || sent <= *full_at) {
			__sync_fetch_and_add(&t->writes, 1);
			count(NFSF_C_WRITE_ALLOWED);
			return 0;
		}
		/* past the room the agent last left: refused as if the tree were over */
		__sync_fetch_and_add(&t->write_bytes, -(__s64)wr->count);
		count(NFSF_C_ROOM_REFUSED);
	}
	if (!again) {
		__sync_fetch_and_add(&t->refused_writes, 1);
		__sync_fetch_and_add(&t->refused_bytes, wr->count);
	}
	if (nfsf_action == NFSF_ACTION_DROP_REPLY) {
		/* the call goes on (the server stores its data); its reply is dropped */
		if (!again) {
			remember_poisoned(w, call, id, NFSF_POISON_DROP_REPLY);
			count(NFSF_C_WRITE_MARKED_REPLY_DROP);
		}
		return 0;
	}
	if (nfsf_action == NFSF_ACTION_DROP) {
		w->drop = 1;
		if (!again)
			count(NFSF_C_WRITE_REFUSED_DROP);
		refused = 1;
	} else {
		if (where == NFSF_REFUSE_FH)
			ret = poison_write(w, call, wr, id);
		else if (where == NFSF_REFUSE_OFFSET)
			ret = poison_field(w, call, wr->fh_off, 8, id);
		else if (where == NFSF_REFUSE_COUNT)
			ret = poison_field(w, call, wr->fh_off, 4, id);
		else
			ret = -NFSF_C_ERR_HEAD_SPLIT;
		if (ret) {
			count_err(ret);
		} else {
			if (!again)
				count(NFSF_C_WRITE_REFUSED_REWRITE);
			refused = 1;
		}
	}
	if (refused && !again && is_tcp(w))
		ring_push(w->fs, mark_seq);
	return refused;
}

/* Reply to a WRITE marked by NFSF_ACTION_DROP_REPLY: the packet is dropped, and its head
 * remembered so that the sender's retransmissions of it are dropped again. */
static __always_inline void drop_reply(struct nfsf_walk *w, __u32 mark_seq, int again)
{
	w->drop = 1;
	if (again)
		return;
	count(NFSF_C_REPLY_DROPPED);
	if (is_tcp(w))
		ring_push(w->fs, mark_seq);
}

/* Reply to a poisoned WRITE: its nfsstat3 at `at` (in this skb) becomes NFS3ERR_DQUOT. */
static __always_inline void rewrite_status(struct nfsf_walk *w, __u32 at, __u32 end, __u32 mark_seq,
					   int again)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 st, nst = bpf_htonl(NFSF_NFS3ERR_DQUOT);
	__s64 diff;

	if (load_at(w->ctx, at, end, &st, 4)) {
		if (!again)
			count(NFSF_C_ERR_SHORT);
		return;
	}
	if (st == 0) {
		if (!again)
			count(NFSF_C_REPLY_ACCEPTED);
		return;
	}
	if (st != nst) {
		diff = bpf_csum_diff(&st, 4, &nst, 4, 0);
		if (diff < 0 || ctx_store(w->ctx, at, &nst, 4) ||
		    ctx_l4_csum_apply(w->ctx, pkt->csum_off, csum_diff_at(diff, (at - pkt->l4_off) & 1),
				      !is_tcp(w))) {
			count(NFSF_C_ERR_STORE);
			return;
		}
	}
	if (!again) {
		count(NFSF_C_REPLY_REWRITTEN);
		if (is_tcp(w))
			ring_push(w->fs, mark_seq);
	}
}

#endif /* NFSF_VERDICT_H */
