#include "nfs/shared_usage.h"

#include <nlohmann/json.hpp>

namespace nfsfence {

std::string encode_record(const SharedRecord& r) {
  nlohmann::json j{{"t", r.tree}, {"b", r.bytes}, {"c", r.ctime_ns}, {"n", r.node}};
  if (r.gone) j["g"] = true;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // a node name need not be UTF-8
}

std::optional<SharedRecord> decode_record(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto t = j.find("t"), b = j.find("b"), c = j.find("c");
  if (t == j.end() || !t->is_string() || b == j.end() || !b->is_number_unsigned() || c == j.end() ||
      !c->is_number_unsigned())
    return std::nullopt;
  SharedRecord r;
  r.tree = t->get<std::string>();
  r.bytes = b->get<uint64_t>();
  r.ctime_ns = c->get<uint64_t>();
  if (auto g = j.find("g"); g != j.end()) {
    if (!g->is_boolean()) return std::nullopt;
    r.gone = g->get<bool>();
  }
  if (auto n = j.find("n"); n != j.end() && n->is_string()) r.node = n->get<std::string>();
  return r;
}

SharedUsage::SharedUsage(std::vector<std::string> trees, std::string node) : node_(std::move(node)) {
  live_.insert(node_);
  set_trees(std::move(trees));
}

void SharedUsage::set_nodes(std::set<std::string> live) {
  live_ = std::move(live);
  live_.insert(node_);
}

size_t SharedUsage::writers(int tree) const {
  size_t n = 1;  // this node
  auto it = active_.find(names_[size_t(tree)]);
  if (it == active_.end()) return n;
  for (const auto& [node, at] : it->second)
    if (node != node_ && live_.count(node) && now_ms_ - std::min(at, now_ms_) <= window_ms_) n++;
  return n;
}

int SharedUsage::index_of(const std::string& tree) const {
  auto it = index_.find(tree);
  return it == index_.end() ? -1 : it->second;
}

void SharedUsage::set_trees(std::vector<std::string> trees) {
  names_ = std::move(trees);
  index_.clear();
  for (size_t i = 0; i < names_.size(); i++) index_.emplace(names_[i], int(i));
  sums_.assign(names_.size(), Sums{});
  for (auto& [fh, e] : files_) {
    e.remote_tree = e.remote ? index_of(e.remote->tree) : -1;
    e.local_tree = e.local ? index_of(e.local->tree) : -1;
    contribute(e, +1);
  }
}

bool SharedUsage::local_wins(const Entry& e) const {
  if (!e.local) return false;
  if (!e.remote) return true;
  if (e.remote->gone) return false;  // a removed file stays removed
  if (e.local->gone) return true;
  if (e.local->ctime_ns != e.remote->ctime_ns) return e.local->ctime_ns > e.remote->ctime_ns;
  // One tick of the server's clock: parallel WRITEs only grow a file (as in Accounting).
  return e.local->bytes >= e.remote->bytes;
}

void SharedUsage::contribute(const Entry& e, int sign) {
  bool lw = local_wins(e);
  const std::optional<SharedRecord>& win = lw ? e.local : e.remote;
  int wt = lw ? e.local_tree : e.remote_tree;
  if (win && !win->gone && wt >= 0) sums_[size_t(wt)].view += sign * Sum(win->bytes);
  bool remote_counts = e.remote && !e.remote->gone && e.remote_tree >= 0;
  if (remote_counts) sums_[size_t(e.remote_tree)].confirmed += sign * Sum(e.remote->bytes);
  if (is_dirty(e) && !e.local->gone && e.local_tree >= 0) {
    Sum g = Sum(e.local->bytes) - (remote_counts && e.remote_tree == e.local_tree ? Sum(e.remote->bytes) : 0);
    if (g > 0) sums_[size_t(e.local_tree)].growth += sign * g;
  }
}

template <class F>
void SharedUsage::update(const std::string& fh, F change) {
  auto [it, fresh] = files_.try_emplace(fh);
  Entry& e = it->second;
  if (!fresh) contribute(e, -1);
  change(e);
  if (e.local && !local_wins(e)) e.local.reset();  // etcd's record wins: nothing to publish
  if (e.local && e.remote && *e.local == *e.remote) e.local.reset();
  e.remote_tree = e.remote ? index_of(e.remote->tree) : -1;
  e.local_tree = e.local ? index_of(e.local->tree) : -1;
  if (is_dirty(e))
    dirty_.insert(fh);
  else
    dirty_.erase(fh);
  if (!e.local && !e.remote) {
    files_.erase(it);
    return;
  }
  contribute(e, +1);
}

void SharedUsage::local(const std::string& fh, int tree, uint64_t bytes, uint64_t ctime_ns, bool gone) {
  // A removed file gets a tombstone even when nothing of it was shared yet: it guards
  // against a late report of the file from another node.
  auto it = files_.find(fh);
  // A file in no tree that no one reported in one: nothing to share.
  if (tree < 0 && it == files_.end()) return;
  SharedRecord r;
  r.tree = tree >= 0 && size_t(tree) < names_.size() ? names_[size_t(tree)] : std::string();
  r.bytes = gone ? 0 : bytes;
  r.ctime_ns = ctime_ns;
  r.gone = gone;
  r.node = node_;
  update(fh, [&](Entry& e) { e.local = std::move(r); });
}

void SharedUsage::remote(const std::string& fh, const std::optional<SharedRecord>& r, int64_t rev) {
  auto it = files_.find(fh);
  if (it != files_.end() && rev < it->second.seen) return;
  if (!r && it == files_.end()) return;
  if (r && !r->gone && !r->tree.empty() && r->node != node_) active_[r->tree][r->node] = now_ms_;
  update(fh, [&](Entry& e) {
    e.seen = std::max(e.seen, rev);
    e.remote = r;
    e.revision = r ? rev : 0;
  });
}

void SharedUsage::clear_remote() {
  std::vector<std::string> keys;
  keys.reserve(files_.size());
  for (auto& [fh, e] : files_)
    if (e.remote) keys.push_back(fh);
  for (const std::string& fh : keys)
    update(fh, [](Entry& e) {
      e.remote.reset();
      e.revision = 0;
      e.seen = 0;
    });
}

std::vector<SharedUsage::Publish> SharedUsage::to_publish(size_t max) const {
  std::vector<Publish> out;
  for (const std::string& fh : dirty_) {
    if (out.size() >= max) break;
    const Entry& e = files_.at(fh);
    out.push_back(Publish{fh, *e.local, e.revision});
  }
  return out;
}

uint64_t SharedUsage::room(int tree, uint64_t limit, uint64_t room_chunk) const {
  uint64_t conf = confirmed(tree);
  uint64_t share = conf < limit ? (limit - conf) / writers(tree) : 0;
  share = std::min(share, room_chunk);
  uint64_t g = unconfirmed_growth(tree);
  return share > g ? share - g : 0;
}

uint64_t SharedUsage::memory_bytes() const {
  // Per entry: the node of the map, the key, and one or two records with their strings.
  uint64_t b = files_.bucket_count() * sizeof(void*) + dirty_.bucket_count() * sizeof(void*);
  for (auto& [fh, e] : files_) {
    b += sizeof(Entry) + 2 * sizeof(void*) + fh.capacity();
    if (e.remote) b += e.remote->tree.capacity() + e.remote->node.capacity();
    if (e.local) b += e.local->tree.capacity() + e.local->node.capacity();
  }
  return b;
}

}  // namespace nfsfence
