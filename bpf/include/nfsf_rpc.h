/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ONC RPC (RFC 5531) call/reply headers and the NFSv3 (RFC 1813) WRITE head. All offsets
 * are absolute packet offsets; `end` bounds every read (min of record end and packet end).
 */
#ifndef NFSF_RPC_H
#define NFSF_RPC_H

#include "nfsf_parse.h"

#define RPC_CALL 0
#define RPC_REPLY 1
#define RPC_VERS 2
#define RPC_AUTH_MAX 400      /* RFC 5531: opaque_auth body <= 400 bytes */
#define RPC_REC_MIN 24        /* xid + mtype + reply_stat + ... */
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

static __always_inline __u32 xdr_pad(__u32 n)
{
	return (n + 3) & ~3u;
}

struct nfsf_call {
	__u32 xid; /* wire order */
	__u32 prog;
	__u32 vers;
	__u32 proc;
	__u32 args; /* offset of the procedure arguments */
};

/* Fixed part of a call: xid, mtype, rpcvers, prog, vers, proc. */
static __always_inline int parse_call_fixed(struct nfsf_ctx *ctx, __u32 m, __u32 end,
					    struct nfsf_call *call)
{
	__u32 h[6];

	if (load_at(ctx, m, end, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_CALL) || h[2] != bpf_htonl(RPC_VERS))
		return -NFSF_C_ERR_BAD_RPC;
	call->xid = h[0];
	call->prog = bpf_ntohl(h[3]);
	call->vers = bpf_ntohl(h[4]);
	call->proc = bpf_ntohl(h[5]);
	return 0;
}

/* Skip one opaque_auth (flavor, length, body) at *off. */
static __always_inline int skip_auth(struct nfsf_ctx *ctx, __u32 *off, __u32 end)
{
	__u32 a[2], len;

	if (load_at(ctx, *off, end, a, sizeof(a)))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(a[1]);
	if (len > RPC_AUTH_MAX)
		return -NFSF_C_ERR_BAD_RPC;
	*off += sizeof(a) + xdr_pad(len);
	return 0;
}

static __always_inline int parse_call(struct nfsf_ctx *ctx, __u32 m, __u32 end, struct nfsf_call *call)
{
	__u32 off = m + 24;
	int ret;

	ret = parse_call_fixed(ctx, m, end, call);
	if (ret)
		return ret;
	ret = skip_auth(ctx, &off, end); /* cred */
	if (ret)
		return ret;
	ret = skip_auth(ctx, &off, end); /* verf */
	if (ret)
		return ret;
	call->args = off;
	return 0;
}

/* Calls whose args start with diropargs3 and whose successful reply names a (new) object. */
static __always_inline int is_dirop(__u32 proc)
{
	return proc == NFS3_LOOKUP || (proc >= NFS3_CREATE && proc <= NFS3_MKNOD);
}

/* One nfs_fh3 (length word + bytes) at off into fh (unused bytes zero); *next = the
 * offset past its XDR padding. */
static __always_inline int parse_fh(struct nfsf_ctx *ctx, __u32 off, __u32 end,
				    struct nfsf_fh_key *fh, __u32 *next)
{
	__u32 len;

	__builtin_memset(fh, 0, sizeof(*fh));
	if (load_at(ctx, off, end, &len, 4))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(len);
	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	fh->len = len;
	/* NOTE: same [1, 64] re-bounding of len as in parse_write() below. */
	if (load_at(ctx, off + 4, end, fh->data, ((len - 1) & (NFSF_FH_MAX - 1)) + 1))
		return -NFSF_C_ERR_SHORT;
	*next = off + 4 + xdr_pad(len);
	return 0;
}

struct nfsf_write {
	struct nfsf_fh_key fh;
	__u32 fh_off;   /* offset of the handle bytes */
	__u32 count;    /* WRITE3args.count */
	__u32 head_end; /* offset just past the data length word */
};

/* WRITE3args up to the opaque data: fh, offset, count, stable, data length. */
static __always_inline int parse_write(struct nfsf_ctx *ctx, __u32 off, __u32 end, struct nfsf_write *w)
{
	__u32 len, tail[5];

	__builtin_memset(&w->fh, 0, sizeof(w->fh));
	if (load_at(ctx, off, end, &len, 4))
		return -NFSF_C_ERR_SHORT;
	len = bpf_ntohl(len);
	if (len == 0 || len > NFSF_FH_MAX)
		return -NFSF_C_ERR_FH_LEN;
	w->fh.len = len;
	w->fh_off = off + 4;
	/* NOTE: clang merges the two range checks above into one unsigned compare and the
	 * verifier then sees len in [0, 64]; recompute it in a form it can bound to [1, 64]. */
	if (load_at(ctx, off + 4, end, w->fh.data, ((len - 1) & (NFSF_FH_MAX - 1)) + 1))
		return -NFSF_C_ERR_SHORT;
	off += 4 + xdr_pad(len);
	if (load_at(ctx, off, end, tail, sizeof(tail)))
		return -NFSF_C_ERR_SHORT;
	w->count = bpf_ntohl(tail[2]);
	w->head_end = off + sizeof(tail);
	return 0;
}

struct nfsf_reply {
	__u32 xid;      /* wire order */
	__u32 accepted; /* reply_stat == MSG_ACCEPTED && accept_stat == SUCCESS */
	__u32 res;      /* offset of the procedure results (nfsstat3 for NFS) */
};

static __always_inline int parse_reply(struct nfsf_ctx *ctx, __u32 m, __u32 end, struct nfsf_reply *r)
{
	__u32 h[3], st, off = m + 12;
	int ret;

	if (load_at(ctx, m, end, h, sizeof(h)))
		return -NFSF_C_ERR_SHORT;
	if (h[1] != bpf_htonl(RPC_REPLY) || bpf_ntohl(h[2]) > 1)
		return -NFSF_C_ERR_BAD_RPC;
	r->xid = h[0];
	r->accepted = 0;
	r->res = 0;
	if (h[2] != 0)
		return 0; /* MSG_DENIED */
	ret = skip_auth(ctx, &off, end);
	if (ret)
		return ret;
	if (load_at(ctx, off, end, &st, 4))
		return -NFSF_C_ERR_SHORT;
	st = bpf_ntohl(st);
	if (st > 5)
		return -NFSF_C_ERR_BAD_RPC;
	r->accepted = st == 0;
	r->res = off + 4;
	return 0;
}

/* A record mark followed by a plausible NFSv3 call (calls) or RPC reply (replies):
 * what a flow whose start we missed is resynchronised on. */
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
	return h[2] == bpf_htonl(RPC_CALL) && h[3] == bpf_htonl(RPC_VERS) &&
	       h[4] == bpf_htonl(NFS_PROG) && h[5] == bpf_htonl(NFS_V3) && bpf_ntohl(h[6]) <= 21;
}

#endif /* NFSF_RPC_H */
