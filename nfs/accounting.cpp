#include "nfs/accounting.h"

#include <arpa/inet.h>
#include <netdb.h>

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
    : policy_(policy), server_(server_address(policy.server)), cache_(tree_paths(policy), max_handles), events_(std::move(events)), trees_(policy.trees.size()) {
  if (policy.root_fh) cache_.set_root(view(*policy.root_fh));
  seen_gen_ = cache_.generation();
}

bool Accounting::from_policy_server(const RpcMessage& m) const {
  if (!policy_.server) return true;
  const Endpoint& server = m.type == MsgType::Call ? m.flow.dst : m.flow.src;
  if (!server_) return server.addr_str() == *policy_.server;  // unresolvable name: compare text
  return server.v6 == server_->v6 && server.addr == server_->addr;
}

uint64_t& Accounting::bucket(int tree) {
  if (tree >= 0) return trees_[tree].usage;
  return tree == HandleCache::kNoTree ? outside_ : unknown_;
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

void Accounting::uncharge(HandleCache::Id id) {
  auto& n = cache_.node(id);
  if (n.charged_tree == HandleCache::kUnknown && n.charged == 0) return;
  bucket(n.charged_tree) -= n.charged;
  if (n.charged_tree >= 0) trees_[n.charged_tree].files--;
  int old = n.charged_tree;
  n.charged = 0;
  n.charged_tree = HandleCache::kUnknown;
  check(old);
}

void Accounting::charge(HandleCache::Id id, uint64_t value) {
  int tree = cache_.tree_of(id);
  auto& n = cache_.node(id);
  bool was_charged = !(n.charged_tree == HandleCache::kUnknown && n.charged == 0);
  int old = n.charged_tree;
  if (was_charged) {
    bucket(old) -= n.charged;
    if (old >= 0) trees_[old].files--;
  }
  n.charged = value;
  n.charged_tree = tree;
  bucket(tree) += value;
  if (tree >= 0) trees_[tree].files++;
  if (was_charged && old != tree) check(old);
  check(tree);
}

void Accounting::drop_file(HandleCache::Id id) {
  if (id == HandleCache::kNone) return;
  auto& n = cache_.node(id);
  if (n.nlink > 1) {  // other names still hold the file: keep it charged
    n.nlink--;
    return;
  }
  uncharge(id);
  if (n.children == 0) cache_.forget(id);
}

void Accounting::update_attr(ByteView fh, const Attr& a) {
  stats_.attr_updates++;
  HandleCache::Id id = cache_.intern(fh);
  if (id == HandleCache::kNone) return;
  auto& n = cache_.node(id);
  n.type = a.type;
  n.nlink = a.nlink;
  if (a.type != NF3REG) {
    uncharge(id);
    return;
  }
  charge(id, policy_.accounting == AccountingMode::Used ? a.used : a.size);
}

void Accounting::link(ByteView dir, const std::string& name, ByteView child, const std::optional<Attr>& a) {
  stats_.links++;
  HandleCache::Id replaced = cache_.link(dir, name, child, a ? a->type : 0);
  if (replaced != HandleCache::kNone && cache_.node(replaced).type == NF3REG) drop_file(replaced);
  sync_generation();
  HandleCache::Id id = cache_.find(child);
  if (a) {
    update_attr(child, *a);
  } else if (id != HandleCache::kNone && cache_.node(id).charged > 0) {
    charge(id, cache_.node(id).charged);  // re-resolve: its tree may have changed
  }
}

void Accounting::sync_generation() {
  if (cache_.generation() != seen_gen_) recount();
}

void Accounting::recount() {
  stats_.recounts++;
  seen_gen_ = cache_.generation();
  for (auto& t : trees_) {
    t.usage = 0;
    t.files = 0;
  }
  outside_ = unknown_ = 0;
  cache_.for_each([&](HandleCache::Id id, HandleCache::Node& n) {
    if (n.charged == 0 && n.charged_tree == HandleCache::kUnknown) return;
    n.charged_tree = cache_.tree_of(id);
    bucket(n.charged_tree) += n.charged;
    if (n.charged_tree >= 0) trees_[n.charged_tree].files++;
  });
  for (size_t i = 0; i < trees_.size(); i++) check(int(i));
}

void Accounting::on_message(const RpcMessage& m) {
  if (m.type != MsgType::Reply || !m.call || !m.proc) return;
  if (!from_policy_server(m)) {
    stats_.other_server++;
    return;
  }
  now_ = m.ts;
  const NfsFields& c = *m.call;
  const NfsFields& r = m.fields;
  bool ok = r.status && *r.status == 0;
  if (m.prog == 100005 && m.vers == 3) {
    if (*m.proc == MOUNT3_MNT && ok && r.obj_fh && c.path) {
      std::string p = *c.path;
      while (p.size() > 1 && p.back() == '/') p.pop_back();
      if (p == policy_.export_path) {
        stats_.roots_learned++;
        cache_.set_root(view(*r.obj_fh));
        sync_generation();
      }
    }
    return;
  }
  if (m.prog != 100003 || m.vers != 3) return;
  switch (*m.proc) {
    case NFS3_GETATTR: case NFS3_SETATTR: case NFS3_READ: case NFS3_WRITE: case NFS3_COMMIT:
    case NFS3_ACCESS: case NFS3_READLINK:
      if (r.attr && c.fh) update_attr(view(*c.fh), *r.attr);
      break;
    case NFS3_LOOKUP: case NFS3_CREATE: case NFS3_MKDIR: case NFS3_SYMLINK: case NFS3_MKNOD:
      if (!ok) break;
      if (r.obj_fh && c.dir_fh && c.name) link(view(*c.dir_fh), *c.name, view(*r.obj_fh), r.attr);
      else if (*m.proc != NFS3_LOOKUP) stats_.create_without_fh++;
      break;
    case NFS3_LINK:
      if (ok && c.fh && c.to_dir_fh && c.to_name) link(view(*c.to_dir_fh), *c.to_name, view(*c.fh), r.attr);
      break;
    case NFS3_READDIRPLUS:
      if (!ok || !c.fh) break;
      for (auto& e : r.entries)
        if (e.fh) link(view(*c.fh), e.name, view(*e.fh), e.attr);
      break;
    case NFS3_REMOVE: case NFS3_RMDIR:
      if (ok && c.dir_fh && c.name) {
        stats_.removes++;
        HandleCache::Id id = cache_.unlink(view(*c.dir_fh), *c.name);
        if (id != HandleCache::kNone) drop_file(id);
        sync_generation();
      }
      break;
    case NFS3_RENAME:
      if (ok && c.dir_fh && c.name && c.to_dir_fh && c.to_name) {
        stats_.renames++;
        HandleCache::Id replaced;
        HandleCache::Id moved = cache_.rename(view(*c.dir_fh), *c.name, view(*c.to_dir_fh), *c.to_name, replaced);
        if (replaced != HandleCache::kNone && replaced != moved) drop_file(replaced);
        sync_generation();
        if (moved != HandleCache::kNone && cache_.node(moved).charged_tree != HandleCache::kUnknown)
          charge(moved, cache_.node(moved).charged);
      }
      break;
    default:
      break;
  }
}

}  // namespace nfsfence
