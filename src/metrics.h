// Prometheus metrics of the TC agent (`nfsfence attach IFACE --metrics ADDR:PORT`): the
// agent publishes a snapshot about once a second; prometheus-cpp's exposer serves it as
// text exposition at /metrics from its own threads. Names: docs/metrics.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "nfs/common.h"
#include "nfsfence_abi.h"

namespace prometheus {
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace nfsfence::agent {

struct MetricsSnapshot {
  struct Tree {
    std::string name;
    uint64_t limit = 0, usage = 0;
    bool over = false;
    // the kernel's tree counters (struct nfsf_tree)
    uint64_t writes = 0, write_bytes = 0, refused_writes = 0, refused_bytes = 0;
  };
  std::vector<Tree> trees;
  // with the policy's cluster: (src/cluster.h)
  struct Cluster {
    std::string state;  // connected, lost, unreachable, connecting
    uint64_t nodes = 0, pending = 0, requests = 0, published = 0, conflicts = 0, reconnects = 0;
    std::vector<uint64_t> room;  // per tree (as trees): what this node may still let it grow by
  };
  std::optional<Cluster> cluster;
  std::array<uint64_t, NFSF_C_MAX> counters{};  // the programs' counters, summed over CPUs
  uint64_t handles = 0;                         // handles the agent knows
  uint64_t policy_reloads = 0;                  // policy changes applied since the maps were pinned
  uint64_t policy_reload_errors = 0;            // policy changes rejected since the maps were pinned
  uint64_t reply_lag_count = 0;                 // EventLag
  double reply_lag_sum_s = 0, reply_lag_p50_s = 0, reply_lag_p99_s = 0;
};

// The metric families of one snapshot (pure: unit-tested without a socket).
std::vector<prometheus::MetricFamily> metric_families(const MetricsSnapshot& s);

class MetricsServer {
 public:
  // Listens on ADDR:PORT ("127.0.0.1:9109", "[::1]:9109"); an error names the address.
  static Expected<std::unique_ptr<MetricsServer>> start(const std::string& listen);
  ~MetricsServer();
  // Replaces what the next scrape serves. Counters never go back: a value below the one
  // already served is served as that one.
  void publish(MetricsSnapshot s);

 private:
  class Collector;
  MetricsServer() = default;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// "ADDR:PORT" with a port of 1..65535, or why not.
std::string check_listen_address(const std::string& listen);

}  // namespace nfsfence::agent
