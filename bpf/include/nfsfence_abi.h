/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI shared by the BPF programs (bpf/tc, bpf/xdp) and userspace (src/, nfs/).
 * Fixed-width types and explicit padding only; tests/abi_test.cpp static_asserts the
 * sizes and offsets so that a change here that breaks the layout fails the build.
 *
 * Maps (same names in the TC and the XDP object):
 *   handles   HASH     nfsf_fh_key -> __u32 tree id     NFSF_MAX_HANDLES, BPF_F_NO_PREALLOC
 *   trees     ARRAY    __u32 tree id -> nfsf_tree        NFSF_MAX_TREES (id 0 = no tree)
 *   tree_room ARRAY    __u32 tree id -> __u64 full_at     NFSF_MAX_TREES (0: no bound; else refuse
 *                                                        a WRITE that takes the tree's write_bytes
 *                                                        past it; written by the agent only)
 *   counters  PERCPU_ARRAY enum nfsf_counter -> __u64    NFSF_C_MAX
 *   flows     LRU_HASH nfsf_flow_key -> nfsf_flow_state  NFSF_MAX_FLOWS (TCP record tracking)
 *   poisoned  LRU_HASH nfsf_xid_key -> nfsf_poisoned     NFSF_MAX_POISONED (rewrite mode)
 *   want_xids LRU_HASH nfsf_xid_key -> __u32 proc        NFSF_MAX_POISONED (replies to stream)
 *   pending_dirop LRU_HASH nfsf_xid_key -> nfsf_dirop    NFSF_MAX_POISONED (LOOKUP/CREATE/MKDIR/
 *                                                        SYMLINK/MKNOD calls in a mapped directory:
 *                                                        the reply's new handle is mapped in-kernel;
 *                                                        FSSTAT calls on a handle in a tree whose
 *                                                        tree_df says rewrite: nfsf_fsstat.h)
 *   tree_df   ARRAY    __u32 tree id -> nfsf_tree_df     NFSF_MAX_TREES (what an FSSTAT reply for a
 *                                                        handle in the tree says; written by the agent)
 *   split_heads LRU_HASH nfsf_flow_key -> nfsf_split     NFSF_MAX_SPLITS (a record head cut by
 *                                                        the skb end, completed from the next skb)
 *   progs     PROG_ARRAY enum nfsf_prog_slot -> program  NFSF_PROG_SLOTS (tail calls, nfsf_split.h)
 *   rpc_ports ARRAY    __u32 port / 32 -> __u32 bitmap   NFSF_RPC_PORT_WORDS (other RPC ports
 *                                                        to parse, e.g. MOUNT; bit port % 32)
 *   events    RINGBUF  struct nfsf_event                 NFSF_EVENTS_BYTES (loader may resize)
 *   last_wake ARRAY [1] __u64                           bpf_ktime_get_ns() of the last event that
 *                                                        woke the agent (nfsf_events.h)
 */
#ifndef NFSFENCE_ABI_H
#define NFSFENCE_ABI_H

#ifdef __BPF__
/* vmlinux.h provides __u8.. */
#else
#include <linux/types.h>
#endif

#define NFSF_FH_MAX 64 /* RFC 1813: NFS3_FHSIZE */
#define NFSF_MAX_TREES 1024
#define NFSF_MAX_HANDLES (1u << 20)
#define NFSF_MAX_FLOWS 65536
#define NFSF_MAX_POISONED 65536
#define NFSF_RPC_PORT_WORDS 2048 /* 65536 ports / 32 */
#define NFSF_EVENT_DATA_MAX 2048 /* bytes of RPC payload carried by one ring buffer event */
#define NFSF_EVENTS_BYTES (4u << 20)
#define NFSF_NFS_PORT 2049
#define NFSF_WAKE_NS 1000000ull /* default: the agent is woken at most once a ms (nfsf_events.h) */
#define NFSF_SPLIT_MAX 512	/* bytes of a cut record head carried to the next skb */
#define NFSF_MAX_SPLITS 1024	/* flows with a cut head at the same time (LRU) */
#define NFSF_FLOW_RING 8	/* remembered record heads per flow (retransmissions) */
#define NFSF_FH_POISON 0xff	/* a refused WRITE's handle bytes become all 0xff */
#define NFSF_NFS3ERR_DQUOT 69

/* Slots of the `progs` tail-call array (defined by each object with NFSF_PROGS_MAP). */
enum nfsf_prog_slot {
	NFSF_SLOT_CARRY_CALLS = 0,   /* completes a cut call head, then handles the skb (nfsf_split.h) */
	NFSF_SLOT_CARRY_REPLIES = 1, /* the same for replies */
	NFSF_PROG_SLOTS = 2,
};

enum nfsf_action {
	NFSF_ACTION_REWRITE = 0,    /* poison the handle, rewrite the reply to NFS3ERR_DQUOT */
	NFSF_ACTION_DROP = 1,	    /* drop the packet that carries the WRITE call head */
	NFSF_ACTION_DROP_REPLY = 2, /* pass the WRITE, drop the packet carrying its reply (client-side
				     * XDP: the survey's idea, kept to measure why it fails) */
};

/* Key of the handle -> tree map. Unused bytes of data[] are zero. */
struct nfsf_fh_key {
	__u32 len;
	__u8 data[NFSF_FH_MAX];
};

/* Value of the tree array, indexed by tree id (1-based; 0 = no tree). The agent writes
 * `over`; the programs update the counters with atomic adds. */
struct nfsf_tree {
	__u32 over; /* 1: refuse WRITEs to this tree */
	__u32 pad;
	__u64 writes;
	__u64 write_bytes;
	__u64 refused_writes;
	__u64 refused_bytes;
};

/* Per-CPU counters: every verdict and every parse failure reason. Append only. One list:
 * X(enum name, the name `status`, the metrics and the tests use). */
#define NFSF_COUNTER_LIST(X)                                                                                 \
	X(NFSF_C_PACKETS, "packets")                                                                         \
	X(NFSF_C_NFS_PACKETS, "nfs_packets")                                                                 \
	X(NFSF_C_RPC_CALLS, "rpc_calls")                                                                     \
	X(NFSF_C_WRITE_CALLS, "write_calls")                                                                 \
	X(NFSF_C_WRITE_ALLOWED, "write_allowed")                                                             \
	X(NFSF_C_WRITE_UNKNOWN_FH, "write_unknown_fh")                                                       \
	X(NFSF_C_WRITE_REFUSED_REWRITE, "write_refused_rewrite")                                             \
	X(NFSF_C_WRITE_REFUSED_DROP, "write_refused_drop")                                                   \
	X(NFSF_C_REPLY_REWRITTEN, "reply_rewritten")                                                         \
	X(NFSF_C_EVENTS, "events")                                                                           \
	X(NFSF_C_EVENTS_LOST, "events_lost")                                                                 \
	X(NFSF_C_RESYNC, "resync")                                                                           \
	X(NFSF_C_ERR_SHORT, "err_short")	   /* header extends past the packet */                      \
	X(NFSF_C_ERR_BAD_IP, "err_bad_ip")	   /* IHL < 5, bad version, ... */                           \
	X(NFSF_C_ERR_BAD_TCP, "err_bad_tcp")	   /* doff < 5 */                                            \
	X(NFSF_C_ERR_BAD_RECORD, "err_bad_record") /* implausible record mark */                             \
	X(NFSF_C_ERR_BAD_RPC, "err_bad_rpc")	   /* not a plausible RPC call */                            \
	X(NFSF_C_ERR_FH_LEN, "err_fh_len")	   /* file handle length > NFSF_FH_MAX */                    \
	X(NFSF_C_ERR_LOOP, "err_loop")		   /* record walk hit its bound */                           \
	X(NFSF_C_ERR_STORE, "err_store")	   /* bpf_skb_store_bytes / csum helper failed */            \
	X(NFSF_C_ERR_HEAD_SPLIT,                                                                             \
	  "err_head_split")		     /* a cut record head that could not be judged (nfsf_split.h) */ \
	X(NFSF_C_RPC_REPLIES, "rpc_replies") /* reply heads parsed (ingress) */                              \
	X(NFSF_C_RETRANS_HEAD, "retrans_head")	   /* a remembered head seen again (retransmission) */       \
	X(NFSF_C_REPLY_ACCEPTED, "reply_accepted") /* reply to a poisoned WRITE had status 0: left alone */  \
	X(NFSF_C_MID_RECORD, "mid_record")	   /* TCP segment without a record head: passed untouched */ \
	X(NFSF_C_NOT_FIRST_FRAG, "not_first_frag") /* IP fragment other than the first: passed */            \
	X(NFSF_C_FLOW_NEW, "flow_new")		   /* flow state created (SYN) */                            \
	X(NFSF_C_DIROP_PENDING, "dirop_pending")   /* dir-op call in a mapped directory recorded (egress) */ \
	X(NFSF_C_HANDLE_LEARNED, "handle_learned") /* new handle from a dir-op reply added to `handles` */   \
	X(NFSF_C_HANDLE_MISSED,                                                                              \
	  "handle_missed")		       /* successful dir-op reply whose handle could not be read */  \
	X(NFSF_C_HEAD_CARRIED, "head_carried") /* a head cut by the skb end, completed from the next skb */  \
	X(NFSF_C_ROOM_REFUSED,                                                                               \
	  "room_refused") /* WRITE refused by the room bound (tree_room), tree not yet over */               \
	X(NFSF_C_EVENTS_WAKEUP, "events_wakeups") /* events that woke the agent (nfsf_events.h) */           \
	X(NFSF_C_FSSTAT_REWRITTEN,                                                                           \
	  "fsstat_rewritten") /* FSSTAT reply sizes set to the tree's (nfsf_fsstat.h) */                     \
	X(NFSF_C_FSSTAT_CUT,                                                                                 \
	  "fsstat_cut") /* ...whose sizes were not in one skb: passed as the server sent it */               \
	X(NFSF_C_WRITE_MARKED_REPLY_DROP,                                                                    \
	  "write_marked_reply_drop") /* drop-reply: WRITE to a full tree passed, its reply to be dropped */  \
	X(NFSF_C_REPLY_DROPPED, "reply_dropped") /* drop-reply: a reply to such a WRITE dropped */

#define NFSF_X_ENUM(e, name) e,
enum nfsf_counter {
	NFSF_COUNTER_LIST(NFSF_X_ENUM) NFSF_C_MAX,
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

/* TCP record-marking state of one direction of a flow (value of `flows`). */
enum nfsf_flow_flags {
	NFSF_FS_SYNCED = 1,	 /* next_mark is the seq of the next record mark */
	NFSF_FS_IN_MSG = 2,	 /* the next fragment continues a message (no RPC header) */
	NFSF_FS_STREAM = 4,	 /* emit_until is set: bytes before it belong to a streamed reply */
	NFSF_FS_NEW_CONN = 8,	 /* state made at SYN; the flow's next event says NFSF_EVF_NEW_CONN */
	NFSF_FS_SPLIT = 16,	 /* split_heads holds a cut head; the skb at split_seq completes it */
	NFSF_FS_SPLIT_DONE = 32, /* ...it was refused: a retransmission of that skb is refused again */
};

struct nfsf_flow_state {
	__u32 next_mark;	    /* TCP seq of the next record mark */
	__u32 flags;		    /* enum nfsf_flow_flags */
	__u32 emit_until;	    /* with NFSF_FS_STREAM: stream the bytes before this seq (long replies) */
	__u32 ring_pos;		    /* next slot of ring[] */
	__u32 ring_valid;	    /* bit i: ring[i] holds a head */
	__u32 ring[NFSF_FLOW_RING]; /* seqs of refused WRITE heads / rewritten reply heads */
	__u32 split_seq;	    /* with NFSF_FS_SPLIT: seq at which a cut head's continuation starts */
};

/* Key of `poisoned` and `want_xids`: the flow of the REPLY (server -> client) + XID. */
struct nfsf_xid_key {
	struct nfsf_flow_key flow;
	__u32 xid; /* network byte order, as on the wire */
};

/* Value of `pending_dirop` (key: reply flow + XID of the call). */
struct nfsf_dirop {
	__u32 tree; /* tree id of the directory the call names */
	__u32 proc; /* NFSv3 procedure: 3 LOOKUP, 8 CREATE, 9 MKDIR, 10 SYMLINK, 11 MKNOD, 18 FSSTAT */
};

/* Value of `tree_df`, indexed by tree id: what the ingress program puts into an FSSTAT
 * reply for a handle in the tree (tbytes = limit; fbytes, abytes = min(server's value,
 * limit - used), 0 when used >= limit). Written by the agent only (src/map_mirror.cpp). */
struct nfsf_tree_df {
	__u64 limit; /* bytes */
	__u64 used;  /* bytes: the tree's usage as the agent accounts it */
	__u32 flags; /* NFSF_DF_REWRITE */
	__u32 pad;
};
#define NFSF_DF_REWRITE 1 /* policy `fsstat: rewrite`: without it FSSTAT replies pass untouched */

struct nfsf_poisoned {
	__u64 ts_ns;
	__u32 tree;
	__u32 flags; /* NFSF_POISON_DROP_REPLY: drop the reply rather than rewrite it */
};
#define NFSF_POISON_DROP_REPLY 1

/* Ring buffer event: a slice of RPC stream bytes on an NFS/MOUNT flow, never WRITE data. */
enum nfsf_event_type {
	NFSF_EV_STREAM = 1,   /* data[] holds TCP stream bytes starting at seq `seq` */
	NFSF_EV_DGRAM = 2,    /* data[] holds the start of one UDP datagram (seq = 0) */
	NFSF_EV_FLOW_END = 3, /* a FIN (this direction ends) or RST (NFSF_EVF_RST: both end); len 0 */
};

enum nfsf_event_flags {
	NFSF_EVF_EGRESS = 1,   /* seen leaving the host (TC egress: calls on a client, replies on a server) */
	NFSF_EVF_INGRESS = 2,  /* seen arriving (TC ingress or XDP: replies on a client, calls on a server) */
	NFSF_EVF_REC_HEAD = 4, /* data[0..3] is a record mark (TCP) */
	NFSF_EVF_TRUNC = 8,    /* wire_len > len: the rest of the record was not sent */
	NFSF_EVF_CHUNK = 16,   /* follow-on chunk of a long reply (READDIR/READDIRPLUS) */
	NFSF_EVF_NEW_CONN = 32, /* first event of this direction since its SYN: a new connection
				  * (also on a reused 4-tuple); the stream starts afresh here */
	NFSF_EVF_RST = 64,	/* NFSF_EV_FLOW_END of a reset */
	NFSF_EVF_REPLY = 128,	/* parsed as replies (on a client they arrive, on a server they leave) */
};

/*
 * One event = one slice of the stream. For a record head (NFSF_EVF_REC_HEAD) `seq` is the
 * seq of the record mark and wire_len = 4 + fragment length, the stream bytes the record
 * occupies; data[] holds its first `len` bytes (for WRITE calls: up to and including the
 * data length word, never the data). For a chunk, seq/len/wire_len describe exactly the
 * bytes in data[] (wire_len == len).
 */
struct nfsf_event {
	__u32 type;
	__u32 len; /* valid bytes in data[] */
	__u64 ts_ns;
	struct nfsf_flow_key flow;
	__u32 seq;	/* TCP sequence number of data[0] */
	__u32 wire_len; /* bytes of payload this event stands for (>= len) */
	__u32 flags;	/* enum nfsf_event_flags */
	__u32 pad;
	__u8 data[NFSF_EVENT_DATA_MAX];
};

/* Value of `split_heads`: the first bytes of a record (from its mark) that the skb ended in. */
enum nfsf_split_flags {
	NFSF_SPLIT_MARK_DONE = 1, /* the mark was whole: the walk already moved past the record */
};

struct nfsf_split {
	__u32 seq;	/* TCP seq of the record mark */
	__u32 have;	/* bytes saved (mark included), 1..NFSF_SPLIT_MAX */
	__u32 wire_len; /* 4 + fragment length (MARK_DONE only) */
	__u32 flags;	/* enum nfsf_split_flags */
	__u32 fresh;	/* 1: the record starts a message (it has an RPC header) */
	__u32 pad;
	struct nfsf_event ev; /* ev.data: the saved bytes, then the continuation; the event the
			       * completed head is sent to the agent as */
};

/*
 * The LSM fallback (bpf/lsm/nfsfence_lsm.bpf.c), for clients whose NFS traffic TC cannot read.
 * Its own maps (pinned under PIN_DIR/lsm):
 *   lsm_devs   HASH  __u32 dev -> __u32 (unused)          superblocks that hold a tree root
 *                                                         (every other file: one lookup, pass)
 *   lsm_roots  HASH  nfsf_lsm_ino -> __u32 tree id        the tree roots, from stat() on the mount(s)
 *   lsm_trees  ARRAY __u32 tree id -> nfsf_lsm_tree        NFSF_MAX_TREES (id 0 = no tree)
 *   lsm_cache  INODE_STORAGE -> nfsf_lsm_inode             per inode: its tree, the size charged
 *   lsm_gen    ARRAY [1] __u64                             bumped by rename/link (and the agent):
 *                                                         tree decisions of older generations are stale
 *   lsm_counters PERCPU_ARRAY enum nfsf_lsm_counter -> __u64   (rare events only: the allowed
 *                                                         path counts in lsm_trees[t].writes)
 */
#define NFSF_LSM_MAX_DEPTH 64 /* d_parent steps from a file to its tree root (see docs) */

struct nfsf_lsm_ino {
	__u64 ino;
	__u32 dev; /* the superblock's s_dev (MKDEV of stat(2)'s st_dev) */
	__u32 pad;
};

/* Value of lsm_trees. The agent writes limit and (after a rescan) usage; the program adds
 * size growth to usage with atomic adds and refuses while usage >= limit. */
struct nfsf_lsm_tree {
	__u64 limit;
	__s64 usage;   /* bytes: the agent's last scan + growth the hooks saw since */
	__u64 writes;  /* write checks allowed */
	__u64 refused; /* writes, mmaps and truncates refused with -EDQUOT */
	__u32 dirty;   /* set by the program when usage may have moved (growth, unlink,
			       * rename, truncate): the agent rescans the tree and clears it */
	__u32 pad;
};

/* Value of lsm_cache (inode storage: lives and dies with the kernel's inode). */
struct nfsf_lsm_inode {
	__u64 gen;     /* lsm_gen when the tree was decided */
	__u64 dentry;  /* the dentry it was decided for (a hard link elsewhere differs) */
	__s64 charged; /* i_size when the inode's growth was last charged */
	__u32 tree;    /* 0: in no tree */
	__u32 flags;   /* NFSF_LSM_DECIDED, NFSF_LSM_CHARGED */
};
#define NFSF_LSM_DECIDED 1
#define NFSF_LSM_CHARGED 2

#define NFSF_LSM_COUNTER_LIST(X)                                                                           \
	X(NFSF_L_NO_TREE, "no_tree")		       /* hook calls for NFS files outside every tree */   \
	X(NFSF_L_REFUSED_WRITE, "refused_write")       /* file_permission MAY_WRITE/MAY_APPEND refused */  \
	X(NFSF_L_REFUSED_MMAP, "refused_mmap")	       /* mmap_file / file_mprotect, shared writable */    \
	X(NFSF_L_REFUSED_TRUNCATE, "refused_truncate") /* inode_setattr growing a file refused */          \
	X(NFSF_L_WALKS, "walks")		       /* d_parent walks (tree decisions not cached) */    \
	X(NFSF_L_TOO_DEEP, "too_deep")		       /* walks that hit NFSF_LSM_MAX_DEPTH: in no tree */ \
	X(NFSF_L_STORAGE_FAIL, "storage_fail")	       /* inode storage not created (nothing cached) */    \
	X(NFSF_L_GROWTH_BYTES, "growth_bytes")	       /* i_size growth charged by the hooks */            \
	X(NFSF_L_GEN_BUMPS, "gen_bumps")	       /* renames and links seen on tree superblocks */

enum nfsf_lsm_counter {
	NFSF_LSM_COUNTER_LIST(NFSF_X_ENUM) NFSF_L_MAX,
};

#endif /* NFSFENCE_ABI_H */
