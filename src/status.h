// `nfsfence status`: one JSON object per attachment (a TC interface, or the LSM hooks as
// "lsm"), gathered from the agent's state file and the kernel's pinned maps, then rendered
// as text or JSON. The parts both modes fill the same way are built here; each mode adds
// its own fields (TC: action, handles; LSM: mode, mount) and its kernel's view of a tree.
#pragma once

#include <array>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "src/bpf_loader.h"

namespace nfsfence::agent {

// The state file as `status` reads it: a damaged one is a warning line and no state.
std::optional<nlohmann::json> read_state_for_status(const std::string& file);

// FIELD of the state file, null when it has none.
nlohmann::json state_field(const nlohmann::json& state, const char* field);

// iface, agent_running, and with a state: agent_pid, state_updated and the state's trees,
// each passed to `kernel` to overlay what the kernel's maps say (what is enforced).
nlohmann::json status_object(const std::string& iface, const std::optional<nlohmann::json>& state,
                             const std::function<void(nlohmann::json& tree)>& kernel);

// {"name": value, ...} of a counter map (Enum: nfsf_counter or nfsf_lsm_counter); {} when
// the map could not be read.
template <typename Enum, size_t N>
nlohmann::json counters_json(const bpf::Result<std::array<uint64_t, N>>& c) {
  nlohmann::json out = nlohmann::json::object();
  if (c)
    for (size_t i = 0; i < N; i++) out[bpf::counter_name(Enum(i))] = (*c)[i];
  return out;
}

// The TC part of `status` for one interface.
Expected<nlohmann::json> status_tc(const std::string& iface, const std::string& pin_root, const std::string& state_dir);

// Text: per attachment a line, a tree table, the non-zero counters. JSON: the object, or
// (`all`: no interface was named) the list of them.
void render_status_text(const nlohmann::json& attachments);
void render_status_json(const nlohmann::json& attachments, bool all);

}  // namespace nfsfence::agent
