#include <cstdio>
#include <nlohmann/json.hpp>

#include "nfs/replay.h"
#include "src/options.h"

namespace nfsfence::cli {

int cmd_replay(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string capture, policy_path, format;
  Number<size_t, 1, UINT32_MAX - 1> max_handles{1u << 20};
  bool allow_truncated = false;
  opts.add_options()(
      "capture", po::value(&capture)->required(),
      "pcap or pcapng file, pipe or - (standard input); gzip, bzip2, xz, zstd, lz4 compression is detected")(
      "policy,p", po::value(&policy_path)->required(), "quota policy (YAML; see docs/policy.md)")(
      "format,f", po::value(&format)->default_value("text"), "text (a table for people) or json")(
      "max-handles", po::value(&max_handles)->default_value(max_handles),
      "bound of the file-handle cache (about 350 bytes each); handles past it are counted as cache drops")(
      "allow-truncated", po::bool_switch(&allow_truncated),
      "a capture cut inside its last packet is a warning, exit 0; without it the report is printed, exit 1");
  ReplayOptions ro;
  Size memory{ro.limits.memory_bytes};
  Number<uint32_t> idle{uint32_t(ro.limits.idle_seconds)};
  add_decoder_limits(opts, memory, idle);
  po::positional_options_description pos;
  pos.add("capture", 1);
  po::variables_map vm;
  const char* synopsis = "nfsfence replay CAPTURE|- --policy FILE [--format text|json] [--allow-truncated]";
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
      "  nfsfence replay trace.pcap -p policy.yaml --format json | jq '.trees[]'\n"
      "  tcpdump -r big.pcap -w - host 10.0.0.5 | nfsfence replay - -p policy.yaml\n";
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
  ro.max_handles = max_handles.value;
  ro.limits.memory_bytes = memory.value;
  ro.limits.idle_seconds = idle.value;
  std::string text;
  auto result = replay_file(capture, *policy, ro, format == "text" ? &text : nullptr);
  if (!result) {
    error(result.error().message);
    return kExitError;
  }
  // Names (the capture's path, tree names) need not be valid UTF-8: never throw on them.
  if (format == "json")
    std::printf("%s\n", result->dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else
    std::fputs(text.c_str(), stdout);
  auto str = [&](const char* k) { return (*result)[k].is_string() ? (*result)[k].get<std::string>() : std::string(); };
  return capture_end_status(str("capture_error"), str("capture_truncation"), allow_truncated);
}

}  // namespace nfsfence::cli
