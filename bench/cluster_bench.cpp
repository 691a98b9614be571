// nfsf_cluster_bench: what sharing usage through etcd costs etcd (docs/benchmarks.md,
// "Several nodes"). N simulated nodes, each a real src/cluster.h client (its own lease,
// compare-and-swap publishes, watch), against a real etcd; each node is fed the file
// reports a recorded capture gives (the capture replayed once through the decoder and the
// accounting, on_file recorded), looped for SECS at RATE WRITE replies per second per node,
// its files spread over TREES trees and made its own (a file of the capture is a different
// file on every node, growing on every loop).
//
//   nfsf_cluster_bench --etcd URL --capture PCAP --policy YAML [--nodes N] [--trees T]
//                      [--seconds S] [--rate R] [--flush-ms F] [--copies C] [--prefix P]
//
// --copies C (default 250): each file of the capture stands for C files of the node, written
// in turn (one loop of the recording each), so that the nodes' files cover the trees.
//
// Prints one JSON line: WRITE replies fed, file reports, requests to etcd (txn, keepalive,
// grant, range), bytes sent, reports published, conflicts, watch events delivered, and per
// second and per WRITE reply. bench/cluster_bench.sh starts etcd and runs the table.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "nfs/accounting.h"
#include "nfs/capture.h"
#include "nfs/decoder.h"
#include "nfs/policy.h"
#include "src/cluster.h"

using namespace nfsfence;
using nlohmann::json;

namespace {
struct Report {
  std::string fh;
  int tree;
  uint64_t bytes, ctime_ns;
  bool gone;
  bool write;  // the report came from a WRITE reply
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "nfsf_cluster_bench: %s\n", m.c_str());
  std::exit(1);
}

// The capture's file reports, in order, and its WRITE replies.
std::vector<Report> record(const std::string& capture, const Policy& policy, uint64_t& writes) {
  std::vector<Report> out;
  bool in_write = false;
  Accounting::Events ev;
  ev.on_file = [&](const std::string& fh, int tree, uint64_t bytes, uint64_t ctime, bool gone) {
    out.push_back(Report{fh, tree, bytes, ctime, gone, in_write});
  };
  Accounting acct(policy, 1u << 20, ev);
  Decoder dec([&](const RpcMessage& m) {
    in_write = m.type == MsgType::Reply && m.prog == kProgNfs && m.proc == 7u;
    if (in_write) writes++;
    acct.on_message(m);
    in_write = false;
  });
  auto r = CaptureReader::open(capture);
  if (!r) die(r.error().message);
  RawPacket p;
  while ((*r)->next(p)) dec.feed(p);
  dec.finish();
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  std::string etcd_url, capture, policy_path, prefix = "/nfsfence-bench";
  size_t nodes = 1, trees = 1000, copies = 250;
  double seconds = 10, rate = 1000;
  unsigned flush_ms = 100;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--etcd")
      etcd_url = val();
    else if (a == "--capture")
      capture = val();
    else if (a == "--policy")
      policy_path = val();
    else if (a == "--nodes")
      nodes = std::stoul(val());
    else if (a == "--trees")
      trees = std::stoul(val());
    else if (a == "--seconds")
      seconds = std::stod(val());
    else if (a == "--rate")
      rate = std::stod(val());
    else if (a == "--flush-ms")
      flush_ms = unsigned(std::stoul(val()));
    else if (a == "--copies")
      copies = std::max<size_t>(1, std::stoul(val()));
    else if (a == "--prefix")
      prefix = val();
    else
      die("unknown option " + a + " (see the comment at the top of bench/cluster_bench.cpp)");
  }
  if (etcd_url.empty() || capture.empty() || policy_path.empty()) die("--etcd, --capture and --policy are required");
  auto policy = load_policy(policy_path);
  if (!policy) die(policy.error().message);
  uint64_t cap_writes = 0;
  std::vector<Report> rec = record(capture, *policy, cap_writes);
  size_t rec_writes = 0;
  for (const Report& r : rec) rec_writes += r.write;
  if (rec.empty() || !rec_writes) die(capture + ": no file reports with WRITEs in it under " + policy_path);

  std::vector<std::string> names;
  for (size_t t = 0; t < trees; t++) {
    char n[32];
    std::snprintf(n, sizeof n, "t%04zu", t);
    names.push_back(n);
  }
  ClusterPolicy cfg;
  cfg.etcd = {etcd_url};
  cfg.prefix = prefix;
  cfg.flush_ms = flush_ms;
  cfg.room_chunk = 64ull << 20;
  cfg.lease_ttl_s = 10;
  std::vector<std::unique_ptr<agent::Cluster>> cl;
  for (size_t k = 0; k < nodes; k++) {
    cl.push_back(std::make_unique<agent::Cluster>(cfg, "sim-" + std::to_string(k), names));
    cl.back()->start();
  }
  auto connected = [&] {
    for (auto& c : cl)
      if (c->status().state != "connected") return false;
    return true;
  };
  for (int i = 0; i < 200 && !connected(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!connected()) die("not every simulated node connected to " + etcd_url);

  auto sum = [&](auto field) {
    uint64_t s = 0;
    for (auto& c : cl) s += field(c->status());
    return s;
  };
  uint64_t req0 = sum([](const agent::ClusterStatus& s) { return s.requests; });
  uint64_t bytes0 = sum([](const agent::ClusterStatus& s) { return s.bytes_sent; });
  uint64_t pub0 = sum([](const agent::ClusterStatus& s) { return s.published; });
  uint64_t ev0 = sum([](const agent::ClusterStatus& s) { return s.watch_events; });

  // Feed: every node plays the recording from its own offset, at `rate` WRITE replies/s.
  auto t0 = std::chrono::steady_clock::now();
  auto until = t0 + std::chrono::duration<double>(seconds);
  uint64_t fed_writes = 0, fed_reports = 0;
  std::vector<size_t> pos(nodes, 0), loop(nodes, 0);
  const uint64_t span = rec.back().ctime_ns - rec.front().ctime_ns + 1;
  const auto tick = std::chrono::milliseconds(10);
  double owed = 0;
  while (std::chrono::steady_clock::now() < until) {
    owed += rate * 0.010;  // WRITE replies per node this tick
    size_t n = size_t(owed);
    owed -= double(n);
    for (size_t k = 0; k < nodes; k++) {
      size_t w = 0;
      while (w < n) {
        const Report& r = rec[pos[k]];
        std::string fh = r.fh + "#" + std::to_string(k) + "#" + std::to_string(loop[k] % copies);
        int tree = r.tree < 0 ? -1 : int(std::hash<std::string>{}(fh) % trees);
        uint64_t grow = (loop[k] / copies) * (uint64_t(1) << 20);
        cl[k]->local(fh, tree, r.gone ? 0 : r.bytes + grow, r.ctime_ns + loop[k] * span, r.gone);
        fed_reports++;
        if (r.write) {
          w++;
          fed_writes++;
        }
        if (++pos[k] == rec.size()) {
          pos[k] = 0;
          loop[k]++;
        }
      }
    }
    std::this_thread::sleep_for(tick);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Let what is pending go out before counting.
  for (int i = 0; i < 100; i++) {
    if (sum([](const agent::ClusterStatus& s) { return uint64_t(s.pending); }) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  uint64_t req = sum([](const agent::ClusterStatus& s) { return s.requests; }) - req0;
  uint64_t bytes = sum([](const agent::ClusterStatus& s) { return s.bytes_sent; }) - bytes0;
  uint64_t pub = sum([](const agent::ClusterStatus& s) { return s.published; }) - pub0;
  uint64_t ev = sum([](const agent::ClusterStatus& s) { return s.watch_events; }) - ev0;
  uint64_t conflicts = sum([](const agent::ClusterStatus& s) { return s.conflicts; });
  uint64_t pending = sum([](const agent::ClusterStatus& s) { return uint64_t(s.pending); });
  uint64_t files = cl.front()->status().files;
  uint64_t reconnects = sum([](const agent::ClusterStatus& s) { return s.reconnects; });
  uint64_t not_connected = sum([](const agent::ClusterStatus& s) { return uint64_t(s.state != "connected"); });
  json out{{"nodes", nodes},
           {"trees", trees},
           {"flush_ms", flush_ms},
           {"seconds", std::round(secs * 100) / 100},
           {"rate_per_node", rate},
           {"capture", capture},
           {"capture_writes", cap_writes},
           {"fed_writes", fed_writes},
           {"fed_reports", fed_reports},
           {"etcd_requests", req},
           {"etcd_requests_per_s", std::round(double(req) / secs)},
           {"etcd_bytes_sent_per_s", std::round(double(bytes) / secs)},
           {"published", pub},
           {"published_per_s", std::round(double(pub) / secs)},
           {"published_per_write", std::round(double(pub) / double(fed_writes) * 10000) / 10000},
           {"conflicts", conflicts},
           {"watch_events", ev},
           {"watch_events_per_s", std::round(double(ev) / secs)},
           {"pending_at_end", pending},
           {"copies", copies},
           {"reconnects", reconnects},
           {"nodes_not_connected_at_end", not_connected},
           {"files_known_by_node0", files}};
  std::printf("%s\n", out.dump().c_str());
  cl.clear();  // publishes what is left, revokes the leases
  return 0;
}
