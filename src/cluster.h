// Several nodes, one tree: the agent's side of the shared usage (nfs/shared_usage.h) kept
// in etcd (src/etcd.h). A thread publishes this node's per-file reports (coalesced: at most
// every flush_ms, each a compare-and-swap on the key's mod_revision), keeps the node's
// lease alive, and a second thread watches the prefix; the agent's loop wakes on fd() and
// reads trees(). Keys (docs/architecture.md, "Several nodes"):
//   PREFIX/files/<handle hex>  {"t":tree,"b":bytes,"c":ctime_ns,"n":node[,"g":true]}
//                              (tombstones under a 10-minute lease: etcd drops them)
//   PREFIX/nodes/<node>        {"node":...,"pid":...} under the node's lease (lease_ttl)
// etcd unreachable at start: the agent enforces with its own view and says so; lost while
// running: the last shared state plus this node's own reports, within its share of the
// room; on reconnect the state is read again and this node's reports are published anew.
#pragma once

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "nfs/policy.h"
#include "nfs/shared_usage.h"

namespace nfsfence::agent {

struct ClusterStatus {
  std::string state = "connecting";  // connecting, connected, lost (was connected), unreachable (never was)
  std::string endpoint;              // the etcd endpoint in use
  std::string error;                 // why the last attempt failed ("" when connected)
  std::time_t since = 0;             // when `state` began
  bool shared = false;               // etcd's state was read at least once
  size_t nodes = 1;
  size_t pending = 0;  // local reports not yet in etcd
  size_t files = 0;
  int64_t revision = 0;                   // the newest etcd revision seen
  uint64_t requests = 0, bytes_sent = 0;  // to etcd, the watch not counted
  uint64_t published = 0, conflicts = 0, watch_events = 0, reconnects = 0;
};

class Cluster {
 public:
  Cluster(ClusterPolicy cfg, std::string node, std::vector<std::string> trees);
  ~Cluster();  // publishes what is pending (1 s at most), revokes the lease: the others get the room at once
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Connects in the background; the first attempt's outcome is logged (one line) either way.
  void start();
  int fd() const { return efd_; }  // readable when etcd's state changed
  void clear_fd();

  void local(const std::string& fh, int tree, uint64_t bytes, uint64_t ctime_ns, bool gone);
  // A tree used a quarter of its share: publish now rather than at the next interval (a fast
  // writer would otherwise be refused while the tree still has room).
  void nudge();
  void set_trees(std::vector<std::string> names);

  struct Tree {
    uint64_t usage = 0, confirmed = 0, growth = 0, room = 0;
    size_t writers = 1;  // nodes sharing its room (this one, and live ones that wrote it lately)
  };
  // Per policy tree (limits in policy order); empty until etcd's state was read once.
  std::vector<Tree> trees(const std::vector<uint64_t>& limits);
  bool shared();
  ClusterStatus status();
  const ClusterPolicy& config() const { return cfg_; }
  const std::string& node() const { return node_; }

 private:
  void run();
  bool connect();
  void lost(const std::string& why);
  void flush(int rounds);
  void apply_txn(const std::vector<SharedUsage::Publish>& batch, const nlohmann::json& answer);
  void apply(const std::string& key, const std::optional<std::string>& value, int64_t rev);
  void signal();
  std::string file_key(const std::string& fh) const;

  ClusterPolicy cfg_;
  std::string node_, files_prefix_, nodes_prefix_;
  int efd_ = -1;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  SharedUsage su_;
  std::set<std::string> nodes_;
  ClusterStatus st_;
  bool connected_ = false, ever_ = false, watch_failed_ = false, nudged_ = false;
  std::string watch_error_;
  int64_t lease_ = 0, tomb_lease_ = 0;
  std::time_t tomb_granted_ = 0;
  std::atomic<bool> stop_{false}, watch_stop_{false};
  std::thread main_, watcher_;
  struct Conn;
  std::unique_ptr<Conn> conn_;  // the main thread's etcd client
};

}  // namespace nfsfence::agent
