#include "src/cluster.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "src/agent_common.h"
#include "src/etcd.h"

namespace nfsfence::agent {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
uint64_t now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count());
}

constexpr unsigned kTombTtl = 600;  // s: how long a removed file's tombstone outlives it
constexpr size_t kTxnOps = 64;      // compares per txn (etcd's default limit is 128 ops)
constexpr auto kRetry = std::chrono::seconds(1);

etcd::Config etcd_config(const ClusterPolicy& c) {
  etcd::Config e;
  e.endpoints = c.etcd;
  e.ca = c.ca;
  e.cert = c.cert;
  e.key = c.key;
  e.timeout_ms = 1000;
  return e;
}
}  // namespace

struct Cluster::Conn {
  etcd::Client client;
  explicit Conn(const ClusterPolicy& c) : client(etcd_config(c)) {}
};

Cluster::Cluster(ClusterPolicy cfg, std::string node, std::vector<std::string> trees)
    : cfg_(std::move(cfg)),
      node_(std::move(node)),
      files_prefix_(cfg_.prefix + "/files/"),
      nodes_prefix_(cfg_.prefix + "/nodes/"),
      su_(std::move(trees), node_),
      conn_(std::make_unique<Conn>(cfg_)) {
  // A node that wrote a tree within this window still shares its room: a writer publishes
  // every flush_ms, so a few seconds of silence means it stopped.
  su_.set_active_window(std::max<uint64_t>(5000, 2000ull * cfg_.lease_ttl_s));
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  nodes_.insert(node_);
  st_.since = std::time(nullptr);
  st_.endpoint = cfg_.etcd.front();
}

Cluster::~Cluster() {
  stop_ = true;
  cv_.notify_all();
  if (main_.joinable()) main_.join();
  watch_stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  if (efd_ >= 0) ::close(efd_);
}

void Cluster::start() {
  main_ = std::thread([this] { run(); });
}

void Cluster::signal() {
  uint64_t one = 1;
  if (efd_ >= 0) (void)!::write(efd_, &one, sizeof one);
}

void Cluster::clear_fd() {
  uint64_t v;
  if (efd_ >= 0) (void)!::read(efd_, &v, sizeof v);
}

std::string Cluster::file_key(const std::string& fh) const {
  return files_prefix_ + to_hex(ByteView(reinterpret_cast<const uint8_t*>(fh.data()), fh.size()));
}

void Cluster::local(const std::string& fh, int tree, uint64_t bytes, uint64_t ctime_ns, bool gone) {
  std::lock_guard g(mu_);
  su_.local(fh, tree, bytes, ctime_ns, gone);
}

void Cluster::nudge() {
  {
    std::lock_guard g(mu_);
    if (nudged_ || !connected_) return;
    nudged_ = true;
  }
  cv_.notify_all();
}

void Cluster::set_trees(std::vector<std::string> names) {
  std::lock_guard g(mu_);
  su_.set_trees(std::move(names));
}

std::vector<Cluster::Tree> Cluster::trees(const std::vector<uint64_t>& limits) {
  std::lock_guard g(mu_);
  std::vector<Tree> out;
  if (!ever_) return out;
  su_.set_clock(now_ms());
  for (size_t i = 0; i < limits.size() && i < su_.tree_count(); i++) {
    int t = int(i);
    out.push_back(Tree{su_.usage(t), su_.confirmed(t), su_.unconfirmed_growth(t),
                       su_.room(t, limits[i], cfg_.room_chunk), su_.writers(t)});
  }
  return out;
}

bool Cluster::shared() {
  std::lock_guard g(mu_);
  return ever_;
}

ClusterStatus Cluster::status() {
  std::lock_guard g(mu_);
  ClusterStatus s = st_;
  s.shared = ever_;
  s.nodes = su_.nodes();
  s.pending = su_.pending();
  s.files = su_.files();
  s.requests = conn_->client.calls();
  s.bytes_sent = conn_->client.bytes_sent();
  return s;
}

// A key of the prefix changed (a range, a watch event); called with mu_ held.
void Cluster::apply(const std::string& key, const std::optional<std::string>& value, int64_t rev) {
  if (key.rfind(files_prefix_, 0) == 0) {
    auto fh = from_hex(std::string_view(key).substr(files_prefix_.size()));
    if (!fh) return;
    std::string h(fh->begin(), fh->end());
    std::optional<SharedRecord> r;
    if (value) {
      r = decode_record(*value);
      if (!r) return;  // not ours to read: skipped, never fatal
    }
    su_.remote(h, r, rev);
  } else if (key.rfind(nodes_prefix_, 0) == 0) {
    std::string n = key.substr(nodes_prefix_.size());
    if (value)
      nodes_.insert(n);
    else if (n != node_)
      nodes_.erase(n);
    su_.set_nodes(nodes_);
  }
}

bool Cluster::connect() {
  etcd::Client& c = conn_->client;
  auto fail = [&](const std::string& why) {
    std::lock_guard g(mu_);
    bool first = st_.error.empty() || st_.state == "connecting";
    if (st_.state == "connecting") {
      st_.state = "unreachable";
      st_.since = std::time(nullptr);
    }
    if (first)
      log("cluster: etcd unreachable (" + why + "): enforcing with this node's own view until it is; " +
          "`nfsfence status` shows the state");
    st_.error = why;
    return false;
  };
  auto lease = c.grant(cfg_.lease_ttl_s);
  if (!lease) return fail(lease.error().message);
  auto tomb = c.grant(kTombTtl);
  if (!tomb) return fail(tomb.error().message);
  json me{{"node", node_}, {"pid", ::getpid()}, {"started", std::time(nullptr)}};
  if (auto r = c.put(nodes_prefix_ + node_, me.dump(-1, ' ', false, json::error_handler_t::replace), *lease); !r)
    return fail(r.error().message);
  auto all = c.range_prefix(cfg_.prefix + "/");
  if (!all) return fail(all.error().message);
  {
    std::lock_guard g(mu_);
    su_.clear_remote();
    nodes_.clear();
    nodes_.insert(node_);
    su_.set_clock(now_ms());
    for (const etcd::KeyValue& kv : all->first) apply(kv.key, kv.value, kv.mod_revision);
    su_.set_nodes(nodes_);
    lease_ = *lease;
    tomb_lease_ = *tomb;
    tomb_granted_ = std::time(nullptr);
    bool again = ever_;
    ever_ = true;
    connected_ = true;
    watch_failed_ = false;
    st_.revision = all->second;
    if (again) st_.reconnects++;
    st_.state = "connected";
    st_.since = std::time(nullptr);
    st_.error.clear();
    st_.endpoint = c.endpoint();
    log("cluster: " + std::string(again ? "reconnected" : "connected") + " to etcd " + c.endpoint() + " as node '" +
        node_ + "': " + std::to_string(nodes_.size()) + " nodes, " + std::to_string(all->first.size()) +
        " keys under " + cfg_.prefix + ", " + std::to_string(su_.pending()) + " local reports to publish");
  }
  watch_stop_ = false;
  int64_t from = all->second + 1;
  watcher_ = std::thread([this, from, at = c.endpoint()] {
    etcd::Client wc(etcd_config(cfg_));
    wc.prefer(at);  // the member that just answered
    std::string why = wc.watch(
        cfg_.prefix + "/", from, watch_stop_,
        [this](const etcd::KeyValue& kv, bool deleted) {
          std::lock_guard g(mu_);
          st_.watch_events++;
          su_.set_clock(now_ms());
          apply(kv.key, deleted ? std::nullopt : std::optional<std::string>(kv.value), kv.mod_revision);
        },
        [this](int64_t rev) {
          {
            std::lock_guard g(mu_);
            st_.revision = std::max(st_.revision, rev);
          }
          signal();
        });
    std::lock_guard g(mu_);
    watch_failed_ = true;
    watch_error_ = why;
    cv_.notify_all();
  });
  signal();
  return true;
}

void Cluster::lost(const std::string& why) {
  watch_stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  std::lock_guard g(mu_);
  connected_ = false;
  st_.state = "lost";
  st_.since = std::time(nullptr);
  st_.error = why;
  log("cluster: etcd lost (" + why + "): enforcing with the last shared state and this node's own reports, " +
      "within its share of each tree's room; reconnecting");
  signal();
}

// Publishes pending local reports: each batch one txn, every key compared with the
// mod_revision this node last saw (0: absent). A failed compare reads the keys back; the
// next round publishes what still wins.
void Cluster::flush(int rounds) {
  etcd::Client& c = conn_->client;
  for (int round = 0; round < rounds; round++) {
    std::vector<SharedUsage::Publish> batch;
    int64_t tomb;
    {
      std::lock_guard g(mu_);
      batch = su_.to_publish(kTxnOps);
      tomb = tomb_lease_;
    }
    if (batch.empty()) return;
    json cmp = json::array(), ok = json::array(), no = json::array();
    for (const auto& p : batch) {
      std::string k = etcd::base64(file_key(p.fh));
      cmp.push_back(
          {{"key", k}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", std::to_string(p.expect_revision)}});
      json put{{"key", k}, {"value", etcd::base64(encode_record(p.record))}};
      if (p.record.gone) put["lease"] = std::to_string(tomb);
      ok.push_back({{"request_put", put}});
      no.push_back({{"request_range", {{"key", k}}}});
    }
    auto r = c.call("/v3/kv/txn", json{{"compare", cmp}, {"success", ok}, {"failure", no}});
    if (!r) {
      lost(r.error().message);
      return;
    }
    try {
      apply_txn(batch, *r);
    } catch (const std::exception& e) {  // an answer of another shape: read everything again
      lost(std::string("etcd txn: unexpected answer: ") + e.what());
      return;
    }
    signal();
  }
}

void Cluster::apply_txn(const std::vector<SharedUsage::Publish>& batch, const json& answer) {
  {
    const json* r = &answer;
    int64_t rev = 0;
    if (auto h = r->find("header"); h != r->end()) rev = etcd::revision_of(*h);
    std::lock_guard g(mu_);
    st_.revision = std::max(st_.revision, rev);
    if (r->value("succeeded", false)) {
      st_.published += batch.size();
      for (const auto& p : batch) su_.remote(p.fh, p.record, rev);
    } else {
      st_.conflicts++;
      const json& resp = r->value("responses", json::array());
      for (size_t i = 0; i < batch.size() && i < resp.size(); i++) {
        const json& kvs = resp[i].value("response_range", json::object()).value("kvs", json::array());
        if (kvs.empty())
          su_.remote(batch[i].fh, std::nullopt, rev);
        else {
          etcd::KeyValue kv = etcd::parse_kv(kvs[0]);
          apply(kv.key, kv.value, kv.mod_revision);
        }
      }
    }
  }
}

void Cluster::run() {
  auto flush_every = std::chrono::milliseconds(cfg_.flush_ms);
  auto keep_every = std::chrono::milliseconds(cfg_.lease_ttl_s * 1000 / 3);
  auto next_keep = Clock::now() + keep_every;
  while (!stop_) {
    bool up;
    {
      std::lock_guard g(mu_);
      up = connected_;
    }
    if (!up) {
      bool ok = false;
      try {
        ok = connect();
      } catch (const std::exception& e) {  // an answer of an unexpected shape: try again later
        std::lock_guard g(mu_);
        st_.error = std::string("etcd: unexpected answer: ") + e.what();
      }
      if (!ok) {
        std::unique_lock l(mu_);
        cv_.wait_for(l, kRetry, [&] { return stop_.load(); });
        continue;
      }
      next_keep = Clock::now() + keep_every;
    }
    {
      std::unique_lock l(mu_);
      cv_.wait_for(l, flush_every, [&] { return stop_.load() || watch_failed_ || nudged_; });
      nudged_ = false;
      if (watch_failed_ && !stop_) {
        std::string why = watch_error_;
        l.unlock();
        lost(why);
        continue;
      }
    }
    flush(8);
    {
      std::lock_guard g(mu_);
      if (!connected_) continue;
    }
    if (Clock::now() >= next_keep) {
      next_keep = Clock::now() + keep_every;
      auto ttl = conn_->client.keepalive(lease_);
      if (!ttl) {
        lost(ttl.error().message);
        continue;
      }
      if (*ttl <= 0) {
        lost("this node's lease expired");
        continue;
      }
      if (std::time(nullptr) - tomb_granted_ > kTombTtl / 2) {
        if (auto t = conn_->client.grant(kTombTtl)) {
          std::lock_guard g(mu_);
          tomb_lease_ = *t;
          tomb_granted_ = std::time(nullptr);
        }
      }
    }
  }
  // Exiting: what is pending goes out, and the lease ends now rather than in lease_ttl.
  bool up;
  {
    std::lock_guard g(mu_);
    up = connected_;
  }
  if (up) {
    flush(4);
    (void)conn_->client.revoke(lease_);
  }
  watch_stop_ = true;
}

}  // namespace nfsfence::agent
