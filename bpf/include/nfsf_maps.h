/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps, load-time settings and counters shared by the TC and the XDP object. */
#ifndef NFSF_MAPS_H
#define NFSF_MAPS_H

#include "nfsf_ctx.h"
#include "nfsfence_abi.h"

/* Set by the loader between open and load (skeleton rodata). */
const volatile __u32 nfsf_action = NFSF_ACTION_REWRITE;
const volatile __u32 nfsf_emit_events = 1;
const volatile __u16 nfsf_nfs_port = NFSF_NFS_PORT; /* host byte order */
const volatile __u64 nfsf_wake_ns = NFSF_WAKE_NS;   /* 0: every reply event wakes the agent */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFSF_MAX_HANDLES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nfsf_fh_key);
	__type(value, __u32);
} handles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, __u32);
	__type(value, struct nfsf_tree);
} trees SEC(".maps");

/* Per tree: the value of trees[id].write_bytes at which the tree is full (0: no bound).
 * The agent sets it after each usage update to write_bytes + (limit - usage), so the kernel
 * stops a tree at its limit without waiting for the agent to see the crossing reply. A map
 * of its own so that the agent's writes never race the programs' counter adds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, __u32);
	__type(value, __u64);
} tree_room SEC(".maps");

/* Per tree: limit, usage and whether FSSTAT replies are rewritten (nfsf_fsstat.h). Written
 * by the agent only; a map of its own for the same reason as tree_room. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NFSF_MAX_TREES);
	__type(key, __u32);
	__type(value, struct nfsf_tree_df);
} tree_df SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NFSF_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFSF_MAX_FLOWS);
	__type(key, struct nfsf_flow_key);
	__type(value, struct nfsf_flow_state);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFSF_MAX_POISONED);
	__type(key, struct nfsf_xid_key);
	__type(value, struct nfsf_poisoned);
} poisoned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFSF_MAX_POISONED);
	__type(key, struct nfsf_xid_key);
	__type(value, __u32);
} want_xids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFSF_MAX_SPLITS);
	__type(key, struct nfsf_flow_key);
	__type(value, struct nfsf_split);
} split_heads SEC(".maps");

/* The tail-call array; each object defines it (its values name that object's programs):
 * the carry programs have their own verifier budget, which the main programs are close to. */
#define NFSF_PROGS_MAP(ctx_type, carry_calls, carry_replies)                                     \
	struct {                                                                                 \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);                                           \
		__uint(max_entries, NFSF_PROG_SLOTS);                                            \
		__uint(key_size, sizeof(__u32));  /* no BTF key type: the kernel refuses BTF  */ \
		__array(values, int(ctx_type *)); /* on a prog array (libbpf warns, retries) */  \
	} progs SEC(".maps") = {                                                                 \
		.values =                                                                        \
			{                                                                        \
				[NFSF_SLOT_CARRY_CALLS] = (void *)&carry_calls,                  \
				[NFSF_SLOT_CARRY_REPLIES] = (void *)&carry_replies,              \
			},                                                                       \
	}

/* A zeroed nfsf_split: what a new split_heads entry is created from (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nfsf_split);
} split_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_wake SEC(".maps");

/* Written by TC egress, read and deleted by TC ingress (unused in the XDP object). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFSF_MAX_POISONED);
	__type(key, struct nfsf_xid_key);
	__type(value, struct nfsf_dirop);
} pending_dirop SEC(".maps");

/* A bitmap of ports (word port / 32, bit port % 32): an array lookup is inlined by the
 * verifier, a hash lookup is a call; every non-NFS packet asks twice. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NFSF_RPC_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u32);
} rpc_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NFSF_EVENTS_BYTES);
} events SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);

	if (v)
		*v += 1; /* per-CPU: no atomics needed */
}

/* Helpers return -reason (enum nfsf_counter) on failure; this turns it into a count. */
static __always_inline void count_err(int ret)
{
	if (ret < 0)
		count((__u32)-ret);
}

#endif /* NFSF_MAPS_H */
