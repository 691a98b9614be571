/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Record heads cut by the end of an skb (TCP), included by nfsf_stream.h.
 *
 * When an skb ends inside a record's mark, inside its RPC/WRITE head, or inside a small
 * record (a LOOKUP call, a WRITE reply: anything up to NFSF_SPLIT_MAX bytes, which the
 * agent must get whole), the bytes the skb holds are saved in `split_heads` under the flow
 * (save_split) and the flow gets NFSF_FS_SPLIT. The skb that starts exactly where they end
 * (fs->split_seq) makes the main program tail-call a carry program (split_check): the same
 * code as the main program, compiled with `carried`, which first appends that skb's first
 * bytes and parses the head from the buffer (carry_*), then handles the rest of the skb as
 * usual. A program of its own because the verifier's 1M-instruction budget holds the main
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
 * Dir-op calls and replies are learned from the buffer as in nfsf_stream.h (note_dirop,
 * learn_handle). A refused split keeps NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE so that a
 * retransmission of the continuation (TCP resends the original, unpoisoned bytes) is
 * refused again, for NFSF_SPLIT_KEEP bytes of stream; otherwise the flags go at the first
 * later skb. A head cut twice (the continuation skb ends before the head does) is counted
 * in NFSF_C_ERR_HEAD_SPLIT.
 */
#ifndef NFSF_SPLIT_H
#define NFSF_SPLIT_H

#define NFSF_SPLIT_KEEP (64u << 20) /* how far a refused split is remembered (seq bytes) */

/* Save [off, end) of this skb, the start of the record at mseq. Walk callback context. */
static __always_inline void save_split(struct nfsf_walk *w, __u32 off, __u32 end, __u32 wire_len,
				       __u32 mseq, __u32 flags, __u32 fresh)
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

/* n (constant) bytes at record offset off of the carried buffer (valid up to total). */
static __always_inline int buf_load(const struct nfsf_split *sp, __u32 off, __u32 total, void *to,
				    const __u32 n)
{
	if (off + n > total || off >= 2 * NFSF_SPLIT_MAX)
		return -NFSF_C_ERR_SHORT;
	/* NOTE: bound_mask: clang drops a plain mask it proves redundant after the check above,
	 * and 6.1's verifier does not carry that bound to the pointer (6.18's did) */
	__builtin_memcpy(to, sp->ev.data + bound_mask(off, 2 * NFSF_SPLIT_MAX - 1), n);
	return 0;
}

/* As parse_call(), from the buffer (the mark at offset 0). */
static __always_inline int buf_parse_call(const struct nfsf_split *sp, __u32 total, struct nfsf_call *call)
{
	__u32 h[6], a[2], off = 4 + 24, len;
	int i;

	if (buf_load(sp, 4, total, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_CALL) || h[2] != bpf_htonl(RPC_VERS))
		return -NFSF_C_ERR_BAD_RPC;
	call->xid = h[0];
	call->prog = bpf_ntohl(h[3]);
	call->vers = bpf_ntohl(h[4]);
	call->proc = bpf_ntohl(h[5]);
#pragma unroll
	for (i = 0; i < 2; i++) { /* cred, verf */
		if (buf_load(sp, off, total, a, sizeof(a)))
			return -NFSF_C_ERR_SHORT;
		len = bpf_ntohl(a[1]);
		if (len > RPC_AUTH_MAX)
			return -NFSF_C_ERR_BAD_RPC;
		off += sizeof(a) + xdr_pad(len);
	}
	call->args = off;
	return 0;
}

/* Exactly len (1..64) bytes of the buffer at off into a zeroed key (whose bytes past len
 * must stay zero): a dynptr over the buffer gives the variable-length copy.
 * NOTE: copying 64 bytes and masking the tail per word made clang emit a branch per word
 * and the verifier's paths multiplied past its budget. Not inlined: a stack slot that held
 * a dynptr may not be written by a helper later (XDP's checksum fix reused it). */
static __noinline int buf_read_fh(struct nfsf_split *sp, __u32 off, __u8 *to, __u32 len)
{
	struct bpf_dynptr dp;

	if (!sp || !to || off >= 2 * NFSF_SPLIT_MAX)
		return -1;
	if (bpf_dynptr_from_mem(sp->ev.data, 2 * NFSF_SPLIT_MAX + NFSF_FH_MAX, 0, &dp))
		return -1;
	return (int)bpf_dynptr_read(to, ((len - 1) & (NFSF_FH_MAX - 1)) + 1, &dp, off, 0);
}

/* As parse_fh(), from the buffer. */
static __always_inline int buf_parse_fh(struct nfsf_split *sp, __u32 off, __u32 total,
					struct nfsf_fh_key *fh, __u32 *next)
{
	__u32 len;

	__builtin_memset(fh, 0, sizeof(*fh));
	if (buf_load(sp, off, total, &len, 4))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(len);
	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	if (off + 4 + len > total || buf_read_fh(sp, off + 4, fh->data, len))
		return -NFSF_C_ERR_SHORT;
	fh->len = len;
	*next = off + 4 + xdr_pad(len);
	return 0;
}

/* As parse_write(), from the buffer; wr->fh_off and head_end are record offsets. */
static __always_inline int buf_parse_write(struct nfsf_split *sp, __u32 off, __u32 total,
					   struct nfsf_write *wr)
{
	__u32 tail[5], next = 0;
	int ret;

	ret = buf_parse_fh(sp, off, total, &wr->fh, &next);
	if (ret)
		return ret;
	wr->fh_off = off + 4;
	if (buf_load(sp, next, total, tail, sizeof(tail)))
		return -NFSF_C_ERR_SHORT;
	wr->count = bpf_ntohl(tail[2]);
	wr->head_end = next + sizeof(tail);
	return 0;
}

/* As parse_reply(), from the buffer; r->res is a record offset. */
static __always_inline int buf_parse_reply(const struct nfsf_split *sp, __u32 total, struct nfsf_reply *r)
{
	__u32 h[3], a[2], st, off, len;

	if (buf_load(sp, 4, total, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_REPLY) || bpf_ntohl(h[2]) > 1)
		return -NFSF_C_ERR_BAD_RPC;
	r->xid = h[0];
	r->accepted = 0;
	r->res = 0;
	if (h[2] != 0)
		return 0; /* MSG_DENIED */
	if (buf_load(sp, 16, total, a, sizeof(a)))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(a[1]);
	if (len > RPC_AUTH_MAX)
		return -NFSF_C_ERR_BAD_RPC;
	off = 24 + xdr_pad(len);
	if (buf_load(sp, off, total, &st, 4))
		return -NFSF_C_ERR_SHORT;
	st = bpf_ntohl(st);
	if (st > 5)
		return -NFSF_C_ERR_BAD_RPC;
	r->accepted = st == 0;
	r->res = off + 4;
	return 0;
}

/* The completed head, its first len bytes, as one event (record head of the whole record). */
static __always_inline void emit_split(struct nfsf_walk *w, struct nfsf_split *sp, __u32 len)
{
	struct nfsf_event *ev = &sp->ev;
	__u32 size;

	if (!nfsf_emit_events || len == 0)
		return;
	if (len > NFSF_EVENT_DATA_MAX)
		len = NFSF_EVENT_DATA_MAX;
	ev->type = NFSF_EV_STREAM;
	ev->len = len;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->flow = w->pkt.flow;
	ev->seq = sp->seq;
	ev->wire_len = sp->wire_len < len ? len : sp->wire_len;
	ev->flags = w->evflags | NFSF_EVF_REC_HEAD | (ev->wire_len > len ? NFSF_EVF_TRUNC : 0);
	if (w->fs && (w->fs->flags & NFSF_FS_NEW_CONN)) {
		ev->flags |= NFSF_EVF_NEW_CONN;
		w->fs->flags &= ~NFSF_FS_NEW_CONN;
	}
	ev->pad = 0;
	size = ((len - 1) & (NFSF_EVENT_DATA_MAX - 1)) + 1 + offsetof(struct nfsf_event, data);
	if (bpf_ringbuf_output(&events, ev, size,
			       (w->evflags & NFSF_EVF_EGRESS) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP))
		count(NFSF_C_EVENTS_LOST);
	else
		count(NFSF_C_EVENTS);
}

/* Record offset x of the carried head lies at pay_off + (x - have) in the continuation skb.
 * carry_call() and carry_reply() return 1 when they refused (poisoned, dropped, rewrote). */
static __always_inline int carry_call(struct nfsf_walk *w, struct nfsf_split *sp, __u32 have,
				       __u32 total, int again)
{
	struct nfsf_call call;
	struct nfsf_write wr;
	__u32 pay = w->pkt.pay_off, opos = 0, name[2];
	int ret, where;

	ret = buf_parse_call(sp, total, &call);
	if (!ret && is_nfs3(&call) && call.proc == NFS3_WRITE)
		ret = buf_parse_write(sp, call.args, total, &wr);
	if (ret) {
		if (!again)
			count(ret == -NFSF_C_ERR_SHORT ? NFSF_C_ERR_HEAD_SPLIT : (__u32)-ret);
		return 0;
	}
	if (!is_nfs3(&call) || call.proc != NFS3_WRITE) {
		if (again)
			return 0;
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_HEAD_CARRIED);
		if (is_nfs3(&call) && (call.proc == NFS3_READDIR || call.proc == NFS3_READDIRPLUS))
			want_reply(w, &call);
		if (is_nfs3(&call) && is_dirop(call.proc) &&
		    !buf_parse_fh(sp, call.args, total, &wr.fh, &opos) &&
		    !buf_load(sp, opos, total, name, sizeof(name)))
			record_dirop(w, &call, &wr.fh, name);
		emit_split(w, sp, total);
		return 0;
	}
	if (!again) {
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_WRITE_CALLS);
		count(NFSF_C_HEAD_CARRIED);
		emit_split(w, sp, wr.head_end);
	}
	opos = wr.fh_off + xdr_pad(wr.fh.len); /* the 8-byte offset, then the 4-byte count */
	if (wr.fh_off >= have) {
		wr.fh_off = pay + (wr.fh_off - have);
		where = NFSF_REFUSE_FH;
	} else if (opos >= have) {
		wr.fh_off = pay + (opos - have);
		where = NFSF_REFUSE_OFFSET;
	} else if (opos + 8 >= have) {
		wr.fh_off = pay + (opos + 8 - have);
		where = NFSF_REFUSE_COUNT;
	} else {
		where = NFSF_REFUSE_NONE;
	}
	return judge_write(w, &call, &wr, sp->seq, again, where);
}

/* As learn_handle(), from the buffer. */
static __always_inline void carry_learn(struct nfsf_split *sp, struct nfsf_reply *r,
					struct nfsf_xid_key *xk, __u32 total)
{
	struct nfsf_dirop d;
	struct nfsf_fh_key fh;
	__u32 st, follows, fo, next = 0;

	if (!take_dirop(xk, &d) || !r->accepted || d.tree == 0)
		return;
	if (buf_load(sp, r->res, total, &st, 4))
		goto missed;
	if (st != 0)
		return;
	fo = r->res + 4;
	if (d.proc != NFS3_LOOKUP) {
		if (buf_load(sp, fo, total, &follows, 4))
			goto missed;
		if (follows == 0)
			return;
		if (follows != bpf_htonl(1))
			goto missed;
		fo += 4;
	}
	if (buf_parse_fh(sp, fo, total, &fh, &next))
		goto missed;
	if (bpf_map_update_elem(&handles, &fh, &d.tree, BPF_NOEXIST) == 0)
		count(NFSF_C_HANDLE_LEARNED);
	return;
missed:
	count(NFSF_C_HANDLE_MISSED);
}

static __always_inline int carry_reply(struct nfsf_walk *w, struct nfsf_split *sp, __u32 have,
					__u32 total, int again)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_reply r;
	int ret;

	ret = buf_parse_reply(sp, total, &r);
	if (ret) {
		if (!again)
			count(ret == -NFSF_C_ERR_SHORT ? NFSF_C_ERR_HEAD_SPLIT : (__u32)-ret);
		return 0;
	}
	xk.flow = w->pkt.flow;
	xk.xid = r.xid;
	if (!again) {
		count(NFSF_C_RPC_REPLIES);
		count(NFSF_C_HEAD_CARRIED);
		emit_split(w, sp, total);
		if (bpf_map_lookup_elem(&want_xids, &xk)) {
			/* the stream logic in handle_tcp sends the rest, from this skb on */
			bpf_map_delete_elem(&want_xids, &xk);
			w->fs->emit_until = sp->seq + sp->wire_len;
			w->fs->flags |= NFSF_FS_STREAM;
		}
		carry_learn(sp, &r, &xk, total);
	}
	if (!r.accepted || !bpf_map_lookup_elem(&poisoned, &xk))
		return 0;
	if (r.res >= have && r.res + 4 <= total) {
		rewrite_status(w, w->pkt.pay_off + (r.res - have), w->pkt.pay_end, sp->seq, again);
		return 1;
	}
	if (r.res + 4 > have && !again)
		count(NFSF_C_ERR_HEAD_SPLIT); /* the status word itself was cut */
	return 0; /* else it was in the earlier skb and rewritten there (handle_reply) */
}

/* Complete the saved head with this skb's first bytes and judge it. The skb starts at
 * fs->split_seq (split_check() made sure). */
static __always_inline void carry_one(struct nfsf_walk *w, const int side)
{
	struct nfsf_flow_state *fs = w->fs;
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_split *sp;
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
	if (side == NFSF_SIDE_CALLS ? carry_call(w, sp, have, total, again)
				    : carry_reply(w, sp, have, total, again)) {
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
	bpf_tail_call(w->ctx, &progs, side == NFSF_SIDE_CALLS ? NFSF_SLOT_CARRY_CALLS : NFSF_SLOT_CARRY_REPLIES);
	count(NFSF_C_ERR_HEAD_SPLIT); /* no carry program in the slot: the head passes unjudged */
	fs->flags &= ~(NFSF_FS_SPLIT | NFSF_FS_SPLIT_DONE);
}

#endif /* NFSF_SPLIT_H */
