/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet logic shared by TC egress (calls), TC ingress (replies) and XDP (calls):
 * TCP record marking (RFC 5531 section 11) across skbs with per-flow state, the WRITE
 * verdict, the reply rewrite and the ring buffer events.
 *
 * TCP: `flows` keeps, per direction, the seq of the next record mark. A skb is walked from
 * that mark record by record (bpf_loop, NFSF_MAX_RECORDS). A skb that ends before the
 * mark is the middle of a record (or a retransmission) and is not parsed; heads that were
 * refused/rewritten are remembered in a small ring so that a retransmission carrying them
 * gets the same treatment. Flows without state (opened before attach, evicted) or with a
 * gap resync on a skb that starts with a plausible record head.
 *
 * A record head cut by the skb end (in its mark, its RPC header or its WRITE args) is
 * carried to the next skb and judged there: nfsf_split.h.
 */
#ifndef NFSF_STREAM_H
#define NFSF_STREAM_H

#include "nfsf_rpc.h"
#include "nfsf_csum.h"

#define NFSF_MAX_RECORDS 1024 /* record heads walked per skb */
#define NFSF_MAX_CHUNKS 32    /* 32 x 2 KB: a whole 64 KB skb of a long reply */
#define NFSF_MAX_PKT (1u << 20) /* offsets beyond this are not walked (BIG TCP: 512 KB) */

enum nfsf_side {
	NFSF_SIDE_CALLS = 0,
	NFSF_SIDE_REPLIES = 1,
};

struct nfsf_walk {
	struct nfsf_ctx *ctx;
	struct nfsf_flow_state *fs; /* NULL for UDP */
	struct nfsf_pkt pkt;
	__u32 side;
	__u32 evflags;
	__u32 drop;    /* a head in this packet was refused with NFSF_ACTION_DROP */
	__u32 stopped; /* the walk lost sync */
	__u32 pad;
};

/* x & mask, in asm so that clang cannot drop a mask it proves redundant. */
static __always_inline __u32 bound_mask(__u32 x, const __u64 mask)
{
	__u64 v = x;

	asm volatile("%[v] &= %[m]" : [v] "+r"(v) : [m] "i"(mask));
	return (__u32)v;
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

static __always_inline void emit(struct nfsf_walk *w, __u32 off, __u32 len, __u32 wire_len,
				 __u32 flags)
{
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_event *ev;

	if (!nfsf_emit_events)
		return;
	if (off >= pkt->pay_end)
		return;
	len = min_u32(len, pkt->pay_end - off);
	if (len > NFSF_EVENT_DATA_MAX)
		len = NFSF_EVENT_DATA_MAX;
	if (len == 0)
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(NFSF_C_EVENTS_LOST);
		return;
	}
	/* NOTE: the size passed to the helper is marked precise and the verifier would
	 * backtrack that to the walk offset, which then differs in every bpf_loop iteration
	 * and the callback never converges. Bouncing it through ringbuf memory (a load the
	 * precision tracking does not follow) and re-bounding it to [1, DATA_MAX] cuts that. */
	ev->len = len;
	len = *(volatile __u32 *)&ev->len;
	len = ((len - 1) & (NFSF_EVENT_DATA_MAX - 1)) + 1;
	if (ctx_load(w->ctx, off, ev->data, len)) {
		bpf_ringbuf_discard(ev, 0);
		return;
	}
	ev->type = pkt->flow.proto == NFSF_IPPROTO_TCP ? NFSF_EV_STREAM : NFSF_EV_DGRAM;
	ev->len = len;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->flow = pkt->flow;
	ev->seq = pkt->flow.proto == NFSF_IPPROTO_TCP ? pkt->seq + (off - pkt->pay_off) : 0;
	ev->wire_len = wire_len < len ? len : wire_len;
	ev->flags = w->evflags | flags | (ev->wire_len > len ? NFSF_EVF_TRUNC : 0);
	if (w->fs && (w->fs->flags & NFSF_FS_NEW_CONN)) {
		ev->flags |= NFSF_EVF_NEW_CONN;
		w->fs->flags &= ~NFSF_FS_NEW_CONN;
	}
	ev->pad = 0;
	/* Calls seen on egress do not wake the agent: the reply that follows (ingress) does,
	 * and the agent then reads both in order. A wakeup per event cost ~3 us each
	 * (bench/bpf_bench.cpp, fresh mode), a self-IPI in a VM.
	 * NOTE: the reply must FORCE the wakeup: the default is adaptive (wake only when the
	 * consumer has caught up to this record), and the unconsumed call before it means it
	 * has not, so nothing would ever wake the agent. */
	bpf_ringbuf_submit(ev, (w->evflags & NFSF_EVF_EGRESS) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
	count(NFSF_C_EVENTS);
}

/* A FIN or RST on a flow: tells the agent to drop the direction's stream state (no data;
 * not urgent, so no wakeup). */
static __always_inline void emit_flow_end(struct nfsf_walk *w)
{
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_event *ev;

	if (!nfsf_emit_events)
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(NFSF_C_EVENTS_LOST);
		return;
	}
	ev->type = NFSF_EV_FLOW_END;
	ev->len = 0;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->flow = pkt->flow;
	ev->seq = pkt->seq;
	ev->wire_len = 0;
	ev->flags = w->evflags | (pkt->tcp_flags & NFSF_TCP_RST ? NFSF_EVF_RST : 0);
	ev->pad = 0;
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	count(NFSF_C_EVENTS);
}

struct nfsf_chunks {
	struct nfsf_walk *w;
	__u32 off;
	__u32 to;
};

/* NOTE: the chunk offset is derived from the loop index, not carried on the stack. */
static long chunk_one(__u32 i, void *arg)
{
	struct nfsf_chunks *c = arg;
	__u32 off;

	if (i >= NFSF_MAX_CHUNKS)
		return 1;
	off = c->off + i * NFSF_EVENT_DATA_MAX;
	if (off >= c->to || off < c->off)
		return 1;
	emit(c->w, off, c->to - off, 0, NFSF_EVF_CHUNK);
	return 0;
}

/* Stream [off, to) in NFSF_EVENT_DATA_MAX chunks (follow-on bytes of a long reply). */
static __always_inline void emit_chunks(struct nfsf_walk *w, __u32 off, __u32 to)
{
	struct nfsf_chunks c = { .w = w, .off = off, .to = min_u32(to, w->pkt.pay_end) };

	if (off < c.to)
		bpf_loop(NFSF_MAX_CHUNKS, chunk_one, &c, 0);
}

/* A parse that ran off the end of this skb while the record goes on: the head is cut (the
 * caller carries it to the next skb, nfsf_split.h). Anything else is counted. */
static __always_inline int head_cut(int ret, __u32 end, __u32 wire_len, __u32 off)
{
	if (ret == -NFSF_C_ERR_SHORT && end < off + wire_len)
		return 1;
	count_err(ret);
	return 0;
}

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

/* The reply to this XID gets NFS3ERR_DQUOT (handle_reply). */
static __always_inline void remember_poisoned(struct nfsf_walk *w, struct nfsf_call *call, __u32 tree)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_poisoned pv = {};

	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	pv.ts_ns = bpf_ktime_get_ns();
	pv.tree = tree;
	bpf_map_update_elem(&poisoned, &xk, &pv, BPF_ANY);
}

/* Overwrite the handle with NFSF_FH_POISON bytes, fix the L4 checksum, remember the XID. */
static __always_inline int poison_write(struct nfsf_walk *w, struct nfsf_call *call,
					struct nfsf_write *wr, __u32 tree)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 len = wr->fh.len, plen;
	__s64 diff;

	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	plen = xdr_pad(len);
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
	 * Same [1, 64] re-bounding of len as in parse_write(). */
	if (ctx_store(w->ctx, wr->fh_off, wr->fh.data, ((len - 1) & (NFSF_FH_MAX - 1)) + 1))
		return -NFSF_C_ERR_STORE;
	if (ctx_l4_csum_apply(w->ctx, pkt->csum_off,
			      csum_diff_at(diff, (wr->fh_off - pkt->l4_off) & 1),
			      pkt->flow.proto == NFSF_IPPROTO_UDP))
		return -NFSF_C_ERR_STORE;
	remember_poisoned(w, call, tree);
	return 0;
}

/*
 * In-kernel handle learning (closes the CREATE-then-WRITE race: the WRITE to a file just
 * created can leave before the agent has read the CREATE reply from the ring buffer).
 * Egress: a LOOKUP/CREATE/MKDIR/SYMLINK/MKNOD call whose directory handle maps to tree t
 * is remembered by (reply flow, XID). Ingress: its successful reply's object handle is
 * added to `handles` -> t before the reply reaches the client, so the first WRITE to it
 * is judged.
 * This covers only children of directories already mapped to a tree; the agent's walk
 * maps every tree root and everything below, and the agent still maps the same handles
 * (same tree) when it reads the replies. The kernel adds with BPF_NOEXIST and never
 * overwrites: the agent mirrors a handle only when its tree changes, so an overwrite
 * (e.g. LOOKUP of a nested tree's root from the outer tree) would stick. "." and ".."
 * are not followed (".." of a tree root lies outside the tree).
 * The TC ingress program handles the replies; XDP (calls on a server) does not record.
 */
/* note_dirop's tail, also used for carried calls (nfsf_split.h): the directory handle and
 * the first 8 bytes of the name (length word + up to 4 bytes) have been read. */
static __always_inline void record_dirop(struct nfsf_walk *w, struct nfsf_call *call,
					 struct nfsf_fh_key *fh, __u32 name[2])
{
#ifndef NFSF_CTX_XDP
	struct nfsf_xid_key xk = {};
	struct nfsf_dirop d = {};
	__u32 *tid, nlen = bpf_ntohl(name[0]);

	tid = bpf_map_lookup_elem(&handles, fh);
	if (!tid || *tid == 0)
		return;
	d.tree = *tid;
	d.proc = call->proc;
	if (nlen == 1 && (name[1] & 0xff) == '.')
		return;
	if (nlen == 2 && (name[1] & 0xffff) == 0x2e2e) /* ".." (little-endian load) */
		return;
	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	if (bpf_map_update_elem(&pending_dirop, &xk, &d, BPF_ANY) == 0)
		count(NFSF_C_DIROP_PENDING);
#endif
}

static __always_inline void note_dirop(struct nfsf_walk *w, struct nfsf_call *call, __u32 end,
				       struct nfsf_fh_key *fh)
{
	__u32 noff = 0, name[2];

	if (parse_fh(w->ctx, call->args, end, fh, &noff))
		return; /* the call's head is emitted as usual; nothing to learn from here */
	/* filename3: length + bytes (a 1- or 2-byte name is padded to 4, so 8 bytes exist) */
	if (load_at(w->ctx, noff, end, name, sizeof(name)))
		return;
	record_dirop(w, call, fh, name);
}

/* The pending dir-op of this reply, taken out of the map whatever the reply says. */
static __always_inline int take_dirop(struct nfsf_xid_key *xk, struct nfsf_dirop *d)
{
	struct nfsf_dirop *pd = bpf_map_lookup_elem(&pending_dirop, xk);

	if (!pd)
		return 0;
	*d = *pd;
	bpf_map_delete_elem(&pending_dirop, xk);
	return 1;
}

/* The reply to a remembered dir-op call: map its new handle (see note_dirop). */
static __always_inline void learn_handle(struct nfsf_walk *w, struct nfsf_reply *r,
					 struct nfsf_xid_key *xk, __u32 end)
{
	struct nfsf_dirop d;
	struct nfsf_fh_key fh;
	__u32 st, follows, fo, next;

	if (!take_dirop(xk, &d) || !r->accepted || d.tree == 0)
		return;
	/* A reply cut by the skb end is carried (nfsf_split.h, learned there). */
	if (load_at(w->ctx, r->res, end, &st, 4))
		goto missed;
	if (st != 0)
		return; /* not NFS3_OK: nothing was created / found */
	fo = r->res + 4;
	if (d.proc != NFS3_LOOKUP) {
		/* post_op_fh3: bool handle_follows, then nfs_fh3 */
		if (load_at(w->ctx, fo, end, &follows, 4))
			goto missed;
		if (follows == 0)
			return;
		if (follows != bpf_htonl(1))
			goto missed;
		fo += 4;
	}
	if (parse_fh(w->ctx, fo, end, &fh, &next))
		goto missed;
	if (bpf_map_update_elem(&handles, &fh, &d.tree, BPF_NOEXIST) == 0)
		count(NFSF_C_HANDLE_LEARNED);
	return;
missed:
	count(NFSF_C_HANDLE_MISSED);
}

/* Overwrite n (4 or 8) bytes at `at` with 0xff (same checksum treatment as the handle): the
 * WRITE's offset or count, when its handle went out in an earlier skb (nfsf_split.h). The
 * server refuses such a WRITE (ganesha: NFS3ERR_INVAL for either, nothing written;
 * tests/lab/poison_probe.py). */
static __always_inline int poison_field(struct nfsf_walk *w, struct nfsf_call *call, __u32 at,
					const __u32 n, __u32 tree)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 old[2] = {}, bad[2] = { 0xffffffffu, 0xffffffffu };
	__s64 diff;

	if (ctx_load(w->ctx, at, old, n))
		return -NFSF_C_ERR_SHORT;
	diff = bpf_csum_diff(old, n, bad, n, 0);
	if (diff < 0 || ctx_store(w->ctx, at, bad, n) ||
	    ctx_l4_csum_apply(w->ctx, pkt->csum_off, csum_diff_at(diff, (at - pkt->l4_off) & 1),
			      pkt->flow.proto == NFSF_IPPROTO_UDP))
		return -NFSF_C_ERR_STORE;
	remember_poisoned(w, call, tree);
	return 0;
}

enum nfsf_refuse_at {
	NFSF_REFUSE_FH = 0,     /* the handle is in this skb at wr->fh_off */
	NFSF_REFUSE_OFFSET = 1, /* not the handle but the 8-byte offset is: at wr->fh_off */
	NFSF_REFUSE_COUNT = 2,  /* only the 4-byte count is: at wr->fh_off */
	NFSF_REFUSE_NONE = 3,   /* none of them: they went out in earlier skbs */
};

/* The verdict on a parsed WRITE head: tree lookup, counters, and (over quota, or past the
 * room bound in tree_room) the refusal. Returns 1 when the WRITE was refused (poisoned or
 * dropped). */
static __always_inline int judge_write(struct nfsf_walk *w, struct nfsf_call *call,
					struct nfsf_write *wr, __u32 mark_seq, int again, int where)
{
	struct nfsf_pkt *pkt = &w->pkt;
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
	if (refused && !again && pkt->flow.proto == NFSF_IPPROTO_TCP)
		ring_push(w->fs, mark_seq);
	return refused;
}

/* A NFS READDIR/READDIRPLUS call: its reply is streamed whole to the agent. */
static __always_inline void want_reply(struct nfsf_walk *w, struct nfsf_call *call)
{
	struct nfsf_xid_key xk = {};

	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	bpf_map_update_elem(&want_xids, &xk, &call->proc, BPF_ANY);
}

static __always_inline int is_nfs3(const struct nfsf_call *call)
{
	return call->prog == NFS_PROG && call->vers == NFS_V3;
}

/* A record of at most NFSF_SPLIT_MAX bytes (LOOKUP, CREATE, a WRITE reply...) cut by the
 * skb end: carried whole (nfsf_split.h) so that the agent gets it whole. */
static __always_inline int small_record_cut(int is_tcp, __u32 off, __u32 end, __u32 wire_len)
{
	return is_tcp && end < off + wire_len && wire_len <= NFSF_SPLIT_MAX;
}

/*
 * One call head at mark offset `off` (TCP; for UDP off = payload start and no mark).
 * again: a remembered head seen again (retransmission): verdict only, no counters/events.
 * Returns 1, having counted nothing, when the head is cut by the skb end (TCP: the caller
 * carries it to the next skb) or, for a small record (a LOOKUP, a CREATE...), when the
 * record is: the agent gets those whole.
 */
static __always_inline int handle_call(struct nfsf_walk *w, __u32 off, __u32 m, __u32 end,
				       __u32 wire_len, __u32 mark_seq, int again)
{
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_call call;
	struct nfsf_write wr;
	int ret, is_tcp = pkt->flow.proto == NFSF_IPPROTO_TCP;

	ret = parse_call(w->ctx, m, end, &call);
	if (ret)
		return again ? 0 : head_cut(ret, end, wire_len, off) && is_tcp;
	if (!is_nfs3(&call) || call.proc != NFS3_WRITE) {
		if (again)
			return 0;
		if (small_record_cut(is_tcp, off, end, wire_len))
			return 1;
		count(NFSF_C_RPC_CALLS);
		if (is_nfs3(&call) && (call.proc == NFS3_READDIR || call.proc == NFS3_READDIRPLUS))
			want_reply(w, &call);
		if (is_nfs3(&call) && is_dirop(call.proc))
			note_dirop(w, &call, end, &wr.fh); /* wr.fh: scratch (stack budget) */
		emit(w, off, end - off, wire_len, is_tcp ? NFSF_EVF_REC_HEAD : 0);
		return 0;
	}
	ret = parse_write(w->ctx, call.args, end, &wr);
	if (ret) {
		if (again)
			return 0;
		if (head_cut(ret, end, wire_len, off) && is_tcp)
			return 1;
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_WRITE_CALLS);
		return 0;
	}
	if (!again) {
		count(NFSF_C_RPC_CALLS);
		count(NFSF_C_WRITE_CALLS);
		emit(w, off, wr.head_end - off, wire_len, is_tcp ? NFSF_EVF_REC_HEAD : 0);
	}
	judge_write(w, &call, &wr, mark_seq, again, NFSF_REFUSE_FH);
	return 0;
}

/* Reply to a poisoned WRITE: its nfsstat3 at `at` (in this skb) becomes NFS3ERR_DQUOT. */
static __always_inline void rewrite_status(struct nfsf_walk *w, __u32 at, __u32 end, __u32 mark_seq,
					   int again)
{
	struct nfsf_pkt *pkt = &w->pkt;
	__u32 st, nst = bpf_htonl(NFSF_NFS3ERR_DQUOT), is_tcp = pkt->flow.proto == NFSF_IPPROTO_TCP;
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
		    ctx_l4_csum_apply(w->ctx, pkt->csum_off,
				      csum_diff_at(diff, (at - pkt->l4_off) & 1), !is_tcp)) {
			count(NFSF_C_ERR_STORE);
			return;
		}
	}
	if (!again) {
		count(NFSF_C_REPLY_REWRITTEN);
		if (is_tcp)
			ring_push(w->fs, mark_seq);
	}
}

/* One reply head. Rewrites nfsstat3 to NFS3ERR_DQUOT for XIDs of poisoned WRITEs.
 * Returns 1 when the head, or a small record, is cut by the skb end (see handle_call). */
static __always_inline int handle_reply(struct nfsf_walk *w, __u32 off, __u32 m, __u32 end,
					__u32 wire_len, __u32 mark_seq, int again)
{
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_xid_key xk = {};
	struct nfsf_reply r;
	__u32 want = 0, is_tcp = pkt->flow.proto == NFSF_IPPROTO_TCP;
	int ret;

	ret = parse_reply(w->ctx, m, end, &r);
	if (ret)
		return again ? 0 : head_cut(ret, end, wire_len, off) && is_tcp;
	xk.flow = pkt->flow;
	xk.xid = r.xid;
	if (!again && small_record_cut(is_tcp, off, end, wire_len)) {
		/* carried for the agent; a poisoned XID's status already in this skb is fixed now */
		if (r.accepted && r.res + 4 <= end && bpf_map_lookup_elem(&poisoned, &xk))
			rewrite_status(w, r.res, end, mark_seq, 0);
		return 1;
	}
	if (!again) {
		count(NFSF_C_RPC_REPLIES);
		want = bpf_map_lookup_elem(&want_xids, &xk) != NULL;
		emit(w, off, end - off, wire_len, is_tcp ? NFSF_EVF_REC_HEAD : 0);
		if (want) {
			bpf_map_delete_elem(&want_xids, &xk);
			emit_chunks(w, off + NFSF_EVENT_DATA_MAX, off + wire_len);
			if (is_tcp && w->fs) {
				w->fs->emit_until = mark_seq + wire_len;
				w->fs->flags |= NFSF_FS_STREAM;
			}
		}
		learn_handle(w, &r, &xk, end);
	}
	if (r.accepted && bpf_map_lookup_elem(&poisoned, &xk))
		rewrite_status(w, r.res, end, mark_seq, again);
	return 0;
}

static __always_inline int handle_head(struct nfsf_walk *w, __u32 off, __u32 m, __u32 end,
				       __u32 wire_len, __u32 mark_seq, int again, const int side)
{
	if (side == NFSF_SIDE_CALLS)
		return handle_call(w, off, m, end, wire_len, mark_seq, again);
	return handle_reply(w, off, m, end, wire_len, mark_seq, again);
}

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
	    handle_head(w, off, off + 4, min_u32(rec_end, end), 4 + len, mseq, 0, side))
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
	handle_head(w, off, off + 4, min_u32(off + 4 + mark, pkt->pay_end), 4 + mark, r, 1, side);
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

/* UDP: one datagram = one RPC message, no record mark. */
static long dgram_calls(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	handle_head(w, w->pkt.pay_off, w->pkt.pay_off, w->pkt.pay_end,
		    w->pkt.pay_end - w->pkt.pay_off, 0, 0, NFSF_SIDE_CALLS);
	return 1;
}

static long dgram_replies(__u32 i, void *arg)
{
	struct nfsf_walk *w = arg;

	handle_head(w, w->pkt.pay_off, w->pkt.pay_off, w->pkt.pay_end,
		    w->pkt.pay_end - w->pkt.pay_off, 0, 0, NFSF_SIDE_REPLIES);
	return 1;
}

/* The entry point's body: returns NFSF_VERDICT_PASS or NFSF_VERDICT_DROP. carried: this is
 * a carry program, tail-called for an skb that completes a cut head (nfsf_split.h). */
static __always_inline int nfsf_handle(struct nfsf_ctx *ctx, const int side, __u32 evflags,
				       const int carried)
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

#endif /* NFSF_STREAM_H */
