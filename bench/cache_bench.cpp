// nfsf_cache_bench [N]: fills the handle cache with N handles (1000 directories of files,
// learned through Accounting from CREATE replies, as from the wire) and prints the cache's
// own estimate of its memory and the process's RSS growth, per handle.
#include <cstdio>
#include <fstream>
#include <string>

#include "nfs/accounting.h"

using namespace nfsfence;

static long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string k;
  long v = 0;
  while (in >> k)
    if (k == "VmRSS:") {
      in >> v;
      return v;
    }
  return 0;
}

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::stoul(argv[1]) : 1000000;
  auto pol = parse_policy("export: /e\ntrees:\n  - {name: t, path: t, limit: 1Ti}\n", "bench");
  Accounting acct(*pol, n + 2000);
  auto fh = [](uint64_t i) {  // 32-byte handles, like ganesha's 24-40
    Bytes b(32, 0x42);
    for (int k = 0; k < 8; k++) b[k] = uint8_t(i >> (8 * k));
    return b;
  };
  auto reply = [](Bytes dir, std::string name, Bytes obj, uint32_t type) {
    RpcMessage m;
    m.type = MsgType::Reply;
    m.prog = kProgNfs;
    m.vers = 3;
    m.proc = NFS3_CREATE;
    auto c = std::make_shared<NfsFields>();
    c->dir_fh = std::move(dir);
    c->name = std::move(name);
    m.call = c;
    m.fields.status = 0;
    m.fields.obj_fh = std::move(obj);
    m.fields.attr = Attr{type, 4096, 4096, 0, 1};
    return m;
  };
  RpcMessage mnt;
  mnt.type = MsgType::Reply;
  mnt.prog = kProgMount;
  mnt.vers = 3;
  mnt.proc = MOUNT3_MNT;
  auto mc = std::make_shared<NfsFields>();
  mc->path = "/e";
  mnt.call = mc;
  mnt.fields.status = 0;
  mnt.fields.obj_fh = fh(~0ull);
  acct.on_message(mnt);
  acct.on_message(reply(fh(~0ull), "t", fh(~1ull), NF3DIR));
  long before = rss_kib();
  const size_t per_dir = 1000;
  for (size_t i = 0; i < n; i++) {
    if (i % per_dir == 0)
      acct.on_message(reply(fh(~1ull), "d" + std::to_string(i / per_dir), fh((1ull << 40) + i / per_dir), NF3DIR));
    acct.on_message(reply(fh((1ull << 40) + i / per_dir), "file-" + std::to_string(i) + ".dat", fh(i), NF3REG));
  }
  long after = rss_kib();
  size_t handles = acct.cache().stats().handles;
  std::printf("handles %zu, tree usage %llu bytes\n", handles, static_cast<unsigned long long>(acct.trees()[0].usage));
  std::printf("cache estimate: %zu bytes, %.0f bytes/handle\n", acct.cache().memory_bytes(),
              double(acct.cache().memory_bytes()) / double(handles));
  std::printf("RSS growth: %ld KiB, %.0f bytes/handle\n", after - before,
              double(after - before) * 1024 / double(handles));
  return acct.trees()[0].files == n ? 0 : 1;
}
