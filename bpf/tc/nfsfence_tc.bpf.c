// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsfence TC programs, attached on an NFS client's interface:
 *   nfsf_egress  (clsact egress):  NFSv3 WRITE calls to over-quota trees are poisoned
 *                                  (handle bytes -> 0xff, XID remembered) or dropped.
 *   nfsf_ingress (clsact ingress): replies to poisoned XIDs get nfsstat3 = NFS3ERR_DQUOT.
 * and on an NFS server's interface, with the XDP program taking the calls (nfsfence_xdp.bpf.c):
 *   nfsf_srv_egress (clsact egress): replies leaving the server, as nfsf_ingress does them.
 * Both stream control-plane RPC bytes to the `events` ring buffer. nfsf_egress_carry and
 * nfsf_ingress_carry are reached by tail call only (nfsf_split.h).
 */
#include "nfsf_maps.h"

/* The programs, then the tail-call array that names the carry programs, then the parser:
 * split_check() (nfsf_split.h) tail-calls through `progs`, so it must be defined first. */
int nfsf_egress(struct __sk_buff *skb);
int nfsf_ingress(struct __sk_buff *skb);
int nfsf_srv_egress(struct __sk_buff *skb);
int nfsf_egress_carry(struct __sk_buff *skb);
int nfsf_ingress_carry(struct __sk_buff *skb);
NFSF_PROGS_MAP(struct __sk_buff, nfsf_egress_carry, nfsf_ingress_carry);

#include "nfsf_entry.h"

SEC("tc")
int nfsf_egress(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_CALLS, NFSF_EVF_EGRESS, 0);
}

SEC("tc")
int nfsf_ingress(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_REPLIES, NFSF_EVF_INGRESS, 0);
}

SEC("tc")
int nfsf_srv_egress(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_REPLIES, NFSF_EVF_EGRESS, 0);
}

/* Tail-call targets only (never attached): a head cut by the previous skb's end. A head cut
 * in a server's reply is completed by nfsf_ingress_carry: those events say
 * NFSF_EVF_INGRESS, only their NFSF_EVF_REPLY is right. */
SEC("tc")
int nfsf_egress_carry(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_CALLS, NFSF_EVF_EGRESS, 1);
}

SEC("tc")
int nfsf_ingress_carry(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_REPLIES, NFSF_EVF_INGRESS, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
