// The BPF <-> userspace ABI (bpf/include/nfsfence_abi.h): layout is checked at compile time.
#include <gtest/gtest.h>

#include <cstddef>

#include "nfsfence_abi.h"

static_assert(sizeof(nfsf_fh_key) == 68 && offsetof(nfsf_fh_key, data) == 4);
static_assert(sizeof(nfsf_tree) == 40 && offsetof(nfsf_tree, writes) == 8 && offsetof(nfsf_tree, write_bytes) == 16 &&
              offsetof(nfsf_tree, refused_writes) == 24 && offsetof(nfsf_tree, refused_bytes) == 32);
static_assert(sizeof(nfsf_flow_key) == 40 && offsetof(nfsf_flow_key, daddr) == 16 &&
              offsetof(nfsf_flow_key, sport) == 32 && offsetof(nfsf_flow_key, dport) == 34 &&
              offsetof(nfsf_flow_key, family) == 36 && offsetof(nfsf_flow_key, proto) == 37);
static_assert(sizeof(nfsf_flow_state) == 56 && offsetof(nfsf_flow_state, ring) == 20);
static_assert(sizeof(nfsf_xid_key) == 44 && offsetof(nfsf_xid_key, xid) == 40);
static_assert(sizeof(nfsf_dirop) == 8 && offsetof(nfsf_dirop, proc) == 4);
static_assert(sizeof(nfsf_tree_df) == 24 && offsetof(nfsf_tree_df, used) == 8 && offsetof(nfsf_tree_df, flags) == 16);
static_assert(sizeof(nfsf_poisoned) == 16 && offsetof(nfsf_poisoned, tree) == 8);
static_assert(offsetof(nfsf_event, ts_ns) == 8 && offsetof(nfsf_event, flow) == 16 && offsetof(nfsf_event, seq) == 56 &&
              offsetof(nfsf_event, wire_len) == 60 && offsetof(nfsf_event, flags) == 64 &&
              offsetof(nfsf_event, data) == 72 && sizeof(nfsf_event) == 72 + NFSF_EVENT_DATA_MAX);
static_assert(NFSF_C_MAX == 37, "counters are append-only (NFSF_COUNTER_LIST in the ABI header)");
static_assert((NFSF_FLOW_RING & (NFSF_FLOW_RING - 1)) == 0);
static_assert((NFSF_SPLIT_MAX & (NFSF_SPLIT_MAX - 1)) == 0 && 2 * NFSF_SPLIT_MAX + NFSF_FH_MAX <= NFSF_EVENT_DATA_MAX,
              "nfsf_rpc.h reads a head buffer at offsets below NFSF_HEAD_MAX = 2 * NFSF_SPLIT_MAX");
static_assert(sizeof(nfsf_split) == 24 + sizeof(nfsf_event) && offsetof(nfsf_split, ev) == 24);
static_assert((NFSF_EVENT_DATA_MAX & (NFSF_EVENT_DATA_MAX - 1)) == 0);
// The LSM fallback's maps (bpf/lsm/nfsfence_lsm.bpf.c, src/lsm_loader.cpp).
static_assert(sizeof(nfsf_lsm_ino) == 16 && offsetof(nfsf_lsm_ino, dev) == 8);
static_assert(sizeof(nfsf_lsm_tree) == 40 && offsetof(nfsf_lsm_tree, usage) == 8 &&
              offsetof(nfsf_lsm_tree, refused) == 24 && offsetof(nfsf_lsm_tree, dirty) == 32);
static_assert(sizeof(nfsf_lsm_inode) == 32 && offsetof(nfsf_lsm_inode, charged) == 16 &&
              offsetof(nfsf_lsm_inode, tree) == 24);
static_assert(NFSF_L_MAX == 9, "LSM counters are append-only (NFSF_LSM_COUNTER_LIST)");

TEST(Abi, CounterEnumIsDense) {
  EXPECT_EQ(NFSF_C_PACKETS, 0);
  EXPECT_EQ(NFSF_C_ERR_STORE, 19);  // existing values never move
  EXPECT_EQ(NFSF_C_FLOW_NEW, 26);
  EXPECT_EQ(NFSF_C_ROOM_REFUSED, 31);
  EXPECT_EQ(NFSF_C_EVENTS_WAKEUP, 32);
  EXPECT_EQ(NFSF_C_FSSTAT_CUT, 34);
  EXPECT_EQ(NFSF_C_REPLY_DROPPED, NFSF_C_MAX - 1);
}
