// The policy loader (yaml-cpp and our checks), parse_size and decode_record (what another
// node left in etcd, nfs/shared_usage.h) on arbitrary bytes: never an
// exception or a crash; an error is one line naming the origin; an accepted policy is
// well-formed; sizes written as integers come back exact.
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "nfs/policy.h"
#include "nfs/shared_usage.h"

using namespace nfsfence;

namespace {
void check(bool ok) {
  if (!ok) abort();
}

void check_error(const std::string& m, const std::string& origin) {
  check(m.rfind(origin, 0) == 0 && m.size() > origin.size() + 1);
  check(m.find('\n') == std::string::npos && m.find('\r') == std::string::npos);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto p = parse_policy(text, "f.yaml");
    if (!p) {
      check_error(p.error().message, "f.yaml:");
    } else {
      check(!p->export_path.empty() && p->export_path[0] == '/');
      check(!p->trees.empty());
      std::set<std::string> names, paths;
      for (const TreePolicy& t : p->trees) {
        check(!t.name.empty() && names.insert(t.name).second);
        check(!t.path.empty() && t.path[0] != '/' && t.path.back() != '/' && paths.insert(t.path).second);
        std::string joined;
        for (const std::string& c : t.components) {
          check(!c.empty() && c != "." && c != ".." && c.find('/') == std::string::npos);
          joined += (joined.empty() ? "" : "/") + c;
        }
        check(joined == t.path);
        check(!t.soft_limit || *t.soft_limit <= t.limit);
      }
      if (p->cluster) {
        check(!p->cluster->etcd.empty() && p->cluster->prefix.size() > 1 && p->cluster->prefix[0] == '/');
        check(p->cluster->room_chunk > 0 && p->cluster->flush_ms > 0 && p->cluster->lease_ttl_s >= 2);
      }
    }

    // The same bytes as a record another node put into etcd: decoded or refused, and a
    // decoded one comes back the same through encode_record.
    if (auto r = decode_record(text)) {
      auto again = decode_record(encode_record(*r));
      check(again && *again == *r && again->node == r->node);
    }

    auto s = parse_size(text);
    if (!s) check_error(s.error().message, "'");

    // A number of bytes, or whole units, comes back exactly.
    uint64_t v = 0;
    std::memcpy(&v, data, size < 8 ? size : 8);
    auto b = parse_size(std::to_string(v));
    check(b && *b == v);
    auto ki = parse_size(std::to_string(v >> 10) + "KiB");
    check(ki && *ki == (v >> 10) << 10);
  } catch (...) {
    abort();  // nothing may escape
  }
  return 0;
}
