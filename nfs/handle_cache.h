// File handle -> (parent, name) graph learned from MNT, LOOKUP, CREATE, MKDIR, SYMLINK,
// MKNOD, LINK and READDIRPLUS replies, and the quota tree each handle belongs to: the tree
// whose root is its nearest ancestor. Bounded: past max_handles new handles are refused
// and counted, never silently mis-assigned.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nfs/common.h"

namespace nfsfence {

class HandleCache {
 public:
  using Id = uint32_t;
  static constexpr Id kNone = UINT32_MAX;
  static constexpr int kUnknown = -2;  // no chain of names from the export root is known
  static constexpr int kNoTree = -1;   // below the export root, but in no tree

  struct Node {
    const std::string* fh = nullptr;  // the key in by_fh_ (stable: node-based map)
    std::string name;
    Id parent = kNone;
    uint32_t children = 0;   // dirents naming this node as parent
    uint32_t type = 0;       // ftype3, 0 = not known yet
    uint32_t nlink = 0;
    bool live = false;       // false: slot on the free list
    // resolution cache
    uint64_t resolved_gen = 0;
    int tree = kUnknown;
    // accounting: bytes this file is charged with and to which tree
    uint64_t charged = 0;
    int charged_tree = kUnknown;
    // for a mirror of handle -> tree elsewhere (the agent's BPF map): what it holds now
    int mirrored_tree = kUnknown;
  };

  struct Stats {
    uint64_t handles = 0;       // live nodes
    uint64_t full_drops = 0;    // handles not cached because the cache was full
    uint64_t relinks = 0;       // a name re-pointed to a different handle
    uint64_t depth_limited = 0; // ancestor walks cut at kMaxDepth (cycles)
  };

  static constexpr size_t kMaxDepth = 1024;

  HandleCache(std::vector<std::vector<std::string>> tree_paths, size_t max_handles);

  void set_root(ByteView fh);
  bool has_root() const { return root_ != kNone; }
  Id root() const { return root_; }

  Id find(ByteView fh) const;
  Id intern(ByteView fh);  // kNone when the cache is full
  Node& node(Id id) { return nodes_[id]; }
  const Node& node(Id id) const { return nodes_[id]; }

  // dir/name -> child. Returns the id that `name` named before if it was another handle.
  Id link(ByteView dir, std::string_view name, ByteView child, uint32_t type);
  Id lookup_child(Id dir, std::string_view name) const;
  // Removes the name; returns the child it named (kNone if unknown). The child node stays.
  Id unlink(ByteView dir, std::string_view name);
  // Moves a name; returns the moved child and, in `replaced`, a handle the target name
  // named before (kNone if none).
  Id rename(ByteView from_dir, std::string_view from_name, ByteView to_dir, std::string_view to_name, Id& replaced);
  void forget(Id id);

  int tree_of(Id id);
  int tree_of_fh(ByteView fh);
  // Bumped whenever resolutions of nodes other than the one changed may change (a
  // directory moved, the root learned, a placeholder linked).
  uint64_t generation() const { return gen_; }

  template <typename F>
  void for_each(F&& f) {
    for (Id i = 0; i < nodes_.size(); i++)
      if (nodes_[i].live) f(i, nodes_[i]);
  }

  // Change tracking for mirrors (off by default: replay does not need it). Nodes whose
  // own parent changed or that are new are listed in touched(); forgotten handles'
  // bytes in forgotten(). A generation change means every node may have moved.
  void track_changes(bool on) { track_ = on; }
  std::vector<Id>& touched() { return touched_; }
  std::vector<std::string>& forgotten() { return forgotten_; }

  const Stats& stats() const { return stats_; }
  size_t memory_bytes() const;  // estimate of heap held, for the per-handle report

 private:
  // Heterogeneous lookup: finding a handle must not allocate (it runs per WRITE).
  struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using StrMap = std::unordered_map<std::string, Id, SvHash, std::equal_to<>>;
  struct TrieNode {
    std::unordered_map<std::string, int> kids;
    int tree = -1;
  };
  static std::string dirent_key(Id dir, std::string_view name);
  void set_parent(Id child, Id dir, std::string_view name);
  void detach(Id child);

  std::vector<TrieNode> trie_;
  std::vector<Node> nodes_;
  std::vector<Id> free_;
  StrMap by_fh_;
  StrMap dirents_;
  Id root_ = kNone;
  bool track_ = false;
  std::vector<Id> touched_;
  std::vector<std::string> forgotten_;
  size_t max_handles_;
  uint64_t gen_ = 1;
  Stats stats_;
};

}  // namespace nfsfence
