/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The context layer: the parser in nfsf_*.h is written against these few functions so
 * that the same code compiles for TC (struct __sk_buff) and XDP (struct xdp_md).
 * Define NFSF_CTX_XDP before including to get the XDP flavour.
 *
 * RPC bytes are read through the load/store helpers rather than direct packet pointers:
 * record heads can sit anywhere in a 64 KB GSO skb, mostly in its paged part that direct
 * access cannot reach, and it means no pointer has to be re-derived after a helper changes
 * the packet. The L2-L4 headers, which the stack keeps in the linear part, are read
 * directly when they are there (ctx_hdr_load), saving a helper call per header.
 */
#ifndef NFSF_CTX_H
#define NFSF_CTX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifdef NFSF_CTX_XDP
#define nfsf_ctx xdp_md
#define NFSF_VERDICT_PASS 2 /* XDP_PASS */
#define NFSF_VERDICT_DROP 1 /* XDP_DROP */

static __always_inline __u32 ctx_len(struct xdp_md *ctx)
{
	return (__u32)bpf_xdp_get_buff_len(ctx);
}

static __always_inline int ctx_load(struct xdp_md *ctx, __u32 off, void *to, __u32 len)
{
	return (int)bpf_xdp_load_bytes(ctx, off, to, len);
}

static __always_inline int ctx_store(struct xdp_md *ctx, __u32 off, void *from, __u32 len)
{
	return (int)bpf_xdp_store_bytes(ctx, off, from, len);
}
#else
#define nfsf_ctx __sk_buff
#define NFSF_VERDICT_PASS 0 /* TC_ACT_OK */
#define NFSF_VERDICT_DROP 2 /* TC_ACT_SHOT */

static __always_inline __u32 ctx_len(struct __sk_buff *ctx)
{
	return ctx->len;
}

static __always_inline int ctx_load(struct __sk_buff *ctx, __u32 off, void *to, __u32 len)
{
	return (int)bpf_skb_load_bytes(ctx, off, to, len);
}

/* No BPF_F_RECOMPUTE_CSUM: every store is paired with a checksum-field update of the
 * opposite sum (nfsf_csum.h), so the one's complement sum over the packet, and with it a
 * CHECKSUM_COMPLETE skb->csum, stays as it was. */
static __always_inline int ctx_store(struct __sk_buff *ctx, __u32 off, void *from, __u32 len)
{
	return (int)bpf_skb_store_bytes(ctx, off, from, len, 0);
}
#endif

#define NFSF_HDR_DIRECT_MAX 256 /* header offsets read directly (see ctx_hdr_load) */

/* n (constant) bytes at off: straight from the linear data when they lie within it and
 * off < NFSF_HDR_DIRECT_MAX, else through ctx_load. Used for the L2-L4 headers only. */
static __always_inline int ctx_hdr_load(struct nfsf_ctx *ctx, __u32 off, void *to, const __u32 n)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;

	if (off < NFSF_HDR_DIRECT_MAX) {
		void *p = data + (off & (NFSF_HDR_DIRECT_MAX - 1));

		if (p + n <= data_end) {
			__builtin_memcpy(to, p, n);
			return 0;
		}
	}
	return ctx_load(ctx, off, to, n);
}

#endif /* NFSF_CTX_H */
