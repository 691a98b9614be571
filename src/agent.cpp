#include "src/agent.h"

#include "nfs/ring_event.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <net/if.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "nfs/accounting.h"
#include "nfs/tree_walk.h"
#include "src/agent_common.h"
#include "src/bpf_loader.h"
#include "src/lsm_agent.h"

namespace nfsfence::agent {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* action_name(nfsf_action a) { return a == NFSF_ACTION_DROP ? "drop" : "rewrite"; }

// The running agent: everything between ready and exit.
class Agent {
 public:
  Agent(const AttachOptions& opt, const Policy& policy, bpf::TcProgram& prog)
      : opt_(opt),
        policy_(policy),
        prog_(prog),
        acct_(policy_, opt.max_handles,
              {[this](int t, bool over, Timestamp) { on_limit(t, over); },
               [this](int t, Timestamp) { on_soft(t); }}),
        dec_([this](const RpcMessage& m) { on_message(m); }) {
    acct_.cache().track_changes(true);
    struct timespec rt {}, mono {};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    mono_to_real_ns_ = (int64_t(rt.tv_sec) - mono.tv_sec) * 1000000000LL + (rt.tv_nsec - mono.tv_nsec);
  }

  Expected<WalkResult> walk() {
    WalkOptions w;
    w.server = opt_.server.empty() ? policy_.server.value_or("") : opt_.server;
    w.nfs_port = opt_.nfs_port;
    w.mount_port = opt_.mount_port;
    auto r = walk_trees(w, acct_);
    if (!r) return r;
    sync_handles(true);
    for (size_t i = 0; i < policy_.trees.size(); i++) set_over(int(i), acct_.trees()[i].over);
    sync_rooms(true);
    return r;
  }

  // Ring buffer callback: one slice of an RPC stream (or a datagram) -> the decoder
  // (nfs/ring_event.h: the same code fuzz_ring runs).
  int on_event(const void* data, size_t size) {
    RingEvent ev;
    if (!parse_ring_event(data, size, mono_to_real_ns_, events_ + 1, ev)) return 0;
    events_++;
    feed_ring_event(dec_, ev);
    return 0;
  }

  void after_batch() {
    sync_handles(false);
    sync_rooms(false);
    auto now = std::chrono::steady_clock::now();
    if (now - last_state_ < std::chrono::seconds(1)) return;
    last_state_ = now;
    write_state();
    auto c = prog_.maps().counters();
    if (c && (*c)[NFSF_C_EVENTS_LOST] > lost_seen_) {
      log("warning: " + std::to_string((*c)[NFSF_C_EVENTS_LOST] - lost_seen_) +
          " ring buffer events lost: walking the trees again to resynchronise");
      lost_seen_ = (*c)[NFSF_C_EVENTS_LOST];
      if (auto r = walk(); !r) log("warning: resync walk failed: " + r.error().message);
    }
  }

  void write_state() const {
    json trees = json::array();
    for (size_t i = 0; i < policy_.trees.size(); i++) {
      const TreePolicy& t = policy_.trees[i];
      const TreeState& s = acct_.trees()[i];
      trees.push_back(json{{"id", i + 1},
                           {"name", t.name},
                           {"path", t.path},
                           {"limit_bytes", t.limit},
                           {"soft_limit_bytes", t.soft_limit ? json(*t.soft_limit) : json(nullptr)},
                           {"usage_bytes", s.usage},
                           {"files", s.files},
                           {"over", s.over}});
    }
    json j{{"pid", ::getpid()},
           {"iface", opt_.iface},
           {"action", action_name(opt_.action)},
           {"policy", opt_.policy_path},
           {"trees", trees},
           {"handles", acct_.cache().stats().handles},
           {"events", events_},
           {"updated", std::time(nullptr)}};
    // A policy path need not be UTF-8: replace, never throw (a throw here would end the agent).
    write_file_atomic(state_file_of(opt_.state_dir, opt_.iface),
                      j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  }

  uint64_t mirrored() const { return mirrored_; }
  const Accounting& accounting() const { return acct_; }

 private:
  void on_message(const RpcMessage& m) {
    acct_.on_message(m);
    // A WRITE answered: its tree's room is refreshed after this batch (sync_rooms), also
    // when usage did not change (a rewrite in place used up room in the kernel).
    if (m.type == MsgType::Reply && m.prog == kProgNfs && m.proc == 7u && m.call && m.call->fh) {
      int t = acct_.cache().tree_of_fh(ByteView(m.call->fh->data(), m.call->fh->size()));
      if (t >= 0 && size_t(t) < room_dirty_.size()) room_dirty_[size_t(t)] = true;
    }
  }

  // tree_room: the programs refuse a tree's WRITEs once its write_bytes counter passes
  // full_at = (write_bytes now) + (limit - usage), so a tree stops at its limit without
  // waiting for this agent to read the crossing reply: what passes beyond the limit is at
  // most the WRITEs already sent but not yet answered when usage was last updated. Refreshed
  // for every tree whose usage changed or that had a WRITE answered (and all of them after a
  // walk). The cost: WRITEs that rewrite existing bytes use up room until their replies
  // are read, so a tree with less room than the WRITEs in flight can refuse a rewrite.
  void sync_rooms(bool all) {
    if (room_usage_.size() != policy_.trees.size()) {
      room_usage_.assign(policy_.trees.size(), ~uint64_t(0));
      room_dirty_.assign(policy_.trees.size(), true);
    }
    for (size_t i = 0; i < policy_.trees.size(); i++) {
      uint64_t usage = acct_.trees()[i].usage, limit = policy_.trees[i].limit;
      if (!all && !room_dirty_[i] && usage == room_usage_[i]) continue;
      room_dirty_[i] = false;
      auto t = prog_.maps().tree(uint32_t(i + 1));
      if (!t) {
        log("error: " + t.error().message());
        continue;
      }
      uint64_t full_at = t->write_bytes + (usage < limit ? limit - usage : 0);
      if (auto r = prog_.maps().set_tree_room(uint32_t(i + 1), full_at ? full_at : 1); !r) {
        log("error: " + r.error().message());
        continue;
      }
      room_usage_[i] = usage;
    }
  }

  void set_over(int tree, bool over) {
    if (auto r = prog_.maps().set_tree_over(uint32_t(tree + 1), over); !r) log("error: " + r.error().message());
  }

  void on_limit(int tree, bool over) {
    const TreePolicy& t = policy_.trees[tree];
    log("tree '" + t.name + "' " + (over ? "reached" : "is back below") + " its limit (" + format_size(t.limit) +
        "): usage " + format_size(acct_.trees()[tree].usage) + (over ? ", refusing WRITEs" : ", WRITEs allowed again"));
    set_over(tree, over);
  }

  void on_soft(int tree) {
    const TreePolicy& t = policy_.trees[tree];
    log("warning: tree '" + t.name + "' reached its soft limit (" + format_size(*t.soft_limit) + "): usage " +
        format_size(acct_.trees()[tree].usage));
  }

  void mirror(HandleCache::Id id) {
    HandleCache& c = acct_.cache();
    HandleCache::Node& n = c.node(id);
    if (!n.live) return;
    int t = c.tree_of(id);
    if (t < 0) t = HandleCache::kUnknown;
    if (t == n.mirrored_tree) return;
    std::span<const uint8_t> fh(reinterpret_cast<const uint8_t*>(n.fh->data()), n.fh->size());
    if (fh.size() > NFSF_FH_MAX) return;
    if (t >= 0) {
      if (auto r = prog_.maps().set_handle_tree(fh, uint32_t(t + 1)); !r) {
        log("error: " + r.error().message());
        return;
      }
      if (n.mirrored_tree < 0) mirrored_++;
    } else {
      (void)prog_.maps().remove_handle(fh);
      mirrored_--;
    }
    n.mirrored_tree = t;
  }

  // Mirrors handle -> tree into the BPF map: the handles whose tree changed since the last
  // sync (the cache lists them, a moved directory's whole subtree included, and only when
  // a tree changed), or all of them after a walk. Forgotten handles go first: a handle
  // forgotten and learned again is then mirrored afresh.
  void sync_handles(bool full) {
    HandleCache& c = acct_.cache();
    for (const std::string& fh : c.forgotten()) {
      (void)prog_.maps().remove_handle(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(fh.data()), fh.size()));
      mirrored_--;
    }
    c.forgotten().clear();
    if (full)
      c.for_each([&](HandleCache::Id id, HandleCache::Node&) { mirror(id); });
    else
      for (HandleCache::Id id : c.touched()) mirror(id);
    c.clear_touched();
  }

  std::vector<uint64_t> room_usage_;  // per tree: the usage tree_room was last set from
  std::vector<bool> room_dirty_;      // per tree: a WRITE reply since the last sync_rooms
  const AttachOptions& opt_;
  const Policy& policy_;
  bpf::TcProgram& prog_;
  Accounting acct_;
  Decoder dec_;
  uint64_t mirrored_ = 0;
  uint64_t events_ = 0;
  uint64_t lost_seen_ = 0;
  int64_t mono_to_real_ns_ = 0;
  std::chrono::steady_clock::time_point last_state_{};
};

int ring_cb(void* ctx, void* data, size_t size) { return static_cast<Agent*>(ctx)->on_event(data, size); }

// libbpf's own warnings, without the netlink notice that the clsact qdisc already exists (an
// expected case: another program or an earlier agent). Until the agent is ready they are
// held back and the last one goes into the one error line a failure prints (libbpf_note);
// after that they are logged as they come.
std::string g_libbpf_last;
bool g_libbpf_live = false;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  bool debug = std::getenv("NFSF_DEBUG") != nullptr;
  if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !debug)) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (std::strstr(buf, "Exclusivity flag on")) return 0;
  while (n > 0 && n <= int(sizeof buf) && (buf[n - 1] == '\n')) buf[--n] = 0;
  const char* msg = std::strncmp(buf, "libbpf: ", 8) == 0 ? buf + 8 : buf;
  if (g_libbpf_live || debug)
    std::fprintf(stderr, "nfsfence: libbpf: %s\n", msg);
  else
    g_libbpf_last = msg;
  return 0;
}

// " (libbpf: <its last warning>)" for an error line, or "" when it said nothing.
std::string libbpf_note() {
  std::string note = g_libbpf_last.empty() ? "" : " (libbpf: " + g_libbpf_last + ")";
  g_libbpf_last.clear();
  return note;
}

}  // namespace

int run_attach(const AttachOptions& opt_in, const std::atomic<bool>& stop) {
  libbpf_set_print(libbpf_print);
  auto policy = load_policy(opt_in.policy_path);
  if (!policy) {
    log(policy.error().message);
    return 1;
  }
  AttachOptions picked = opt_in;
  if (opt_in.mode == Mode::Auto) {
    auto c = choose_mode(opt_in, *policy);
    if (!c) {
      log(c.error().message);
      return 1;
    }
    log("mode auto picked " + c->second);
    picked.mode = c->first;
  }
  const AttachOptions& opt = picked;
  if (opt.mode == Mode::Lsm) {
    return run_attach_lsm(opt, *policy, stop);
  }
  if (opt.iface.empty()) {
    log("--mode tc needs the NFS client's interface: nfsfence attach IFACE --policy FILE");
    return 1;
  }
  unsigned ifindex = if_nametoindex(opt.iface.c_str());
  if (!ifindex) {
    log("interface '" + opt.iface + "' does not exist (ip link shows the interfaces of this network namespace)");
    return 1;
  }
  if (opt.server.empty() && !policy->server) {
    log(opt.policy_path + ": the agent needs the server's address: add `server:` to the policy or give --server");
    return 1;
  }
  for (const NfsMount& m : nfs_mounts_of(opt.server.empty() ? *policy->server : opt.server, policy->export_path))
    if (auto why = tc_blind_reason(m); !why.empty())
      log("warning: " + why + " (--mode lsm refuses writes at the file level)");
  if (::geteuid() != 0) {
    log("attach needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to load, attach and pin): run it with sudo");
    return 1;
  }
  if (auto e = ensure_bpffs(opt.pin_root); !e.empty()) {
    log(e);
    return 1;
  }
  std::string pin_dir = pin_dir_of(opt.pin_root, opt.iface);
  bool adopting = fs::exists(pin_dir + "/trees");
  std::error_code ec;
  fs::create_directories(pin_dir, ec);
  fs::create_directories(opt.state_dir, ec);
  if (auto prev = read_state(state_file_of(opt.state_dir, opt.iface)); prev && process_alive((*prev)["pid"].get<int>())) {
    log("an agent (pid " + std::to_string((*prev)["pid"].get<int>()) + ") already runs on " + opt.iface +
        "; stop it first (kill it, or nfsfence detach " + opt.iface + ")");
    return 1;
  }

  bpf::LoadOptions lo;
  lo.action = opt.action;
  lo.pin_dir = pin_dir;
  lo.max_handles = uint32_t(opt.max_handles);
  lo.nfs_port = opt.nfs_port;
  auto prog = bpf::TcProgram::load(lo);
  auto undo_pins = [&] {
    if (adopting) return;
    fs::remove_all(pin_dir, ec);
  };
  if (!prog) {
    int err = prog.error().err;
    undo_pins();
    if (err == EPERM || err == EACCES)
      log("loading the BPF programs was refused (" + prog.error().message() + "): run as root on a kernel with BPF enabled");
    else if (adopting && err == EINVAL)
      log("the maps pinned under " + pin_dir + " do not fit this build (" + prog.error().message() +
          "): nfsfence detach " + opt.iface + " first");
    else
      log("loading the BPF programs failed: " + prog.error().message() + libbpf_note());
    return 1;
  }
  if (auto r = (*prog)->attach(int(ifindex)); !r) {
    undo_pins();
    log("attaching to " + opt.iface + " failed: " + r.error().message() +
        (r.error().err == EOPNOTSUPP || r.error().err == ENOENT ? " (does this kernel have clsact / cls_bpf?)" : "") +
        libbpf_note());
    return 1;
  }
  if (adopting) log("adopted the maps pinned under " + pin_dir + ": enforcement continued without a gap");

  Agent agent(opt, *policy, **prog);
  auto t0 = std::chrono::steady_clock::now();
  auto walked = agent.walk();
  if (!walked) {
    if (adopting) {
      (*prog)->keep_attached();  // the previous state keeps being enforced
      log(walked.error().message + " (the programs stay attached with the state they had)");
    } else {
      (*prog)->detach();
      undo_pins();
      log(walked.error().message);
    }
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  agent.write_state();

  ring_buffer* rb = ring_buffer__new((*prog)->maps().events_fd, ring_cb, &agent, nullptr);
  if (!rb) {
    log("ring buffer: " + std::string(std::strerror(errno)));
    (*prog)->keep_attached();
    return 1;
  }
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.0f", secs > 0 ? double(walked->handles) / secs : 0.0);
  std::string trees;
  for (size_t i = 0; i < policy->trees.size(); i++) {
    const TreeState& s = agent.accounting().trees()[i];
    trees += (i ? ", " : "") + policy->trees[i].name + " " + format_size(s.usage) + "/" +
             format_size(policy->trees[i].limit) + (s.over ? " OVER" : "");
  }
  g_libbpf_live = true;
  log("ready: " + opt.iface + " action=" + action_name(opt.action) + "; walked " + std::to_string(walked->handles) +
      " handles in " + std::to_string(walked->directories) + " directories in " + std::to_string(secs).substr(0, 5) +
      " s (" + rate + " handles/s); " + std::to_string(agent.mirrored()) + " handles enforced; trees: " + trees);

  while (!stop.load()) {
    int n = ring_buffer__poll(rb, 200);
    if (n < 0 && n != -EINTR) {
      log("ring buffer poll: " + std::string(std::strerror(-n)));
      break;
    }
    // Events submitted without a wakeup (calls) are drained here at the latest.
    if (n == 0) ring_buffer__consume(rb);
    agent.after_batch();
  }
  ring_buffer__free(rb);
  agent.write_state();
  (*prog)->keep_attached();
  log("exiting: the programs stay attached to " + opt.iface +
      " and keep enforcing the last state; `nfsfence attach` adopts them, `nfsfence detach " + opt.iface +
      "` removes them");
  return 0;
}

int run_detach(const std::string& iface, const std::string& pin_root, const std::string& state_dir) {
  if (::geteuid() != 0) {
    log("detach needs root");
    return 1;
  }
  if (iface == kLsmName) return run_detach_lsm(pin_root, state_dir);
  std::string state = state_file_of(state_dir, iface);
  if (auto prev = read_state(state); prev && process_alive((*prev)["pid"].get<int>())) {
    int pid = (*prev)["pid"].get<int>();
    log("stopping the agent (pid " + std::to_string(pid) + ")");
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 50 && process_alive(pid); i++) ::usleep(100000);
  }
  bool found = false;
  if (unsigned ifindex = if_nametoindex(iface.c_str())) {
    auto r = bpf::TcProgram::detach_ifindex(int(ifindex));
    if (!r) {
      log("detaching from " + iface + ": " + r.error().message());
      return 1;
    }
    found = *r;
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
  log("detached from " + iface + ": filters, pinned maps and state removed");
  return 0;
}

int run_status(const std::string& iface_arg, const std::string& pin_root, const std::string& state_dir, bool as_json) {
  std::vector<std::string> ifaces;
  if (!iface_arg.empty()) ifaces.push_back(iface_arg);
  else {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(pin_root, ec))
      if (e.is_directory()) ifaces.push_back(e.path().filename());
    if (ifaces.empty()) {
      log("nfsfence is not attached to any interface (nothing under " + pin_root + ")");
      return 1;
    }
  }
  json all = json::array();
  for (const std::string& iface : ifaces) {
    if (iface == kLsmName) {
      auto j = status_lsm(pin_root, state_dir);
      if (!j) {
        log(j.error().message);
        return 1;
      }
      all.push_back(*j);
      continue;
    }
    std::string pin_dir = pin_dir_of(pin_root, iface);
    auto maps = bpf::MapSet::open_pinned(pin_dir);
    if (!maps) {
      log("nfsfence is not attached to " + iface + " (" + maps.error().message() + ")");
      return 1;
    }
    std::string damaged;
    auto state = read_state(state_file_of(state_dir, iface), &damaged);
    if (!damaged.empty()) log("warning: " + damaged + ": showing the kernel's maps only");
    json j{{"iface", iface}, {"agent_running", false}, {"action", nullptr}};
    if (state) {
      j["agent_pid"] = (*state)["pid"];
      j["agent_running"] = process_alive((*state)["pid"].get<int>());
      j["action"] = (*state)["action"];
      j["handles"] = (*state)["handles"];
      j["state_updated"] = (*state)["updated"];
    }
    json trees = json::array();
    if (state) {
      for (auto& t : (*state)["trees"]) {
        auto kt = maps->tree(t["id"].get<uint32_t>());
        json o = t;
        if (kt) {
          o["over"] = kt->over != 0;  // the kernel's view is what is enforced
          o["writes"] = kt->writes;
          o["write_bytes"] = kt->write_bytes;
          o["refused_writes"] = kt->refused_writes;
          o["refused_bytes"] = kt->refused_bytes;
        }
        trees.push_back(o);
      }
    }
    j["trees"] = trees;
    json counters = json::object();
    if (auto c = maps->counters())
      for (int i = 0; i < NFSF_C_MAX; i++) counters[bpf::counter_name(nfsf_counter(i))] = (*c)[size_t(i)];
    j["counters"] = counters;
    all.push_back(j);
  }
  if (as_json) {
    std::printf("%s\n", (iface_arg.empty() ? all : all[0]).dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }
  for (auto& j : all) {
    std::printf("%s: agent %s, action %s\n", printable(j["iface"].get<std::string>()).c_str(),
                j["agent_running"].get<bool>() ? ("running (pid " + j["agent_pid"].dump() + ")").c_str()
                                               : "not running (programs keep enforcing the last state)",
                j["action"].is_null() ? "?" : j["action"].get<std::string>().c_str());
    std::printf("  %-16s %-20s %10s %10s %-6s %8s %8s %10s\n", "tree", "path", "limit", "usage", "state", "writes",
                "refused", "refused_B");
    for (auto& t : j["trees"]) {
      std::printf("  %-16s %-20s %10s %10s %-6s %8llu %8llu %10s\n", printable(t["name"].get<std::string>()).c_str(),
                  printable(t["path"].get<std::string>()).c_str(), format_size(t["limit_bytes"]).c_str(),
                  format_size(t["usage_bytes"]).c_str(), t["over"].get<bool>() ? "OVER" : "ok",
                  static_cast<unsigned long long>(t.value("writes", 0ull)),
                  static_cast<unsigned long long>(t.value("refused_writes", 0ull)),
                  format_size(t.value("refused_bytes", 0ull)).c_str());
    }
    std::string cs;
    for (auto& [k, v] : j["counters"].items())
      if (v.get<uint64_t>()) cs += " " + k + "=" + std::to_string(v.get<uint64_t>());
    std::printf("  counters:%s\n", cs.empty() ? " none" : cs.c_str());
  }
  return 0;
}

}  // namespace nfsfence::agent
