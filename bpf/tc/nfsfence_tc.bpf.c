// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsfence TC programs, attached on an NFS client's interface:
 *   nfsf_egress  (clsact egress):  NFSv3 WRITE calls to over-quota trees are poisoned
 *                                  (handle bytes -> 0xff, XID remembered) or dropped.
 *   nfsf_ingress (clsact ingress): replies to poisoned XIDs get nfsstat3 = NFS3ERR_DQUOT.
 * Both stream control-plane RPC bytes to the `events` ring buffer.
 */
#include "nfsf_stream.h"

SEC("tc")
int nfsf_egress(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_CALLS, NFSF_EVF_EGRESS);
}

SEC("tc")
int nfsf_ingress(struct __sk_buff *skb)
{
	return nfsf_handle(skb, NFSF_SIDE_REPLIES, NFSF_EVF_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
