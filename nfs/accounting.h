// Per-tree usage from the server's own post-op attributes, and the over/under state that
// enforcement follows. Shared by `replay` and the live agent.
#pragma once

#include <functional>
#include <optional>

#include "nfs/handle_cache.h"
#include "nfs/policy.h"
#include "nfs/rpc_message.h"

namespace nfsfence {

struct TreeState {
  // Sums of per-file values: they saturate at UINT64_MAX (files of 2^63 bytes and more
  // exist, sparse ones), and come back down exactly as files leave.
  uint64_t usage = 0;
  uint64_t peak = 0;
  uint64_t files = 0;  // regular files charged to the tree
  bool over = false;
  bool soft_over = false;
  std::optional<Timestamp> exceeded_at;       // first time usage reached the limit
  std::optional<Timestamp> soft_exceeded_at;  // first time usage reached soft_limit
  uint64_t crossings = 0;                     // times the state flipped to over
};

struct AccountingStats {
  uint64_t attr_updates = 0;
  // attributes of a regular file older (ctime) than the ones already applied: a reply the
  // server built before another one it sent earlier; skipped
  uint64_t stale_attrs = 0;
  uint64_t links = 0;
  uint64_t removes = 0;
  uint64_t renames = 0;
  // Subtree walks (HandleCache::Stats::subtree_walks): a directory's placement (tree,
  // position on the tree paths) changed, by a move, the root learned or a placeholder
  // linked, and its descendants were visited; HandleCache::Stats::nodes_resolved counts the
  // nodes. A move that leaves the placement as it was (a rename within a tree, off the
  // tree paths) walks nothing.
  uint64_t recounts = 0;
  uint64_t roots_learned = 0;      // MNT replies naming the policy's export
  uint64_t other_server = 0;       // messages skipped: not the policy's server
  uint64_t create_without_fh = 0;  // CREATE/MKDIR replies with no handle: cannot link
};

class Accounting {
 public:
  struct Events {
    // The tree flipped to over (true) or back under (false) its hard limit.
    std::function<void(int tree, bool over, Timestamp ts)> on_limit;
    // The tree reached its soft limit (once per crossing).
    std::function<void(int tree, Timestamp ts)> on_soft_limit;
    // A file's charge changed: it is charged to `tree` (-1: to no tree) with `bytes`, from
    // attributes of `ctime_ns`, or it was removed (`gone`, with the tree it was charged to).
    // Called only for files that are or were in a tree (the cluster's per-file records).
    std::function<void(const std::string& fh, int tree, uint64_t bytes, uint64_t ctime_ns, bool gone)> on_file;
  };

  Accounting(const Policy& policy, size_t max_handles, Events events = {});
  // The handle cache's tree hook points here.
  Accounting(const Accounting&) = delete;
  Accounting& operator=(const Accounting&) = delete;

  // A new policy while running (the agent's reload). Trees are the same tree when their
  // names are: a kept tree keeps its usage and state, and a changed path or limit takes
  // effect here (files move in and out through the cache's placement, `on_limit` fires
  // for a tree that flips). The handles of a removed tree are forgotten (memory returns).
  // A new tree starts from what the cache already knows below its path; walk it to know
  // the rest. Returns, per old tree, its new index (HandleCache::kNoTree: removed).
  std::vector<int> set_policy(Policy next);

  // Feeds one decoded message (calls are ignored; replies teach handles and usage).
  void on_message(const RpcMessage& m);
  // False if the policy names a server and the message's server is another one.
  bool from_policy_server(const RpcMessage& m) const;

  int tree_of(ByteView fh) { return cache_.tree_of_fh(fh); }
  const Policy& policy() const { return policy_; }
  const std::vector<TreeState>& trees() const { return trees_; }
  uint64_t usage_outside_trees() const { return clamp(sums_[outside_bucket()]); }
  uint64_t usage_unknown() const { return clamp(sums_[unknown_bucket()]); }
  HandleCache& cache() { return cache_; }
  const HandleCache& cache() const { return cache_; }
  const AccountingStats& stats() const { return stats_; }

 private:
  // Exact sums, one bucket per tree, then outside the trees, then unknown: 2^64 files of
  // 2^64 bytes cannot overflow them; the reported values are clamped.
  using Sum = unsigned __int128;
  static uint64_t clamp(Sum s) { return s > UINT64_MAX ? UINT64_MAX : uint64_t(s); }
  size_t outside_bucket() const { return trees_.size(); }
  size_t unknown_bucket() const { return trees_.size() + 1; }
  size_t bucket(int tree) const;

  void apply(const RpcMessage& m);
  void update_attr(ByteView fh, const Attr& a);
  void charge(HandleCache::Id id, uint64_t value);
  void uncharge(HandleCache::Id id, bool gone = false);
  void file_changed(const HandleCache::Node& n, int was_tree, bool gone);
  void add(int tree, uint64_t value);
  void sub(int tree, uint64_t value);
  void tree_changed(HandleCache::Node& n);
  void drop_file(HandleCache::Id id);
  void link(ByteView dir, const std::string& name, ByteView child, const std::optional<Attr>& a);
  void settle();
  void check(int tree);

  Policy policy_;
  std::optional<Endpoint> server_;  // policy.server as an address (resolved once)
  HandleCache cache_;
  Events events_;
  std::vector<TreeState> trees_;
  std::vector<Sum> sums_;
  std::vector<int> dirty_;  // trees whose usage changed since the last settle()
  std::vector<bool> is_dirty_;
  Timestamp now_;
  AccountingStats stats_;
};

}  // namespace nfsfence
