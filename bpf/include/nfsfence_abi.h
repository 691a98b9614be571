/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI shared by the BPF programs (bpf/tc, bpf/xdp) and userspace (src/, nfs/).
 * Fixed-width types and explicit padding only; tests/abi_test.cpp static_asserts the
 * sizes and offsets so that a change here that breaks the layout fails the build.
 */
#ifndef NFSFENCE_ABI_H
#define NFSFENCE_ABI_H

#ifdef __BPF__
/* vmlinux.h provides __u8.. */
#else
#include <linux/types.h>
#endif

#define NFSF_FH_MAX 64          /* RFC 1813: NFS3_FHSIZE */
#define NFSF_MAX_TREES 1024
#define NFSF_MAX_HANDLES (1u << 20)
#define NFSF_MAX_FLOWS 65536
#define NFSF_MAX_POISONED 65536
#define NFSF_EVENT_DATA_MAX 2048  /* bytes of RPC payload carried by one ring buffer event */
#define NFSF_NFS_PORT 2049

enum nfsf_action {
	NFSF_ACTION_REWRITE = 0, /* poison the handle, rewrite the reply to NFS3ERR_DQUOT */
	NFSF_ACTION_DROP = 1,    /* drop the packet that carries the WRITE call head */
};

/* Key of the handle -> tree map. Unused bytes of data[] are zero. */
struct nfsf_fh_key {
	__u32 len;
	__u8 data[NFSF_FH_MAX];
};

/* Value of the tree array, indexed by tree id (1-based; 0 = no tree). The agent writes
 * `over`; the programs update the counters with atomic adds. */
struct nfsf_tree {
	__u32 over;   /* 1: refuse WRITEs to this tree */
	__u32 pad;
	__u64 writes;
	__u64 write_bytes;
	__u64 refused_writes;
	__u64 refused_bytes;
};

/* Per-CPU counters: every verdict and every parse failure reason. */
enum nfsf_counter {
	NFSF_C_PACKETS = 0,
	NFSF_C_NFS_PACKETS,
	NFSF_C_RPC_CALLS,
	NFSF_C_WRITE_CALLS,
	NFSF_C_WRITE_ALLOWED,
	NFSF_C_WRITE_UNKNOWN_FH,
	NFSF_C_WRITE_REFUSED_REWRITE,
	NFSF_C_WRITE_REFUSED_DROP,
	NFSF_C_REPLY_REWRITTEN,
	NFSF_C_EVENTS,
	NFSF_C_EVENTS_LOST,
	NFSF_C_RESYNC,
	NFSF_C_ERR_SHORT,        /* header extends past the packet */
	NFSF_C_ERR_BAD_IP,       /* IHL < 5, bad version, ... */
	NFSF_C_ERR_BAD_TCP,      /* doff < 5 */
	NFSF_C_ERR_BAD_RECORD,   /* implausible record mark */
	NFSF_C_ERR_BAD_RPC,      /* not a plausible RPC call */
	NFSF_C_ERR_FH_LEN,       /* file handle length > NFSF_FH_MAX */
	NFSF_C_ERR_LOOP,         /* record walk hit its bound */
	NFSF_C_ERR_STORE,        /* bpf_skb_store_bytes / csum helper failed */
	NFSF_C_MAX,
};

/* Flow key: addresses as 16 bytes (IPv4 in the first 4, rest zero). */
struct nfsf_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* network byte order */
	__u16 dport; /* network byte order */
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[2];
};

/* Ring buffer event: a slice of RPC stream bytes on an NFS/MOUNT flow, never WRITE data. */
enum nfsf_event_type {
	NFSF_EV_STREAM = 1, /* data[] holds stream bytes starting at tcp seq `seq` */
	NFSF_EV_DGRAM = 2,  /* data[] holds the start of one UDP datagram */
};

struct nfsf_event {
	__u32 type;
	__u32 len;        /* valid bytes in data[] */
	__u64 ts_ns;
	struct nfsf_flow_key flow;
	__u32 seq;        /* TCP sequence number of data[0] */
	__u32 wire_len;   /* bytes of payload this event stands for (>= len) */
	__u8 data[NFSF_EVENT_DATA_MAX];
};

#endif /* NFSFENCE_ABI_H */
