#include "nfs/tree_walk.h"

#include <deque>
#include <memory>

#include "nfs/rpc_client.h"

namespace nfsfence {
namespace {

std::string nfs_status_name(uint32_t s) {
  switch (s) {
    case 2:
      return "NFS3ERR_NOENT";
    case 13:
      return "NFS3ERR_ACCES";
    case 20:
      return "NFS3ERR_NOTDIR";
    case 70:
      return "NFS3ERR_STALE";
    case 10001:
      return "NFS3ERR_BADHANDLE";
    default:
      return "status " + std::to_string(s);
  }
}

}  // namespace

namespace {

// MNT of the export, then a connection to NFS: what a walk and a path check start with.
struct Session {
  Bytes root_fh;
  std::unique_ptr<RpcClient> nfs;
  uint64_t rpcs = 0;
};

Expected<Session> open_session(const WalkOptions& opt, const std::string& export_path, Accounting* acct) {
  std::string where = opt.server + ":" + export_path;
  uint16_t mport = opt.mount_port;
  if (!mport) {
    auto p = RpcClient::getport(opt.server, kProgMount, 3, opt.timeout);
    if (!p) return make_error("MOUNT v3 port: " + p.error().message + " (give --mount-port)");
    if (!*p) return make_error(opt.server + ": MOUNT v3 over TCP is not registered with the portmapper");
    mport = *p;
  }
  auto mc = RpcClient::connect(opt.server, mport, opt.timeout);
  if (!mc) return unexpected(mc.error());
  XdrWriter mnt;
  mnt.str(export_path);
  auto mr = (*mc)->call(kProgMount, 3, MOUNT3_MNT, mnt.bytes());
  Session s;
  s.rpcs++;
  if (!mr) return unexpected(mr.error());
  if (!mr->fields.status || *mr->fields.status != 0 || !mr->fields.obj_fh)
    return make_error(where + ": MNT refused (mountstat3 " + std::to_string(mr->fields.status.value_or(~0u)) +
                      "): is the export path right?");
  if (acct) acct->on_message(*mr);
  s.root_fh = *mr->fields.obj_fh;
  auto nc = RpcClient::connect(opt.server, opt.nfs_port, opt.timeout);
  if (!nc) return unexpected(nc.error());
  s.nfs = std::move(*nc);
  return s;
}

// LOOKUP of a tree's path, component by component, from the export root: its handle.
Expected<Bytes> lookup_tree(Session& s, const WalkOptions& opt, const std::string& export_path, const TreePolicy& t,
                            Accounting* acct) {
  std::string where = opt.server + ":" + export_path;
  Bytes cur = s.root_fh;
  std::string walked;
  for (const std::string& comp : t.components) {
    walked += (walked.empty() ? "" : "/") + comp;
    XdrWriter a;
    a.opaque(cur).str(comp);
    auto r = s.nfs->call(kProgNfs, 3, NFS3_LOOKUP, a.bytes());
    s.rpcs++;
    if (!r) return unexpected(r.error());
    if (!r->fields.status || *r->fields.status != 0 || !r->fields.obj_fh)
      return make_error("tree '" + t.name + "': path '" + walked + "' does not exist on " + where + " (" +
                        nfs_status_name(r->fields.status.value_or(~0u)) + ")");
    if (acct) acct->on_message(*r);
    cur = *r->fields.obj_fh;
    if (r->fields.attr && r->fields.attr->type != NF3DIR)
      return make_error("tree '" + t.name + "': '" + walked + "' on " + where + " is not a directory");
  }
  return cur;
}

}  // namespace

Expected<void> check_tree_paths(const WalkOptions& opt, const std::string& export_path,
                                const std::vector<TreePolicy>& trees) {
  if (trees.empty()) return {};
  auto s = open_session(opt, export_path, nullptr);
  if (!s) return unexpected(s.error());
  for (const TreePolicy& t : trees)
    if (auto fh = lookup_tree(*s, opt, export_path, t, nullptr); !fh) return unexpected(fh.error());
  return {};
}

Expected<WalkResult> walk_trees(const WalkOptions& opt, Accounting& acct) {
  auto t0 = std::chrono::steady_clock::now();
  const Policy& pol = acct.policy();
  WalkResult res;
  std::string where = opt.server + ":" + pol.export_path;
  auto s = open_session(opt, pol.export_path, &acct);
  if (!s) return unexpected(s.error());
  res.root_fh = s->root_fh;
  RpcClient& nfs = *s->nfs;

  std::deque<Bytes> dirs;
  std::vector<int> which = opt.only;
  if (which.empty())
    for (size_t i = 0; i < pol.trees.size(); i++) which.push_back(int(i));
  for (int i : which) {
    auto fh = lookup_tree(*s, opt, pol.export_path, pol.trees[size_t(i)], &acct);
    if (!fh) return unexpected(fh.error());
    res.tree_fhs.push_back(*fh);
    dirs.push_back(*fh);
  }
  res.rpcs = s->rpcs;

  // Breadth-first READDIRPLUS of every tree. Nested trees are walked once.
  std::unordered_map<std::string, bool> seen;
  while (!dirs.empty()) {
    Bytes dir = std::move(dirs.front());
    dirs.pop_front();
    if (!seen.emplace(std::string(dir.begin(), dir.end()), true).second) continue;
    res.directories++;
    uint64_t cookie = 0;
    Bytes verf(8, 0);
    for (;;) {
      XdrWriter a;
      a.opaque(dir).u64(cookie).fixed(ByteView(verf.data(), verf.size())).u32(opt.dircount).u32(opt.maxcount);
      auto r = nfs.call(kProgNfs, 3, NFS3_READDIRPLUS, a.bytes());
      res.rpcs++;
      if (!r) return unexpected(r.error());
      if (!r->fields.status || *r->fields.status != 0) {
        // A directory removed while we walk is not an error of the walk.
        if (r->fields.status && (*r->fields.status == 2 || *r->fields.status == 70)) break;
        return make_error(where + ": READDIRPLUS failed (" + nfs_status_name(r->fields.status.value_or(~0u)) + ")");
      }
      if (r->decode != DecodeResult::Ok) return make_error(where + ": READDIRPLUS reply did not decode");
      acct.on_message(*r);
      for (const DirEntryPlus& e : r->fields.entries) {
        cookie = e.cookie;
        if (e.name == "." || e.name == "..") continue;
        res.handles++;
        if (e.fh && e.attr && e.attr->type == NF3DIR) dirs.push_back(*e.fh);
      }
      if (r->fields.cookieverf) verf = *r->fields.cookieverf;
      if (r->fields.eof.value_or(true) || r->fields.entries.empty()) break;
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace nfsfence
