#include "src/status.h"

#include <cstdio>
#include <ctime>
#include <filesystem>

#include "src/agent.h"
#include "src/agent_common.h"
#include "src/lsm_agent.h"

namespace nfsfence::agent {

using nlohmann::json;
namespace fs = std::filesystem;

std::optional<json> read_state_for_status(const std::string& file) {
  std::string damaged;
  auto state = read_state(file, &damaged);
  if (!damaged.empty()) log("warning: " + damaged + ": showing the kernel's maps only");
  return state;
}

json state_field(const json& state, const char* field) { return state.value(field, json()); }

json status_object(const std::string& iface, const std::optional<json>& state,
                   const std::function<void(json& tree)>& kernel) {
  json j{{"iface", iface}, {"agent_running", false}};
  json trees = json::array();
  if (state) {
    j["agent_pid"] = (*state)["pid"];
    j["agent_running"] = process_alive((*state)["pid"].get<int>());
    j["state_updated"] = state_field(*state, "updated");
    for (const json& t : state->value("trees", json::array())) {
      json o = t;
      kernel(o);
      trees.push_back(o);
    }
  }
  j["trees"] = trees;
  return j;
}

Expected<json> status_tc(const std::string& iface, const std::string& pin_root, const std::string& state_dir) {
  auto maps = bpf::MapSet::open_pinned(pin_dir_of(pin_root, iface));
  if (!maps) return make_error("nfsfence is not attached to " + iface + " (" + maps.error().message() + ")");
  auto state = read_state_for_status(state_file_of(state_dir, iface));
  json j = status_object(iface, state, [&](json& o) {
    if (auto kt = maps->tree(o["id"].get<uint32_t>())) {
      o["over"] = kt->over != 0;  // the kernel's view is what is enforced
      o["writes"] = kt->writes;
      o["write_bytes"] = kt->write_bytes;
      o["refused_writes"] = kt->refused_writes;
      o["refused_bytes"] = kt->refused_bytes;
    }
  });
  j["action"] = state ? state_field(*state, "action") : json(nullptr);
  // where the programs sit (attach --hook/--side/--xdp-mode); an older agent's state has none: tc
  j["hook"] = state && state->contains("hook") ? state_field(*state, "hook") : json("tc");
  j["side"] = state && state->contains("side") ? state_field(*state, "side") : json("client");
  j["xdp_mode"] = state ? state_field(*state, "xdp_mode") : json(nullptr);
  if (state) j["handles"] = state_field(*state, "handles");
  if (state) j["reply_lag"] = state_field(*state, "reply_lag");
  if (state)
    for (const char* k :
         {"policy", "policy_applied", "policy_reloads", "policy_reload_errors", "policy_error", "cluster"})
      j[k] = state_field(*state, k);
  j["counters"] = counters_json<nfsf_counter>(maps->counters());
  return j;
}

namespace {

// A count in a tree's object, 0 when it has none (or a damaged state gave it another type).
unsigned long long count(const json& tree, const char* key) {
  auto it = tree.find(key);
  return it != tree.end() && it->is_number_unsigned() ? it->get<unsigned long long>() : 0;
}

}  // namespace

void render_status_text(const json& attachments) {
  for (const json& j : attachments) {
    std::string agent = j["agent_running"].get<bool>() ? "running (pid " + j["agent_pid"].dump() + ")"
                                                       : "not running (programs keep enforcing the last state)";
    std::string where;
    if (j.value("hook", json()).is_string() && j.value("side", json()).is_string())
      where = ", hook " + printable(j["hook"].get<std::string>()) + " on the " +
              printable(j["side"].get<std::string>()) + " side" +
              (j.value("xdp_mode", json()).is_string() ? " (" + printable(j["xdp_mode"].get<std::string>()) + ")" : "");
    std::printf("%s: agent %s, action %s%s\n", printable(j["iface"].get<std::string>()).c_str(), agent.c_str(),
                j["action"].is_string() ? j["action"].get<std::string>().c_str() : "?", where.c_str());
    if (j.value("policy", json()).is_string()) {
      std::string line = "  policy " + printable(j["policy"].get<std::string>());
      if (j.value("policy_reloads", json()).is_number_unsigned())
        line += ": " + std::to_string(j["policy_reloads"].get<uint64_t>()) + " changes applied, " +
                std::to_string(j.value("policy_reload_errors", 0ull)) + " rejected";
      std::printf("%s\n", line.c_str());
      if (j.value("policy_error", json()).is_string())
        std::printf("  policy ERROR (the last good policy stays in force): %s\n",
                    printable(j["policy_error"].get<std::string>()).c_str());
    }
    const json cl = j.value("cluster", json());
    if (cl.is_object() && cl.value("state", json()).is_string()) {
      // a state file is ours, but a damaged one must not end `status`: every field checked
      auto text = [&](const char* k) {
        auto it = cl.find(k);
        return it != cl.end() && it->is_string() ? printable(it->get<std::string>()) : std::string("?");
      };
      auto number = [&](const char* k) {
        auto it = cl.find(k);
        return it != cl.end() && it->is_number_unsigned() ? std::to_string(it->get<uint64_t>()) : std::string("?");
      };
      std::string st = cl["state"].get<std::string>();
      std::string line = "  cluster: node " + text("node") + ", ";
      if (st == "connected")
        line += "connected to etcd " + text("etcd") + ", " + number("nodes") + " nodes, " + number("pending_reports") +
                " reports pending";
      else if (st == "lost")
        line += "etcd LOST (" + text("error") + "): enforcing with the last shared state and this node's own reports";
      else if (st == "unreachable")
        line += "etcd UNREACHABLE (" + text("error") + "): enforcing with this node's own view";
      else
        line += "connecting to etcd";
      if (cl.value("since", json()).is_number_integer()) {
        std::time_t since = cl["since"].get<std::time_t>();
        line += " (since " + std::to_string(std::max<long long>(0, std::time(nullptr) - since)) + " s)";
      }
      std::printf("%s\n", line.c_str());
    }
    std::printf("  %-16s %-20s %10s %10s %-6s %8s %8s %10s\n", "tree", "path", "limit", "usage", "state", "writes",
                "refused", "refused_B");
    for (const json& t : j["trees"]) {
      std::printf("  %-16s %-20s %10s %10s %-6s %8llu %8llu %10s\n", printable(t["name"].get<std::string>()).c_str(),
                  printable(t["path"].get<std::string>()).c_str(), format_size(t["limit_bytes"]).c_str(),
                  format_size(t["usage_bytes"]).c_str(), t["over"].get<bool>() ? "OVER" : "ok", count(t, "writes"),
                  count(t, "refused_writes"), format_size(count(t, "refused_bytes")).c_str());
    }
    const json lag = j.value("reply_lag", json());
    if (lag.is_object() && lag.value("replies", json(0)).is_number_unsigned() && lag.value("replies", 0ull) > 0 &&
        lag.value("p50_us", json()).is_number() && lag.value("p99_us", json()).is_number() &&
        lag.value("max_us", json()).is_number())
      std::printf("  reply events reached the agent after: p50 %.0f us, p99 %.0f us, max %.0f us (%llu replies)\n",
                  lag["p50_us"].get<double>(), lag["p99_us"].get<double>(), lag["max_us"].get<double>(),
                  lag["replies"].get<unsigned long long>());
    std::string cs;
    for (auto& [k, v] : j["counters"].items())
      if (v.get<uint64_t>()) cs += " " + k + "=" + std::to_string(v.get<uint64_t>());
    std::printf("  counters:%s\n", cs.empty() ? " none" : cs.c_str());
  }
}

void render_status_json(const json& attachments, bool all) {
  std::printf("%s\n", (all ? attachments : attachments[0]).dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

int run_status(const std::string& iface_arg, const std::string& pin_root, const std::string& state_dir, bool as_json) {
  std::vector<std::string> ifaces;
  if (!iface_arg.empty()) {
    ifaces.push_back(iface_arg);
  } else {
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
    auto j = iface == kLsmName ? status_lsm(pin_root, state_dir) : status_tc(iface, pin_root, state_dir);
    if (!j) {
      log(j.error().message);
      return 1;
    }
    all.push_back(std::move(*j));
  }
  if (as_json)
    render_status_json(all, iface_arg.empty());
  else
    render_status_text(all);
  return 0;
}

}  // namespace nfsfence::agent
