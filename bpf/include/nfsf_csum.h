/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental L4 checksum updates (RFC 1624) for in-place rewrites of 4-byte multiples.
 *
 * The diff comes from bpf_csum_diff() over the old and new words; it is a sum of 16-bit
 * words aligned to the rewritten bytes. The TCP/UDP checksum sums 16-bit words aligned to
 * the L4 header, so when the rewritten bytes start at an odd distance from it (a TCP
 * segment may start at any byte of the RPC stream) the folded diff is byte-swapped first.
 *
 * TC: bpf_l4_csum_replace() with a diff (size 0) and no BPF_F_PSEUDO_HDR. On a
 * CHECKSUM_PARTIAL skb (egress with offload) the kernel leaves the field alone, which is
 * right: it holds only the pseudo-header sum and the payload is summed at transmit time.
 * Otherwise it folds the diff into the field. XDP: the same arithmetic done by hand.
 */
#ifndef NFSF_CSUM_H
#define NFSF_CSUM_H

#include "nfsf_ctx.h"

static __always_inline __u32 csum_fold16(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

/* diff: bpf_csum_diff(old, n, new, n, 0); odd: bytes start at an odd offset from L4. */
static __always_inline __u32 csum_diff_at(__s64 diff, int odd)
{
	__u32 d = csum_fold16((__u32)diff);

	if (odd)
		d = ((d & 0xff) << 8) | (d >> 8);
	return d;
}

#ifdef NFSF_CTX_XDP
static __always_inline int ctx_l4_csum_apply(struct xdp_md *ctx, __u32 csum_off, __u32 diff, int is_udp)
{
	__u16 sum;
	__u32 s;

	if (ctx_load(ctx, csum_off, &sum, 2))
		return -1;
	if (is_udp && sum == 0)
		return 0; /* UDP over IPv4 without a checksum */
	s = csum_fold16((__u32)(__u16)~sum + diff);
	sum = (__u16)~s;
	if (is_udp && sum == 0)
		sum = 0xffff;
	return ctx_store(ctx, csum_off, &sum, 2);
}
#else
static __always_inline int ctx_l4_csum_apply(struct __sk_buff *ctx, __u32 csum_off, __u32 diff, int is_udp)
{
	return (int)bpf_l4_csum_replace(ctx, csum_off, 0, diff, is_udp ? BPF_F_MARK_MANGLED_0 : 0);
}
#endif

#endif /* NFSF_CSUM_H */
