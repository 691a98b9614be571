/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One record head, a call (head_call) or a reply (head_reply), wherever the head is:
 *   - inside this skb (carried = 0): parsed from the packet; head offset x is at skb
 *     offset off + x;
 *   - cut by the previous skb's end (carried = 1, the carry programs, nfsf_split.h): the
 *     flow's `split_heads` entry holds it, completed with this skb's first bytes; head
 *     offset x >= have is at skb offset pay_off + (x - have), and x < have went out before.
 * `carried` is a constant at every call site, so each program verifies one path. The two
 * differ only where they must: a head cut by this skb's end is handed back to be carried
 * (NFSF_HEAD_CUT) on the packet path and counted as cut twice on the carried path; a
 * carried WRITE is refused at the first of its handle, offset and count that lies in this
 * skb; events come from the packet or from the buffer.
 */
#ifndef NFSF_HEADS_H
#define NFSF_HEADS_H

#include "nfsf_events.h"
#include "nfsf_learn.h"
#include "nfsf_fsstat.h"

enum nfsf_head_ret {
	NFSF_HEAD_DONE = 0,
	NFSF_HEAD_CUT = 1,     /* packet path: cut by the skb end, to be carried (nothing counted) */
	NFSF_HEAD_REFUSED = 2, /* poisoned, dropped or rewritten */
};

struct nfsf_head {
	struct nfsf_src src; /* what the parser reads (nfsf_rpc.h) */
	__u32 m;	     /* head offset of the RPC message: 4 after a TCP mark, 0 for UDP */
	__u32 wire_len;	     /* the record on the wire: 4 + fragment (TCP), the datagram (UDP) */
	__u32 seq;	     /* TCP seq of head offset 0 */
	__u32 base;	     /* skb offset of head offset lo */
	__u32 lo;	     /* head bytes that went out in earlier skbs (0 unless carried) */
	__u32 end;	     /* skb offset past the record's bytes in this skb */
};

/* The head inside this skb at off (TCP: its mark; UDP: the payload) up to end. */
static __always_inline void head_at(struct nfsf_walk *w, struct nfsf_head *h, __u32 off, __u32 m, __u32 end,
				    __u32 wire_len, __u32 seq)
{
	h->src.ctx = w->ctx;
	h->src.sp = NULL;
	h->src.pos = off;
	h->src.total = end - off;
	h->m = m;
	h->wire_len = wire_len;
	h->seq = seq;
	h->base = off;
	h->lo = 0;
	h->end = end;
}

/* Bytes of the record that this skb holds (packet path). */
static __always_inline __u32 head_avail(const struct nfsf_head *h)
{
	return h->end - h->base;
}

/* A parse that failed. Packet path: a head cut by the skb end (the record goes on, TCP) is
 * NFSF_HEAD_CUT, not counted; anything else is counted. Carried: a head still short of
 * its end is counted as cut twice. */
static __always_inline int head_error(struct nfsf_walk *w, struct nfsf_head *h, int ret, const int carried)
{
	int cut = ret == -NFSF_C_ERR_SHORT && h->src.total < h->wire_len;

	if (carried) {
		count(cut ? NFSF_C_ERR_HEAD_SPLIT : (__u32)-ret);
		return NFSF_HEAD_DONE;
	}
	if (cut && h->src.total == head_avail(h) && is_tcp(w))
		return NFSF_HEAD_CUT;
	count_err(ret);
	return NFSF_HEAD_DONE;
}

/* A record of at most NFSF_SPLIT_MAX bytes (LOOKUP, CREATE, a WRITE reply...) cut by the
 * skb end (packet path): carried whole (nfsf_split.h) so that the agent gets it whole. */
static __always_inline int small_record_cut(struct nfsf_walk *w, const struct nfsf_head *h)
{
	return is_tcp(w) && head_avail(h) < h->wire_len && h->wire_len <= NFSF_SPLIT_MAX;
}

/* The head's first len bytes as one event: from the packet, or from the carried buffer. */
static __always_inline void emit_head(struct nfsf_walk *w, struct nfsf_head *h, __u32 len, const int carried)
{
	if (carried)
		emit_head_buf(w, h->src.sp, len);
	else
		emit(w, h->base, len, h->wire_len, is_tcp(w) ? NFSF_EVF_REC_HEAD : 0);
}

/* One call head. again: a remembered head seen again (retransmission): verdict only, no
 * counters, no events. */
static __always_inline int head_call(struct nfsf_walk *w, struct nfsf_head *h, int again, const int carried)
{
	struct nfsf_call call;
	struct nfsf_write wr;
	__u32 opos;
	int ret, where;

	ret = parse_call(&h->src, carried, h->m, &call);
	if (ret)
		return again ? NFSF_HEAD_DONE : head_error(w, h, ret, carried);
	if (!is_nfs3(&call) || call.proc != NFS3_WRITE) {
		if (again)
			return NFSF_HEAD_DONE;
		if (!carried && small_record_cut(w, h))
			return NFSF_HEAD_CUT;
		count(NFSF_C_RPC_CALLS);
		if (carried)
			count(NFSF_C_HEAD_CARRIED);
		if (is_nfs3(&call) && (call.proc == NFS3_READDIR || call.proc == NFS3_READDIRPLUS))
			want_reply(w, &call);
		if (is_nfs3(&call) && is_dirop(call.proc))
			note_dirop(w, &call, &h->src, carried, &wr.fh); /* wr.fh: scratch (stack budget) */
		else if (is_nfs3(&call) && call.proc == NFS3_FSSTAT)
			note_fsstat(w, &call, &h->src, carried, &wr.fh);
		emit_head(w, h, carried ? h->src.total : head_avail(h), carried);
		return NFSF_HEAD_DONE;
	}
	ret = parse_write(&h->src, carried, call.args, &wr);
	if (ret) {
		if (again)
			return NFSF_HEAD_DONE;
		if (head_error(w, h, ret, carried))
			return NFSF_HEAD_CUT;
		/* a malformed WRITE is still a WRITE call, on both paths */
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_WRITE_CALLS);
		return NFSF_HEAD_DONE;
	}
	if (!again) {
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_WRITE_CALLS);
		if (carried)
			count(NFSF_C_HEAD_CARRIED);
		emit_head(w, h, wr.head_end, carried);
	}
	/* Refused at the first of handle, 8-byte offset, 4-byte count that lies wholly in this
	 * skb (on the packet path always the handle). */
	opos = wr.fh_off + xdr_pad(wr.fh.len);
	if (wr.fh_off >= h->lo) {
		wr.fh_off = h->base + (wr.fh_off - h->lo);
		where = NFSF_REFUSE_FH;
	} else if (opos >= h->lo) {
		wr.fh_off = h->base + (opos - h->lo);
		where = NFSF_REFUSE_OFFSET;
	} else if (opos + 8 >= h->lo) {
		wr.fh_off = h->base + (opos + 8 - h->lo);
		where = NFSF_REFUSE_COUNT;
	} else {
		where = NFSF_REFUSE_NONE;
	}
	return judge_write(w, &call, &wr, h->seq, again, where) ? NFSF_HEAD_REFUSED : NFSF_HEAD_DONE;
}

/* One reply head: learning, streaming, FSSTAT sizes of trees (nfsf_fsstat.h), and nfsstat3
 * -> NFS3ERR_DQUOT for XIDs of poisoned WRITEs. */
static __always_inline int head_reply(struct nfsf_walk *w, struct nfsf_head *h, int again, const int carried)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_poisoned *pv;
	struct nfsf_reply r;
	struct nfsf_dirop d;
	int ret, want;

	ret = parse_reply(&h->src, carried, h->m, &r);
	if (ret)
		return again ? NFSF_HEAD_DONE : head_error(w, h, ret, carried);
	xk.flow = w->pkt.flow;
	xk.xid = r.xid;
	if (!carried && !again && small_record_cut(w, h)) {
		/* carried for the agent; a poisoned XID's status already in this skb is fixed now */
		pv = r.accepted ? bpf_map_lookup_elem(&poisoned, &xk) : NULL;
		if (pv && (pv->flags & NFSF_POISON_DROP_REPLY))
			drop_reply(w, h->seq, 0);
		else if (pv && r.res + 4 <= head_avail(h))
			rewrite_status(w, h->base + r.res, h->end, h->seq, 0);
		return NFSF_HEAD_CUT;
	}
	if (!again) {
		count(NFSF_C_RPC_REPLIES);
		if (carried)
			count(NFSF_C_HEAD_CARRIED);
		want = bpf_map_lookup_elem(&want_xids, &xk) != NULL;
		emit_head(w, h, carried ? h->src.total : head_avail(h), carried);
		if (want) {
			bpf_map_delete_elem(&want_xids, &xk);
			/* the packet path streams the rest of this skb now; for a carried head the
			 * stream logic in handle_tcp does, from this skb on */
			if (!carried)
				emit_chunks(w, h->base + NFSF_EVENT_DATA_MAX, h->base + h->wire_len);
			if (is_tcp(w) && w->fs) {
				w->fs->emit_until = h->seq + h->wire_len;
				w->fs->flags |= NFSF_FS_STREAM;
			}
		}
		/* one pending_dirop lookup per reply: a dir-op's handle, or an FSSTAT's sizes */
		if (take_dirop(&xk, &d) && r.accepted && d.tree) {
			if (d.proc == NFS3_FSSTAT)
				rewrite_fsstat(w, &h->src, carried, &r, d.tree, h->base, h->lo);
			else
				learn_handle(&h->src, carried, &r, &d);
		}
	}
	pv = r.accepted ? bpf_map_lookup_elem(&poisoned, &xk) : NULL;
	if (!pv)
		return NFSF_HEAD_DONE;
	if (pv->flags & NFSF_POISON_DROP_REPLY) {
		drop_reply(w, h->seq, again);
		return NFSF_HEAD_REFUSED;
	}
	if (!carried) {
		rewrite_status(w, h->base + r.res, h->end, h->seq, again);
		return NFSF_HEAD_DONE;
	}
	if (r.res >= h->lo && r.res + 4 <= h->src.total) {
		rewrite_status(w, h->base + (r.res - h->lo), h->end, h->seq, again);
		return NFSF_HEAD_REFUSED;
	}
	if (r.res + 4 > h->lo && !again)
		count(NFSF_C_ERR_HEAD_SPLIT); /* the status word itself was cut */
	return NFSF_HEAD_DONE;		      /* else it was in the earlier skb and rewritten there */
}

/* A head inside this skb (the record walk, the retransmission ring, UDP): off is the skb
 * offset of the record, m the head offset of its message. */
static __always_inline int handle_head(struct nfsf_walk *w, __u32 off, __u32 m, __u32 end, __u32 wire_len,
				       __u32 seq, int again, const int side)
{
	struct nfsf_head h;

	head_at(w, &h, off, m, end, wire_len, seq);
	if (side == NFSF_SIDE_CALLS)
		return head_call(w, &h, again, 0);
	return head_reply(w, &h, again, 0);
}

#endif /* NFSF_HEADS_H */
