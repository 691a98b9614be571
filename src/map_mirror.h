// What the TC agent keeps in the BPF maps from its accounting (nfs/accounting.h): handle ->
// tree from the handle cache, and per tree its over flag, its room (tree_room) and what
// FSSTAT says (tree_df). Errors
// of a map update are logged; the next sync tries again.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "nfs/accounting.h"
#include "nfs/handle_cache.h"
#include "nfs/policy.h"
#include "src/bpf_loader.h"

namespace nfsfence::agent {

class MapMirror {
 public:
  // Kernel tree ids are slots (1 .. NFSF_MAX_TREES-1) that stay with a tree by name while
  // the policy changes and across restarts: `previous` are the ids an earlier agent gave
  // (from its state file; empty on a fresh load). Every other id is cleared, and ids that
  // an earlier agent used for trees this policy lacks are reused last (the handle map may
  // still hold handles that point at them).
  MapMirror(const bpf::MapSet& maps, const Policy& policy, const std::map<std::string, uint32_t>& previous = {});

  // The policy changes to `next`; renumber[i] is old tree i's index in it (kNoTree:
  // removed). Call before Accounting::set_policy (it needs the old numbering): the
  // removed trees' handles leave the handle map, their ids are cleared and freed, kept
  // trees keep theirs, new trees get fresh (cleared) ones. False if the ids ran out.
  bool apply(HandleCache& cache, const Policy& next, const std::vector<int>& renumber);
  void set_policy(const Policy& p) { policy_ = &p; }                   // the one apply() was given, where it now lives
  uint32_t kernel_id(int tree) const { return slots_[size_t(tree)]; }  // tree: 0-based policy index

  // Mirrors handle -> tree: the handles whose tree changed since the last sync (the cache
  // lists them, a moved directory's whole subtree included, and only when a tree changed),
  // or all of them (`full`, after a walk). Forgotten handles go first: a handle forgotten
  // and learned again is then mirrored afresh.
  void sync_handles(HandleCache& cache, bool full);

  // tree_room: the programs refuse a tree's WRITEs once its write_bytes counter (bytes of
  // the WRITEs they let through) passes full_at = answered + (limit - usage), where
  // `answered` is the part of write_bytes whose replies the accounting has read (and so
  // whose growth is in usage). WRITEs in flight are then counted at their full size until
  // answered, and a tree stops at its limit without waiting for the agent to read the
  // crossing reply: what passes beyond the limit is at most the WRITEs the server had not
  // yet answered when usage was last updated. A refusal by room stays until a reply frees
  // room (a rewrite of existing bytes, a REMOVE), so the WRITEs a stream of appends gets
  // refused are a suffix. Refreshed for every tree whose usage changed or that had a WRITE
  // answered (and all of them with `all`, after a walk). The cost: WRITEs that rewrite
  // existing bytes use up room until their replies are read, so a tree with less room than
  // the WRITEs in flight can refuse a rewrite.
  // `room` (several nodes, src/cluster.h): per tree what this node may still let it grow
  // by, in place of limit - usage.
  void sync_rooms(const std::vector<TreeState>& trees, bool all, const std::vector<uint64_t>* room = nullptr);
  // The same pass writes tree_df (limit, usage, fsstat flag: what the ingress program puts
  // into FSSTAT replies, bpf/include/nfsf_fsstat.h) for every tree whose usage changed.
  // A WRITE call of `count` bytes to tree `tree` (0-based) was answered; `passed`: the
  // programs let it through (its reply is not NFS3ERR_DQUOT: a refused WRITE's always is).
  // Its room is refreshed at the next sync_rooms, also when usage did not change.
  void write_answered(int tree, uint64_t count, bool passed);
  // `answered` is not known for a tree whose ids an earlier agent used (adopted pins), nor
  // after ring events were lost: it is taken as write_bytes then (nothing in flight), and
  // again for a tree whose write_bytes did not move and that had no WRITE answered since
  // the last settle() (call it about once a second): WRITEs whose replies never came (a
  // connection that died) or that a server refused itself do not shrink the room for good.
  void forget_answered();
  void settle();
  void set_over(int tree, bool over);              // tree: 0-based
  uint64_t mirrored() const { return mirrored_; }  // handles in the map

 private:
  void mirror(HandleCache& cache, HandleCache::Id id);

  uint32_t take_slot();

  const bpf::MapSet& maps_;
  const Policy* policy_;
  std::vector<uint32_t> slots_;  // per tree: its kernel id
  std::deque<uint32_t> free_;    // ids no tree holds, the next to give first
  uint64_t mirrored_ = 0;
  std::vector<uint64_t> room_usage_;  // per tree: the usage tree_room was last set from
  std::vector<uint64_t> room_left_;   // per tree: and the room
  std::vector<bool> room_dirty_;      // per tree: a WRITE reply since the last sync_rooms
  std::vector<uint64_t> df_usage_;    // per tree: the usage tree_df was last set from
  // per kernel id: bytes of write_bytes answered (kUnknown: take write_bytes), write_bytes
  // at the last settle(), and whether a WRITE was answered since
  static constexpr uint64_t kUnknown = ~uint64_t(0);
  std::vector<uint64_t> answered_ = std::vector<uint64_t>(NFSF_MAX_TREES, kUnknown);
  std::vector<uint64_t> settled_at_ = std::vector<uint64_t>(NFSF_MAX_TREES, kUnknown);
  std::vector<bool> answered_since_ = std::vector<bool>(NFSF_MAX_TREES, false);
  void clear(uint32_t id);  // the kernel's entries of id zeroed (write_bytes too)
};

}  // namespace nfsfence::agent
