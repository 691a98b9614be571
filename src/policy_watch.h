// The agent's view of its policy source: `--policy FILE` or `--policy-dir DIR`, loaded
// whole, and followed with inotify so that a change is noticed without polling. SIGHUP
// asks for a reload as well (src/cmd_live.cpp sets reload_requested()).
#pragma once

#include <atomic>
#include <string>

#include "nfs/policy.h"
#include "src/bpf_loader.h"

namespace nfsfence::agent {

struct PolicySource {
  std::string file;  // --policy
  std::string dir;   // --policy-dir (one of the two)
  const std::string& name() const { return dir.empty() ? file : dir; }
  Expected<Policy> load() const { return dir.empty() ? load_policy(file) : load_policy_dir(dir); }
};

// Set from the SIGHUP handler; the agent clears it when it reloads.
std::atomic<bool>& reload_requested();

class PolicyWatch {
 public:
  // Watches the directory (for a file: the directory it is in, so that a rename over it,
  // which is how editors and `mv` replace a file, is seen too). An error names the path.
  static Expected<PolicyWatch> open(const PolicySource& src);
  // Whether something that may change the policy happened since the last call (the file
  // written and closed, renamed in or out, removed; in a directory, any entry). Never blocks.
  bool changed();
  int fd() const { return fd_.get(); }  // readable when changed() may say so

 private:
  bpf::UniqueFd fd_;
  bpf::UniqueFd fd_dir_;   // the watched directory (for a new entry's type)
  std::string file_name_;  // --policy: the file's name in the watched directory
};

}  // namespace nfsfence::agent
