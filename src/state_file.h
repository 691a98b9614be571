// The agent's state file (STATE_DIR/IFACE.json, STATE_DIR/lsm.json for the LSM hooks): the
// per-tree usage `status` shows beside the kernel's maps, and the pid by which a second
// `attach` or `detach` finds a running agent. Written atomically; read tolerantly (a damaged
// file is "no state" and one line that says why, never an exception).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "nfs/common.h"

namespace nfsfence::agent {

std::string state_file_of(const std::string& dir, const std::string& iface);

// The state file, checked: nullopt when it is missing or damaged (then *why says which:
// "FILE is damaged (...)"; it stays "" for a missing file). Every field `status` reads has
// its type in a file this returns.
std::optional<nlohmann::json> read_state(const std::string& file, std::string* why = nullptr);

// PATH.tmp, then a rename over PATH: readers see the old file or the new one, whole. An
// error is one line naming the file and the cause (PATH is then left as it was).
Expected<void> write_file_atomic(const std::string& path, const std::string& text);

// Writes an agent's state file (pretty JSON; text that is not UTF-8 is replaced, never a
// throw). A failure is logged once, and again only after a write succeeded in between.
class StateWriter {
 public:
  explicit StateWriter(std::string path) : path_(std::move(path)) {}
  void write(const nlohmann::json& state);

 private:
  std::string path_;
  bool failing_ = false;
};

bool process_alive(int pid);  // a live process named nfsfence
// The pid of the live agent that wrote this state file; nullopt when there is none (no
// file, a damaged one, or its process is gone).
std::optional<int> running_agent(const std::string& state_file);
// SIGTERM to the agent, then up to 5 s for it to exit.
void stop_agent(int pid);

}  // namespace nfsfence::agent
