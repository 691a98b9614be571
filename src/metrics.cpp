#include "src/metrics.h"

#include <unordered_map>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <tuple>

#include "src/bpf_loader.h"

namespace nfsfence::agent {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) { return MetricFamily{name, help, type, {}}; }

void add(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

constexpr std::string_view kErrPrefix = "err_";

}  // namespace

std::vector<MetricFamily> metric_families(const MetricsSnapshot& s) {
  std::vector<MetricFamily> out;
  auto up = family("nfsfence_agent_up", "1 while the agent runs and serves these metrics", MetricType::Gauge);
  add(up, 1);
  out.push_back(std::move(up));

  auto limit = family("nfsfence_tree_limit_bytes", "the tree's limit from the policy", MetricType::Gauge);
  auto usage = family("nfsfence_tree_usage_bytes",
                      "the tree's usage: the sum of its files' sizes (or space used) as the server last reported them",
                      MetricType::Gauge);
  auto over = family("nfsfence_tree_over", "1 while the kernel refuses WRITEs to the tree", MetricType::Gauge);
  auto writes =
      family("nfsfence_tree_writes_total", "WRITE calls to the tree the kernel let pass", MetricType::Counter);
  auto wbytes = family("nfsfence_tree_write_bytes_total", "bytes of the WRITE calls to the tree the kernel let pass",
                       MetricType::Counter);
  auto refused =
      family("nfsfence_tree_refused_writes_total", "WRITE calls to the tree the kernel refused", MetricType::Counter);
  auto rbytes = family("nfsfence_tree_refused_bytes_total", "bytes of the WRITE calls to the tree the kernel refused",
                       MetricType::Counter);
  for (const auto& t : s.trees) {
    std::vector<ClientMetric::Label> l{{"tree", t.name}};
    add(limit, double(t.limit), l);
    add(usage, double(t.usage), l);
    add(over, t.over ? 1 : 0, l);
    add(writes, double(t.writes), l);
    add(wbytes, double(t.write_bytes), l);
    add(refused, double(t.refused_writes), l);
    add(rbytes, double(t.refused_bytes), l);
  }
  for (auto* f : {&limit, &usage, &over, &writes, &wbytes, &refused, &rbytes}) out.push_back(std::move(*f));

  auto packets = family("nfsfence_packets_total", "packets the TC programs saw", MetricType::Counter);
  add(packets, double(s.counters[NFSF_C_PACKETS]));
  out.push_back(std::move(packets));
  auto nfs = family("nfsfence_nfs_packets_total", "packets of the NFS (and MOUNT) flows", MetricType::Counter);
  add(nfs, double(s.counters[NFSF_C_NFS_PACKETS]));
  out.push_back(std::move(nfs));
  auto errs = family("nfsfence_parse_errors_total",
                     "packets or record heads the programs could not parse, by reason (counted and passed)",
                     MetricType::Counter);
  for (int c = 0; c < NFSF_C_MAX; c++) {
    std::string_view n = bpf::counter_name(nfsf_counter(c));
    if (n.substr(0, kErrPrefix.size()) == kErrPrefix)
      add(errs, double(s.counters[c]), {{"reason", std::string(n.substr(kErrPrefix.size()))}});
  }
  out.push_back(std::move(errs));
  auto verdicts = family("nfsfence_write_verdicts_total", "WRITE calls by the kernel's verdict", MetricType::Counter);
  for (auto [c, v] : {std::pair{NFSF_C_WRITE_ALLOWED, "allowed"},
                      {NFSF_C_WRITE_UNKNOWN_FH, "unknown_handle"},
                      {NFSF_C_WRITE_REFUSED_REWRITE, "refused_rewrite"},
                      {NFSF_C_WRITE_REFUSED_DROP, "refused_drop"},
                      {NFSF_C_ROOM_REFUSED, "refused_room"}})
    add(verdicts, double(s.counters[c]), {{"verdict", v}});
  out.push_back(std::move(verdicts));
  auto fsstat = family("nfsfence_fsstat_replies_total",
                       "FSSTAT replies for handles in a tree: sizes rewritten to the tree's, or cut (passed)",
                       MetricType::Counter);
  for (auto [c, v] : {std::pair{NFSF_C_FSSTAT_REWRITTEN, "rewritten"}, {NFSF_C_FSSTAT_CUT, "cut"}})
    add(fsstat, double(s.counters[c]), {{"result", v}});
  out.push_back(std::move(fsstat));
  auto events = family("nfsfence_events_total", "ring buffer events sent to the agent", MetricType::Counter);
  add(events, double(s.counters[NFSF_C_EVENTS]));
  out.push_back(std::move(events));
  auto lost = family("nfsfence_events_lost_total",
                     "ring buffer events lost (the ring was full); each starts a resync walk", MetricType::Counter);
  add(lost, double(s.counters[NFSF_C_EVENTS_LOST]));
  out.push_back(std::move(lost));
  auto wakeups = family("nfsfence_events_wakeups_total", "ring buffer events that woke the agent (--wakeup-us)",
                        MetricType::Counter);
  add(wakeups, double(s.counters[NFSF_C_EVENTS_WAKEUP]));
  out.push_back(std::move(wakeups));
  auto handles = family("nfsfence_handles", "file handles the agent knows", MetricType::Gauge);
  add(handles, double(s.handles));
  out.push_back(std::move(handles));

  auto reloads =
      family("nfsfence_policy_reloads_total",
             "policy changes applied (file changed or SIGHUP) since the maps were pinned (kept across agent restarts)",
             MetricType::Counter);
  add(reloads, double(s.policy_reloads));
  out.push_back(std::move(reloads));
  auto reload_errors = family("nfsfence_policy_reload_errors_total",
                              "policy changes rejected (invalid, or naming a path missing on the server) since the "
                              "maps were pinned; the last good "
                              "policy stays in force",
                              MetricType::Counter);
  add(reload_errors, double(s.policy_reload_errors));
  out.push_back(std::move(reload_errors));

  if (s.cluster) {
    const auto& c = *s.cluster;
    auto state = family("nfsfence_cluster_state",
                        "1 for the state of this agent's etcd connection (connected, lost, unreachable, connecting)",
                        MetricType::Gauge);
    for (const char* st : {"connected", "lost", "unreachable", "connecting"})
      add(state, c.state == st ? 1 : 0, {{"state", st}});
    out.push_back(std::move(state));
    auto nodes =
        family("nfsfence_cluster_nodes", "nodes holding a lease in etcd (this one included)", MetricType::Gauge);
    add(nodes, double(c.nodes));
    out.push_back(std::move(nodes));
    auto pending =
        family("nfsfence_cluster_pending_reports", "this node's file reports not yet in etcd", MetricType::Gauge);
    add(pending, double(c.pending));
    out.push_back(std::move(pending));
    for (auto [name, help, v] :
         {std::tuple{"nfsfence_cluster_etcd_requests_total",
                     "requests to etcd since the agent started (the watch not counted)", c.requests},
          {"nfsfence_cluster_published_total", "file reports published to etcd since the agent started", c.published},
          {"nfsfence_cluster_conflicts_total",
           "publishes that lost a compare-and-swap (another node wrote the key first)", c.conflicts},
          {"nfsfence_cluster_reconnects_total", "reconnections to etcd since the agent started", c.reconnects}}) {
      auto f = family(name, help, MetricType::Counter);
      add(f, double(v));
      out.push_back(std::move(f));
    }
    auto room = family("nfsfence_tree_room_bytes",
                       "what this node may still let the tree grow by: its share of the shared room, less its growth "
                       "etcd has not confirmed",
                       MetricType::Gauge);
    for (size_t i = 0; i < c.room.size() && i < s.trees.size(); i++)
      add(room, double(c.room[i]), {{"tree", s.trees[i].name}});
    out.push_back(std::move(room));
  }

  auto lag = family("nfsfence_reply_lag_seconds",
                    "time from the program's reply event to the agent reading it (quantiles over the last 4096)",
                    MetricType::Summary);
  ClientMetric m;
  m.summary.sample_count = s.reply_lag_count;
  m.summary.sample_sum = s.reply_lag_sum_s;
  m.summary.quantile = {{0.5, s.reply_lag_p50_s}, {0.99, s.reply_lag_p99_s}};
  lag.metric.push_back(std::move(m));
  out.push_back(std::move(lag));
  return out;
}

class MetricsServer::Collector : public prometheus::Collectable {
 public:
  std::vector<MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> g(mu_);
    // Nothing until the agent's first publish: the server listens before the programs are
    // loaded (a port in use fails early), and a restarted agent's zeros would read as a
    // counter reset in Prometheus (lab_metrics_e2e caught one).
    if (!published_) return {};
    return metric_families(snap_);
  }
  void publish(MetricsSnapshot s) {
    std::lock_guard<std::mutex> g(mu_);
    // Counters never go back (a scrape must not see a reset): the kernel's write_bytes is
    // raised before a room check and lowered again when it refuses.
    for (size_t c = 0; c < s.counters.size(); c++) s.counters[c] = std::max(s.counters[c], snap_.counters[c]);
    std::unordered_map<std::string_view, const MetricsSnapshot::Tree*> before;  // by name: linear, not quadratic
    for (const auto& o : snap_.trees) before.emplace(o.name, &o);
    for (auto& t : s.trees)
      if (auto it = before.find(t.name); it != before.end()) {
        const MetricsSnapshot::Tree& o = *it->second;
        t.writes = std::max(t.writes, o.writes);
        t.write_bytes = std::max(t.write_bytes, o.write_bytes);
        t.refused_writes = std::max(t.refused_writes, o.refused_writes);
        t.refused_bytes = std::max(t.refused_bytes, o.refused_bytes);
      }
    snap_ = std::move(s);
    published_ = true;
  }

 private:
  mutable std::mutex mu_;
  MetricsSnapshot snap_;
  bool published_ = false;
};

std::string check_listen_address(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return "--metrics '" + listen + "': give ADDR:PORT, e.g. 127.0.0.1:9109 or [::1]:9109";
  unsigned port = 0;
  const char* b = listen.data() + colon + 1;
  auto [end, ec] = std::from_chars(b, listen.data() + listen.size(), port);
  if (ec != std::errc() || end != listen.data() + listen.size() || port == 0 || port > 65535)
    return "--metrics '" + listen + "': the port must be a number from 1 to 65535";
  return "";
}

Expected<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen) {
  if (auto e = check_listen_address(listen); !e.empty()) return make_error(e);
  std::unique_ptr<MetricsServer> s(new MetricsServer);
  s->collector_ = std::make_shared<Collector>();
  try {
    s->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    return make_error("--metrics " + listen + ": cannot listen there (" + e.what() +
                      "; is the port in use, or the address not on this host?)");
  }
  s->exposer_->RegisterCollectable(s->collector_);
  return s;
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::publish(MetricsSnapshot s) { collector_->publish(std::move(s)); }

}  // namespace nfsfence::agent
