// attach / detach / status: the live agent (src/agent.cpp, src/lsm_agent.cpp; status: src/status.cpp).
#include <csignal>
#include <initializer_list>
#include <utility>

#include "src/agent.h"
#include "src/metrics.h"
#include "src/options.h"
#include "src/policy_watch.h"

namespace nfsfence::cli {

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }
void on_hup(int) { agent::reload_requested().store(true); }

const char* kPinHelp = "where the maps are pinned (one directory per interface; the LSM hooks' in lsm/)";
const char* kStateHelp = "where the agent writes per-tree usage for `status`";
}  // namespace

namespace {

// --hook/--side/--xdp-mode/--action, checked against each other and against --mode.
// One flag's word -> its value; false (after the one error line naming the choices) if
// the word is none of them.
template <typename T>
bool pick(T& out, const char* flag, const std::string& word, std::initializer_list<std::pair<const char*, T>> choices) {
  std::string names;
  for (const auto& [name, v] : choices) {
    if (word == name) {
      out = v;
      return true;
    }
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  error("--" + std::string(flag) + ": '" + word + "' is not one of: " + names);
  return false;
}

std::optional<int> hook_options(agent::AttachOptions& o, const po::variables_map& vm, const std::string& hook,
                                const std::string& side, const std::string& xdp_mode, const std::string& action) {
  auto fail = [](const std::string& e) {
    error(e);
    return std::optional<int>(kExitUsage);
  };
  if (o.mode == agent::Mode::Lsm)
    for (const char* k : {"hook", "side", "xdp-mode"})
      if (!vm[k].defaulted()) return fail("--" + std::string(k) + " is for --mode tc: the LSM hooks work on files");
  if (!pick(o.hook, "hook", hook, {{"tc", agent::Hook::Tc}, {"xdp", agent::Hook::Xdp}}) ||
      !pick(o.side, "side", side, {{"client", agent::Side::Client}, {"server", agent::Side::Server}}) ||
      !pick(o.xdp_mode, "xdp-mode", xdp_mode,
            {{"native", agent::XdpMode::Native}, {"generic", agent::XdpMode::Generic}}))
    return kExitUsage;
  if (o.hook == agent::Hook::Tc && !vm["xdp-mode"].defaulted()) return fail("--xdp-mode is for --hook xdp");
  if (o.hook == agent::Hook::Tc && o.side == agent::Side::Server)
    return fail("--side server needs --hook xdp (the calls arrive there: XDP takes them, TC egress the replies)");
  if (o.hook == agent::Hook::Xdp && o.mode == agent::Mode::Auto)
    return fail("--hook xdp needs --mode tc (auto chooses between tc and lsm)");
  const bool xdp_client = o.hook == agent::Hook::Xdp && o.side == agent::Side::Client;
  if (!pick(o.action, "action", action,
            {{"rewrite", NFSF_ACTION_REWRITE}, {"drop", NFSF_ACTION_DROP}, {"drop-reply", NFSF_ACTION_DROP_REPLY}}))
    return kExitUsage;
  if (xdp_client && vm["action"].defaulted()) o.action = NFSF_ACTION_DROP_REPLY;
  if (xdp_client && o.action != NFSF_ACTION_DROP_REPLY)
    return fail("--hook xdp --side client sees only replies: its one action is drop-reply (not " + action +
                "); --hook tc refuses the calls themselves");
  if (!xdp_client && o.action == NFSF_ACTION_DROP_REPLY)
    return fail("--action drop-reply is for --hook xdp --side client");
  return std::nullopt;
}

}  // namespace

int cmd_attach(const std::vector<std::string>& args) {
  po::options_description opts("options");
  agent::AttachOptions o;
  std::string action, mode, hook, side, xdp_mode;
  Number<unsigned, 1, 3600> rescan{5};
  Number<unsigned, 0, 1000000> wakeup{NFSF_WAKE_NS / 1000};
  opts.add_options()("iface", po::value(&o.iface),
                     "the interface the NFS traffic crosses (the client's; with --side server the server's); "
                     "--mode tc needs it")(
      "mode,m", po::value(&mode)->default_value("tc"),
      "tc: TC programs on IFACE read the NFS traffic and refuse WRITEs to full trees\n"
      "lsm: eBPF LSM hooks refuse writes to files under full trees on the local mount (sec=krb5p, "
      "xprtsec=tls; needs a kernel with BPF LSM), no IFACE\n"
      "auto: lsm where the mount's traffic is unreadable to TC (krb5i/krb5p/TLS) or no IFACE is given, "
      "else tc; prints what it picked and why")(
      "mount", po::value(&o.mount), "lsm: the export's local NFS mount (default: found in /proc/self/mountinfo)")(
      "rescan", po::value(&rescan)->default_value(rescan),
      "lsm: seconds between rescans of the trees the hooks marked (all trees every 12 rescans)")(
      "policy,p", po::value(&o.policy_path),
      "quota policy (YAML; see docs/policy.md); needs `server:` or --server. tc: a changed file (write a new one "
      "and rename it over) or SIGHUP is applied live")(
      "policy-dir", po::value(&o.policy_dir),
      "instead of --policy: a directory of one YAML file per tree (NAME.yaml: path, limit, ...) and an optional "
      "_defaults.yaml (export, server, accounting); what a CSI driver writes per volume. tc: followed live")(
      "action,a", po::value(&action)->default_value("rewrite"),
      "rewrite: poison the WRITE's file handle so the server refuses it, and rewrite the reply to "
      "NFS3ERR_DQUOT: the client sees EDQUOT, TCP stays intact\n"
      "drop: drop the packet (UDP: the client retries and times out; TCP: the connection stalls, reads included)\n"
      "drop-reply: --hook xdp --side client only (its default and only action): the WRITE reaches the "
      "server, which stores it; its reply is dropped. The survey's idea, built to measure why it fails")(
      "hook", po::value(&hook)->default_value("tc"),
      "tc: TC programs on both directions (clsact)\n"
      "xdp: an XDP program takes the direction that arrives (--side server: the calls; --side client: the "
      "replies), a TC egress program the one that leaves; both share the maps")(
      "side", po::value(&side)->default_value("client"),
      "which end of the NFS conversation IFACE is on. server (--hook xdp only): on the NFS server, or a "
      "gateway in front of it; WRITEs arrive, replies leave")(
      "xdp-mode", po::value(&xdp_mode)->default_value("native"),
      "--hook xdp: native (in the driver; veth and most NICs) or generic (in the stack, any interface, slower)")(
      "server", po::value(&o.server), "NFS server address (default: the policy's `server:`)")(
      "nfs-port", po::value(&o.nfs_port)->default_value(2049), "NFS port on the server")(
      "mount-port", po::value(&o.mount_port)->default_value(0), "MOUNT v3 port (0: ask the server's portmapper)")(
      "wakeup-us", po::value(&wakeup)->default_value(wakeup),
      "tc: the kernel wakes the agent for reply events at most this often (microseconds; 0: at every reply). "
      "Fewer wakeups cost less per reply (a wakeup is ~5 us); the agent sees a reply at most about this much later")(
      "metrics", po::value(&o.metrics),
      "tc: serve Prometheus metrics on ADDR:PORT at /metrics (e.g. 127.0.0.1:9109; names: docs/metrics.md)")(
      "node", po::value(&o.node),
      "tc, with the policy's `cluster:` (several nodes sharing the trees' usage through etcd): this node's name "
      "in etcd, unique per agent (default: HOSTNAME/IFACE)")(
      "max-handles", po::value(&o.max_handles)->default_value(NFSF_MAX_HANDLES),
      "size of the handle map (kernel memory: see docs/architecture.md)")(
      "pin-dir", po::value(&o.pin_root)->default_value("/sys/fs/bpf/nfsfence"), kPinHelp)(
      "state-dir", po::value(&o.state_dir)->default_value("/run/nfsfence"), kStateHelp);
  po::positional_options_description pos;
  pos.add("iface", 1);
  po::variables_map vm;
  const char* synopsis =
      "nfsfence attach IFACE --policy FILE|--policy-dir DIR [--action rewrite|drop] [--server ADDR] "
      "[--hook tc|xdp [--side client|server] [--xdp-mode native|generic]] | "
      "attach --mode lsm --policy FILE [--mount DIR] | attach [IFACE] --mode auto --policy FILE";
  const char* epilog =
      "Loads the TC programs, attaches them to IFACE (clsact egress + ingress), pins the maps under\n"
      "PIN_DIR/IFACE, asks the server for the export root, each tree root and everything below them\n"
      "(MNT, LOOKUP, READDIRPLUS), and prints \"ready\" once every tree is enforced. It then runs in the\n"
      "foreground, following the server's replies, and flips a tree's state when its usage crosses\n"
      "the limit. The policy is followed: a changed file (or directory entry), or SIGHUP, is checked whole\n"
      "and applied without a gap (new trees walked, removed ones unmapped, limits from the next WRITE);\n"
      "an invalid one is one log line, shown by `status`, and the last good policy stays in force.\n"
      "On SIGINT/SIGTERM (or if it dies) the programs stay attached and keep enforcing the\n"
      "last state; a new `attach` adopts them; `nfsfence detach IFACE` removes everything.\n\n"
      "examples:\n"
      "  sudo nfsfence attach eth0 --policy /etc/nfsfence/policy.yaml\n"
      "  sudo nfsfence attach eth0 --policy-dir /etc/nfsfence/eth0.d   # vol-a.yaml, vol-b.yaml, _defaults.yaml\n"
      "  sudo nfsfence attach eth0 -p policy.yaml --action drop --server 10.0.0.5 --mount-port 20048\n"
      "  sudo nfsfence attach eth1 -p policy.yaml --hook xdp --side server  # on the server: XDP in, TC out\n"
      "  sudo nfsfence attach eth0 -p policy.yaml --hook xdp --side client  # drop-reply, to measure it\n"
      "  sudo nfsfence attach --mode lsm -p policy.yaml            # hooks on the local mount; status/detach name it "
      "`lsm`\n"
      "  sudo nfsfence attach eth0 --mode auto -p policy.yaml\n\n"
      "With --hook xdp --side server the agent runs on the NFS server (or a gateway in front of it): XDP\n"
      "refuses the WRITE calls as they arrive (rewrite or drop), TC egress turns the replies to NFS3ERR_DQUOT,\n"
      "and the agent learns handles and usage from the same traffic; --policy's `server:` is this host.\n"
      "`detach` removes nfsfence's XDP program only; another program already on IFACE is never replaced.\n\n"
      "With --mode lsm the hooks (file_permission, mmap_file, file_mprotect, inode_setattr, ...) refuse with\n"
      "EDQUOT at write() itself; usage comes from a statx scan of each tree and the growth the hooks see\n"
      "(see docs/architecture.md, \"The LSM fallback\").\n\n"
      "With `cluster: {etcd: [URL...], prefix: /nfsfence/EXPORT}` in the policy, every node's agent shares\n"
      "per-file usage through etcd and each may let a tree grow by its share of the room that is left\n"
      "(docs/architecture.md, \"Several nodes\"); `status` shows the connection. Without etcd at start the\n"
      "agent enforces with its own view, and says so, until etcd answers.\n";
  if (auto rc = parse_options(args, synopsis, epilog, opts, pos, vm)) return *rc;
  if (o.policy_path.empty() == o.policy_dir.empty()) {
    error(o.policy_path.empty() ? "attach needs a policy: --policy FILE or --policy-dir DIR"
                                : "--policy and --policy-dir: give one of them");
    return kExitUsage;
  }
  if (mode == "tc")
    o.mode = agent::Mode::Tc;
  else if (mode == "lsm")
    o.mode = agent::Mode::Lsm;
  else if (mode == "auto")
    o.mode = agent::Mode::Auto;
  else {
    error("--mode: '" + mode + "' is not one of: tc, lsm, auto");
    return kExitUsage;
  }
  if (o.mode == agent::Mode::Tc && o.iface.empty()) {
    error("--mode tc needs the NFS client's interface: " + std::string("nfsfence attach IFACE --policy FILE"));
    return kExitUsage;
  }
  if (o.mode == agent::Mode::Lsm && !o.iface.empty()) {
    error("--mode lsm works on files, not on an interface: drop '" + o.iface + "'");
    return kExitUsage;
  }
  if (o.mode == agent::Mode::Lsm && !vm["action"].defaulted()) {
    error("--action is for --mode tc: the LSM hooks always refuse with EDQUOT");
    return kExitUsage;
  }
  if (o.mode == agent::Mode::Lsm && vm.count("metrics")) {
    error("--metrics is for --mode tc (the LSM agent has no metrics yet)");
    return kExitUsage;
  }
  if (vm.count("metrics")) {
    if (auto e = agent::check_listen_address(o.metrics); !e.empty()) {
      error(e);
      return kExitUsage;
    }
  }
  if (o.mode == agent::Mode::Lsm && !vm["wakeup-us"].defaulted()) {
    error("--wakeup-us is for --mode tc: the LSM hooks send no events");
    return kExitUsage;
  }
  if (o.mode == agent::Mode::Tc && (vm.count("mount") || !vm["rescan"].defaulted())) {
    error(std::string(vm.count("mount") ? "--mount" : "--rescan") + " is for --mode lsm or auto");
    return kExitUsage;
  }
  if (vm.count("node") && (o.mode == agent::Mode::Lsm || o.node.empty() ||
                           o.node.find_first_of(" \t\n\r") != std::string::npos || o.node.size() > 200)) {
    error(o.mode == agent::Mode::Lsm ? "--node is for --mode tc (the LSM agent does not share usage)"
                                     : "--node: give a name of 1 to 200 characters without spaces");
    return kExitUsage;
  }
  o.rescan_secs = rescan.value;
  o.wakeup_us = wakeup.value;
  if (auto rc = hook_options(o, vm, hook, side, xdp_mode, action)) return *rc;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hup;
  sigaction(SIGHUP, &hup, nullptr);
  return agent::run_attach(o, g_stop);
}

int cmd_detach(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string iface, pin, state;
  opts.add_options()("iface", po::value(&iface)->required(), "interface to detach from, or `lsm` for the LSM hooks")(
      "pin-dir", po::value(&pin)->default_value("/sys/fs/bpf/nfsfence"), kPinHelp)(
      "state-dir", po::value(&state)->default_value("/run/nfsfence"), kStateHelp);
  po::positional_options_description pos;
  pos.add("iface", 1);
  po::variables_map vm;
  const char* epilog =
      "Stops a running agent, removes nfsfence's TC filters from IFACE, its pinned maps and its state\n"
      "file. WRITEs are no longer refused afterwards. `nfsfence detach lsm` removes the LSM hooks (--mode lsm).\n\n"
      "examples:\n  sudo nfsfence detach eth0\n  sudo nfsfence detach lsm\n";
  if (auto rc = parse_options(args, "nfsfence detach IFACE", epilog, opts, pos, vm)) return *rc;
  return agent::run_detach(iface, pin, state);
}

int cmd_status(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string iface, pin, state, format;
  opts.add_options()("iface", po::value(&iface),
                     "interface, or `lsm` (default: every attached interface and the LSM hooks)")(
      "format,f", po::value(&format)->default_value("text"), "text or json")(
      "pin-dir", po::value(&pin)->default_value("/sys/fs/bpf/nfsfence"), kPinHelp)(
      "state-dir", po::value(&state)->default_value("/run/nfsfence"), kStateHelp);
  po::positional_options_description pos;
  pos.add("iface", 1);
  po::variables_map vm;
  const char* epilog =
      "Per tree: limit, usage (from the agent), state and refused writes (from the kernel's maps), and\n"
      "every verdict and parse-failure counter. Works while the agent runs and after it died.\n\n"
      "examples:\n  sudo nfsfence status\n  sudo nfsfence status eth0 --format json | jq '.trees[]'\n";
  if (auto rc = parse_options(args, "nfsfence status [IFACE] [--format text|json]", epilog, opts, pos, vm)) return *rc;
  if (format != "text" && format != "json") {
    error("--format: '" + format + "' is not one of: text, json");
    return kExitUsage;
  }
  return agent::run_status(iface, pin, state, format == "json");
}

}  // namespace nfsfence::cli
