// What the TC agent (src/agent.cpp) and the LSM agent (src/lsm_agent.cpp) share: logging,
// pin and state locations, the bpffs check, the state file.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace nfsfence::agent {

void log(const std::string& msg);  // "nfsfence: MSG" on stderr, escaped
std::string pin_dir_of(const std::string& root, const std::string& iface);
std::string state_file_of(const std::string& dir, const std::string& iface);
// "" when pin_root's parent is (or could be made) a BPF filesystem every process sees; else why not.
std::string ensure_bpffs(const std::string& pin_root);
bool process_alive(int pid);  // a live process named nfsfence
// The state file, checked: nullopt when it is missing or damaged (then *why says which).
std::optional<nlohmann::json> read_state(const std::string& file, std::string* why = nullptr);
void write_file_atomic(const std::string& path, const std::string& text);

// The name `status`, `detach` and the pin/state directories use for the LSM hooks (they
// belong to no interface).
inline constexpr const char* kLsmName = "lsm";

}  // namespace nfsfence::agent
