// What the TC agent (src/agent.cpp) and the LSM agent (src/lsm_agent.cpp) share: logging,
// pin locations, the bpffs check; the state file (src/state_file.h) and `status`
// (src/status.h) have rooms of their own.
#pragma once

#include <string>

#include "src/state_file.h"

namespace nfsfence::agent {

void log(const std::string& msg);  // "nfsfence: MSG" on stderr, escaped
std::string pin_dir_of(const std::string& root, const std::string& iface);
// "" when pin_root's parent is (or could be made) a BPF filesystem every process sees; else why not.
std::string ensure_bpffs(const std::string& pin_root);

// The name `status`, `detach` and the pin/state directories use for the LSM hooks (they
// belong to no interface).
inline constexpr const char* kLsmName = "lsm";

}  // namespace nfsfence::agent
