#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "nfs/common.h"
#include "src/cli.h"

namespace nfsfence::cli {

// One line whatever the message holds: a file name with a newline or an escape sequence
// in it is shown escaped.
void error(const std::string& msg) { std::fprintf(stderr, "nfsfence: %s\n", nfsfence::printable(msg).c_str()); }

namespace {
const Command kCommands[] = {
    {"decode", "print every ONC-RPC message of a capture (NFSv3 and MOUNT v3 decoded)", cmd_decode},
    {"replay", "run a capture through the handle cache and quota accounting; simulate enforcement", cmd_replay},
#ifdef NFSF_HAVE_AGENT
    {"attach", "load the TC programs on an interface and run the agent (enforce quotas live)", cmd_attach},
    {"detach", "remove the programs, links and pinned maps from an interface", cmd_detach},
    {"status", "show per-tree usage, state and counters from the pinned maps", cmd_status},
    {"events", "print and follow what an agent did: limits crossed, WRITEs refused, policy, restarts", cmd_events},
#endif
};

void usage(FILE* out) {
  std::fprintf(out,
               "nfsfence: per-directory write quotas on NFSv3 traffic, enforced with eBPF\n\n"
               "usage: nfsfence COMMAND [options]     (nfsfence COMMAND --help for each)\n\ncommands:\n");
  for (auto& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\nexamples:\n"
               "  nfsfence decode pcaps/lab-tcp-quota.pcap | less\n"
               "  nfsfence replay pcaps/lab-tcp-quota.pcap --policy pcaps/lab-tcp-quota.policy.yaml\n"
               "\nexit codes: 0 ok, 1 error (bad capture, bad policy, ...), 2 usage error\n");
}
}  // namespace
}  // namespace nfsfence::cli

int main(int argc, char** argv) {
  using namespace nfsfence::cli;
  if (argc < 2) {
    usage(stderr);
    return kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    usage(stdout);
    return kExitOk;
  }
  if (cmd == "--version") {
    std::puts("nfsfence 0.1.0");
    return kExitOk;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  const Command* command = nullptr;
  for (auto& c : kCommands)
    if (cmd == c.name) command = &c;
  if (!command) {
    error("unknown command '" + cmd + "' (try: nfsfence --help)");
    return kExitUsage;
  }
  int rc;
  // Nothing may end as an abort: an exception that escapes a command is one line, exit 1.
  try {
    rc = command->run(args);
  } catch (const std::bad_alloc&) {
    error(cmd + ": out of memory");
    return kExitError;
  } catch (const std::exception& e) {
    error(cmd + ": internal error: " + e.what());
    return kExitError;
  } catch (...) {
    error(cmd + ": internal error (unknown exception)");
    return kExitError;
  }
  // Output that did not reach its file (a full disk, a closed pipe's EIO) is an error,
  // not a success: stdio only reports it at the flush.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    error(std::string("standard output: ") + std::strerror(errno ? errno : EIO));
    return kExitError;
  }
  return rc;
}
