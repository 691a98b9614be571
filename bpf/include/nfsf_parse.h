/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet (+ up to two VLAN tags in the data), IPv4/IPv6, TCP/UDP, with a
 * bounds-checked cursor: every read checks the cursor's end (the IP length, not the
 * frame length, so Ethernet padding is never parsed) and every variable-length header is
 * checked twice, fixed part first, then its real length.
 */
#ifndef NFSF_PARSE_H
#define NFSF_PARSE_H

#include "nfsf_maps.h"

#define NFSF_ETH_P_IP 0x0800
#define NFSF_ETH_P_IPV6 0x86DD
#define NFSF_ETH_P_8021Q 0x8100
#define NFSF_ETH_P_8021AD 0x88A8
#define NFSF_IPPROTO_TCP 6
#define NFSF_IPPROTO_UDP 17
#define NFSF_TCP_FIN 0x01
#define NFSF_TCP_SYN 0x02
#define NFSF_TCP_RST 0x04

struct nfsf_cursor {
	__u32 off;
	__u32 end;
};

/* Read n (constant) header bytes at the cursor and advance; -NFSF_C_ERR_SHORT past the end. */
static __always_inline int cur_pull(struct nfsf_ctx *ctx, struct nfsf_cursor *c, void *to, const __u32 n)
{
	if (c->off + n > c->end || c->off + n < c->off)
		return -NFSF_C_ERR_SHORT;
	if (ctx_hdr_load(ctx, c->off, to, n))
		return -NFSF_C_ERR_SHORT;
	c->off += n;
	return 0;
}

/* Read n bytes at off (absolute) without a cursor, bounded by end. */
static __always_inline int load_at(struct nfsf_ctx *ctx, __u32 off, __u32 end, void *to, __u32 n)
{
	if (off + n > end || off + n < off)
		return -NFSF_C_ERR_SHORT;
	if (ctx_load(ctx, off, to, n))
		return -NFSF_C_ERR_SHORT;
	return 0;
}

/* What the L2-L4 parse hands to the RPC layer. */
struct nfsf_pkt {
	struct nfsf_flow_key flow;
	__u32 pay_off; /* offset of the L4 payload */
	__u32 pay_end; /* offset just past the L4 payload */
	__u32 l4_off;
	__u32 csum_off; /* offset of the TCP/UDP checksum field */
	__u32 seq;	/* TCP: host order */
	__u8 tcp_flags;
	__u8 pad[3];
};

struct nfsf_vlan {
	__be16 tci;
	__be16 proto;
};

struct nfsf_ip6_opt {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off; /* only meaningful for the fragment header */
};

/*
 * Returns 1 when pkt describes a TCP/UDP packet, 0 for other traffic (pass silently),
 * -reason when the headers are malformed.
 * NOTE: a global function, so the verifier checks it once and its callers see one state
 * after the call. Inlined, each header read's two paths (direct or helper) left the packet
 * offsets with different known ranges, and every path re-verified the whole record walk:
 * 213k -> 640k instructions processed.
 */
__noinline int parse_l2_l4(struct nfsf_ctx *ctx, struct nfsf_pkt *pkt)
{
	struct nfsf_cursor c = {.off = 0, .end = 0};
	struct ethhdr eth;
	__u16 proto;
	__u8 l4proto;
	int i;

	if (!ctx || !pkt)
		return 0;
	c.end = ctx_len(ctx);
	if (cur_pull(ctx, &c, &eth, sizeof(eth)))
		return 0; /* not even Ethernet: not ours */
	proto = bpf_ntohs(eth.h_proto);
#pragma unroll
	for (i = 0; i < 2; i++) {
		struct nfsf_vlan v;

		if (proto != NFSF_ETH_P_8021Q && proto != NFSF_ETH_P_8021AD)
			break;
		if (cur_pull(ctx, &c, &v, sizeof(v)))
			return -NFSF_C_ERR_SHORT;
		proto = bpf_ntohs(v.proto);
	}

	if (proto == NFSF_ETH_P_IP) {
		struct iphdr ip;
		__u32 ihl, tot;

		if (cur_pull(ctx, &c, &ip, sizeof(ip)))
			return -NFSF_C_ERR_SHORT;
		ihl = ip.ihl * 4;
		if (ip.version != 4 || ihl < sizeof(ip))
			return -NFSF_C_ERR_BAD_IP;
		tot = bpf_ntohs(ip.tot_len);
		/* NOTE: tot_len 0 is how BIG TCP GSO skbs say "longer than 64K". */
		if (tot == 0)
			tot = c.end - (c.off - sizeof(ip));
		if (tot < ihl)
			return -NFSF_C_ERR_BAD_IP;
		if (c.off - sizeof(ip) + tot < c.end)
			c.end = c.off - sizeof(ip) + tot;
		c.off += ihl - sizeof(ip);
		if (c.off > c.end)
			return -NFSF_C_ERR_SHORT;
		if (bpf_ntohs(ip.frag_off) & 0x1fff) {
			count(NFSF_C_NOT_FIRST_FRAG);
			return 0;
		}
		__builtin_memcpy(pkt->flow.saddr, &ip.saddr, 4);
		__builtin_memcpy(pkt->flow.daddr, &ip.daddr, 4);
		pkt->flow.family = 4;
		l4proto = ip.protocol;
	} else if (proto == NFSF_ETH_P_IPV6) {
		/* version/class/label, payload_len, nexthdr, hop_limit; then saddr and daddr
		 * (adjacent, as in the flow key) straight into the key */
		__u32 fixed[2], plen;

		if (cur_pull(ctx, &c, fixed, sizeof(fixed)) || cur_pull(ctx, &c, pkt->flow.saddr, 32))
			return -NFSF_C_ERR_SHORT;
		if ((((__u8 *)fixed)[0] >> 4) != 6)
			return -NFSF_C_ERR_BAD_IP;
		plen = bpf_ntohs(((__u16 *)fixed)[2]);
		if (plen && c.off + plen < c.end) /* 0: jumbogram / BIG TCP */
			c.end = c.off + plen;
		pkt->flow.family = 6;
		l4proto = ((__u8 *)fixed)[6];
#pragma unroll
		for (i = 0; i < 4; i++) {
			struct nfsf_ip6_opt o;

			if (l4proto != 0 && l4proto != 43 && l4proto != 60 && l4proto != 44)
				break;
			if (c.off + sizeof(o) > c.end || ctx_hdr_load(ctx, c.off, &o, sizeof(o)))
				return -NFSF_C_ERR_SHORT;
			if (l4proto == 44) { /* fragment header: 8 bytes */
				if (bpf_ntohs(o.frag_off) & 0xfff8) {
					count(NFSF_C_NOT_FIRST_FRAG);
					return 0;
				}
				c.off += 8;
			} else {
				c.off += (o.hdrlen + 1) * 8;
			}
			l4proto = o.nexthdr;
		}
	} else {
		return 0;
	}

	pkt->flow.proto = l4proto;
	pkt->l4_off = c.off;
	if (l4proto == NFSF_IPPROTO_TCP) {
		struct tcphdr th;
		__u32 doff;

		if (cur_pull(ctx, &c, &th, sizeof(th)))
			return -NFSF_C_ERR_SHORT;
		doff = th.doff * 4;
		if (doff < sizeof(th))
			return -NFSF_C_ERR_BAD_TCP;
		c.off += doff - sizeof(th);
		if (c.off > c.end)
			return -NFSF_C_ERR_SHORT;
		pkt->flow.sport = th.source;
		pkt->flow.dport = th.dest;
		pkt->seq = bpf_ntohl(th.seq);
		pkt->tcp_flags = ((__u8 *)&th)[13];
		pkt->csum_off = pkt->l4_off + 16;
	} else if (l4proto == NFSF_IPPROTO_UDP) {
		struct udphdr uh;
		__u32 ulen;

		if (cur_pull(ctx, &c, &uh, sizeof(uh)))
			return -NFSF_C_ERR_SHORT;
		ulen = bpf_ntohs(uh.len);
		/* NOTE: the first IP fragment of a big datagram carries less than uh.len */
		if (ulen >= sizeof(uh) && pkt->l4_off + ulen < c.end)
			c.end = pkt->l4_off + ulen;
		pkt->flow.sport = uh.source;
		pkt->flow.dport = uh.dest;
		pkt->seq = 0;
		pkt->csum_off = pkt->l4_off + 6;
	} else {
		return 0;
	}
	pkt->pay_off = c.off;
	pkt->pay_end = c.end;
	return 1;
}

/*
 * The common case inline: Ethernet + IPv4 without options + TCP, headers in the linear
 * data. Returns 1 as parse_l2_l4() would, -1 for anything else (then parse_l2_l4() runs).
 * NOTE: the global parse_l2_l4() costs a call and, on this CPU, a return thunk (~11 ns a
 * packet); this path keeps the per-segment cost down and adds one verifier path only.
 */
static __always_inline int parse_fast(struct nfsf_ctx *ctx, struct nfsf_pkt *pkt)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *th = data + sizeof(*eth) + sizeof(*ip);
	__u32 tot, doff, end, len = ctx_len(ctx);

	if ((void *)(th + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(NFSF_ETH_P_IP) || *(__u8 *)ip != 0x45 ||
	    ip->protocol != NFSF_IPPROTO_TCP || (ip->frag_off & bpf_htons(0x1fff)))
		return -1;
	tot = bpf_ntohs(ip->tot_len);
	doff = th->doff * 4;
	if (tot < sizeof(*ip) + sizeof(*th) || doff < sizeof(*th))
		return -1; /* includes BIG TCP's tot_len 0: the general path */
	end = sizeof(*eth) + tot;
	if (end > len)
		end = len;
	if (sizeof(*eth) + sizeof(*ip) + doff > end)
		return -1;
	__builtin_memcpy(pkt->flow.saddr, &ip->saddr, 4);
	__builtin_memcpy(pkt->flow.daddr, &ip->daddr, 4);
	pkt->flow.family = 4;
	pkt->flow.proto = NFSF_IPPROTO_TCP;
	pkt->flow.sport = th->source;
	pkt->flow.dport = th->dest;
	pkt->seq = bpf_ntohl(th->seq);
	pkt->tcp_flags = ((__u8 *)th)[13];
	pkt->l4_off = sizeof(*eth) + sizeof(*ip);
	pkt->csum_off = pkt->l4_off + 16;
	pkt->pay_off = pkt->l4_off + doff;
	pkt->pay_end = end;
	return 1;
}

static __always_inline int rpc_port_set(__u16 port)
{
	__u32 word = port >> 5, *bits = bpf_map_lookup_elem(&rpc_ports, &word);

	return bits && (*bits & (1u << (port & 31)));
}

/* An NFS flow (port nfsf_nfs_port on either side) or another RPC port the agent set. */
static __always_inline int is_rpc_flow(const struct nfsf_pkt *pkt)
{
	__u16 sp = bpf_ntohs(pkt->flow.sport), dp = bpf_ntohs(pkt->flow.dport);

	if (sp == nfsf_nfs_port || dp == nfsf_nfs_port)
		return 1;
	if (rpc_port_set(sp) || rpc_port_set(dp))
		return 2;
	return 0;
}

#endif /* NFSF_PARSE_H */
