#include <cstdio>
#include <nlohmann/json.hpp>

#include "nfs/replay.h"
#include "src/options.h"

namespace nfsfence::cli {

int cmd_replay(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string capture, policy_path, format;
  size_t max_handles = 0;
  opts.add_options()
      ("capture", po::value(&capture)->required(), "pcap or pcapng file (also .bz2-compressed)")
      ("policy,p", po::value(&policy_path)->required(), "quota policy (YAML; see docs/policy.md)")
      ("format,f", po::value(&format)->default_value("text"), "text (a table for people) or json")
      ("max-handles", po::value(&max_handles)->default_value(1u << 20),
       "bound of the file-handle cache; handles past it are counted as cache drops");
  po::positional_options_description pos;
  pos.add("capture", 1);
  po::variables_map vm;
  const char* synopsis = "nfsfence replay CAPTURE --policy FILE [--format text|json]";
  const char* epilog =
      "Runs the capture through the file-handle cache and the quota accounting, and simulates\n"
      "enforcement: once a tree's usage (the server's own post-op attributes, summed over the\n"
      "regular files below the tree root) reaches its limit, every later WRITE call to a handle in\n"
      "that tree counts as refused, until deletes bring usage below the limit again. READs are\n"
      "never refused. The export root is learned from the MNT reply for the policy's `export`, or\n"
      "given as `root_fh` for captures that start after the mount.\n\n"
      "policy example:\n"
      "  export: /srv/nfs/export\n"
      "  accounting: used            # used | size\n"
      "  trees:\n"
      "    - {name: vol-a, path: vol-a, limit: 50Gi, soft_limit: 40Gi}\n\n"
      "examples:\n"
      "  nfsfence replay pcaps/lab-tcp-quota.pcap --policy pcaps/lab-tcp-quota.policy.yaml\n"
      "  nfsfence replay trace.pcap -p policy.yaml --format json | jq '.trees[]'\n";
  if (auto rc = parse_options(args, synopsis, epilog, opts, pos, vm)) return *rc;
  if (format != "text" && format != "json") {
    error("--format: '" + format + "' is not one of: text, json");
    return kExitUsage;
  }
  auto policy = load_policy(policy_path);
  if (!policy) {
    error(policy.error().message);
    return kExitError;
  }
  ReplayOptions ro;
  ro.max_handles = max_handles;
  std::string text;
  auto result = replay_file(capture, *policy, ro, format == "text" ? &text : nullptr);
  if (!result) {
    error(result.error().message);
    return kExitError;
  }
  if (format == "json") std::printf("%s\n", result->dump(2).c_str());
  else std::fputs(text.c_str(), stdout);
  if ((*result)["capture_truncated"].get<bool>())
    error("warning: " + capture + ": the capture ends in the middle of a packet");
  return kExitOk;
}

}  // namespace nfsfence::cli
