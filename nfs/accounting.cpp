#include "nfs/accounting.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <unordered_map>

namespace nfsfence {
namespace {
std::vector<std::vector<std::string>> tree_paths(const Policy& p) {
  std::vector<std::vector<std::string>> out;
  for (auto& t : p.trees) out.push_back(t.components);
  return out;
}
ByteView view(const Bytes& b) { return ByteView(b.data(), b.size()); }

// The policy's server as an address: a literal, or the first address the name resolves to.
std::optional<Endpoint> server_address(const std::optional<std::string>& server) {
  if (!server) return std::nullopt;
  Endpoint e;
  if (inet_pton(AF_INET, server->c_str(), e.addr.data()) == 1) return e;
  if (inet_pton(AF_INET6, server->c_str(), e.addr.data()) == 1) {
    e.v6 = true;
    return e;
  }
  addrinfo* res = nullptr;
  if (getaddrinfo(server->c_str(), nullptr, nullptr, &res) != 0 || !res) return std::nullopt;
  if (res->ai_family == AF_INET6) {
    e.v6 = true;
    std::memcpy(e.addr.data(), &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, 16);
  } else {
    std::memcpy(e.addr.data(), &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, 4);
  }
  freeaddrinfo(res);
  return e;
}
}  // namespace

Accounting::Accounting(const Policy& policy, size_t max_handles, Events events)
    : policy_(policy),
      server_(server_address(policy_.server)),
      cache_(tree_paths(policy_), max_handles),
      events_(std::move(events)),
      trees_(policy.trees.size()),
      sums_(policy.trees.size() + 2),
      is_dirty_(policy.trees.size()) {
  cache_.set_tree_hook([this](HandleCache::Id, HandleCache::Node& n, int) { tree_changed(n); });
  if (policy.root_fh) cache_.set_root(view(*policy.root_fh));
  settle();
}

std::vector<int> Accounting::set_policy(Policy next) {
  std::unordered_map<std::string, int> by_name;
  for (size_t j = 0; j < next.trees.size(); j++) by_name.emplace(next.trees[j].name, int(j));
  std::vector<int> renumber(policy_.trees.size(), HandleCache::kNoTree);
  for (size_t i = 0; i < policy_.trees.size(); i++)
    if (auto it = by_name.find(policy_.trees[i].name); it != by_name.end()) renumber[i] = it->second;

  std::vector<HandleCache::Id> was_removed;  // nodes of a removed tree
  cache_.for_each([&](HandleCache::Id id, HandleCache::Node& n) {
    if (n.tree >= 0 && renumber[size_t(n.tree)] == HandleCache::kNoTree) was_removed.push_back(id);
  });

  std::vector<TreeState> trees(next.trees.size());
  std::vector<Sum> sums(next.trees.size() + 2);
  for (size_t i = 0; i < policy_.trees.size(); i++) {
    int j = renumber[i];
    if (j >= 0) {
      trees[size_t(j)] = trees_[i];
      sums[size_t(j)] = sums_[i];
    } else {
      sums[next.trees.size()] += sums_[i];  // 0 once its files were uncharged
    }
  }
  sums[next.trees.size()] += sums_[outside_bucket()];
  sums[next.trees.size() + 1] += sums_[unknown_bucket()];
  trees_ = std::move(trees);
  sums_ = std::move(sums);
  dirty_.clear();
  is_dirty_.assign(next.trees.size(), false);
  if (next.server != policy_.server) server_ = server_address(next.server);
  policy_ = std::move(next);
  // Files below a new or moved path move into their tree (through tree_changed()).
  cache_.retree(tree_paths(policy_), renumber);
  if (policy_.root_fh && !cache_.has_root()) cache_.set_root(view(*policy_.root_fh));
  // A removed tree's handles leave the cache, unless they are in a tree now or on the way
  // to one (a directory above a nested tree). Uncharged first: forgetting a directory
  // orphans its children, whose bytes must not move to "unknown" on the way out.
  auto leaves = [&](HandleCache::Id id) {
    const HandleCache::Node& n = cache_.node(id);
    return n.live && n.tree < 0 && n.trie < 0;
  };
  std::erase_if(was_removed, [&](HandleCache::Id id) { return !leaves(id); });
  for (HandleCache::Id id : was_removed) uncharge(id);
  for (HandleCache::Id id : was_removed) cache_.forget(id);
  if (!was_removed.empty()) cache_.compact();
  // Limits may have changed for every tree: check them all.
  for (size_t j = 0; j < trees_.size(); j++)
    if (!is_dirty_[j]) {
      is_dirty_[j] = true;
      dirty_.push_back(int(j));
    }
  settle();
  return renumber;
}

bool Accounting::from_policy_server(const RpcMessage& m) const {
  if (!policy_.server) return true;
  const Endpoint& server = m.type == MsgType::Call ? m.flow.dst : m.flow.src;
  if (!server_) return server.addr_str() == *policy_.server;  // unresolvable name: compare text
  return server.v6 == server_->v6 && server.addr == server_->addr;
}

size_t Accounting::bucket(int tree) const {
  if (tree >= 0) return size_t(tree);
  return tree == HandleCache::kNoTree ? outside_bucket() : unknown_bucket();
}

// Every change of a sum goes through add() and sub(): the tree is checked in settle().
void Accounting::add(int tree, uint64_t value) {
  size_t b = bucket(tree);
  sums_[b] += value;
  if (tree < 0) return;
  trees_[b].usage = clamp(sums_[b]);
  if (!is_dirty_[b]) {
    is_dirty_[b] = true;
    dirty_.push_back(tree);
  }
}

void Accounting::sub(int tree, uint64_t value) {
  size_t b = bucket(tree);
  sums_[b] -= std::min<Sum>(sums_[b], value);  // never more than was added: exact
  if (tree < 0) return;
  trees_[b].usage = clamp(sums_[b]);
  if (!is_dirty_[b]) {
    is_dirty_[b] = true;
    dirty_.push_back(tree);
  }
}

// Limits and events follow the usage once a whole message is applied, not the passing
// states in between (a subtree walk moves files one at a time).
void Accounting::settle() {
  for (int t : dirty_) {
    is_dirty_[size_t(t)] = false;
    check(t);
  }
  dirty_.clear();
  stats_.recounts = cache_.stats().subtree_walks;
}

void Accounting::check(int tree) {
  if (tree < 0) return;
  TreeState& t = trees_[tree];
  const TreePolicy& p = policy_.trees[tree];
  t.peak = std::max(t.peak, t.usage);
  bool over = t.usage >= p.limit;
  if (over != t.over) {
    t.over = over;
    if (over) {
      t.crossings++;
      if (!t.exceeded_at) t.exceeded_at = now_;
    }
    if (events_.on_limit) events_.on_limit(tree, over, now_);
  }
  if (p.soft_limit) {
    bool soft = t.usage >= *p.soft_limit;
    if (soft && !t.soft_over) {
      if (!t.soft_exceeded_at) t.soft_exceeded_at = now_;
      if (events_.on_soft_limit) events_.on_soft_limit(tree, now_);
    }
    t.soft_over = soft;
  }
}

void Accounting::file_changed(const HandleCache::Node& n, int was_tree, bool gone) {
  bool in_now = !gone && n.charged_file && n.charged_tree >= 0;
  if (!events_.on_file || !n.fh || (was_tree < 0 && !in_now)) return;
  if (gone)
    events_.on_file(*n.fh, was_tree, 0, n.ctime_ns, true);
  else
    events_.on_file(*n.fh, n.charged_file ? n.charged_tree : -1, n.charged, n.ctime_ns, false);
}

void Accounting::uncharge(HandleCache::Id id, bool gone) {
  auto& n = cache_.node(id);
  if (!n.charged_file) return;
  int was = n.charged_tree;
  sub(n.charged_tree, n.charged);
  if (n.charged_tree >= 0) trees_[n.charged_tree].files--;
  n.charged_file = false;
  n.charged = 0;
  n.charged_tree = HandleCache::kUnknown;
  file_changed(n, was, gone);
}

void Accounting::charge(HandleCache::Id id, uint64_t value) {
  auto& n = cache_.node(id);
  int was = n.charged_file ? n.charged_tree : HandleCache::kUnknown;
  if (n.charged_file) {
    sub(n.charged_tree, n.charged);
    if (n.charged_tree >= 0) trees_[n.charged_tree].files--;
  }
  n.charged_file = true;
  n.charged = value;
  n.charged_tree = n.tree;
  add(n.tree, value);
  if (n.tree >= 0) trees_[n.tree].files++;
  file_changed(n, was, false);
}

// The cache's tree hook: a node's tree changed (it, or a directory above it, moved).
void Accounting::tree_changed(HandleCache::Node& n) {
  if (!n.charged_file || n.charged_tree == n.tree) return;
  int was = n.charged_tree;
  sub(n.charged_tree, n.charged);
  if (n.charged_tree >= 0) trees_[n.charged_tree].files--;
  n.charged_tree = n.tree;
  add(n.tree, n.charged);
  if (n.tree >= 0) trees_[n.tree].files++;
  file_changed(n, was, false);
}

void Accounting::drop_file(HandleCache::Id id) {
  if (id == HandleCache::kNone) return;
  auto& n = cache_.node(id);
  if (n.nlink > 1) {  // other names still hold the file: keep it charged
    n.nlink--;
    return;
  }
  uncharge(id, true);
  if (!n.has_children()) cache_.forget(id);
}

void Accounting::update_attr(ByteView fh, const Attr& a) {
  stats_.attr_updates++;
  HandleCache::Id id = cache_.intern(fh);
  if (id == HandleCache::kNone) return;
  auto& n = cache_.node(id);
  uint64_t bytes = policy_.accounting == AccountingMode::Used ? a.used : a.size;
  // Of two attributes of the same file the newer ctime wins. With the same (non-zero)
  // ctime the larger size does: parallel WRITEs within one tick of the server's clock
  // only grow a file, and a truncation in that tick is counted at the next attributes.
  if (a.type == NF3REG && n.charged_file && a.ctime_ns != 0 &&
      (a.ctime_ns < n.ctime_ns || (a.ctime_ns == n.ctime_ns && bytes < n.charged))) {
    stats_.stale_attrs++;
    return;
  }
  n.type = a.type;
  n.nlink = a.nlink;
  if (a.type != NF3REG) {
    uncharge(id);
    return;
  }
  n.ctime_ns = a.ctime_ns;
  charge(id, bytes);
}

void Accounting::link(ByteView dir, const std::string& name, ByteView child, const std::optional<Attr>& a) {
  stats_.links++;
  // The cache moves the bytes of whatever changed tree (through tree_changed()).
  HandleCache::Id replaced = cache_.link(dir, name, child, a ? a->type : 0);
  if (replaced != HandleCache::kNone && cache_.node(replaced).type == NF3REG) drop_file(replaced);
  if (a) update_attr(child, *a);
}

void Accounting::on_message(const RpcMessage& m) {
  apply(m);
  settle();
}

void Accounting::apply(const RpcMessage& m) {
  if (m.type != MsgType::Reply || !m.call || !m.proc) return;
  if (!from_policy_server(m)) {
    stats_.other_server++;
    return;
  }
  now_ = m.ts;
  const NfsFields& c = *m.call;
  const NfsFields& r = m.fields;
  bool ok = r.status && *r.status == 0;
  if (m.prog == kProgMount && m.vers == 3) {
    if (*m.proc == MOUNT3_MNT && ok && r.obj_fh && c.path) {
      std::string p = *c.path;
      while (p.size() > 1 && p.back() == '/') p.pop_back();
      if (p == policy_.export_path) {
        stats_.roots_learned++;
        cache_.set_root(view(*r.obj_fh));
      }
    }
    return;
  }
  if (m.prog != kProgNfs || m.vers != 3) return;
  switch (*m.proc) {
    case NFS3_GETATTR:
    case NFS3_SETATTR:
    case NFS3_READ:
    case NFS3_WRITE:
    case NFS3_COMMIT:
    case NFS3_ACCESS:
    case NFS3_READLINK:
      if (r.attr && c.fh) update_attr(view(*c.fh), *r.attr);
      break;
    case NFS3_LOOKUP:
    case NFS3_CREATE:
    case NFS3_MKDIR:
    case NFS3_SYMLINK:
    case NFS3_MKNOD:
      if (!ok) break;
      if (r.obj_fh && c.dir_fh && c.name)
        link(view(*c.dir_fh), *c.name, view(*r.obj_fh), r.attr);
      else if (*m.proc != NFS3_LOOKUP)
        stats_.create_without_fh++;
      break;
    case NFS3_LINK:
      if (ok && c.fh && c.to_dir_fh && c.to_name) link(view(*c.to_dir_fh), *c.to_name, view(*c.fh), r.attr);
      break;
    case NFS3_READDIRPLUS:
      if (!ok || !c.fh) break;
      for (auto& e : r.entries)
        if (e.fh) link(view(*c.fh), e.name, view(*e.fh), e.attr);
      break;
    case NFS3_REMOVE:
    case NFS3_RMDIR:
      if (ok && c.dir_fh && c.name) {
        stats_.removes++;
        HandleCache::Id id = cache_.unlink(view(*c.dir_fh), *c.name);
        if (id != HandleCache::kNone) drop_file(id);
      }
      break;
    case NFS3_RENAME:
      if (ok && c.dir_fh && c.name && c.to_dir_fh && c.to_name) {
        stats_.renames++;
        HandleCache::Id replaced;
        HandleCache::Id moved = cache_.rename(view(*c.dir_fh), *c.name, view(*c.to_dir_fh), *c.to_name, replaced);
        if (replaced != HandleCache::kNone && replaced != moved) drop_file(replaced);
      }
      break;
    default:
      break;
  }
}

}  // namespace nfsfence
