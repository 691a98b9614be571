// The live agent behind `nfsfence attach`: loads and attaches the TC programs (adopting
// maps an earlier agent pinned), walks the trees on the server, mirrors handle -> tree
// and tree over/under into the BPF maps, and follows the server's replies from the ring
// buffer with the same decoder and accounting as `replay`.
#pragma once

#include <atomic>
#include <string>

#include "nfs/policy.h"
#include "nfsfence_abi.h"

namespace nfsfence::agent {

enum class Mode { Tc, Lsm, Auto };
// --mode tc's programs: TC on both directions (client), or XDP for the direction that
// arrives (server: calls, with TC egress for the replies; client: replies, TC egress for
// the calls).
enum class Hook { Tc, Xdp };
enum class Side { Client, Server };
enum class XdpMode { Native, Generic };

struct AttachOptions {
  Mode mode = Mode::Tc;
  std::string iface;         // tc: required; lsm: empty
  std::string mount;         // lsm: the local NFS mount of the export (empty: found in /proc/self/mountinfo)
  unsigned rescan_secs = 5;  // lsm: how often trees the hooks marked are scanned again
  std::string policy_path;   // --policy FILE, or
  std::string policy_dir;    // --policy-dir DIR (one file per tree); tc: followed live (inotify, SIGHUP)
  nfsf_action action = NFSF_ACTION_REWRITE;
  Hook hook = Hook::Tc;
  Side side = Side::Client;
  XdpMode xdp_mode = XdpMode::Native;
  std::string server;  // empty: the policy's server
  uint16_t nfs_port = 2049;
  uint16_t mount_port = 0;
  std::string pin_root = "/sys/fs/bpf/nfsfence";
  std::string state_dir = "/run/nfsfence";
  size_t max_handles = NFSF_MAX_HANDLES;
  unsigned wakeup_us = NFSF_WAKE_NS / 1000;  // tc: reply events wake the agent at most this often
  std::string metrics;                       // tc: ADDR:PORT to serve Prometheus metrics on (empty: none)
  std::string node;  // tc, policy with cluster: this node's name in etcd (empty: HOSTNAME/IFACE)
};

// Runs until `stop` becomes true (the CLI sets it from SIGINT/SIGTERM). Returns the exit
// code; errors are one line on stderr. Enforcement stays in place when it returns after
// ready (the programs and pinned maps keep the last state).
int run_attach(const AttachOptions& opt, const std::atomic<bool>& stop);

int run_detach(const std::string& iface, const std::string& pin_root, const std::string& state_dir);

int run_status(const std::string& iface, const std::string& pin_root, const std::string& state_dir, bool json);

}  // namespace nfsfence::agent
