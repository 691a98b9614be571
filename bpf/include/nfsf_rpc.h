/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ONC RPC (RFC 5531) call/reply headers and the NFSv3 (RFC 1813) WRITE head: one parser
 * over a byte source (struct nfsf_src) that is either
 *   - the packet (buf = 0): head offset x is at skb offset pos + x, read with the ctx
 *     helpers; a head inside the skb being handled;
 *   - a head buffer (buf = 1): the flow's `split_heads` entry, whose ev.data holds the
 *     record from offset 0 (the mark, then the message at 4); a head that an skb end cut,
 *     completed with the next skb's first bytes (nfsf_split.h).
 * `buf` is a constant at every call site, so each program's verifier walks one path.
 * Offsets are head offsets and `total` is how many bytes of the head the source holds.
 * (Copying every head into a per-CPU buffer with one load and parsing only buffers was
 * measured too, and was 7-14% slower per head: docs/benchmarks.md.)
 */
#ifndef NFSF_RPC_H
#define NFSF_RPC_H

#include "nfsf_walk.h"

#define RPC_CALL 0
#define RPC_REPLY 1
#define RPC_VERS 2
#define RPC_AUTH_MAX 400       /* RFC 5531: opaque_auth body <= 400 bytes */
#define RPC_REC_MIN 24	       /* xid + mtype + reply_stat + ... */
#define RPC_REC_MAX (1u << 24) /* sanity bound on one fragment (Linux: ~1 MB + header) */
#define NFS_PROG 100003
#define NFS_V3 3
#define NFS3_LOOKUP 3
#define NFS3_WRITE 7
#define NFS3_CREATE 8
#define NFS3_MKDIR 9
#define NFS3_SYMLINK 10
#define NFS3_MKNOD 11
#define NFS3_READDIR 16
#define NFS3_READDIRPLUS 17

/* Bytes of a head buffer that are parsed. The longest a parser reads: mark, call header, two
 * maximal auths, a maximal handle, then WRITE's offset/count/stable/length (or a dir-op's
 * name word and 4 name bytes); a reply reads far less. */
#define NFSF_HEAD_MAX (2 * NFSF_SPLIT_MAX)
_Static_assert(4 + 24 + 2 * (8 + RPC_AUTH_MAX) + 4 + NFSF_FH_MAX + 20 <= NFSF_HEAD_MAX,
	       "a maximal WRITE head fits the head buffer");
_Static_assert(NFSF_HEAD_MAX + NFSF_FH_MAX <= NFSF_EVENT_DATA_MAX,
	       "src_load/buf_read_fh may read a handle's length past NFSF_HEAD_MAX");

static __always_inline __u32 xdr_pad(__u32 n)
{
	return (n + 3) & ~3u;
}

struct nfsf_src {
	struct nfsf_ctx *ctx;  /* the packet (buf = 0) */
	struct nfsf_split *sp; /* the head buffer (buf = 1) */
	__u32 pos;	       /* packet: skb offset of head offset 0 */
	__u32 total;	       /* head bytes the source holds */
};

/* n (constant) bytes at head offset off. */
static __always_inline int src_load(const struct nfsf_src *s, const int buf, __u32 off, void *to,
				    const __u32 n)
{
	if (!buf)
		return load_at(s->ctx, s->pos + off, s->pos + s->total, to, n);
	if (off + n > s->total || off >= NFSF_HEAD_MAX)
		return -NFSF_C_ERR_SHORT;
	/* NOTE: bound_mask: clang drops a plain mask it proves redundant after the check above,
	 * and 6.1's verifier does not carry that bound to the pointer (6.18's did) */
	__builtin_memcpy(to, s->sp->ev.data + bound_mask(off, NFSF_HEAD_MAX - 1), n);
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

	if (!sp || !to || off >= NFSF_HEAD_MAX)
		return -1;
	if (bpf_dynptr_from_mem(sp->ev.data, NFSF_HEAD_MAX + NFSF_FH_MAX, 0, &dp))
		return -1;
	return (int)bpf_dynptr_read(to, ((len - 1) & (NFSF_FH_MAX - 1)) + 1, &dp, off, 0);
}

/* The len (1..64, checked by the caller) handle bytes at head offset off. */
static __always_inline int src_read_fh(const struct nfsf_src *s, const int buf, __u32 off, __u8 *to,
				       __u32 len)
{
	if (off + len > s->total)
		return -NFSF_C_ERR_SHORT;
	if (buf)
		return buf_read_fh(s->sp, off, to, len) ? -NFSF_C_ERR_SHORT : 0;
	/* NOTE: clang merges the caller's two range checks into one unsigned compare and the
	 * verifier then sees len in [0, 64]; recompute it in a form it can bound to [1, 64]. */
	return ctx_load(s->ctx, s->pos + off, to, ((len - 1) & (NFSF_FH_MAX - 1)) + 1) ? -NFSF_C_ERR_SHORT
										       : 0;
}

struct nfsf_call {
	__u32 xid; /* wire order */
	__u32 prog;
	__u32 vers;
	__u32 proc;
	__u32 args; /* head offset of the procedure arguments */
};

/* The call header at head offset m: xid, mtype, rpcvers, prog, vers, proc, cred, verf. */
static __always_inline int parse_call(const struct nfsf_src *s, const int buf, __u32 m,
				      struct nfsf_call *call)
{
	__u32 h[6], a[2], off = m + 24, len;
	int i;

	if (src_load(s, buf, m, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_CALL) || h[2] != bpf_htonl(RPC_VERS))
		return -NFSF_C_ERR_BAD_RPC;
	call->xid = h[0];
	call->prog = bpf_ntohl(h[3]);
	call->vers = bpf_ntohl(h[4]);
	call->proc = bpf_ntohl(h[5]);
#pragma unroll
	for (i = 0; i < 2; i++) { /* cred, verf: flavor, length, body */
		if (src_load(s, buf, off, a, sizeof(a)))
			return -NFSF_C_ERR_SHORT;
		len = bpf_ntohl(a[1]);
		if (len > RPC_AUTH_MAX)
			return -NFSF_C_ERR_BAD_RPC;
		off += sizeof(a) + xdr_pad(len);
	}
	call->args = off;
	return 0;
}

static __always_inline int is_nfs3(const struct nfsf_call *call)
{
	return call->prog == NFS_PROG && call->vers == NFS_V3;
}

/* Calls whose args start with diropargs3 and whose successful reply names a (new) object. */
static __always_inline int is_dirop(__u32 proc)
{
	return proc == NFS3_LOOKUP || (proc >= NFS3_CREATE && proc <= NFS3_MKNOD);
}

/* One nfs_fh3 (length word + bytes) at off into fh (unused bytes zero); *next = the
 * offset past its XDR padding. */
static __always_inline int parse_fh(const struct nfsf_src *s, const int buf, __u32 off,
				    struct nfsf_fh_key *fh, __u32 *next)
{
	__u32 len;

	__builtin_memset(fh, 0, sizeof(*fh));
	if (src_load(s, buf, off, &len, 4))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(len);
	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	if (src_read_fh(s, buf, off + 4, fh->data, len))
		return -NFSF_C_ERR_SHORT;
	fh->len = len;
	*next = off + 4 + xdr_pad(len);
	return 0;
}

struct nfsf_write {
	struct nfsf_fh_key fh;
	__u32 fh_off;	/* head offset of the handle bytes (later: the skb offset to refuse at) */
	__u32 count;	/* WRITE3args.count */
	__u32 head_end; /* head offset just past the data length word */
};

/* WRITE3args up to the opaque data: fh, offset, count, stable, data length. */
static __always_inline int parse_write(const struct nfsf_src *s, const int buf, __u32 off,
				       struct nfsf_write *wr)
{
	__u32 tail[5], next = 0;
	int ret;

	ret = parse_fh(s, buf, off, &wr->fh, &next);
	if (ret)
		return ret;
	wr->fh_off = off + 4;
	if (src_load(s, buf, next, tail, sizeof(tail)))
		return -NFSF_C_ERR_SHORT;
	wr->count = bpf_ntohl(tail[2]);
	wr->head_end = next + sizeof(tail);
	return 0;
}

struct nfsf_reply {
	__u32 xid;	/* wire order */
	__u32 accepted; /* reply_stat == MSG_ACCEPTED && accept_stat == SUCCESS */
	__u32 res;	/* head offset of the procedure results (nfsstat3 for NFS) */
};

/* The reply header at head offset m: xid, mtype, reply_stat, verf, accept_stat. */
static __always_inline int parse_reply(const struct nfsf_src *s, const int buf, __u32 m, struct nfsf_reply *r)
{
	__u32 h[3], a[2], st, off, len;

	if (src_load(s, buf, m, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_REPLY) || bpf_ntohl(h[2]) > 1)
		return -NFSF_C_ERR_BAD_RPC;
	r->xid = h[0];
	r->accepted = 0;
	r->res = 0;
	if (h[2] != 0)
		return 0; /* MSG_DENIED */
	if (src_load(s, buf, m + 12, a, sizeof(a)))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(a[1]);
	if (len > RPC_AUTH_MAX)
		return -NFSF_C_ERR_BAD_RPC;
	off = m + 20 + xdr_pad(len);
	if (src_load(s, buf, off, &st, 4))
		return -NFSF_C_ERR_SHORT;
	st = bpf_ntohl(st);
	if (st > 5)
		return -NFSF_C_ERR_BAD_RPC;
	r->accepted = st == 0;
	r->res = off + 4;
	return 0;
}

/* A record mark followed by a plausible NFSv3 call (calls) or RPC reply (replies), read
 * from the packet at off: what a flow whose start we missed is resynchronised on. */
static __always_inline int plausible_head(struct nfsf_ctx *ctx, __u32 off, __u32 end, int replies)
{
	__u32 h[7], len;

	if (load_at(ctx, off, end, h, replies ? 16 : sizeof(h)))
		return 0;
	len = bpf_ntohl(h[0]) & 0x7fffffff;
	if (len < RPC_REC_MIN || len > RPC_REC_MAX)
		return 0;
	if (replies)
		return h[2] == bpf_htonl(RPC_REPLY) && bpf_ntohl(h[3]) <= 1;
	return h[2] == bpf_htonl(RPC_CALL) && h[3] == bpf_htonl(RPC_VERS) && h[4] == bpf_htonl(NFS_PROG) &&
	       h[5] == bpf_htonl(NFS_V3) && bpf_ntohl(h[6]) <= 21;
}

#endif /* NFSF_RPC_H */
