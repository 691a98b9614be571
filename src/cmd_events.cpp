// `nfsfence events`: prints an agent's event log (src/event_log.h) and follows it, from any
// process, while the agent runs, after it exited and across its restarts.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "src/event_log.h"
#include "src/options.h"

namespace nfsfence::cli {

namespace {
std::atomic<bool> g_events_stop{false};
void on_events_signal(int) { g_events_stop.store(true); }
}  // namespace

int cmd_events(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string iface, state, format;
  bool no_follow = false;
  opts.add_options()("iface", po::value(&iface),
                     "interface, or `lsm` (default: the one agent whose event log is in STATE_DIR)")(
      "format,f", po::value(&format)->default_value("text"), "text (one readable line per event) or json (JSON lines)")(
      "no-follow", po::bool_switch(&no_follow), "print what the log holds and exit")(
      "state-dir", po::value(&state)->default_value("/run/nfsfence"), "where the agents write their state and events");
  po::positional_options_description pos;
  pos.add("iface", 1);
  po::variables_map vm;
  const char* epilog =
      "Prints what the agent logged (tree over/under its limit, soft limit, refused WRITEs per tree and\n"
      "second, policy applied/rejected, agent started/exiting, lost ring-buffer events and the resync),\n"
      "oldest first, then follows the log until interrupted: across its rotation and agent restarts.\n"
      "Event types and fields: docs/events.md.\n\n"
      "examples:\n  nfsfence events\n  nfsfence events eth0 --format json | jq 'select(.type == \"writes_refused\")'\n"
      "  nfsfence events eth0 --no-follow\n";
  if (auto rc =
          parse_options(args, "nfsfence events [IFACE] [--format text|json] [--no-follow]", epilog, opts, pos, vm))
    return *rc;
  if (format != "text" && format != "json") {
    error("--format: '" + format + "' is not one of: text, json");
    return kExitUsage;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(state, ec)) {
    error("no agent has run here: " + state + " does not exist (is `nfsfence attach` running? --state-dir)");
    return kExitError;
  }
  auto logs = agent::event_logs_in(state);
  if (iface.empty()) {
    if (logs.empty()) {
      error("no agent's event log in " + state + " (is `nfsfence attach` running? --state-dir)");
      return kExitError;
    }
    if (logs.size() > 1) {
      std::string names;
      for (const std::string& l : logs) names += (names.empty() ? "" : ", ") + l;
      error("event logs of " + std::to_string(logs.size()) + " agents in " + state + ": " + names +
            "; name one (nfsfence events IFACE)");
      return kExitUsage;
    }
    iface = logs[0];
  } else if (std::find(logs.begin(), logs.end(), iface) == logs.end()) {
    std::string names;
    for (const std::string& l : logs) names += (names.empty() ? "" : ", ") + l;
    error("no event log for " + iface + " in " + state + (names.empty() ? "" : " (there are: " + names + ")"));
    return kExitError;
  }

  bool json_out = format == "json";
  uint64_t damaged = 0;
  agent::EventFollower follower(agent::event_log_of(state, iface), [&](std::string_view line) {
    nlohmann::ordered_json e = nlohmann::ordered_json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) {  // a line an agent that died inside a write left
      damaged++;
      return;
    }
    if (json_out) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      std::puts(agent::event_text(e).c_str());
    }
  });
  follower.read_existing();
  std::fflush(stdout);
  if (!no_follow) {
    struct sigaction sa {};
    sa.sa_handler = on_events_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    while (!g_events_stop.load()) {
      if (follower.wait_and_poll(1000) > 0 && std::fflush(stdout) != 0) break;  // reader gone (EPIPE)
    }
  }
  if (damaged) error("warning: " + std::to_string(damaged) + " damaged line(s) in the event log skipped");
  return kExitOk;
}

}  // namespace nfsfence::cli
