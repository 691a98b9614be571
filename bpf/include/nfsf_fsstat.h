/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `df` on a tree shows the tree's limit and what is left of it: the FSSTAT reply for a
 * handle in a tree is rewritten in place by TC ingress, as the WRITE reply status is
 * (nfsf_verdict.h): same length, checksum fixed incrementally.
 *
 * Egress: an FSSTAT call (proc 18) whose fsroot handle maps to tree t, and whose
 * tree_df[t] says NFSF_DF_REWRITE, is remembered in pending_dirop (reply flow + XID ->
 * {t, FSSTAT}), the map dir-op calls use: a reply then costs the one lookup it already
 * had. Ingress: on that XID's NFS3_OK reply the three sizes after post_op_attr become
 *   tbytes = limit, fbytes = min(fbytes, limit - used), abytes = min(abytes, limit - used)
 * (0 when used >= limit); tfiles, ffiles, afiles and invarsec stay as the server says. The
 * min: a tree cannot have more free space than the filesystem under it.
 * The export root (or any handle in no tree) is not in `handles`: its replies pass as sent.
 * Sizes not wholly in the skb being handled (a reply cut by an skb end whose sizes went
 * out in the earlier skb, or are cut themselves) pass and are counted (fsstat_cut). A
 * retransmitted reply segment that was already rewritten once is not rewritten again
 * (the pending entry is gone; docs/architecture.md, known limits).
 */
#ifndef NFSF_FSSTAT_H
#define NFSF_FSSTAT_H

#include "nfsf_verdict.h"

#define NFS3_FSSTAT 18
#define NFSF_FATTR3_LEN 84 /* fattr3: 5 words, 8 hypers */

/* An FSSTAT call: remember its XID when its handle is in a tree that rewrites.
 * fh: scratch space of the caller's (stack budget). */
static __always_inline void note_fsstat(struct nfsf_walk *w, struct nfsf_call *call, const struct nfsf_src *s,
					const int buf, struct nfsf_fh_key *fh)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_dirop d = {};
	struct nfsf_tree_df *df;
	__u32 *tid, next = 0;

	if (parse_fh(s, buf, call->args, fh, &next))
		return;
	tid = bpf_map_lookup_elem(&handles, fh);
	if (!tid || *tid == 0)
		return;
	d.tree = *tid;
	df = bpf_map_lookup_elem(&tree_df, &d.tree);
	if (!df || !(df->flags & NFSF_DF_REWRITE))
		return;
	d.proc = NFS3_FSSTAT;
	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	bpf_map_update_elem(&pending_dirop, &xk, &d, BPF_ANY);
}

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

/* The reply to a remembered FSSTAT call of tree `tree`. base: skb offset of head offset lo;
 * lo: head bytes that went out in earlier skbs (0 on the packet path). */
static __always_inline void rewrite_fsstat(struct nfsf_walk *w, const struct nfsf_src *s, const int buf,
					   const struct nfsf_reply *r, __u32 tree, __u32 base, __u32 lo)
{
#ifndef NFSF_CTX_XDP
	struct nfsf_pkt *pkt = &w->pkt;
	struct nfsf_tree_df *df;
	__u64 v[3], left;
	__u32 st[2], off, at;
	__s64 diff;

	df = bpf_map_lookup_elem(&tree_df, &tree);
	if (!df || !(df->flags & NFSF_DF_REWRITE))
		return; /* turned off since the call */
	/* nfsstat3, then post_op_attr's attributes_follow */
	if (src_load(s, buf, r->res, st, sizeof(st)))
		goto cut;
	if (st[0] != 0)
		return; /* resfail: no sizes */
	if (st[1] != 0 && st[1] != bpf_htonl(1)) {
		count(NFSF_C_ERR_BAD_RPC);
		return;
	}
	off = r->res + 8 + (st[1] ? NFSF_FATTR3_LEN : 0);
	if (src_load(s, buf, off, v, sizeof(v)) || off < lo)
		goto cut;
	/* NOTE: the new sizes replace the old ones in v (the diff is taken in two steps, as in
	 * poison_write): a second 24-byte buffer took the carry program past 512 bytes of stack. */
	diff = bpf_csum_diff((__be32 *)v, sizeof(v), NULL, 0, 0);
	left = df->used < df->limit ? df->limit - df->used : 0;
	v[0] = bpf_cpu_to_be64(df->limit);
	v[1] = bpf_cpu_to_be64(min_u64(bpf_be64_to_cpu(v[1]), left));
	v[2] = bpf_cpu_to_be64(min_u64(bpf_be64_to_cpu(v[2]), left));
	at = base + (off - lo);
	if (diff >= 0)
		diff = bpf_csum_diff(NULL, 0, (__be32 *)v, sizeof(v), (__wsum)diff);
	if (diff < 0 || ctx_store(w->ctx, at, v, sizeof(v)) ||
	    ctx_l4_csum_apply(w->ctx, pkt->csum_off, csum_diff_at(diff, (at - pkt->l4_off) & 1),
			      !is_tcp(w))) {
		count(NFSF_C_ERR_STORE);
		return;
	}
	count(NFSF_C_FSSTAT_REWRITTEN);
	return;
cut:
	count(NFSF_C_FSSTAT_CUT);
#endif
}

#endif /* NFSF_FSSTAT_H */
