#include "nfs/handle_cache.h"

namespace nfsfence {
namespace {
std::string_view as_sv(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
}  // namespace

HandleCache::HandleCache(std::vector<std::vector<std::string>> tree_paths, size_t max_handles)
    : max_handles_(max_handles) {
  trie_.emplace_back();
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

std::string HandleCache::dirent_key(Id dir, std::string_view name) {
  std::string k(sizeof(Id) + name.size(), '\0');
  std::memcpy(k.data(), &dir, sizeof(Id));
  std::memcpy(k.data() + sizeof(Id), name.data(), name.size());
  return k;
}

void HandleCache::set_root(ByteView fh) {
  Id id = intern(fh);
  if (id == kNone || id == root_) return;
  root_ = id;
  gen_++;
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
  Node& n = nodes_[id];
  n.live = true;
  n.fh = &by_fh_.emplace(std::move(key), id).first->first;
  if (track_) touched_.push_back(id);
  stats_.handles++;
  return id;
}

void HandleCache::detach(Id child) {
  Node& n = nodes_[child];
  if (n.parent == kNone) return;
  auto it = dirents_.find(dirent_key(n.parent, n.name));
  if (it != dirents_.end() && it->second == child) dirents_.erase(it);
  if (nodes_[n.parent].children) nodes_[n.parent].children--;
  n.parent = kNone;
  n.name.clear();
}

void HandleCache::set_parent(Id child, Id dir, std::string_view name) {
  Node& n = nodes_[child];
  // A node others hang off (or a directory) moving changes their resolution too.
  bool moved = n.parent != kNone || n.children > 0;
  detach(child);
  n.parent = dir;
  n.name.assign(name);
  nodes_[dir].children++;
  dirents_[dirent_key(dir, name)] = child;
  if (moved && (n.children > 0 || n.type == 2 /*NF3DIR*/)) gen_++;
  n.resolved_gen = 0;  // its own resolution is recomputed on next use
  if (track_) touched_.push_back(child);
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
    if (it->second == c && nodes_[c].parent == d) return kNone;  // already known: the common case
    if (it->second != c) {
      replaced = it->second;
      stats_.relinks++;
      detach(replaced);
    }
  }
  if (nodes_[c].parent == d && nodes_[c].name == name) return replaced;
  set_parent(c, d, name);
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
  if (c != kNone) {
    bool had_children = nodes_[c].children > 0;
    detach(c);
    if (had_children) gen_++;
  }
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
  if (td == kNone) return kNone;
  Id old = lookup_child(td, to_name);
  if (old != kNone && old != c) {
    replaced = old;
    detach(old);
  }
  set_parent(c, td, to_name);
  if (nodes_[c].type == 2 || nodes_[c].children > 0) gen_++;
  return c;
}

void HandleCache::forget(Id id) {
  Node& n = nodes_[id];
  if (!n.live) return;
  detach(id);
  if (n.children) gen_++;  // orphans its children: their resolution becomes unknown
  if (track_ && n.mirrored_tree >= 0) forgotten_.push_back(*n.fh);
  by_fh_.erase(*n.fh);
  if (root_ == id) root_ = kNone;
  n = Node{};
  free_.push_back(id);
  stats_.handles--;
}

int HandleCache::tree_of(Id id) {
  if (id == kNone) return kUnknown;
  Node& n = nodes_[id];
  if (n.resolved_gen == gen_) return n.tree;
  // Walk up to the export root, then down the trie of tree paths: the deepest tree root
  // on the way is the nearest ancestor tree.
  Id chain[kMaxDepth];
  size_t depth = 0;
  Id cur = id;
  while (cur != kNone && cur != root_ && depth < kMaxDepth) {
    chain[depth++] = cur;
    cur = nodes_[cur].parent;
  }
  int tree = kUnknown;
  if (depth == kMaxDepth) {
    stats_.depth_limited++;
  } else if (cur == root_ && root_ != kNone) {
    tree = kNoTree;
    int t = 0;
    for (size_t i = depth; i-- > 0 && t >= 0;) {
      auto it = trie_[t].kids.find(nodes_[chain[i]].name);
      if (it == trie_[t].kids.end()) break;
      t = it->second;
      if (trie_[t].tree >= 0) tree = trie_[t].tree;
    }
  }
  n.tree = tree;
  n.resolved_gen = gen_;
  return tree;
}

int HandleCache::tree_of_fh(ByteView fh) { return tree_of(find(fh)); }

size_t HandleCache::memory_bytes() const {
  auto str_heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  size_t bytes = nodes_.capacity() * sizeof(Node) + free_.capacity() * sizeof(Id);
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
