// Per-tree usage from the server's own post-op attributes, and the over/under state that
// enforcement follows. Shared by `replay` and the live agent.
#pragma once

#include <functional>
#include <optional>

#include "nfs/decoder.h"
#include "nfs/handle_cache.h"
#include "nfs/policy.h"

namespace nfsfence {

struct TreeState {
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
  uint64_t links = 0;
  uint64_t removes = 0;
  uint64_t renames = 0;
  uint64_t recounts = 0;           // full recounts after a directory moved / root learned
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
  };

  Accounting(const Policy& policy, size_t max_handles, Events events = {});

  // Feeds one decoded message (calls are ignored; replies teach handles and usage).
  void on_message(const RpcMessage& m);
  // False if the policy names a server and the message's server is another one.
  bool from_policy_server(const RpcMessage& m) const;

  int tree_of(ByteView fh) { return cache_.tree_of_fh(fh); }
  const Policy& policy() const { return policy_; }
  const std::vector<TreeState>& trees() const { return trees_; }
  uint64_t usage_outside_trees() const { return outside_; }
  uint64_t usage_unknown() const { return unknown_; }
  HandleCache& cache() { return cache_; }
  const HandleCache& cache() const { return cache_; }
  const AccountingStats& stats() const { return stats_; }

 private:
  void update_attr(ByteView fh, const Attr& a);
  void charge(HandleCache::Id id, uint64_t value);
  void uncharge(HandleCache::Id id);
  void drop_file(HandleCache::Id id);
  void link(ByteView dir, const std::string& name, ByteView child, const std::optional<Attr>& a);
  void sync_generation();
  void recount();
  uint64_t& bucket(int tree);
  void check(int tree);

  const Policy& policy_;
  std::optional<Endpoint> server_;  // policy.server as an address (resolved once)
  HandleCache cache_;
  Events events_;
  std::vector<TreeState> trees_;
  uint64_t outside_ = 0, unknown_ = 0;
  uint64_t seen_gen_ = 0;
  Timestamp now_;
  AccountingStats stats_;
};

}  // namespace nfsfence
