#include "src/lsm_agent.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "src/agent_common.h"
#include "src/event_log.h"
#include "src/lsm_loader.h"
#include "src/status.h"

namespace nfsfence::agent {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(uint8_t(s[i + 1]))) {
      out += char(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Value of KEY in a comma-separated option list ("" when absent; "1" for a bare flag).
std::string option(const std::string& opts, const std::string& key) {
  std::stringstream ss(opts);
  std::string o;
  while (std::getline(ss, o, ',')) {
    if (o == key) return "1";
    if (o.rfind(key + "=", 0) == 0) return o.substr(key.size() + 1);
  }
  return "";
}

// The kernel's s_dev for a stat(2) st_dev (MKDEV: major << 20 | minor).
uint32_t kernel_dev(dev_t d) { return (uint32_t(major(d)) << 20) | uint32_t(minor(d)); }

struct TreeRoot {
  std::string dir;
  nfsf_lsm_ino key{};
};

struct Scan {
  uint64_t bytes = 0;
  uint64_t files = 0;
  uint64_t errors = 0;
};

}  // namespace

std::vector<NfsMount> nfs_mounts_of(const std::string& server, const std::string& export_path) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return parse_nfs_mounts(text.str(), server, export_path);
}

std::vector<NfsMount> parse_nfs_mounts(const std::string& mountinfo, const std::string& server,
                                       const std::string& export_path) {
  std::vector<NfsMount> out;
  std::istringstream in(mountinfo);
  std::string line;
  std::string want = strip_slashes(export_path);
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") dash++;
    if (dash < 5 || dash + 2 >= f.size()) continue;
    NfsMount m{unescape_mountinfo(f[4]), unescape_mountinfo(f[dash + 2]), f[dash + 1],
               dash + 3 < f.size() ? f[dash + 3] : ""};
    if (m.fstype != "nfs" && m.fstype != "nfs4") continue;
    size_t colon = m.source.rfind(':');
    if (colon == std::string::npos) continue;
    std::string host = m.source.substr(0, colon), path = strip_slashes(m.source.substr(colon + 1));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (path != want) continue;
    if (!server.empty() && host != server && option(m.options, "addr") != server) continue;
    out.push_back(m);
  }
  return out;
}

std::string tc_blind_reason(const NfsMount& m) {
  std::string sec = option(m.options, "sec"), tls = option(m.options, "xprtsec");
  if (sec == "krb5p") return m.dir + " uses sec=krb5p: its RPC bodies are encrypted, TC cannot read the WRITEs";
  if (sec == "krb5i")
    return m.dir + " uses sec=krb5i: a rewritten WRITE would fail its integrity checksum, TC cannot refuse it cleanly";
  if (!tls.empty() && tls != "none") return m.dir + " uses xprtsec=" + tls + ": the traffic is TLS, TC cannot read it";
  return "";
}

Expected<std::pair<Mode, std::string>> choose_mode(const AttachOptions& opt, const Policy& policy) {
  std::string server = opt.server.empty() ? policy.server.value_or("") : opt.server;
  std::string blind;
  std::vector<NfsMount> mounts = nfs_mounts_of(server, policy.export_path);
  for (const NfsMount& m : mounts)
    if (blind.empty()) blind = tc_blind_reason(m);
  if (!blind.empty()) {
    if (auto why = bpf::lsm_unavailable())
      return make_error("mode auto: neither mode can enforce here: " + blind + ", and " + *why);
    return std::pair{Mode::Lsm, "lsm: " + blind};
  }
  if (!opt.iface.empty())
    return std::pair{
        Mode::Tc, "tc: TC reads the NFS traffic on " + opt.iface +
                      (mounts.empty()
                           ? std::string(" (no local mount of the export to check)")
                           : " (" + mounts[0].dir + " uses sec=" +
                                 (option(mounts[0].options, "sec").empty() ? "sys" : option(mounts[0].options, "sec")) +
                                 ", no TLS)")};
  if (auto why = bpf::lsm_unavailable())
    return make_error("mode auto without an interface needs the LSM hooks, but " + *why);
  if (mounts.empty())
    return make_error("mode auto: no interface given and no local NFS mount of " + server + ":" + policy.export_path);
  return std::pair{Mode::Lsm, std::string("lsm: no interface given; the kernel runs BPF LSM programs")};
}

namespace {

class LsmAgent {
 public:
  LsmAgent(const AttachOptions& opt, const Policy& policy, const bpf::LsmMaps& maps,
           std::vector<std::vector<TreeRoot>> roots, std::string mount)
      : opt_(opt),
        policy_(policy),
        maps_(maps),
        roots_(std::move(roots)),
        mount_(std::move(mount)),
        usage_(policy.trees.size()),
        files_(policy.trees.size()),
        over_(policy.trees.size()),
        state_(state_file_of(opt.state_dir, kLsmName)),
        event_log_(event_log_of(opt.state_dir, kLsmName)) {}

  // Sums the regular files below the tree's root (each inode once; each superblock's root,
  // not crossing into other filesystems), and sets each file's charged size to what was
  // summed. Growth between a file's statx and that store is counted twice until the next
  // rescan (usage errs toward full).
  //
  // Through every superblock the export is mounted as: a write through another one sits in
  // that superblock's page cache, and only a statx through it (AT_STATX_FORCE_SYNC flushes
  // the inode's dirty pages, then asks the server) sees it. Per file the largest answer wins.
  Scan scan(size_t i) {
    Scan s;
    std::unordered_map<uint64_t, uint64_t> charge;  // fileid -> bytes
    constexpr int kFlags = AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC;
    for (const TreeRoot& r : roots_[i]) {
      std::error_code ec;
      struct statx rst {};
      (void)::statx(AT_FDCWD, r.dir.c_str(), kFlags, STATX_BASIC_STATS, &rst);  // a fresh listing below
      fs::recursive_directory_iterator it(r.dir, fs::directory_options::skip_permission_denied, ec), end;
      if (ec) {
        s.errors++;
        continue;
      }
      for (; it != end; it.increment(ec)) {
        if (ec) {
          s.errors++;
          ec.clear();
          continue;
        }
        struct statx st {};
        if (::statx(AT_FDCWD, it->path().c_str(), kFlags, STATX_TYPE | STATX_INO | STATX_SIZE | STATX_BLOCKS, &st) !=
            0) {
          s.errors++;
          continue;
        }
        if (kernel_dev(makedev(st.stx_dev_major, st.stx_dev_minor)) != r.key.dev) {
          it.disable_recursion_pending();  // another filesystem mounted inside the tree
          continue;
        }
        if (!S_ISREG(st.stx_mode)) continue;
        uint64_t bytes = policy_.accounting == AccountingMode::Used ? st.stx_blocks * 512 : st.stx_size;
        uint64_t& c = charge[st.stx_ino];
        c = std::max(c, bytes);
        // The hooks count this inode's growth from the size just seen, not from what they
        // saw last (which would count the growth since then twice).
        if (int fd = ::open(it->path().c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC); fd >= 0) {
          if (auto r2 = maps_.set_charged(fd, int64_t(st.stx_size)); !r2) s.errors++;
          ::close(fd);
        }
      }
    }
    s.files = charge.size();
    for (auto& [ino, bytes] : charge) s.bytes += bytes;
    return s;
  }

  // Scans tree i and makes its usage the kernel's; `dirty` is cleared first, so growth the
  // hooks see during the scan marks the tree again.
  void rescan(size_t i) {
    uint32_t id = uint32_t(i + 1);
    if (auto t = maps_.tree(id); t) {
      t->dirty = 0;
      t->limit = policy_.trees[i].limit;
      (void)maps_.set_tree(id, *t);
    }
    Scan s = scan(i);
    auto t = maps_.tree(id);
    if (!t) {
      log("error: " + t.error().message());
      return;
    }
    // A scan that could not read everything (server gone, permissions) only ever raises
    // usage: an unreadable tree must not look empty and take writes again. (Read-modify-
    // write of the value: a hook's counter add in between is lost; usage is replaced anyway.)
    int64_t scanned = int64_t(s.bytes);
    t->usage = s.errors ? std::max<int64_t>(t->usage, scanned) : scanned;
    t->limit = policy_.trees[i].limit;
    if (auto r = maps_.set_tree(id, *t); !r) log("error: " + r.error().message());
    usage_[i] = t->usage > 0 ? uint64_t(t->usage) : 0;
    files_[i] = s.files;
    if (s.errors && !warned_) {
      log("warning: tree '" + policy_.trees[i].name + "': " + std::to_string(s.errors) +
          " entries could not be read; its usage was not lowered (this warning is printed once)");
      warned_ = true;
    }
    scans_++;
  }

  void rescan_all() {
    for (size_t i = 0; i < roots_.size(); i++) rescan(i);  // (one entry per tree)
    (void)maps_.bump_gen();
  }

  // Every rescan interval: the trees the hooks marked; every 12 intervals all of them
  // (writes by other clients mark nothing here). Logs limit crossings.
  void tick(bool all) {
    bool any = false;
    for (size_t i = 0; i < roots_.size(); i++) {
      auto t = maps_.tree(uint32_t(i + 1));
      if (!t) continue;
      if (all || t->dirty) {
        rescan(i);
        any = true;
      } else {
        usage_[i] = t->usage > 0 ? uint64_t(t->usage) : 0;  // growth the hooks charged
      }
    }
    if (any) (void)maps_.bump_gen();
    report_crossings();
  }

  void report_crossings() {
    for (size_t i = 0; i < roots_.size(); i++) {
      auto t = maps_.tree(uint32_t(i + 1));
      if (!t) continue;
      bool over = t->limit && t->usage >= int64_t(t->limit);
      if (over == over_[i]) continue;
      over_[i] = over;
      const TreePolicy& p = policy_.trees[i];
      log("tree '" + p.name + "' " + (over ? "reached" : "is back below") + " its limit (" + format_size(p.limit) +
          "): usage " + format_size(t->usage > 0 ? uint64_t(t->usage) : 0) +
          (over ? ", refusing writes" : ", writes allowed again"));
      emit(over ? "tree_over" : "tree_under", json{{"tree", p.name},
                                                   {"path", p.path},
                                                   {"usage_bytes", t->usage > 0 ? uint64_t(t->usage) : 0},
                                                   {"limit_bytes", p.limit}});
    }
  }

  // `nfsfence events` (src/event_log.h; docs/events.md).
  void emit(std::string_view type, const json& fields = json::object()) { event_log_.emit(type, fields); }

  void write_state() {
    json trees = json::array();
    for (size_t i = 0; i < policy_.trees.size(); i++) {
      const TreePolicy& t = policy_.trees[i];
      trees.push_back(json{{"id", i + 1},
                           {"name", t.name},
                           {"path", t.path},
                           {"limit_bytes", t.limit},
                           {"soft_limit_bytes", t.soft_limit ? json(*t.soft_limit) : json(nullptr)},
                           {"usage_bytes", usage_[i]},
                           {"files", files_[i]},
                           {"over", bool(over_[i])}});
    }
    json j{{"pid", ::getpid()},
           {"iface", kLsmName},
           {"mode", "lsm"},
           {"action", "lsm"},
           {"mount", mount_},
           {"policy", opt_.policy_dir.empty() ? opt_.policy_path : opt_.policy_dir},
           {"trees", trees},
           {"scans", scans_},
           {"updated", std::time(nullptr)}};
    state_.write(j);
  }

  const std::vector<uint64_t>& usage() const { return usage_; }

 private:
  const AttachOptions& opt_;
  const Policy& policy_;
  const bpf::LsmMaps& maps_;
  std::vector<std::vector<TreeRoot>> roots_;  // per tree: its root on every superblock
  std::string mount_;
  std::vector<uint64_t> usage_, files_;
  std::vector<char> over_;
  uint64_t scans_ = 0;
  bool warned_ = false;
  StateWriter state_;
  EventLog event_log_;
};

}  // namespace

int run_attach_lsm(const AttachOptions& opt, const Policy& policy, const std::atomic<bool>& stop) {
  std::string server = opt.server.empty() ? policy.server.value_or("") : opt.server;
  // The mount: given, or the one local NFS mount of server:export.
  // The mounts: the one given, or every local NFS mount of server:export (mounts with
  // nosharecache or other options are superblocks of their own: each gets the tree roots).
  std::vector<std::string> mount_dirs;
  if (!opt.mount.empty()) {
    mount_dirs.push_back(opt.mount);
  } else {
    for (const NfsMount& m : nfs_mounts_of(server, policy.export_path)) mount_dirs.push_back(m.dir);
    if (mount_dirs.empty()) {
      log("--mode lsm: no NFS mount of " + (server.empty() ? std::string("*") : server) + ":" + policy.export_path +
          " in this mount namespace (/proc/self/mountinfo); mount the export first or give --mount DIR");
      return 1;
    }
  }
  const std::string& mount = mount_dirs[0];                       // named in the state file
  std::vector<std::vector<TreeRoot>> roots(policy.trees.size());  // per tree, per superblock
  std::vector<std::pair<nfsf_lsm_ino, uint32_t>> all_roots;       // every mount's roots -> tree id
  std::unordered_set<uint32_t> devs;
  for (const std::string& md : mount_dirs) {
    struct stat mst {};
    if (::stat(md.c_str(), &mst) != 0) {
      log("--mount " + md + ": " + std::strerror(errno));
      return 1;
    }
    if (!devs.insert(kernel_dev(mst.st_dev)).second) continue;  // the same superblock mounted twice
    for (size_t i = 0; i < policy.trees.size(); i++) {
      const TreePolicy& t = policy.trees[i];
      std::string dir = md + "/" + t.path;
      struct stat st {};
      if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        log("tree '" + t.name + "': " + dir + (errno == ENOENT ? " does not exist" : " is not a directory") +
            " (the LSM hooks find trees by their root directory: create it first)");
        return 1;
      }
      if (st.st_dev != mst.st_dev) {
        log("tree '" + t.name + "': " + dir + " is on another filesystem than " + md);
        return 1;
      }
      nfsf_lsm_ino key{uint64_t(st.st_ino), kernel_dev(st.st_dev), 0};
      roots[i].push_back({dir, key});
      all_roots.push_back({key, uint32_t(i + 1)});
    }
  }
  if (::geteuid() != 0) {
    log("attach needs root (CAP_BPF, CAP_MAC_ADMIN and CAP_SYS_ADMIN to load and attach LSM programs): run it with "
        "sudo");
    return 1;
  }
  if (auto why = bpf::lsm_unavailable()) {
    log("--mode lsm: " + *why + "; nothing was attached (--mode tc enforces on an interface instead)");
    return 1;
  }
  if (auto e = ensure_bpffs(opt.pin_root); !e.empty()) {
    log(e);
    return 1;
  }
  std::string pin_dir = pin_dir_of(opt.pin_root, kLsmName);
  std::error_code ec;
  bool adopting = fs::exists(pin_dir + "/lsm_trees", ec);
  if (auto pid = running_agent(state_file_of(opt.state_dir, kLsmName))) {
    log("an LSM agent (pid " + std::to_string(*pid) +
        ") already runs; stop it first (kill it, or nfsfence detach lsm)");
    return 1;
  }
  fs::create_directories(pin_dir, ec);
  fs::create_directories(opt.state_dir, ec);
  auto prog = bpf::LsmProgram::load(pin_dir);
  if (!prog) {
    if (!adopting) fs::remove_all(pin_dir, ec);
    if (adopting && prog.error().err == EINVAL)
      log("the LSM maps pinned under " + pin_dir + " do not fit this build (" + prog.error().message() +
          "): nfsfence detach lsm first");
    else
      log("loading the LSM programs failed: " + prog.error().message());
    return 1;
  }
  const bpf::LsmMaps& maps = (*prog)->maps();
  // Tree roots and superblock first, usage from a scan, then the hooks.
  (void)maps.clear_roots();
  for (auto& [key, id] : all_roots) {
    if (auto r = maps.add_dev(key.dev); !r) {
      log("error: " + r.error().message());
      return 1;
    }
    if (auto r = maps.set_root(key, id); !r) {
      log("error: " + r.error().message());
      return 1;
    }
  }
  LsmAgent agent(opt, policy, maps, roots, mount);
  agent.emit("agent_started", json{{"mode", "lsm"},
                                   {"iface", kLsmName},
                                   {"pid", ::getpid()},
                                   {"pins", adopting ? "adopted" : "fresh"},
                                   {"mount", mount},
                                   {"policy", opt.policy_path},
                                   {"trees", policy.trees.size()}});
  auto t0 = std::chrono::steady_clock::now();
  agent.rescan_all();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (auto r = (*prog)->attach(); !r) {
    if (!adopting) bpf::LsmProgram::remove_pins(pin_dir);
    log("attaching the LSM programs failed: " + r.error().message() + "; nothing stays attached");
    return 1;
  }
  agent.report_crossings();
  agent.write_state();
  std::string trees, hooks;
  for (size_t i = 0; i < policy.trees.size(); i++)
    trees += (i ? ", " : "") + policy.trees[i].name + " " + format_size(agent.usage()[i]) + "/" +
             format_size(policy.trees[i].limit);
  for (const std::string& h : (*prog)->hooks()) hooks += (hooks.empty() ? "" : " ") + h;
  if (adopting) log("adopted the LSM maps pinned under " + pin_dir + ": enforcement continued without a gap");
  std::string on;
  for (const std::string& md : mount_dirs) on += (on.empty() ? "" : ", ") + md;
  log("ready: lsm on " + on + " (hooks: " + hooks + "); scanned in " + std::to_string(secs).substr(0, 5) +
      " s; trees: " + trees);
  agent.emit("agent_ready", json{{"scan_s", double(int64_t(secs * 1000)) / 1000}, {"hooks", (*prog)->hooks()}});

  auto next = std::chrono::steady_clock::now();
  unsigned ticks = 0;
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    if (now < next) continue;
    next = now + std::chrono::seconds(opt.rescan_secs);
    agent.tick(++ticks % 12 == 0);
    agent.write_state();
  }
  agent.write_state();
  agent.emit("agent_exiting", json{{"reason", "signal"}, {"programs_attached", true}});
  log("exiting: the LSM hooks stay attached and keep enforcing (usage grows from the hooks alone until an agent "
      "rescans); `nfsfence attach --mode lsm` adopts them, `nfsfence detach lsm` removes them");
  return 0;
}

int run_detach_lsm(const std::string& pin_root, const std::string& state_dir) {
  std::string state = state_file_of(state_dir, kLsmName);
  if (auto pid = running_agent(state)) {
    log("stopping the LSM agent (pid " + std::to_string(*pid) + ")");
    stop_agent(*pid);
  }
  std::error_code ec;
  fs::remove(state, ec);
  if (!bpf::LsmProgram::remove_pins(pin_dir_of(pin_root, kLsmName))) {
    log("nothing to detach: the LSM hooks are not attached (nothing under " + pin_dir_of(pin_root, kLsmName) + ")");
    return 1;
  }
  log("detached the LSM hooks: links, pinned maps and state removed");
  return 0;
}

Expected<json> status_lsm(const std::string& pin_root, const std::string& state_dir) {
  auto maps = bpf::LsmMaps::open_pinned(pin_dir_of(pin_root, kLsmName));
  if (!maps) return make_error("the LSM hooks are not attached (" + maps.error().message() + ")");
  auto state = read_state_for_status(state_file_of(state_dir, kLsmName));
  json j = status_object(kLsmName, state, [&](json& o) {
    if (auto kt = maps->tree(o["id"].get<uint32_t>())) {
      // The kernel's view is what is enforced: its usage includes growth since the scan.
      o["usage_bytes"] = kt->usage > 0 ? uint64_t(kt->usage) : 0;
      o["over"] = kt->limit && kt->usage >= int64_t(kt->limit);
      o["writes"] = kt->writes;
      o["refused_writes"] = kt->refused;
      o["refused_bytes"] = 0;
    }
  });
  j["mode"] = "lsm";
  j["action"] = "lsm";
  if (state) j["mount"] = state_field(*state, "mount");
  j["counters"] = counters_json<nfsf_lsm_counter>(maps->counters());
  return j;
}

}  // namespace nfsfence::agent
