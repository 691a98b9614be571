/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The state one packet is handled with: its parsed L2-L4 summary, its flow's record state
 * (TCP), which side of the conversation the program sees, and what the walk decided. Every
 * later stage (events, verdict, learning, heads, records) takes a struct nfsf_walk.
 */
#ifndef NFSF_WALK_H
#define NFSF_WALK_H

#include "nfsf_parse.h"

#define NFSF_MAX_RECORDS 1024	/* record heads walked per skb */
#define NFSF_MAX_CHUNKS 32	/* 32 x 2 KB: a whole 64 KB skb of a long reply */
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

static __always_inline int is_tcp(const struct nfsf_walk *w)
{
	return w->pkt.flow.proto == NFSF_IPPROTO_TCP;
}

#endif /* NFSF_WALK_H */
