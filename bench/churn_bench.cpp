// nfsf_churn_bench [--quick]: cost of directory renames against the number of cached
// handles (issue 8: metadata churn). Builds an export with two trees, t1 and t2, fills t1
// with N files (directories of 1000, learned from CREATE replies as from the wire) plus a
// small directory "mv" of 10 files, then renames "mv" R times, within t1 (mv <-> mv2 in the
// same directory) and between the trees (t1/mv <-> t2/mv). Messages are synthetic replies
// fed straight into Accounting: no capture, no decoder. Prints microseconds per rename (of
// this thread's CPU time: the machines it runs on are shared, and wall time would count the
// other jobs), and the nodes the cache re-resolved per rename (0 where it cannot tell); if
// the cost of a rename does not depend on N, the columns at fixed R are flat. Exits 1 if a
// tree's usage is not exact after a phase.
#include <time.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "nfs/accounting.h"

using namespace nfsfence;

namespace {

constexpr uint64_t kFileBytes = 4096;
constexpr size_t kMoved = 10;  // files in the renamed directory
constexpr size_t kPerDir = 1000;

Bytes fh(uint64_t i) {  // 32-byte handles, like ganesha's 24-40
  Bytes b(32, 0x42);
  for (int k = 0; k < 8; k++) b[k] = uint8_t(i >> (8 * k));
  return b;
}

RpcMessage reply(uint32_t prog, uint32_t proc, std::shared_ptr<NfsFields> call) {
  RpcMessage m;
  m.type = MsgType::Reply;
  m.prog = prog;
  m.vers = 3;
  m.proc = proc;
  m.call = std::move(call);
  m.fields.status = 0;
  return m;
}

RpcMessage create(const Bytes& dir, std::string name, const Bytes& obj, uint32_t type) {
  auto c = std::make_shared<NfsFields>();
  c->dir_fh = dir;
  c->name = std::move(name);
  RpcMessage m = reply(kProgNfs, type == NF3DIR ? NFS3_MKDIR : NFS3_CREATE, c);
  m.fields.obj_fh = obj;
  m.fields.attr = Attr{type, type == NF3DIR ? 0 : kFileBytes, type == NF3DIR ? 0 : kFileBytes, 0, 1};
  return m;
}

RpcMessage rename(const Bytes& fd, std::string fname, const Bytes& td, std::string tname) {
  auto c = std::make_shared<NfsFields>();
  c->dir_fh = fd;
  c->name = std::move(fname);
  c->to_dir_fh = td;
  c->to_name = std::move(tname);
  return reply(kProgNfs, NFS3_RENAME, c);
}

// Work counter of the incremental cache (absent before it): nodes re-resolved.
template <typename S>
uint64_t nodes_resolved(const S& s) {
  if constexpr (requires { s.nodes_resolved; })
    return s.nodes_resolved;
  else
    return 0;
}

double cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

struct Result {
  double within_us = 0, between_us = 0;
  uint64_t within_nodes = 0, between_nodes = 0;
  bool exact = true;
  uint64_t handles = 0;
};

const Bytes kRoot = fh(~0ull), kT1 = fh(~1ull), kT2 = fh(~2ull), kMv = fh(~3ull);

Result run(const Policy& pol, size_t files, size_t renames) {
  Result res;
  Accounting acct(pol, files + files / kPerDir + 100);
  auto mc = std::make_shared<NfsFields>();
  mc->path = "/e";
  RpcMessage mnt = reply(kProgMount, MOUNT3_MNT, mc);
  mnt.fields.obj_fh = kRoot;
  acct.on_message(mnt);
  acct.on_message(create(kRoot, "t1", kT1, NF3DIR));
  acct.on_message(create(kRoot, "t2", kT2, NF3DIR));
  for (size_t i = 0; i < files; i++) {
    Bytes dir = fh((1ull << 40) + i / kPerDir);
    if (i % kPerDir == 0) acct.on_message(create(kT1, "d" + std::to_string(i / kPerDir), dir, NF3DIR));
    acct.on_message(create(dir, "file-" + std::to_string(i) + ".dat", fh(i), NF3REG));
  }
  acct.on_message(create(kT1, "mv", kMv, NF3DIR));
  for (size_t i = 0; i < kMoved; i++)
    acct.on_message(create(kMv, "m" + std::to_string(i), fh((1ull << 41) + i), NF3REG));
  const uint64_t t1_all = (files + kMoved) * kFileBytes, moved = kMoved * kFileBytes;
  auto exact = [&](uint64_t t1, uint64_t t2) {
    if (acct.trees()[0].usage != t1 || acct.trees()[1].usage != t2) res.exact = false;
  };
  exact(t1_all, 0);
  res.handles = acct.cache().stats().handles;

  // Build the messages first: the timed loop is only Accounting::on_message.
  std::vector<RpcMessage> within, between;
  for (size_t i = 0; i < renames; i++) {
    within.push_back(i % 2 == 0 ? rename(kT1, "mv", kT1, "mv2") : rename(kT1, "mv2", kT1, "mv"));
    between.push_back(i % 2 == 0 ? rename(kT1, "mv", kT2, "mv") : rename(kT2, "mv", kT1, "mv"));
  }
  uint64_t n0 = nodes_resolved(acct.cache().stats());
  double t0 = cpu_us();
  for (auto& m : within) acct.on_message(m);
  double t1 = cpu_us();
  uint64_t n1 = nodes_resolved(acct.cache().stats());
  exact(t1_all, 0);
  if (renames % 2) acct.on_message(rename(kT1, "mv2", kT1, "mv"));  // back to t1/mv
  uint64_t n2 = nodes_resolved(acct.cache().stats());
  double t2 = cpu_us();
  for (auto& m : between) acct.on_message(m);
  double t3 = cpu_us();
  uint64_t n3 = nodes_resolved(acct.cache().stats());
  if (renames % 2)
    exact(t1_all - moved, moved);
  else
    exact(t1_all, 0);
  res.within_us = (t1 - t0) / double(renames);
  res.between_us = (t3 - t2) / double(renames);
  res.within_nodes = (n1 - n0) / renames;
  res.between_nodes = (n3 - n2) / renames;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  auto pol = parse_policy(
      "export: /e\ntrees:\n  - {name: t1, path: t1, limit: 1Pi}\n  - {name: t2, path: t2, limit: 1Pi}\n", "bench");
  if (!pol) return 2;
  struct Row {
    size_t files, renames;
  };
  std::vector<Row> rows = quick ? std::vector<Row>{{20000, 1000}, {200000, 1000}}
                                : std::vector<Row>{{200000, 1000}, {200000, 10000}, {200000, 30000},
                                                   {20000, 10000}, {100000, 10000}, {200000, 10000}};
  std::printf("%10s %8s  %14s %14s  %12s %12s\n", "handles", "renames", "within us/ren", "between us/ren",
              "within nodes", "between nodes");
  bool ok = true;
  for (auto& r : rows) {
    Result res = run(*pol, r.files, r.renames);
    std::printf("%10llu %8zu  %14.2f %14.2f  %12llu %12llu%s\n", static_cast<unsigned long long>(res.handles),
                r.renames, res.within_us, res.between_us, static_cast<unsigned long long>(res.within_nodes),
                static_cast<unsigned long long>(res.between_nodes), res.exact ? "" : "  USAGE NOT EXACT");
    std::fflush(stdout);
    ok = ok && res.exact;
  }
  return ok ? 0 : 1;
}
