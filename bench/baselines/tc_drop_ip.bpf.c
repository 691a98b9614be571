// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BASELINE (not an nfsfence feature): the survey's third idea, a TC program that drops
 * every packet of a client once any of its trees is full. The survey puts it at the
 * server's ingress, matching the client's source address; here it runs at the client's
 * own egress (the guest's eth0) matching the same source address, which drops the same
 * packets. Armed by the loader (--ip) once the tree is full: from then on every IPv4 packet
 * from that address is dropped, whatever tree or operation it carries.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "baseline.h"

#define NFSF_TC_ACT_OK 0
#define NFSF_TC_ACT_SHOT 2
#define NFSF_ETH_P_IP 0x0800

SEC("tc")
int base_tc_drop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct nfsf_base_cfg *c;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(NFSF_ETH_P_IP))
		return NFSF_TC_ACT_OK;
	c = base_cfg_get();
	if (!c || ip->saddr != c->ip)
		return NFSF_TC_ACT_OK;
	__sync_fetch_and_add(&c->hits, 1);
	return NFSF_TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
