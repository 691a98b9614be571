#include "nfs/handle_cache.h"

namespace nfsfence {
namespace {
std::string_view as_sv(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
}  // namespace

HandleCache::HandleCache(std::vector<std::vector<std::string>> tree_paths, size_t max_handles)
    : max_handles_(max_handles) {
  build_trie(tree_paths);
}

void HandleCache::build_trie(const std::vector<std::vector<std::string>>& tree_paths) {
  trie_.assign(1, TrieNode{});
  for (size_t t = 0; t < tree_paths.size(); t++) {
    int cur = 0;
    for (auto& comp : tree_paths[t]) {
      auto it = trie_[cur].kids.find(comp);
      if (it == trie_[cur].kids.end()) {
        int next = int(trie_.size());
        trie_[cur].kids.emplace(comp, next);
        trie_.emplace_back();
        cur = next;
      } else {
        cur = it->second;
      }
    }
    trie_[cur].tree = int(t);
  }
}

void HandleCache::retree(std::vector<std::vector<std::string>> tree_paths, const std::vector<int>& renumber) {
  auto re = [&](int t) { return t < 0 ? t : size_t(t) < renumber.size() ? renumber[size_t(t)] : kNoTree; };
  constexpr int32_t kStale = -3;  // never a placement: place() sees every node reached as changed
  build_trie(tree_paths);
  for (Id i = 0; i < nodes_.size(); i++) {
    Node& n = nodes_[i];
    if (!n.live) continue;
    n.tree = re(n.tree);
    n.charged_tree = re(n.charged_tree);
    n.mirrored_tree = re(n.mirrored_tree);
    n.trie = n.parent != kNone || i == root_ ? kStale : -1;
  }
  if (root_ != kNone) resettle(root_);
  // What the root does not reach hangs below a node without a name: unknown, off the trie.
  for (Node& n : nodes_)
    if (n.live && n.trie == kStale) n.trie = -1;
}

std::string HandleCache::dirent_key(Id dir, std::string_view name) {
  std::string k(sizeof(Id) + name.size(), '\0');
  std::memcpy(k.data(), &dir, sizeof(Id));
  std::memcpy(k.data() + sizeof(Id), name.data(), name.size());
  return k;
}

void HandleCache::set_root(ByteView fh) {
  Id id = intern(fh);
  if (id == kNone || id == root_) return;
  Id old = root_;
  root_ = id;
  // The new root first: if the old one lies below it, the old one's placement is then
  // computed from settled ancestors.
  resettle(id);
  if (old != kNone) resettle(old);
}

HandleCache::Id HandleCache::find(ByteView fh) const {
  auto it = by_fh_.find(as_sv(fh));
  return it == by_fh_.end() ? kNone : it->second;
}

HandleCache::Id HandleCache::intern(ByteView fh) {
  auto it = by_fh_.find(as_sv(fh));
  if (it != by_fh_.end()) return it->second;
  std::string key(as_sv(fh));
  if (stats_.handles >= max_handles_) {
    stats_.full_drops++;
    return kNone;
  }
  Id id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    nodes_[id] = Node{};
  } else {
    id = Id(nodes_.size());
    nodes_.emplace_back();
  }
  // A new node has no parent: unknown, which is what Node{} says. Nothing to mirror yet.
  Node& n = nodes_[id];
  n.live = true;
  n.fh = &by_fh_.emplace(std::move(key), id).first->first;
  stats_.handles++;
  return id;
}

// Unlinks child from its parent (name, dirent, sibling list). Its placement is left for
// the caller to resettle().
void HandleCache::detach(Id child) {
  Node& n = nodes_[child];
  if (n.parent == kNone) return;
  auto it = dirents_.find(dirent_key(n.parent, n.name));
  if (it != dirents_.end() && it->second == child) dirents_.erase(it);
  if (n.prev_sibling != kNone)
    nodes_[n.prev_sibling].next_sibling = n.next_sibling;
  else
    nodes_[n.parent].first_child = n.next_sibling;
  if (n.next_sibling != kNone) nodes_[n.next_sibling].prev_sibling = n.prev_sibling;
  n.parent = n.next_sibling = n.prev_sibling = kNone;
  n.name.clear();
}

// A name went away (REMOVE, or the name now names another handle). A file (a node with
// no children) stays in the tree it was in: it may have other names (nlink > 1) that the
// cache never learned, and its bytes are still there, as far as anything tells. A
// directory's subtree becomes unknown: its contents could be anywhere now.
void HandleCache::drop_name(Id id) {
  detach(id);
  if (id == root_) return;  // placed by being the root, not by any name
  if (nodes_[id].has_children())
    resettle(id);
  else
    nodes_[id].trie = -1;  // its tree stays; no trie position without a parent
}

// Whether child may hang below dir without making a cycle: walks up from dir, at most
// kMaxDepth nodes (the graph is a forest, so the walk ends at a node with no parent).
bool HandleCache::may_attach(Id child, Id dir) {
  size_t steps = 0;
  for (Id cur = dir; cur != kNone; cur = nodes_[cur].parent) {
    if (cur == child) {
      stats_.cycles_refused++;
      return false;
    }
    if (++steps > kMaxDepth) {
      stats_.too_deep_refused++;
      return false;
    }
  }
  return true;
}

// child becomes dir/name (the caller has cleared any other handle dir/name named). A
// refused link leaves child unlinked: the server says it is no longer where it was, and
// where it is cannot be represented.
void HandleCache::attach(Id child, Id dir, std::string_view name) {
  detach(child);
  if (may_attach(child, dir)) {
    // A tree kept by a file that lost its name (drop_name()) is that file's alone: a
    // parentless node that gets children passes down only what a chain of names gives.
    if (nodes_[dir].parent == kNone && dir != root_ && !nodes_[dir].has_children()) resettle(dir);
    Node& n = nodes_[child];
    Node& d = nodes_[dir];
    n.parent = dir;
    n.name.assign(name);
    n.next_sibling = d.first_child;
    if (d.first_child != kNone) nodes_[d.first_child].prev_sibling = child;
    d.first_child = child;
    dirents_[dirent_key(dir, name)] = child;
  }
  resettle(child);
}

HandleCache::Id HandleCache::link(ByteView dir, std::string_view name, ByteView child, uint32_t type) {
  if (name.empty() || name == "." || name == "..") return kNone;
  Id d = intern(dir);
  Id c = intern(child);
  if (d == kNone || c == kNone || d == c) return kNone;
  if (type) nodes_[c].type = type;
  if (nodes_[d].type == 0) nodes_[d].type = 2;
  Id replaced = kNone;
  auto it = dirents_.find(dirent_key(d, name));
  if (it != dirents_.end()) {
    // A dirent names its node's one (parent, name): already known, the common case.
    if (it->second == c) return kNone;
    replaced = it->second;
    stats_.relinks++;
    drop_name(replaced);
  }
  attach(c, d, name);
  return replaced;
}

HandleCache::Id HandleCache::lookup_child(Id dir, std::string_view name) const {
  auto it = dirents_.find(dirent_key(dir, name));
  return it == dirents_.end() ? kNone : it->second;
}

HandleCache::Id HandleCache::unlink(ByteView dir, std::string_view name) {
  Id d = find(dir);
  if (d == kNone) return kNone;
  Id c = lookup_child(d, name);
  if (c != kNone) drop_name(c);
  return c;
}

HandleCache::Id HandleCache::rename(ByteView from_dir, std::string_view from_name, ByteView to_dir,
                                    std::string_view to_name, Id& replaced) {
  replaced = kNone;
  Id fd = find(from_dir);
  if (fd == kNone) return kNone;
  Id c = lookup_child(fd, from_name);
  if (c == kNone) return kNone;
  Id td = intern(to_dir);
  if (td == kNone) {  // cache full: it left from_dir for a place we cannot name
    detach(c);
    resettle(c);
    return c;
  }
  Id old = lookup_child(td, to_name);
  if (old == c) return c;  // renamed onto its own name
  if (old != kNone) {
    replaced = old;
    drop_name(old);
  }
  attach(c, td, to_name);
  return c;
}

void HandleCache::forget(Id id) {
  Node& n = nodes_[id];
  if (!n.live) return;
  detach(id);
  // Its children's names lived in this directory, and the id will be reused: orphan them
  // (their dirents are keyed by this id) so they become unknown rather than the new
  // handle's children.
  while (n.first_child != kNone) {
    Id k = n.first_child;
    detach(k);
    resettle(k);
  }
  if (track_ && n.mirrored_tree >= 0) forgotten_.push_back(*n.fh);
  by_fh_.erase(*n.fh);
  if (root_ == id) root_ = kNone;
  n = Node{};
  free_.push_back(id);
  stats_.handles--;
}

void HandleCache::compact() {
  size_t end = nodes_.size();
  while (end > 0 && !nodes_[end - 1].live) end--;
  if (end < nodes_.size()) {
    std::erase_if(free_, [&](Id id) { return id >= end; });
    std::erase_if(touched_, [&](Id id) { return id >= end; });  // forgotten since: nothing to mirror
    nodes_.resize(end);
  }
  nodes_.shrink_to_fit();
  free_.shrink_to_fit();
  std::vector<Id>().swap(walk_);
  by_fh_.rehash(0);
  dirents_.rehash(0);
}

// What id's placement must be given its parent's: the export root is at the trie's top
// and in no tree; a node with no parent, or below one that is unknown, is unknown; below
// a trie position, a name on a tree path moves one level down the trie (and a tree root
// there is the node's tree); any other name leaves the trie and inherits the tree.
HandleCache::Placement HandleCache::placement_of(Id id) const {
  if (id == root_) return {0, trie_[0].tree >= 0 ? trie_[0].tree : kNoTree};
  const Node& n = nodes_[id];
  if (n.parent == kNone) return {-1, kUnknown};
  const Node& p = nodes_[n.parent];
  if (p.tree == kUnknown) return {-1, kUnknown};
  if (p.trie < 0) return {-1, p.tree};
  auto it = trie_[p.trie].kids.find(n.name);
  if (it == trie_[p.trie].kids.end()) return {-1, p.tree};
  int t = trie_[it->second].tree;
  return {it->second, t >= 0 ? t : p.tree};
}

// Brings id's placement up to date; true if it changed (its children may then change too).
bool HandleCache::place(Id id) {
  stats_.nodes_resolved++;
  Placement p = placement_of(id);
  Node& n = nodes_[id];
  if (p.trie == n.trie && p.tree == n.tree) return false;
  int old = n.tree;
  n.trie = p.trie;
  n.tree = p.tree;
  if (old != n.tree) {
    if (track_ && !n.touched) {
      n.touched = true;
      touched_.push_back(id);
    }
    if (hook_) hook_(id, n, old);
  }
  return true;
}

// After id's parent, name or root status changed: updates id and, if its placement
// changed, every descendant whose placement follows from it. A node whose placement comes
// out unchanged keeps its whole subtree as it is, so the walk visits the nodes that
// changed and their children, no more. Iterative (an explicit stack): depth is up to the
// input.
void HandleCache::resettle(Id id) {
  if (!place(id) || !nodes_[id].has_children()) return;
  stats_.subtree_walks++;
  walk_.assign(1, id);
  while (!walk_.empty()) {
    Id d = walk_.back();
    walk_.pop_back();
    for (Id k = nodes_[d].first_child; k != kNone; k = nodes_[k].next_sibling)
      if (place(k) && nodes_[k].has_children()) walk_.push_back(k);
  }
}

void HandleCache::clear_touched() {
  for (Id id : touched_) nodes_[id].touched = false;
  touched_.clear();
}

size_t HandleCache::memory_bytes() const {
  auto str_heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  size_t bytes = nodes_.capacity() * sizeof(Node) + free_.capacity() * sizeof(Id);
  bytes += (touched_.capacity() + walk_.capacity()) * sizeof(Id);
  // unordered_map: one bucket pointer per bucket, one heap node (next ptr + key + value + hash) per entry
  constexpr size_t kMapNode = sizeof(void*) + sizeof(std::string) + sizeof(Id) + sizeof(size_t);
  bytes += (by_fh_.bucket_count() + dirents_.bucket_count()) * sizeof(void*);
  bytes += (by_fh_.size() + dirents_.size()) * kMapNode;
  for (auto& [k, v] : by_fh_) bytes += str_heap(k);
  for (auto& [k, v] : dirents_) bytes += str_heap(k);
  for (auto& n : nodes_) bytes += str_heap(n.name);
  return bytes;
}

}  // namespace nfsfence
