// `nfsfence attach` in TC mode and `nfsfence detach`: the agent that loads and attaches the
// TC programs, walks the trees and follows the server's replies. Its rooms: the state file
// (src/state_file.h), the maps it keeps in step with the accounting (src/map_mirror.h), the
// ring buffer's events as decoder input (nfs/ring_event.h), libbpf's messages
// (src/libbpf_log.h), `status` (src/status.h) and the LSM mode (src/lsm_agent.h).
#include "src/agent.h"
#include "src/event_log.h"
#include "src/metrics.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <malloc.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>

#include "nfs/accounting.h"
#include "nfs/ring_event.h"
#include "nfs/tree_walk.h"
#include "src/agent_common.h"
#include "src/bpf_loader.h"
#include "src/cluster.h"
#include "src/libbpf_log.h"
#include "src/lsm_agent.h"
#include "src/map_mirror.h"
#include "src/policy_watch.h"

namespace nfsfence::agent {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The state file's (and `status`'s) view of how long reply events waited for the agent.
json lag_json(const EventLag::Summary& s) {
  return json{{"replies", s.n},
              {"p50_us", double(s.p50_ns) / 1e3},
              {"p99_us", double(s.p99_ns) / 1e3},
              {"max_us", double(s.max_ns) / 1e3}};
}

const char* action_name(nfsf_action a) {
  return a == NFSF_ACTION_DROP ? "drop" : a == NFSF_ACTION_DROP_REPLY ? "drop-reply" : "rewrite";
}
const char* hook_name(Hook h) { return h == Hook::Xdp ? "xdp" : "tc"; }
const char* side_name(Side s) { return s == Side::Server ? "server" : "client"; }
const char* xdp_mode_name(XdpMode m) { return m == XdpMode::Generic ? "generic" : "native"; }

// What an earlier agent on this interface left in its state file: the tree ids it gave, so
// that a tree keeps its kernel id (and with it its counters) across a restart, and its
// policy change counts, so that those counters do not go back either.
struct Previous {
  std::map<std::string, uint32_t> ids;
  uint64_t reloads = 0, reload_errors = 0;
};

Previous previous_state(const std::string& state_file) {
  Previous p;
  if (auto st = read_state(state_file)) {
    for (const json& t : st->value("trees", json::array()))
      if (t.contains("name") && t["name"].is_string() && t.contains("id") && t["id"].is_number_unsigned())
        p.ids.emplace(t["name"].get<std::string>(), t["id"].get<uint32_t>());
    p.reloads = st->value("policy_reloads", json(0)).is_number_unsigned() ? st->value("policy_reloads", 0ull) : 0;
    p.reload_errors =
        st->value("policy_reload_errors", json(0)).is_number_unsigned() ? st->value("policy_reload_errors", 0ull) : 0;
  }
  return p;
}

std::vector<std::string> tree_names(const Policy& p) {
  std::vector<std::string> out;
  for (const TreePolicy& t : p.trees) out.push_back(t.name);
  return out;
}

std::string default_node(const std::string& iface) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::snprintf(host, sizeof host, "node");
  return std::string(host) + "/" + iface;
}

json cluster_json(const ClusterStatus& c, const std::string& node, const ClusterPolicy& cfg) {
  return json{{"state", c.state},
              {"node", node},
              {"etcd", c.endpoint},
              {"prefix", cfg.prefix},
              {"since", c.since},
              {"error", c.error.empty() ? json(nullptr) : json(c.error)},
              {"shared", c.shared},
              {"nodes", c.nodes},
              {"pending_reports", c.pending},
              {"files", c.files},
              {"revision", c.revision},
              {"etcd_requests", c.requests},
              {"etcd_bytes_sent", c.bytes_sent},
              {"published", c.published},
              {"conflicts", c.conflicts},
              {"watch_events", c.watch_events},
              {"reconnects", c.reconnects}};
}

// What a policy change may not change while the agent runs (it walks one export of one server).
std::string unchangeable(const Policy& cur, const Policy& next) {
  if (next.export_path != cur.export_path)
    return "export changed from '" + cur.export_path + "' to '" + next.export_path + "'";
  if (next.server != cur.server) return "server changed";
  if (next.accounting != cur.accounting) return "accounting changed";
  if (next.root_fh != cur.root_fh) return "root_fh changed";
  if (next.cluster != cur.cluster) return "cluster changed";
  return "";
}

bool same_trees(const Policy& a, const Policy& b) {
  if (a.trees.size() != b.trees.size() || a.fsstat != b.fsstat) return false;
  for (size_t i = 0; i < a.trees.size(); i++) {
    const TreePolicy &x = a.trees[i], &y = b.trees[i];
    if (x.name != y.name || x.path != y.path || x.limit != y.limit || x.soft_limit != y.soft_limit) return false;
  }
  return true;
}

// The running agent: everything between ready and exit.
class Agent {
 public:
  Agent(const AttachOptions& opt, const Policy& policy, const bpf::MapSet& maps, PolicySource src,
        const Previous& previous)
      : opt_(opt),
        maps_(maps),
        src_(std::move(src)),
        acct_(policy, opt.max_handles,
              {[this](int t, bool over, Timestamp) { on_limit(t, over); }, [this](int t, Timestamp) { on_soft(t); },
               [this](const std::string& fh, int t, uint64_t bytes, uint64_t ctime_ns, bool gone) {
                 // A tree this node's policy dropped is not "no tree" for the other nodes.
                 if (cluster_ && !(reloading_ && t < 0 && !gone)) cluster_->local(fh, t, bytes, ctime_ns, gone);
               }}),
        mirror_(maps, acct_.policy(), previous.ids),
        dec_([this](const RpcMessage& m) { on_message(m); }),
        state_(state_file_of(opt.state_dir, opt.iface)),
        event_log_(event_log_of(opt.state_dir, opt.iface)) {
    acct_.cache().track_changes(true);
    if (policy.cluster)
      cluster_ = std::make_unique<Cluster>(*policy.cluster, opt.node.empty() ? default_node(opt.iface) : opt.node,
                                           tree_names(policy));
    reloads_ = previous.reloads;
    reload_errors_ = previous.reload_errors;
    report_refused();  // the kernel's counts so far (an adopted map's) are the baseline
    struct timespec rt {
    }, mono{};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    mono_to_real_ns_ = (int64_t(rt.tv_sec) - mono.tv_sec) * 1000000000LL + (rt.tv_nsec - mono.tv_nsec);
  }

  const Policy& policy() const { return acct_.policy(); }
  int policy_fd() const { return watch_ ? watch_->fd() : -1; }
  int cluster_fd() const { return cluster_ ? cluster_->fd() : -1; }
  void start_cluster() {
    if (cluster_) cluster_->start();
  }
  bool policy_pending() const { return change_seen_; }

  WalkOptions walk_options() const {
    WalkOptions w;
    w.server = opt_.server.empty() ? policy().server.value_or("") : opt_.server;
    w.nfs_port = opt_.nfs_port;
    w.mount_port = opt_.mount_port;
    return w;
  }

  // Learns every handle below the trees from the server, then mirrors them all.
  Expected<WalkResult> walk() {
    auto r = walk_trees(walk_options(), acct_);
    if (!r) return r;
    mirror_.sync_handles(acct_.cache(), true);
    sync_trees();
    return r;
  }

  // Follows the policy source from now on (inotify; SIGHUP through reload_requested()).
  void watch_policy() {
    auto w = PolicyWatch::open(src_);
    if (!w)
      log("warning: " + w.error().message + ": policy changes are applied on SIGHUP only");
    else
      watch_.emplace(std::move(*w));
  }

  // Ring buffer callback: one slice of an RPC stream (or a datagram) -> the decoder.
  int on_event(const void* data, size_t size) {
    RingEvent ev;
    if (!parse_ring_event(data, size, mono_to_real_ns_, events_ + 1, ev)) return 0;
    events_++;
    if (ev.flags & NFSF_EVF_REPLY) {  // replies: how long the agent took to see them
      timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      uint64_t t = uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec);
      reply_lag_.add(t > ev.mono_ns ? t - ev.mono_ns : 0);
    }
    feed_ring_event(dec_, ev);
    return 0;
  }

  // policy_readable: epoll saw the policy watch's fd readable (only then is it read: the
  // loop runs after every batch of ring events, a syscall there is not free).
  void after_batch(bool policy_readable = false) {
    mirror_.sync_handles(acct_.cache(), false);
    if (cluster_) cluster_->clear_fd();
    enforce(false);
    auto now = std::chrono::steady_clock::now();
    check_policy(now, policy_readable);
    if (now - last_state_ < std::chrono::seconds(1)) return;
    last_state_ = now;
    write_state();
    publish_metrics();
    mirror_.settle();
    auto c = maps_.counters();
    if (c && (*c)[NFSF_C_EVENTS_LOST] > lost_seen_) {
      log("warning: " + std::to_string((*c)[NFSF_C_EVENTS_LOST] - lost_seen_) +
          " ring buffer events lost: walking the trees again to resynchronise");
      emit("events_lost", json{{"lost", (*c)[NFSF_C_EVENTS_LOST] - lost_seen_}});
      lost_seen_ = (*c)[NFSF_C_EVENTS_LOST];
      mirror_.forget_answered();
      if (auto r = walk(); !r) {
        log("warning: resync walk failed: " + r.error().message);
        emit("resync", json{{"ok", false}, {"error", r.error().message}});
      } else {
        emit("resync", json{{"ok", true}, {"handles", r->handles}, {"directories", r->directories}});
      }
    }
    report_refused();
  }

  // `nfsfence events` (src/event_log.h; types and fields: docs/events.md).
  void emit(std::string_view type, const json& fields = json::object()) { event_log_.emit(type, fields); }

  // One writes_refused event per tree whose count of refused WRITEs (the kernel's, in the
  // trees map) grew since the last look, about once a second: a flood of refusals is one
  // line per tree and second. A tree not seen before (the first look, a tree a policy
  // reload added) only sets the baseline.
  void report_refused() {
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - refused_at_).count();
    refused_at_ = now;
    std::map<std::string, RefusedSeen> seen_now;  // by name: a reload renumbers trees
    for (size_t i = 0; i < policy().trees.size(); i++) {
      const std::string& name = policy().trees[i].name;
      auto kt = maps_.tree(mirror_.kernel_id(int(i)));
      if (!kt) continue;
      auto it = refused_seen_.find(name);
      if (it != refused_seen_.end() && kt->refused_writes > it->second.writes)
        emit("writes_refused", json{{"tree", name},
                                    {"count", kt->refused_writes - it->second.writes},
                                    {"bytes", kt->refused_bytes - it->second.bytes},
                                    {"interval_s", std::round(secs * 1000) / 1000}});
      seen_now[name] = RefusedSeen{kt->refused_writes, kt->refused_bytes};
    }
    refused_seen_ = std::move(seen_now);
  }

  void write_state() {
    json trees = json::array();
    for (size_t i = 0; i < policy().trees.size(); i++) {
      const TreePolicy& t = policy().trees[i];
      const TreeState& s = acct_.trees()[i];
      json o{{"id", mirror_.kernel_id(int(i))},
             {"name", t.name},
             {"path", t.path},
             {"limit_bytes", t.limit},
             {"soft_limit_bytes", t.soft_limit ? json(*t.soft_limit) : json(nullptr)},
             {"usage_bytes", s.usage},
             {"files", s.files},
             {"over", s.over}};
      if (cluster_) {  // usage_bytes and over: what is enforced (shared once etcd was read)
        o["local_usage_bytes"] = s.usage;
        if (i < shared_.size()) {
          o["usage_bytes"] = shared_[i].usage;
          o["over"] = shared_[i].usage >= t.limit;
          o["confirmed_bytes"] = shared_[i].confirmed;
          o["unconfirmed_growth_bytes"] = shared_[i].growth;
          o["room_bytes"] = shared_[i].room;
          o["writers"] = shared_[i].writers;
        }
      }
      trees.push_back(std::move(o));
    }
    state_.write(json{
        {"pid", ::getpid()},
        {"iface", opt_.iface},
        {"action", action_name(opt_.action)},
        {"hook", hook_name(opt_.hook)},
        {"side", side_name(opt_.side)},
        {"xdp_mode", opt_.hook == Hook::Xdp ? json(xdp_mode_name(opt_.xdp_mode)) : json(nullptr)},
        {"policy", src_.name()},
        {"policy_applied", applied_at_},
        {"policy_reloads", reloads_},
        {"policy_reload_errors", reload_errors_},
        {"policy_error", policy_error_.empty() ? json(nullptr) : json(policy_error_)},
        {"trees", trees},
        {"cluster", cluster_ ? cluster_json(cluster_->status(), cluster_->node(), cluster_->config()) : json(nullptr)},
        {"handles", acct_.cache().stats().handles},
        {"memory", memory_json()},
        {"events", events_},
        {"reply_lag", lag_json(reply_lag_.summary())},
        {"updated", std::time(nullptr)}});
  }

  // Serve Prometheus metrics from now on (published with the state, about once a second).
  void serve_metrics(std::unique_ptr<MetricsServer> m) {
    metrics_ = std::move(m);
    publish_metrics();
  }

  void publish_metrics() {
    if (!metrics_) return;
    MetricsSnapshot s;
    for (size_t i = 0; i < policy().trees.size(); i++) {
      MetricsSnapshot::Tree t;
      t.name = policy().trees[i].name;
      t.limit = policy().trees[i].limit;
      t.usage = cluster_ && i < shared_.size() ? shared_[i].usage : acct_.trees()[i].usage;
      t.over = acct_.trees()[i].over;
      if (auto kt = maps_.tree(mirror_.kernel_id(int(i)))) {
        t.over = kt->over != 0;  // what the kernel enforces
        t.writes = kt->writes;
        t.write_bytes = kt->write_bytes;
        t.refused_writes = kt->refused_writes;
        t.refused_bytes = kt->refused_bytes;
      }
      s.trees.push_back(std::move(t));
    }
    if (auto c = maps_.counters()) s.counters = *c;
    s.handles = acct_.cache().stats().handles;
    if (cluster_) {
      ClusterStatus c = cluster_->status();
      MetricsSnapshot::Cluster m;
      m.state = c.state;
      m.nodes = c.nodes;
      m.pending = c.pending;
      m.requests = c.requests;
      m.published = c.published;
      m.conflicts = c.conflicts;
      m.reconnects = c.reconnects;
      for (size_t i = 0; i < policy().trees.size(); i++) {
        uint64_t u = acct_.trees()[i].usage, l = policy().trees[i].limit;
        m.room.push_back(i < shared_.size() ? shared_[i].room : u < l ? l - u : 0);
      }
      s.cluster = std::move(m);
    }
    s.policy_reloads = reloads_;
    s.policy_reload_errors = reload_errors_;
    auto lag = reply_lag_.summary();
    s.reply_lag_count = lag.n;
    s.reply_lag_sum_s = double(lag.sum_ns) / 1e9;
    s.reply_lag_p50_s = double(lag.p50_ns) / 1e9;
    s.reply_lag_p99_s = double(lag.p99_ns) / 1e9;
    metrics_->publish(std::move(s));
  }

  uint64_t mirrored() const { return mirror_.mirrored(); }
  const Accounting& accounting() const { return acct_; }

 private:
  // The heap the handle cache and the decoder hold (their own estimates; the cache's is
  // recounted only when its handle count changed: it visits every handle).
  json memory_json() {
    uint64_t h = acct_.cache().stats().handles;
    if (h != cache_bytes_at_) {
      cache_bytes_ = acct_.cache().memory_bytes();
      cache_bytes_at_ = h;
    }
    return json{{"cache_bytes", cache_bytes_}, {"decoder_bytes", dec_.memory_bytes()}};
  }

  // Every tree's over flag and room, from the accounting, into the kernel.
  void sync_trees() {
    if (cluster_) return enforce(true);
    for (size_t i = 0; i < policy().trees.size(); i++) mirror_.set_over(int(i), acct_.trees()[i].over);
    mirror_.sync_rooms(acct_.trees(), true);
  }

  // Rooms (and, with a cluster, over flags) into the kernel. Without a cluster the
  // accounting's own usage and limit - usage, as always. With one: once etcd's state was
  // read, the shared usage decides over/under and the room is this node's share
  // (nfs/shared_usage.h); before that, this node's own view.
  void enforce(bool all) {
    if (!cluster_) return mirror_.sync_rooms(acct_.trees(), all);
    const Policy& p = policy();
    std::vector<uint64_t> limits;
    for (const TreePolicy& t : p.trees) limits.push_back(t.limit);
    shared_ = cluster_->trees(limits);
    std::vector<TreeState> eff = acct_.trees();
    std::vector<uint64_t> rooms(eff.size());
    if (kernel_over_.size() != eff.size()) kernel_over_.assign(eff.size(), -1);
    if (soft_over_.size() != eff.size()) soft_over_.assign(eff.size(), false);
    for (size_t i = 0; i < eff.size(); i++) {
      uint64_t limit = p.trees[i].limit;
      if (i < shared_.size()) {
        eff[i].usage = shared_[i].usage;
        rooms[i] = shared_[i].room;
        if (shared_[i].growth && shared_[i].room <= 3 * shared_[i].growth) cluster_->nudge();  // a quarter used
      } else {
        rooms[i] = eff[i].usage < limit ? limit - eff[i].usage : 0;
      }
      bool over = eff[i].usage >= limit;
      const TreePolicy& tp = p.trees[i];
      bool soft = tp.soft_limit && eff[i].usage >= *tp.soft_limit;
      if (soft && !soft_over_[i]) {
        log("warning: tree '" + tp.name + "' reached its soft limit (" + format_size(*tp.soft_limit) +
            "): " + (i < shared_.size() ? "shared" : "this node's") + " usage " + format_size(eff[i].usage));
        emit("soft_limit", json{{"tree", tp.name},
                                {"path", tp.path},
                                {"usage_bytes", eff[i].usage},
                                {"soft_limit_bytes", *tp.soft_limit},
                                {"shared", i < shared_.size()}});
      }
      soft_over_[i] = soft;
      if (!all && kernel_over_[i] == int(over)) continue;
      if (kernel_over_[i] != int(over) && (kernel_over_[i] >= 0 || over)) {
        const TreePolicy& t = p.trees[i];
        log("tree '" + t.name + "' " + (over ? "reached" : "is back below") + " its limit (" + format_size(t.limit) +
            "): " + (i < shared_.size() ? "shared" : "this node's") + " usage " + format_size(eff[i].usage) +
            (over ? ", refusing WRITEs" : ", WRITEs allowed again"));
        emit(over ? "tree_over" : "tree_under", json{{"tree", t.name},
                                                     {"path", t.path},
                                                     {"usage_bytes", eff[i].usage},
                                                     {"limit_bytes", t.limit},
                                                     {"shared", i < shared_.size()}});
      }
      mirror_.set_over(int(i), over);
      kernel_over_[i] = int(over);
    }
    mirror_.sync_rooms(eff, all, &rooms);
  }

  // A change seen by inotify is applied once the source has been quiet for 50 ms (a
  // writer that renames many files in is one change); SIGHUP applies at once.
  void check_policy(std::chrono::steady_clock::time_point now, bool readable) {
    using namespace std::chrono_literals;
    if (readable && watch_ && watch_->changed()) {
      if (!change_seen_) first_change_ = now;
      change_seen_ = true;
      last_change_ = now;
    }
    bool hup = reload_requested().exchange(false);
    if (hup || (change_seen_ && (now - last_change_ >= 50ms || now - first_change_ >= 1s))) {
      change_seen_ = false;
      reload(hup ? "SIGHUP" : "changed", hup ? now : first_change_);
    }
  }

  void reject(const std::string& why) {
    reload_errors_++;
    policy_error_ = why;
    log("policy rejected, the last good policy stays in force: " + why);
    emit("policy_rejected", json{{"policy", src_.name()}, {"error", why}});
    write_state();
    publish_metrics();
  }

  // Loads the policy source whole; if it is valid and the new trees' paths exist on the
  // server, applies the difference: removed trees are unmapped and forgotten, kept trees
  // keep their state (a changed limit counts from the next WRITE), new trees are walked.
  // The programs keep enforcing the old state until each step's maps are written, so no
  // tree is ever unenforced in between.
  void reload(const char* why, std::chrono::steady_clock::time_point seen) {
    auto t0 = std::chrono::steady_clock::now();
    auto next = src_.load();
    if (!next) return reject(next.error().message);
    if (auto e = unchangeable(policy(), *next); !e.empty())
      return reject(src_.name() + ": " + e + ": restart the agent for that");
    if (next->trees.size() >= NFSF_MAX_TREES)
      return reject(src_.name() + ": " + std::to_string(next->trees.size()) + " trees; the kernel's maps hold " +
                    std::to_string(NFSF_MAX_TREES - 1));
    if (same_trees(policy(), *next)) {
      if (!policy_error_.empty()) log("policy " + src_.name() + " is valid again (unchanged from the applied one)");
      policy_error_.clear();
      return;
    }
    std::map<std::string, const TreePolicy*> old;
    for (const TreePolicy& t : policy().trees) old.emplace(t.name, &t);
    std::vector<TreePolicy> to_walk;  // new trees, and trees whose path changed
    size_t changed = 0;
    for (const TreePolicy& t : next->trees) {
      auto it = old.find(t.name);
      if (it == old.end() || it->second->path != t.path)
        to_walk.push_back(t);
      else if (it->second->limit != t.limit || it->second->soft_limit != t.soft_limit)
        changed++;
    }
    if (auto ok = check_tree_paths(walk_options(), next->export_path, to_walk); !ok) {
      std::string msg = ok.error().message;
      for (const TreePolicy& t : to_walk)  // name the file the tree came from
        if (msg.rfind("tree '" + t.name + "'", 0) == 0 && !t.origin.empty()) msg = t.origin + ": " + msg;
      return reject(msg);
    }
    std::vector<int> renumber(policy().trees.size(), HandleCache::kNoTree);
    std::map<std::string, int> index;
    for (size_t j = 0; j < next->trees.size(); j++) index.emplace(next->trees[j].name, int(j));
    size_t removed = 0;
    for (size_t i = 0; i < policy().trees.size(); i++) {
      auto it = index.find(policy().trees[i].name);
      if (it != index.end())
        renumber[i] = it->second;
      else
        removed++;
    }
    if (!mirror_.apply(acct_.cache(), *next, renumber))
      return reject(src_.name() + ": no free tree ids in the kernel's maps");
    // The shared records name trees: the new names go first, as the accounting reports its
    // files in the new numbering while it moves them.
    if (cluster_) cluster_->set_trees(tree_names(*next));
    reloading_ = true;
    acct_.set_policy(std::move(*next));
    reloading_ = false;
    mirror_.set_policy(acct_.policy());
    if (cluster_) {
      // renumbered: kept trees keep what was set (no second tree_over), new ones start unknown
      std::vector<int> over(policy().trees.size(), -1);
      std::vector<bool> soft(policy().trees.size(), false);
      for (size_t i = 0; i < renumber.size() && i < kernel_over_.size(); i++)
        if (renumber[i] >= 0) {
          over[size_t(renumber[i])] = kernel_over_[i];
          soft[size_t(renumber[i])] = i < soft_over_.size() && soft_over_[i];
        }
      kernel_over_ = std::move(over);
      soft_over_ = std::move(soft);
    }
    std::vector<int> walk_idx;
    for (const TreePolicy& t : to_walk)
      for (size_t j = 0; j < policy().trees.size(); j++)
        if (policy().trees[j].name == t.name) walk_idx.push_back(int(j));
    uint64_t walked = 0;
    if (!walk_idx.empty()) {
      WalkOptions w = walk_options();
      w.only = walk_idx;
      auto r = walk_trees(w, acct_);
      if (!r)
        log("warning: walking the new trees: " + r.error().message + " (they are enforced from what is known)");
      else
        walked = r->handles;
    }
    mirror_.sync_handles(acct_.cache(), false);
    sync_trees();
    if (removed) ::malloc_trim(0);  // the forgotten handles' memory back to the system
    reloads_++;
    policy_error_.clear();
    applied_at_ = std::time(nullptr);
    auto end = std::chrono::steady_clock::now();
    char took[96];
    std::snprintf(took, sizeof took, "%.1f ms; %.1f ms after the change was seen",
                  std::chrono::duration<double, std::milli>(end - t0).count(),
                  std::chrono::duration<double, std::milli>(end - seen).count());
    log(std::string("policy applied (") + why + "): " + std::to_string(policy().trees.size()) + " trees, " +
        std::to_string(to_walk.size()) + " new or moved, " + std::to_string(removed) + " removed, " +
        std::to_string(changed) + " with new limits; walked " + std::to_string(walked) + " handles in " + took);
    emit("policy_applied",
         json{{"policy", src_.name()},
              {"trigger", why},
              {"trees", policy().trees.size()},
              {"added_or_moved", to_walk.size()},
              {"removed", removed},
              {"limits_changed", changed},
              {"handles_walked", walked},
              {"ms", std::round(std::chrono::duration<double, std::milli>(end - t0).count() * 10) / 10}});
    write_state();
    publish_metrics();
  }

  void on_message(const RpcMessage& m) {
    acct_.on_message(m);
    if (m.type == MsgType::Reply && m.prog == kProgNfs && m.proc == 7u && m.call && m.call->fh) {  // WRITE
      int tree = acct_.cache().tree_of_fh(ByteView(m.call->fh->data(), m.call->fh->size()));
      if (tree >= 0) mirror_.write_answered(tree, m.call->count.value_or(0), write_passed(m));
    }
  }

  // Whether the programs let this answered WRITE through (its bytes are in the tree's
  // write_bytes). The event has the server's own status: a WRITE that went out poisoned
  // fails there, so an NFS3_OK one passed; a failed one passed unless the kernel remembers
  // its XID as poisoned (a map lookup for failed WRITEs only).
  bool write_passed(const RpcMessage& m) const {
    if (m.fields.status == 0u) return true;
    nfsf_xid_key k{};
    k.flow = to_kernel_flow(m.flow);
    k.xid = htonl(m.xid);
    auto p = maps_.poisoned(k);
    return p && !p->has_value();
  }

  void on_limit(int tree, bool over) {
    if (cluster_) return;  // enforce() follows the shared usage
    const TreePolicy& t = policy().trees[tree];
    log("tree '" + t.name + "' " + (over ? "reached" : "is back below") + " its limit (" + format_size(t.limit) +
        "): usage " + format_size(acct_.trees()[tree].usage) + (over ? ", refusing WRITEs" : ", WRITEs allowed again"));
    mirror_.set_over(tree, over);
    emit(
        over ? "tree_over" : "tree_under",
        json{{"tree", t.name}, {"path", t.path}, {"usage_bytes", acct_.trees()[tree].usage}, {"limit_bytes", t.limit}});
  }

  void on_soft(int tree) {
    if (cluster_) return;  // enforce() follows the shared usage
    const TreePolicy& t = policy().trees[tree];
    log("warning: tree '" + t.name + "' reached its soft limit (" + format_size(*t.soft_limit) + "): usage " +
        format_size(acct_.trees()[tree].usage));
    emit("soft_limit", json{{"tree", t.name},
                            {"path", t.path},
                            {"usage_bytes", acct_.trees()[tree].usage},
                            {"soft_limit_bytes", *t.soft_limit}});
  }

  const AttachOptions& opt_;
  const bpf::MapSet& maps_;
  PolicySource src_;
  Accounting acct_;
  MapMirror mirror_;
  Decoder dec_;
  StateWriter state_;
  uint64_t events_ = 0;
  EventLag reply_lag_;
  std::unique_ptr<MetricsServer> metrics_;
  uint64_t lost_seen_ = 0;
  int64_t mono_to_real_ns_ = 0;
  std::chrono::steady_clock::time_point last_state_{};
  // the policy source
  std::optional<PolicyWatch> watch_;
  bool change_seen_ = false;
  std::chrono::steady_clock::time_point first_change_{}, last_change_{};
  std::string policy_error_;  // why the last change was rejected ("" once a good one is applied)
  uint64_t cache_bytes_ = 0, cache_bytes_at_ = ~uint64_t(0);
  uint64_t reloads_ = 0, reload_errors_ = 0;  // since the pins were made (carried across restarts)
  std::time_t applied_at_ = std::time(nullptr);
  EventLog event_log_;
  struct RefusedSeen {
    uint64_t writes = 0, bytes = 0;
  };
  std::map<std::string, RefusedSeen> refused_seen_;
  std::chrono::steady_clock::time_point refused_at_{};
  // several nodes (policy `cluster:`): declared last, so that it goes first (its thread
  // publishes what is pending and revokes the lease) while the rest still exists
  bool reloading_ = false;
  std::vector<int> kernel_over_;       // per tree: the over flag enforce() set (-1: none yet)
  std::vector<bool> soft_over_;        // per tree: at or past its soft limit when enforce() last looked
  std::vector<Cluster::Tree> shared_;  // per tree, as enforce() last read it
  std::unique_ptr<Cluster> cluster_;
};

// Called from libbpf's C code, which an exception must not cross (that would end the
// process in std::terminate): it is kept, the poll stops, and follow() throws it again, so
// that it ends as main()'s one error line.
struct RingContext {
  Agent& agent;
  std::exception_ptr failure;
};

int ring_cb(void* ctx, void* data, size_t size) {
  auto* rc = static_cast<RingContext*>(ctx);
  try {
    return rc->agent.on_event(data, size);
  } catch (...) {
    rc->failure = std::current_exception();
    return -ECANCELED;
  }
}

// Where the maps are pinned, and whether an earlier agent's were there to adopt (then a
// failed attach leaves them: the programs keep enforcing what they held).
struct Pins {
  std::string dir;
  bool adopting = false;
  void undo() const {
    std::error_code ec;
    if (!adopting) fs::remove_all(dir, ec);
  }
};

PolicySource policy_source(const AttachOptions& opt) { return PolicySource{opt.policy_path, opt.policy_dir}; }

// What must hold before anything is loaded.
struct AttachTarget {
  unsigned ifindex = 0;
  uint32_t xdp_replace = 0;  // an nfsfence XDP program an earlier agent left: swapped in one step
};

// The interface's XDP program, if any, against --hook xdp: another's is never touched.
Expected<uint32_t> check_xdp_free(const AttachOptions& opt, unsigned ifindex) {
  auto a = bpf::XdpProgram::attached(int(ifindex));
  if (!a) return make_error("querying the XDP program of " + opt.iface + " failed: " + a.error().message());
  if (!a->id) return uint32_t(0);
  std::string which = "'" + (a->name.empty() ? std::string("?") : a->name) + "' (id " + std::to_string(a->id) + ", " +
                      a->mode_name() + ")";
  if (!a->ours())
    return make_error(opt.iface + " already has an XDP program, " + which +
                      ": nfsfence leaves it alone; remove it first (ip link set dev " + opt.iface + " xdp off)");
  const char* want = opt.xdp_mode == XdpMode::Generic ? "generic" : "native";
  if (std::strcmp(a->mode_name(), want) != 0)
    return make_error(opt.iface + " has nfsfence's XDP program " + which + ", not " + want + ": nfsfence detach " +
                      opt.iface + " first, or attach with --xdp-mode " + a->mode_name());
  return a->id;
}

Expected<AttachTarget> check_tc_attach(const AttachOptions& opt, const Policy& policy) {
  if (opt.iface.empty())
    return make_error("--mode tc needs the NFS client's interface: nfsfence attach IFACE --policy FILE");
  AttachTarget t;
  t.ifindex = if_nametoindex(opt.iface.c_str());
  if (!t.ifindex)
    return make_error("interface '" + opt.iface +
                      "' does not exist (ip link shows the interfaces of this network namespace)");
  if (policy.trees.size() >= NFSF_MAX_TREES)
    return make_error(policy_source(opt).name() + ": " + std::to_string(policy.trees.size()) +
                      " trees; the kernel's maps hold " + std::to_string(NFSF_MAX_TREES - 1));
  if (opt.server.empty() && !policy.server)
    return make_error(policy_source(opt).name() +
                      ": the agent needs the server's address: add `server:` to the policy or give --server");
  if (opt.side == Side::Client)
    for (const NfsMount& m : nfs_mounts_of(opt.server.empty() ? *policy.server : opt.server, policy.export_path))
      if (auto why = tc_blind_reason(m); !why.empty())
        log("warning: " + why + " (--mode lsm refuses writes at the file level)");
  if (::geteuid() != 0)
    return make_error(
        "attach needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN to load and attach: dist/README.md): run it with "
        "sudo");
  if (auto e = ensure_bpffs(opt.pin_root); !e.empty()) return make_error(e);
  if (opt.hook == Hook::Xdp) {
    auto r = check_xdp_free(opt, t.ifindex);
    if (!r) return make_error(r.error().message);
    t.xdp_replace = *r;
  }
  return t;
}

// The loaded programs of one interface: TC only (client), or XDP for the arriving
// direction plus TC for the leaving one, both objects sharing the pinned maps.
struct NetPrograms {
  std::unique_ptr<bpf::XdpProgram> xdp;
  std::unique_ptr<bpf::TcProgram> tc;
  const bpf::MapSet& maps() const { return xdp ? xdp->maps() : tc->maps(); }
  void keep_attached() {
    if (xdp) xdp->keep_attached();
    if (tc) tc->keep_attached();
  }
  void detach() {
    if (xdp) xdp->detach();
    if (tc) tc->detach();
  }
};

std::string load_error(const AttachOptions& opt, const Pins& pins, const bpf::BpfError& e) {
  if (e.err == EPERM || e.err == EACCES)
    return "loading the BPF programs was refused (" + e.message() + "): run as root on a kernel with BPF enabled";
  if (pins.adopting && e.err == EINVAL)
    return "the maps pinned under " + pins.dir + " do not fit this build (" + e.message() + "): nfsfence detach " +
           opt.iface + " first";
  return "loading the BPF programs failed: " + e.message() + libbpf_note();
}

std::string xdp_attach_error(const AttachOptions& opt, const bpf::BpfError& e) {
  std::string s =
      "attaching XDP (" + std::string(xdp_mode_name(opt.xdp_mode)) + ") to " + opt.iface + " failed: " + e.message();
  if (opt.xdp_mode == XdpMode::Native && (e.err == EOPNOTSUPP || e.err == EINVAL))
    s += " (its driver has no native XDP: try --xdp-mode generic)";
  else if (e.err == EBUSY || e.err == EEXIST)
    s += " (another XDP program was attached meanwhile: nfsfence left it)";
  else if (e.err == ERANGE || e.err == E2BIG)
    s += " (the interface's MTU is too large for XDP in this mode)";
  return s + libbpf_note();
}

// Loads the programs (adopting pinned maps) and attaches them to the interface; on a
// failure nothing of this attach stays attached and the pins a fresh load made are
// removed again.
Expected<NetPrograms> load_and_attach(const AttachOptions& opt, const AttachTarget& at, const Pins& pins) {
  bpf::LoadOptions lo;
  lo.action = opt.action;
  lo.pin_dir = pins.dir;
  lo.max_handles = uint32_t(opt.max_handles);
  lo.nfs_port = opt.nfs_port;
  lo.wake_ns = uint64_t(opt.wakeup_us) * 1000;
  NetPrograms p;
  const bpf::Side side = opt.side == Side::Server ? bpf::Side::Server : bpf::Side::Client;
  if (opt.hook == Hook::Xdp) {
    auto x = bpf::XdpProgram::load(lo);
    if (!x) {
      pins.undo();
      return make_error(load_error(opt, pins, x.error()));
    }
    p.xdp = std::move(*x);
  }
  auto tc = bpf::TcProgram::load(lo);  // with XDP: adopts the maps the XDP object pinned
  if (!tc) {
    p.xdp.reset();
    pins.undo();
    return make_error(load_error(opt, pins, tc.error()));
  }
  p.tc = std::move(*tc);
  if (auto r = p.tc->attach(int(at.ifindex), side); !r) {
    pins.undo();
    return make_error(
        "attaching to " + opt.iface + " failed: " + r.error().message() +
        (r.error().err == EOPNOTSUPP || r.error().err == ENOENT ? " (does this kernel have clsact / cls_bpf?)" : "") +
        libbpf_note());
  }
  if (p.xdp) {
    uint32_t mode = opt.xdp_mode == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    if (auto r = p.xdp->attach(int(at.ifindex), side, mode, at.xdp_replace); !r) {
      p.tc->detach();
      pins.undo();
      return make_error(xdp_attach_error(opt, r.error()));
    }
  }
  return p;
}

std::string ready_line(const AttachOptions& opt, const Policy& policy, const Agent& agent, const WalkResult& walked,
                       double secs) {
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.0f", secs > 0 ? double(walked.handles) / secs : 0.0);
  std::string trees;
  for (size_t i = 0; i < policy.trees.size(); i++) {
    const TreeState& s = agent.accounting().trees()[i];
    trees += (i ? ", " : "") + policy.trees[i].name + " " + format_size(s.usage) + "/" +
             format_size(policy.trees[i].limit) + (s.over ? " OVER" : "");
  }
  std::string hooks = opt.hook == Hook::Xdp ? std::string(" hook=xdp side=") + side_name(opt.side) +
                                                  " xdp-mode=" + xdp_mode_name(opt.xdp_mode)
                                            : "";
  return "ready: " + opt.iface + hooks + " action=" + action_name(opt.action) + "; walked " +
         std::to_string(walked.handles) + " handles in " + std::to_string(walked.directories) + " directories in " +
         std::to_string(secs).substr(0, 5) + " s (" + rate + " handles/s); " + std::to_string(agent.mirrored()) +
         " handles enforced; trees: " + trees;
}

// Follows the ring buffer until `stop` (or a poll error). The kernel wakes the agent for a
// reply at most once per --wakeup-us and leaves the events in between (and every call) in the
// ring without a wakeup (bpf/include/nfsf_events.h): so while events come, the next poll
// waits no longer than that and then drains what is there; idle, it sleeps 200 ms. A change
// of the policy source (inotify) or SIGHUP (EINTR) wakes it as well.
void follow(ring_buffer* rb, RingContext& ctx, unsigned wakeup_us, const std::atomic<bool>& stop) {
  Agent& agent = ctx.agent;
  const int busy_ms = int(wakeup_us / 1000) + 1, idle_ms = 200, pending_ms = 10;
  bpf::UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  const int policy_fd = agent.policy_fd();
  for (int fd : {ring_buffer__epoll_fd(rb), policy_fd, agent.cluster_fd()}) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    if (fd >= 0 && ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &e) != 0) {
      log("epoll: " + std::string(std::strerror(errno)));
      return;
    }
  }
  int timeout = idle_ms;
  while (!stop.load()) {
    epoll_event evs[3];
    int ready = ::epoll_wait(ep.get(), evs, 3, timeout);
    if (ready < 0 && errno != EINTR) {
      log("epoll_wait: " + std::string(std::strerror(errno)));
      break;
    }
    bool policy_readable = false;
    for (int i = 0; i < ready; i++)
      policy_readable = policy_readable || (policy_fd >= 0 && evs[i].data.fd == policy_fd);
    int n = ring_buffer__consume(rb);
    if (ctx.failure) std::rethrow_exception(ctx.failure);
    if (n < 0 && n != -EINTR) {
      log("ring buffer poll: " + std::string(std::strerror(-n)));
      break;
    }
    agent.after_batch(policy_readable);
    timeout = agent.policy_pending() ? pending_ms : n > 0 ? busy_ms : idle_ms;
  }
}

int run_attach_tc(const AttachOptions& opt, const Policy& policy, const std::atomic<bool>& stop) {
  auto target = check_tc_attach(opt, policy);
  if (!target) {
    log(target.error().message);
    return 1;
  }
  Pins pins{pin_dir_of(opt.pin_root, opt.iface)};
  pins.adopting = fs::exists(pins.dir + "/trees");
  std::error_code ec;
  fs::create_directories(opt.state_dir, ec);
  if (auto pid = running_agent(state_file_of(opt.state_dir, opt.iface))) {
    log("an agent (pid " + std::to_string(*pid) + ") already runs on " + opt.iface +
        "; stop it first (kill it, or nfsfence detach " + opt.iface + ")");
    return 1;
  }
  std::unique_ptr<MetricsServer> metrics;
  if (!opt.metrics.empty()) {  // before anything is made or attached: a port in use fails here
    auto m = MetricsServer::start(opt.metrics);
    if (!m) {
      log(m.error().message);
      return 1;
    }
    metrics = std::move(*m);
  }
  fs::create_directories(pins.dir, ec);
  auto prog = load_and_attach(opt, *target, pins);
  if (!prog) {
    log(prog.error().message);
    return 1;
  }
  if (pins.adopting) log("adopted the maps pinned under " + pins.dir + ": enforcement continued without a gap");

  Agent agent(opt, policy, prog->maps(), policy_source(opt),
              pins.adopting ? previous_state(state_file_of(opt.state_dir, opt.iface)) : Previous{});
  agent.watch_policy();  // before the walk: a change made while it runs is applied after it
  agent.emit("agent_started", json{{"mode", "tc"},
                                   {"hook", hook_name(opt.hook)},
                                   {"side", side_name(opt.side)},
                                   {"iface", opt.iface},
                                   {"pid", ::getpid()},
                                   {"pins", pins.adopting ? "adopted" : "fresh"},
                                   {"action", action_name(opt.action)},
                                   {"policy", policy_source(opt).name()},
                                   {"trees", policy.trees.size()}});
  auto t0 = std::chrono::steady_clock::now();
  auto walked = agent.walk();
  if (!walked) {
    agent.emit("agent_exiting",
               json{{"reason", "the walk failed: " + walked.error().message}, {"programs_attached", pins.adopting}});
    if (pins.adopting) {
      prog->keep_attached();  // the previous state keeps being enforced
      log(walked.error().message + " (the programs stay attached with the state they had)");
    } else {
      prog->detach();
      pins.undo();
      log(walked.error().message);
    }
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  agent.write_state();
  if (metrics) agent.serve_metrics(std::move(metrics));

  // From here on the programs stay attached however the agent ends (an exception
  // included): they keep enforcing the last state, as when the agent is killed.
  prog->keep_attached();
  RingContext ctx{agent, nullptr};
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> rb(
      ring_buffer__new(prog->maps().events_fd, ring_cb, &ctx, nullptr), ring_buffer__free);
  if (!rb) {
    log("ring buffer: " + std::string(std::strerror(errno)));
    return 1;
  }
  libbpf_log_live();
  agent.start_cluster();
  log(ready_line(opt, agent.policy(), agent, *walked, secs));
  agent.emit("agent_ready", json{{"handles", walked->handles},
                                 {"directories", walked->directories},
                                 {"walk_s", std::round(secs * 1000) / 1000},
                                 {"enforced", agent.mirrored()}});
  follow(rb.get(), ctx, opt.wakeup_us, stop);
  rb.reset();
  agent.write_state();
  agent.report_refused();
  agent.emit("agent_exiting",
             json{{"reason", stop.load() ? "signal" : "ring buffer poll failed"}, {"programs_attached", true}});
  log("exiting: the programs stay attached to " + opt.iface +
      " and keep enforcing the last state; `nfsfence attach` adopts them, `nfsfence detach " + opt.iface +
      "` removes them");
  return 0;
}

}  // namespace

int run_attach(const AttachOptions& opt_in, const std::atomic<bool>& stop) {
  libbpf_log_install();
  auto policy = policy_source(opt_in).load();
  if (!policy) {
    log(policy.error().message);
    return 1;
  }
  AttachOptions opt = opt_in;
  if (opt.mode == Mode::Auto) {
    auto c = choose_mode(opt, *policy);
    if (!c) {
      log(c.error().message);
      return 1;
    }
    log("mode auto picked " + c->second);
    opt.mode = c->first;
    if (opt.mode == Mode::Lsm && !opt.metrics.empty()) {
      log("--metrics is for --mode tc, and auto picked lsm (the LSM agent has no metrics yet): drop --metrics");
      return 1;
    }
  }
  if (opt.mode == Mode::Lsm && policy->cluster) {
    log(policy_source(opt).name() + ": cluster: is for --mode tc (the LSM agent does not share usage through etcd)");
    return 1;
  }
  if (!opt.node.empty() && !policy->cluster) {
    log("--node names this node in etcd, and " + policy_source(opt).name() +
        " has no cluster: (add cluster: {etcd: [...], prefix: ...}, or drop --node)");
    return 1;
  }
  // The LSM agent reads the policy once (docs/policy.md; `attach --help` says live changes are tc's).
  if (opt.mode == Mode::Lsm) return run_attach_lsm(opt, *policy, stop);
  return run_attach_tc(opt, *policy, stop);
}

int run_detach(const std::string& iface, const std::string& pin_root, const std::string& state_dir) {
  if (::geteuid() != 0) {
    log("detach needs root");
    return 1;
  }
  if (iface == kLsmName) return run_detach_lsm(pin_root, state_dir);
  // libbpf's netlink notes are held back: a hook without our filter (a server side has no
  // ingress one) is expected here, and a real failure says so in its own line
  libbpf_log_install();
  std::string state = state_file_of(state_dir, iface);
  if (auto pid = running_agent(state)) {
    log("stopping the agent (pid " + std::to_string(*pid) + ")");
    stop_agent(*pid);
  }
  bool found = false;
  if (unsigned ifindex = if_nametoindex(iface.c_str())) {
    auto r = bpf::TcProgram::detach_ifindex(int(ifindex));
    if (!r) {
      log("detaching from " + iface + ": " + r.error().message());
      return 1;
    }
    auto x = bpf::XdpProgram::detach_ifindex(int(ifindex));  // nfsfence's only
    if (!x) {
      log("detaching XDP from " + iface + ": " + x.error().message());
      return 1;
    }
    found = *r || *x;
  }
  std::error_code ec;
  std::string pin_dir = pin_dir_of(pin_root, iface);
  found |= fs::exists(pin_dir);
  fs::remove_all(pin_dir, ec);
  fs::remove(state, ec);
  if (!found) {
    log("nothing to detach: nfsfence is not attached to " + iface);
    return 1;
  }
  log("detached from " + iface + ": programs, pinned maps and state removed");
  return 0;
}

}  // namespace nfsfence::agent
