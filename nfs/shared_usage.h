// A tree's usage shared by several nodes (several agents, one per node, each seeing only
// its own node's traffic), with no I/O: src/cluster.h carries the records to and from etcd.
//
// The shared state is one record per file, keyed by the file's NFS handle (the server's,
// so the same on every node): the tree it is charged to, its bytes, and the ctime of the
// post-op attributes they came from. A tree's usage is the sum over its files of each
// file's winning record, whichever node reported it, so a file two nodes write is counted
// once and a file one node removes leaves the tree for all of them:
//   - a tombstone (the file was removed) wins over every report of the file;
//   - otherwise the newer ctime wins; on a tie the larger size (parallel WRITEs within one
//     tick of the server's clock only grow a file), then the local report (about to be
//     published).
// etcd decides the order of the writes (every publish is a compare-and-swap on the key's
// mod_revision, src/cluster.cpp); the rule above decides which of two reports is kept.
//
// Room across nodes: each node may let its trees grow by a share of the room that etcd's
// records leave, min((limit - confirmed) / writers, room_chunk), less its own growth that
// etcd has not yet confirmed (writers(): this node and the live nodes that published a
// record of the tree lately). Confirmation (the record came back through etcd) renews the
// share. docs/architecture.md ("Several nodes") gives the bound this keeps.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace nfsfence {

struct SharedRecord {
  std::string tree;  // the tree's name ("" : the file is in no tree now)
  uint64_t bytes = 0;
  uint64_t ctime_ns = 0;
  bool gone = false;  // a tombstone: the file was removed
  std::string node;   // who reported it (shown, never compared)
  bool operator==(const SharedRecord& o) const {
    return tree == o.tree && bytes == o.bytes && ctime_ns == o.ctime_ns && gone == o.gone;
  }
};

// {"t":"vol-a","b":123,"c":1700000000123456789,"n":"node-1"} (+ "g":true for a tombstone).
std::string encode_record(const SharedRecord& r);
std::optional<SharedRecord> decode_record(std::string_view json);

class SharedUsage {
 public:
  explicit SharedUsage(std::vector<std::string> trees = {}, std::string node = {});
  // The policy's trees (by name; the records name trees, so a reload renumbers nothing).
  void set_trees(std::vector<std::string> trees);
  size_t tree_count() const { return names_.size(); }

  // What this node's accounting says of a file now: charged to `tree` (its index; -1: in
  // no tree of the policy) with `bytes`, from attributes of `ctime_ns`; or removed.
  void local(const std::string& fh, int tree, uint64_t bytes, uint64_t ctime_ns, bool gone);
  // What etcd holds for a file now (a range, a watch event): the record and the key's
  // mod_revision, or nothing (the key was deleted: a tombstone expired). Older revisions
  // than the one known are ignored (a watch event of a write the range already showed).
  void remote(const std::string& fh, const std::optional<SharedRecord>& r, int64_t mod_revision);
  // Forget what etcd held (a reconnect reads it all again); local reports stay.
  void clear_remote();

  // Local reports that win over etcd's record and differ from it: what to publish, with
  // the revision the compare-and-swap expects (0: the key must not exist).
  struct Publish {
    std::string fh;
    SharedRecord record;
    int64_t expect_revision = 0;
  };
  // Local reports that are settled (etcd's record wins or equals them) are dropped: the
  // per-file memory is then etcd's record only.
  std::vector<Publish> to_publish(size_t max) const;
  size_t pending() const { return dirty_.size(); }

  // Nodes that hold a lease (this one is always counted).
  void set_nodes(std::set<std::string> live);
  size_t nodes() const { return live_.size(); }
  // The clock (milliseconds, any origin) that marks when a node last published a record of
  // a tree: the ones that did within `window_ms` (and hold a lease) share its room.
  void set_clock(uint64_t now_ms) { now_ms_ = now_ms; }
  void set_active_window(uint64_t ms) { window_ms_ = ms; }
  // This node and the other live nodes that published a record of the tree within the window.
  size_t writers(int tree) const;

  // Per tree: usage as this node sees it (etcd's records, with this node's newer reports
  // over them), usage in etcd's records only, and this node's growth that etcd has not
  // confirmed yet.
  uint64_t usage(int tree) const { return clamp(sums_[size_t(tree)].view); }
  uint64_t confirmed(int tree) const { return clamp(sums_[size_t(tree)].confirmed); }
  uint64_t unconfirmed_growth(int tree) const { return clamp(sums_[size_t(tree)].growth); }
  // What this node may still let the tree grow by: its share of the room (split among the
  // tree's writers()), less its unconfirmed growth (0 once it is used up).
  uint64_t room(int tree, uint64_t limit, uint64_t room_chunk) const;
  size_t files() const { return files_.size(); }
  uint64_t memory_bytes() const;

 private:
  using Sum = __int128;  // contributions come and go; exact, never below 0 in the end
  static uint64_t clamp(Sum s) { return s < 0 ? 0 : s > Sum(UINT64_MAX) ? UINT64_MAX : uint64_t(s); }
  struct Entry {
    std::optional<SharedRecord> remote;
    int64_t revision = 0;  // the key's mod_revision (0: no key)
    int64_t seen = 0;      // the newest revision heard of for the key (a delete's too)
    std::optional<SharedRecord> local;
    int remote_tree = -1, local_tree = -1;  // indices of the records' trees (-1: none known)
  };
  struct Sums {
    Sum view = 0, confirmed = 0, growth = 0;
  };
  bool local_wins(const Entry& e) const;
  bool is_dirty(const Entry& e) const { return e.local && local_wins(e) && !(e.remote && *e.remote == *e.local); }
  void contribute(const Entry& e, int sign);
  int index_of(const std::string& tree) const;
  // Changes an entry: its contribution out, `change`, its contribution in; the entry goes
  // once it holds nothing.
  template <class F>
  void update(const std::string& fh, F change);

  std::string node_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, int> index_;
  std::unordered_map<std::string, Entry> files_;
  std::vector<Sums> sums_;
  std::set<std::string> live_;
  // tree name -> node -> when it last published a record of the tree (set_clock's time)
  std::unordered_map<std::string, std::unordered_map<std::string, uint64_t>> active_;
  uint64_t now_ms_ = 0, window_ms_ = 5000;
  std::unordered_set<std::string> dirty_;  // handles of the entries is_dirty() holds for
};

}  // namespace nfsfence
