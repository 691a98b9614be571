// Thin command-line layer over the protocol core: each subcommand parses its options,
// calls the library and renders the result. Exit codes: 0 ok, 1 runtime error (bad
// capture, bad policy, BPF failure), 2 usage error.
#pragma once

#include <string>
#include <vector>

namespace nfsfence::cli {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

int cmd_decode(const std::vector<std::string>& args);
int cmd_replay(const std::vector<std::string>& args);
#ifdef NFSF_HAVE_AGENT
int cmd_attach(const std::vector<std::string>& args);
int cmd_detach(const std::vector<std::string>& args);
int cmd_status(const std::vector<std::string>& args);
int cmd_events(const std::vector<std::string>& args);
#endif

// One-line error to stderr, prefixed "nfsfence: " (control bytes escaped).
void error(const std::string& msg);

// The exit status once a capture is read: 1 with one line if it was damaged (`damage`
// not empty) or, without --allow-truncated, cut inside a packet (`cut` not empty); a
// warning line and 0 if the cut is allowed.
int capture_end_status(const std::string& damage, const std::string& cut, bool allow_truncated);

}  // namespace nfsfence::cli
