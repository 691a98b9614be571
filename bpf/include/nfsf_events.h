/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring buffer events to the agent: RPC bytes (record heads, whole small records, chunks of
 * a streamed READDIR reply) and flow ends. Events of one program go out in the order the
 * packets came, and the agent reassembles them per flow and direction.
 */
#ifndef NFSF_EVENTS_H
#define NFSF_EVENTS_H

#include "nfsf_walk.h"

/* Whether the event at `now` wakes the agent. A wakeup is a self-IPI (irq_work), ~5 us in a
 * VM (bench/bpf_bench.cpp, fresh mode: a WRITE reply 0.3 us without, 5.5 us with), so:
 *   - calls never wake it (egress on a client, ingress on a server): the reply that
 *     follows does, and the agent then reads both in order;
 *   - a reply wakes it when nfsf_wake_ns has passed since the last wakeup, or when the ring
 *     is 1/8 full; otherwise the agent, which after a busy poll polls again within
 *     nfsf_wake_ns (src/agent.cpp), picks it up then. nfsf_wake_ns = 0: every reply wakes.
 * NOTE: a wakeup must be FORCED: the default is adaptive (wake only when the consumer has
 * caught up to this record), and the unconsumed call before a reply means it has not, so
 * nothing would ever wake the agent. */
static __always_inline __u64 event_wakeup(const struct nfsf_walk *w, __u64 now)
{
	__u32 zero = 0;
	__u64 *last;

	if (w->side == NFSF_SIDE_CALLS)
		return BPF_RB_NO_WAKEUP;
	last = bpf_map_lookup_elem(&last_wake, &zero);
	if (nfsf_wake_ns && last && now - *last < nfsf_wake_ns &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 8)
		return BPF_RB_NO_WAKEUP;
	if (last)
		*last = now; /* racy across CPUs: at worst one wakeup more */
	count(NFSF_C_EVENTS_WAKEUP);
	return BPF_RB_FORCE_WAKEUP;
}

/* A ring buffer slot for one event, or NULL (counted as lost). */
static __always_inline struct nfsf_event *event_reserve(void)
{
	struct nfsf_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev)
		count(NFSF_C_EVENTS_LOST);
	return ev;
}

/* Everything of an event but its data; len bytes of data, of a record of wire_len bytes
 * whose byte 0 is at TCP seq (0 for UDP). */
static __always_inline void event_fill(struct nfsf_walk *w, struct nfsf_event *ev, __u32 len, __u32 seq,
				       __u32 wire_len, __u32 flags)
{
	ev->type = is_tcp(w) ? NFSF_EV_STREAM : NFSF_EV_DGRAM;
	ev->len = len;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->flow = w->pkt.flow;
	ev->seq = is_tcp(w) ? seq : 0;
	ev->wire_len = wire_len < len ? len : wire_len;
	ev->flags = w->evflags | flags | (ev->wire_len > len ? NFSF_EVF_TRUNC : 0) |
		    (w->side == NFSF_SIDE_REPLIES ? NFSF_EVF_REPLY : 0);
	if (w->fs && (w->fs->flags & NFSF_FS_NEW_CONN)) {
		ev->flags |= NFSF_EVF_NEW_CONN;
		w->fs->flags &= ~NFSF_FS_NEW_CONN;
	}
	ev->pad = 0;
}

/* [off, off + len) of the packet (clipped to the payload and NFSF_EVENT_DATA_MAX). */
static __always_inline void emit(struct nfsf_walk *w, __u32 off, __u32 len, __u32 wire_len, __u32 flags)
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
	ev = event_reserve();
	if (!ev)
		return;
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
	event_fill(w, ev, len, pkt->seq + (off - pkt->pay_off), wire_len, flags);
	bpf_ringbuf_submit(ev, event_wakeup(w, ev->ts_ns));
	count(NFSF_C_EVENTS);
}

/* The first len bytes of a head buffer's record as one record-head event; the buffer's own
 * event header is filled in and the whole event copied out. */
static __always_inline void emit_head_buf(struct nfsf_walk *w, struct nfsf_split *sp, __u32 len)
{
	struct nfsf_event *ev = &sp->ev;
	__u32 size;

	if (!nfsf_emit_events || len == 0)
		return;
	if (len > NFSF_EVENT_DATA_MAX)
		len = NFSF_EVENT_DATA_MAX;
	event_fill(w, ev, len, sp->seq, sp->wire_len, NFSF_EVF_REC_HEAD);
	size = ((len - 1) & (NFSF_EVENT_DATA_MAX - 1)) + 1 + offsetof(struct nfsf_event, data);
	if (bpf_ringbuf_output(&events, ev, size, event_wakeup(w, ev->ts_ns)))
		count(NFSF_C_EVENTS_LOST);
	else
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
	ev = event_reserve();
	if (!ev)
		return;
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
	struct nfsf_chunks c = {.w = w, .off = off, .to = min_u32(to, w->pkt.pay_end)};

	if (off < c.to)
		bpf_loop(NFSF_MAX_CHUNKS, chunk_one, &c, 0);
}

#endif /* NFSF_EVENTS_H */
