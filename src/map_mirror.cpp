#include "src/map_mirror.h"

#include <span>
#include <string>

#include "src/agent_common.h"

namespace nfsfence::agent {

namespace {

std::span<const uint8_t> bytes_of(const std::string& fh) {
  return {reinterpret_cast<const uint8_t*>(fh.data()), fh.size()};
}

}  // namespace

uint32_t kernel_tree_id(size_t index) { return uint32_t(index + 1); }

void MapMirror::mirror(HandleCache& c, HandleCache::Id id) {
  HandleCache::Node& n = c.node(id);
  if (!n.live) return;
  int t = c.tree_of(id);
  if (t < 0) t = HandleCache::kUnknown;
  if (t == n.mirrored_tree) return;
  std::span<const uint8_t> fh = bytes_of(*n.fh);
  if (fh.size() > NFSF_FH_MAX) return;
  if (t >= 0) {
    if (auto r = maps_.set_handle_tree(fh, kernel_tree_id(size_t(t))); !r) {
      log("error: " + r.error().message());
      return;
    }
    if (n.mirrored_tree < 0) mirrored_++;
  } else {
    (void)maps_.remove_handle(fh);
    mirrored_--;
  }
  n.mirrored_tree = t;
}

void MapMirror::sync_handles(HandleCache& c, bool full) {
  for (const std::string& fh : c.forgotten()) {
    (void)maps_.remove_handle(bytes_of(fh));
    mirrored_--;
  }
  c.forgotten().clear();
  if (full)
    c.for_each([&](HandleCache::Id id, HandleCache::Node&) { mirror(c, id); });
  else
    for (HandleCache::Id id : c.touched()) mirror(c, id);
  c.clear_touched();
}

void MapMirror::write_answered(int tree) {
  if (tree >= 0 && size_t(tree) < room_dirty_.size()) room_dirty_[size_t(tree)] = true;
}

void MapMirror::sync_rooms(const std::vector<TreeState>& trees, bool all) {
  if (room_usage_.size() != policy_.trees.size()) {
    room_usage_.assign(policy_.trees.size(), ~uint64_t(0));
    room_dirty_.assign(policy_.trees.size(), true);
    df_usage_.assign(policy_.trees.size(), ~uint64_t(0));
  }
  for (size_t i = 0; i < policy_.trees.size(); i++) {
    uint64_t usage = trees[i].usage, limit = policy_.trees[i].limit;
    uint32_t id = kernel_tree_id(i);
    if (all || usage != df_usage_[i]) {
      nfsf_tree_df df{};
      df.limit = limit;
      df.used = usage;
      df.flags = policy_.fsstat == FsstatMode::Rewrite ? NFSF_DF_REWRITE : 0;
      if (auto r = maps_.set_tree_df(id, df); !r)
        log("error: " + r.error().message());
      else
        df_usage_[i] = usage;
    }
    if (!all && !room_dirty_[i] && usage == room_usage_[i]) continue;
    room_dirty_[i] = false;
    auto t = maps_.tree(id);
    if (!t) {
      log("error: " + t.error().message());
      continue;
    }
    uint64_t full_at = t->write_bytes + (usage < limit ? limit - usage : 0);
    if (auto r = maps_.set_tree_room(id, full_at ? full_at : 1); !r) {
      log("error: " + r.error().message());
      continue;
    }
    room_usage_[i] = usage;
  }
}

void MapMirror::set_over(int tree, bool over) {
  if (auto r = maps_.set_tree_over(kernel_tree_id(size_t(tree)), over); !r) log("error: " + r.error().message());
}

}  // namespace nfsfence::agent
