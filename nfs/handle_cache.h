// File handle -> (parent, name) graph learned from MNT, LOOKUP, CREATE, MKDIR, SYMLINK,
// MKNOD, LINK and READDIRPLUS replies, and the quota tree each handle belongs to: the tree
// whose root is its nearest ancestor. Bounded: past max_handles new handles are refused
// and counted, never silently mis-assigned.
//
// Every node's placement (its position in the trie of tree paths and its tree) is kept
// current at all times, not resolved lazily: a change costs what it moves. When a node is
// linked, moved or unlinked, or becomes or stops being the export root, its placement is
// recomputed from its parent's (no parent: unknown, but see unlink() for a file that loses
// its name); only if it differs are its descendants visited (an
// iterative walk that stops below every node whose placement came out unchanged), and
// each node whose tree changed is reported to the tree hook (Accounting moves the file's
// bytes) and, when tracking, listed in touched() (the agent's BPF map). So renaming a
// directory within its tree, off every tree path, is O(1) whatever the cache holds;
// moving one between trees costs its subtree.
//
// The graph is kept a forest: a link that would make a directory its own ancestor is
// refused (see kMaxDepth), so every walk terminates.
#pragma once

#include <functional>
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
    // This node's children, as an intrusive doubly linked list: a moved directory's
    // subtree can be walked, and a child unlinked in O(1).
    Id first_child = kNone;
    Id next_sibling = kNone;
    Id prev_sibling = kNone;
    uint32_t type = 0;  // ftype3, 0 = not known yet
    uint32_t nlink = 0;
    // placement, always current: position in the trie of tree paths (-1: on no tree path)
    // and the tree
    int32_t trie = -1;
    int tree = kUnknown;
    bool live = false;     // false: slot on the free list
    bool touched = false;  // listed in touched() since it was last cleared
    // accounting: whether this file is charged, with how many bytes and to which tree
    bool charged_file = false;
    uint64_t charged = 0;
    uint64_t ctime_ns = 0;  // of the attributes `charged` was taken from
    int charged_tree = kUnknown;
    // for a mirror of handle -> tree elsewhere (the agent's BPF map): what it holds now
    int mirrored_tree = kUnknown;

    bool has_children() const { return first_child != kNone; }
  };

  struct Stats {
    uint64_t handles = 0;           // live nodes
    uint64_t full_drops = 0;        // new handles not cached because the cache was full (each attempt)
    uint64_t relinks = 0;           // a name re-pointed to a different handle
    uint64_t cycles_refused = 0;    // links refused: the child is an ancestor of the new parent
    uint64_t too_deep_refused = 0;  // links refused: the new parent's chain exceeds kMaxDepth
    uint64_t subtree_walks = 0;     // a node with children changed placement: its subtree was walked
    uint64_t nodes_resolved = 0;    // placements recomputed (each relinked node, each node a walk visited)
  };

  // A link (or rename) is refused when the chain from the new parent up to its topmost
  // known ancestor has more than kMaxDepth nodes: that chain is what must be walked to
  // prove the link makes no cycle, so it is the one walk whose length the input could
  // otherwise choose. A refused node is left unlinked (its subtree unknown), as when a
  // name is not known at all. Real exports are far shallower; a deeper directory (one can
  // be built with relative paths) gets no tree, and its files count as unknown.
  static constexpr size_t kMaxDepth = 1024;

  HandleCache(std::vector<std::vector<std::string>> tree_paths, size_t max_handles);

  // A new set of tree paths (a policy reload). `renumber[t]` is the new number of old tree
  // t (kNoTree: it is gone); every node's tree, charged tree and mirrored tree are
  // renumbered first, then every placement below the root is computed afresh against the
  // new paths (one pass over what the root reaches), and the tree hook sees each node
  // whose tree changed, in the new numbering.
  void retree(std::vector<std::vector<std::string>> tree_paths, const std::vector<int>& renumber);

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
  // Removes the name; returns the child it named (kNone if unknown). The child node stays,
  // unlinked: a file keeps its tree (it may have names the cache does not know: nlink > 1),
  // a directory's subtree is unknown until named again. The same holds for a handle that
  // link() or rename() replaces.
  Id unlink(ByteView dir, std::string_view name);
  // Moves a name; returns the moved child and, in `replaced`, a handle the target name
  // named before (kNone if none).
  Id rename(ByteView from_dir, std::string_view from_name, ByteView to_dir, std::string_view to_name, Id& replaced);
  // Drops a handle; its children become unknown. The caller uncharges it first.
  void forget(Id id);
  // After many forget()s: gives back the free slots at the end of the node table and the
  // hash tables' spare buckets (ids of live nodes do not change).
  void compact();

  int tree_of(Id id) const { return id == kNone ? kUnknown : nodes_[id].tree; }
  int tree_of_fh(ByteView fh) const { return tree_of(find(fh)); }

  // Called for every node whose tree changes, after its placement was updated, with the
  // tree it had: Accounting moves a charged file's bytes. It must not change the graph.
  using TreeHook = std::function<void(Id id, Node& n, int old_tree)>;
  void set_tree_hook(TreeHook hook) { hook_ = std::move(hook); }

  template <typename F>
  void for_each(F&& f) {
    for (Id i = 0; i < nodes_.size(); i++)
      if (nodes_[i].live) f(i, nodes_[i]);
  }

  // Change tracking for mirrors (off by default: replay does not need it): the nodes whose
  // tree changed since clear_touched(), each once (an id may repeat if it was forgotten
  // and reused; the entry then means the new handle), and forgotten handles' bytes.
  void track_changes(bool on) { track_ = on; }
  const std::vector<Id>& touched() const { return touched_; }
  void clear_touched();
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
  struct Placement {
    int32_t trie;
    int tree;
  };
  static std::string dirent_key(Id dir, std::string_view name);
  void build_trie(const std::vector<std::vector<std::string>>& tree_paths);
  bool may_attach(Id child, Id dir);
  void attach(Id child, Id dir, std::string_view name);
  void detach(Id child);
  void drop_name(Id id);
  Placement placement_of(Id id) const;
  bool place(Id id);
  void resettle(Id id);

  std::vector<TrieNode> trie_;
  std::vector<Node> nodes_;
  std::vector<Id> free_;
  StrMap by_fh_;
  StrMap dirents_;
  Id root_ = kNone;
  bool track_ = false;
  std::vector<Id> touched_;
  std::vector<std::string> forgotten_;
  std::vector<Id> walk_;  // resettle()'s stack, kept to reuse its memory
  TreeHook hook_;
  size_t max_handles_;
  Stats stats_;
};

}  // namespace nfsfence
