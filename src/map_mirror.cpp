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

MapMirror::MapMirror(const bpf::MapSet& maps, const Policy& policy, const std::map<std::string, uint32_t>& previous)
    : maps_(maps), policy_(&policy) {
  std::vector<bool> used(NFSF_MAX_TREES, false), stale(NFSF_MAX_TREES, false);
  slots_.assign(policy.trees.size(), 0);
  for (size_t i = 0; i < policy.trees.size(); i++)
    if (auto it = previous.find(policy.trees[i].name);
        it != previous.end() && it->second > 0 && it->second < NFSF_MAX_TREES && !used[it->second]) {
      slots_[i] = it->second;
      used[it->second] = true;
    }
  for (auto& [name, id] : previous)
    if (id > 0 && id < NFSF_MAX_TREES && !used[id]) stale[id] = true;
  for (uint32_t id = 1; id < NFSF_MAX_TREES; id++)
    if (!used[id] && !stale[id]) free_.push_back(id);
  for (uint32_t id = 1; id < NFSF_MAX_TREES; id++)
    if (stale[id]) free_.push_back(id);
  for (uint32_t& s : slots_)
    if (!s) s = take_slot();
  // Every id no tree holds is cleared: whatever an earlier agent left there refuses nothing.
  for (uint32_t id : free_) clear(id);
}

void MapMirror::clear(uint32_t id) {
  if (auto r = maps_.clear_tree(id); !r) {
    log("error: " + r.error().message());
    answered_[id] = kUnknown;
    return;
  }
  answered_[id] = 0;
  settled_at_[id] = 0;
}

uint32_t MapMirror::take_slot() {
  if (free_.empty()) return 0;
  uint32_t id = free_.front();
  free_.pop_front();
  clear(id);
  return id;
}

bool MapMirror::apply(HandleCache& cache, const Policy& next, const std::vector<int>& renumber) {
  size_t kept = 0;
  for (int j : renumber) kept += j >= 0;
  if (free_.size() + (renumber.size() - kept) < next.trees.size() - kept) return false;
  // The removed trees' handles first, while mirrored_tree still has the old numbering.
  cache.for_each([&](HandleCache::Id, HandleCache::Node& n) {
    if (n.mirrored_tree < 0 || renumber[size_t(n.mirrored_tree)] != HandleCache::kNoTree) return;
    std::span<const uint8_t> fh = bytes_of(*n.fh);
    (void)maps_.remove_handle(fh);
    mirrored_--;
    n.mirrored_tree = HandleCache::kUnknown;
  });
  std::vector<uint32_t> slots(next.trees.size(), 0);
  std::vector<uint64_t> usage(next.trees.size(), ~uint64_t(0)), left(next.trees.size(), ~uint64_t(0));
  std::vector<bool> dirty(next.trees.size(), true);
  std::vector<uint32_t> freed;
  for (size_t i = 0; i < renumber.size(); i++) {
    if (int j = renumber[i]; j >= 0) {
      slots[size_t(j)] = slots_[i];
      if (i < room_usage_.size()) usage[size_t(j)] = room_usage_[i];
      if (i < room_left_.size()) left[size_t(j)] = room_left_[i];
    } else {
      freed.push_back(slots_[i]);
    }
  }
  for (uint32_t id : freed) clear(id);  // nothing points at them now: cleared, and given out last
  free_.insert(free_.end(), freed.begin(), freed.end());
  for (uint32_t& s : slots)
    if (!s) s = take_slot();
  slots_ = std::move(slots);
  room_usage_ = std::move(usage);
  room_left_ = std::move(left);
  room_dirty_ = std::move(dirty);
  df_usage_.assign(next.trees.size(), ~uint64_t(0));  // limits may have changed: all written again
  policy_ = &next;                                    // the caller moves it into Accounting and calls set_policy()
  return true;
}

void MapMirror::mirror(HandleCache& c, HandleCache::Id id) {
  HandleCache::Node& n = c.node(id);
  if (!n.live) return;
  int t = c.tree_of(id);
  if (t < 0) t = HandleCache::kUnknown;
  if (t == n.mirrored_tree) return;
  std::span<const uint8_t> fh = bytes_of(*n.fh);
  if (fh.size() > NFSF_FH_MAX) return;
  if (t >= 0) {
    if (auto r = maps_.set_handle_tree(fh, kernel_id(t)); !r) {
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

void MapMirror::write_answered(int tree, uint64_t count, bool passed) {
  if (tree < 0 || size_t(tree) >= room_dirty_.size()) return;
  room_dirty_[size_t(tree)] = true;
  uint32_t id = kernel_id(tree);
  answered_since_[id] = true;
  if (passed && answered_[id] != kUnknown) answered_[id] += count;
}

void MapMirror::forget_answered() {
  std::fill(answered_.begin(), answered_.end(), kUnknown);
  std::fill(room_dirty_.begin(), room_dirty_.end(), true);
}

void MapMirror::settle() {
  for (size_t i = 0; i < slots_.size(); i++) {
    uint32_t id = slots_[i];
    auto t = maps_.tree(id);
    if (!t) continue;
    bool quiet = t->write_bytes == settled_at_[id] && !answered_since_[id];
    settled_at_[id] = t->write_bytes;
    answered_since_[id] = false;
    if (quiet && answered_[id] != t->write_bytes && i < room_dirty_.size()) {
      answered_[id] = kUnknown;
      room_dirty_[i] = true;
    }
  }
}

void MapMirror::sync_rooms(const std::vector<TreeState>& trees, bool all, const std::vector<uint64_t>* room) {
  const Policy& policy = *policy_;
  if (room_usage_.size() != policy.trees.size() || room_left_.size() != policy.trees.size()) {
    room_usage_.assign(policy.trees.size(), ~uint64_t(0));
    room_left_.assign(policy.trees.size(), ~uint64_t(0));
    room_dirty_.assign(policy.trees.size(), true);
  }
  if (df_usage_.size() != policy.trees.size()) df_usage_.assign(policy.trees.size(), ~uint64_t(0));
  for (size_t i = 0; i < policy.trees.size(); i++) {
    uint64_t usage = trees[i].usage, limit = policy.trees[i].limit;
    uint32_t id = kernel_id(int(i));
    if (all || usage != df_usage_[i]) {
      nfsf_tree_df df{};
      df.limit = limit;
      df.used = usage;
      df.flags = policy.fsstat == FsstatMode::Rewrite ? NFSF_DF_REWRITE : 0;
      if (auto r = maps_.set_tree_df(id, df); !r)
        log("error: " + r.error().message());
      else
        df_usage_[i] = usage;
    }
    uint64_t left = room && i < room->size() ? (*room)[i] : usage < limit ? limit - usage : 0;
    if (!all && !room_dirty_[i] && usage == room_usage_[i] && left == room_left_[i]) continue;
    room_dirty_[i] = false;
    auto t = maps_.tree(id);
    if (!t) {
      log("error: " + t.error().message());
      continue;
    }
    uint64_t& answered = answered_[id];
    if (answered == kUnknown || answered > t->write_bytes) answered = t->write_bytes;
    uint64_t full_at = answered + left;
    if (auto r = maps_.set_tree_room(id, full_at ? full_at : 1); !r) {
      log("error: " + r.error().message());
      continue;
    }
    room_usage_[i] = usage;
    room_left_[i] = left;
  }
}

void MapMirror::set_over(int tree, bool over) {
  if (auto r = maps_.set_tree_over(kernel_id(tree), over); !r) log("error: " + r.error().message());
}

}  // namespace nfsfence::agent
