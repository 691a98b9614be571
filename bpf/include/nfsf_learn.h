/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the kernel learns from calls for their replies: which READDIR/READDIRPLUS replies to
 * stream whole to the agent (want_xids), and the handles that dir-op replies name.
 *
 * In-kernel handle learning closes the CREATE-then-WRITE race: the WRITE to a file just
 * created can leave before the agent has read the CREATE reply from the ring buffer.
 * Egress: a LOOKUP/CREATE/MKDIR/SYMLINK/MKNOD call whose directory handle maps to tree t is
 * remembered by (reply flow, XID). Ingress: its successful reply's object handle is added
 * to `handles` -> t before the reply reaches the client, so the first WRITE to it is
 * judged. This covers only children of directories already mapped to a tree; the agent's
 * walk maps every tree root and everything below, and the agent still maps the same handles
 * (same tree) when it reads the replies. The kernel adds with BPF_NOEXIST and never
 * overwrites: the agent mirrors a handle only when its tree changes, so an overwrite (e.g.
 * LOOKUP of a nested tree's root from the outer tree) would stick. "." and ".." are not
 * followed (".." of a tree root lies outside the tree). The TC ingress program handles the
 * replies; XDP (calls on a server) does not record.
 */
#ifndef NFSF_LEARN_H
#define NFSF_LEARN_H

#include "nfsf_verdict.h"

/* A NFS READDIR/READDIRPLUS call: its reply is streamed whole to the agent. */
static __always_inline void want_reply(struct nfsf_walk *w, struct nfsf_call *call)
{
	struct nfsf_xid_key xk = {};

	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	bpf_map_update_elem(&want_xids, &xk, &call->proc, BPF_ANY);
}

/* A dir-op call (is_dirop): remember its XID when its directory handle is in a tree.
 * fh: scratch space of the caller's (stack budget). */
static __always_inline void note_dirop(struct nfsf_walk *w, struct nfsf_call *call, const struct nfsf_src *s,
				       const int buf, struct nfsf_fh_key *fh)
{
	struct nfsf_xid_key xk = {};
	struct nfsf_dirop d = {};
	__u32 *tid, nlen, noff = 0, name[2];

	if (parse_fh(s, buf, call->args, fh, &noff))
		return; /* the call's head is emitted as usual; nothing to learn from here */
	/* filename3: length + bytes (a 1- or 2-byte name is padded to 4, so 8 bytes exist) */
	if (src_load(s, buf, noff, name, sizeof(name)))
		return;
	tid = bpf_map_lookup_elem(&handles, fh);
	if (!tid || *tid == 0)
		return;
	d.tree = *tid;
	d.proc = call->proc;
	nlen = bpf_ntohl(name[0]);
	if (nlen == 1 && (name[1] & 0xff) == '.')
		return;
	if (nlen == 2 && (name[1] & 0xffff) == 0x2e2e) /* ".." (little-endian load) */
		return;
	flow_reverse(&w->pkt.flow, &xk.flow);
	xk.xid = call->xid;
	if (bpf_map_update_elem(&pending_dirop, &xk, &d, BPF_ANY) == 0)
		count(NFSF_C_DIROP_PENDING);
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

/* The successful reply (r->accepted, d->tree set) to a remembered dir-op call, taken out
 * of pending_dirop by the caller: map its new handle. */
static __always_inline void learn_handle(const struct nfsf_src *s, const int buf, struct nfsf_reply *r,
					 const struct nfsf_dirop *d)
{
	struct nfsf_fh_key fh;
	__u32 st, follows, fo, next = 0;

	if (src_load(s, buf, r->res, &st, 4))
		goto missed;
	if (st != 0)
		return; /* not NFS3_OK: nothing was created / found */
	fo = r->res + 4;
	if (d->proc != NFS3_LOOKUP) {
		/* post_op_fh3: bool handle_follows, then nfs_fh3 */
		if (src_load(s, buf, fo, &follows, 4))
			goto missed;
		if (follows == 0)
			return;
		if (follows != bpf_htonl(1))
			goto missed;
		fo += 4;
	}
	if (parse_fh(s, buf, fo, &fh, &next))
		goto missed;
	if (bpf_map_update_elem(&handles, &fh, &d->tree, BPF_NOEXIST) == 0)
		count(NFSF_C_HANDLE_LEARNED);
	return;
missed:
	count(NFSF_C_HANDLE_MISSED);
}

#endif /* NFSF_LEARN_H */
