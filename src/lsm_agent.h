// The LSM agent behind `nfsfence attach --mode lsm` (and --mode auto's choice): finds the
// export's local NFS mount, stats the tree roots, scans each tree's usage (statx), loads
// and pins the hooks (src/lsm_loader.h), then rescans the trees the hooks marked. No packet
// parsing: the hooks see the files themselves.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nfs/policy.h"
#include "src/agent.h"

namespace nfsfence::agent {

struct NfsMount {
  std::string dir;      // mount point
  std::string source;   // "server:/export"
  std::string fstype;   // nfs, nfs4
  std::string options;  // the superblock's options (vers=3,...,sec=sys,...)
};

// The NFS mounts of this mount namespace whose source is SERVER:EXPORT (or whose addr= is
// SERVER), from /proc/self/mountinfo.
std::vector<NfsMount> nfs_mounts_of(const std::string& server, const std::string& export_path);
// The same from the text of a mountinfo file (unit tests).
std::vector<NfsMount> parse_nfs_mounts(const std::string& mountinfo, const std::string& server,
                                       const std::string& export_path);
// Why the TC programs cannot enforce writes through this mount ("" when they can).
std::string tc_blind_reason(const NfsMount& m);

// --mode auto: picks Tc or Lsm and says why (one line); an error when neither can work.
Expected<std::pair<Mode, std::string>> choose_mode(const AttachOptions& opt, const Policy& policy);

int run_attach_lsm(const AttachOptions& opt, const Policy& policy, const std::atomic<bool>& stop);
int run_detach_lsm(const std::string& pin_root, const std::string& state_dir);
// The LSM part of `status`: one JSON object like a TC interface's (iface "lsm").
Expected<nlohmann::json> status_lsm(const std::string& pin_root, const std::string& state_dir);

}  // namespace nfsfence::agent
