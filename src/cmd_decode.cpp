#include <cstdio>
#include <nlohmann/json.hpp>

#include "nfs/decoder.h"
#include "nfs/json_out.h"
#include "src/options.h"

namespace nfsfence::cli {

int cmd_decode(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string capture, format;
  bool stats = false, nfs_only = false, allow_truncated = false;
  opts.add_options()(
      "capture", po::value(&capture)->required(),
      "pcap or pcapng file, pipe or - (standard input); gzip, bzip2, xz, zstd, lz4 compression is detected")(
      "format,f", po::value(&format)->default_value("text"),
      "text: one line per message, for people\n"
      "jsonl: one JSON object per message (schema: docs/decode-schema.md)")(
      "nfs-only", po::bool_switch(&nfs_only), "print only NFSv3 and MOUNT v3 messages (other RPC is still counted)")(
      "stats", po::bool_switch(&stats), "print the packet, RPC and error counters (JSON) to stderr at the end")(
      "allow-truncated", po::bool_switch(&allow_truncated),
      "a capture cut inside its last packet (a tcpdump that was killed) is a warning, exit 0; without it exit 1");
  DecoderLimits limits;
  Size memory{limits.memory_bytes};
  Number<uint32_t> idle{uint32_t(limits.idle_seconds)};
  add_decoder_limits(opts, memory, idle);
  po::positional_options_description pos;
  pos.add("capture", 1);
  po::variables_map vm;
  const char* synopsis = "nfsfence decode CAPTURE|- [--format text|jsonl] [--nfs-only] [--stats] [--allow-truncated]";
  const char* epilog =
      "Decodes every ONC-RPC message in the capture: Ethernet (802.1Q), Linux cooked v1/v2 and raw IP\n"
      "links; IPv4 (fragments reassembled) and IPv6; TCP with RPC record marking (reassembled across\n"
      "segments, retransmissions and gaps) and UDP. NFSv3 and MOUNT v3 arguments and results are\n"
      "decoded; other programs (NFSv4, NFSACL, portmap, ...) are shown with their numbers only.\n"
      "Malformed packets are counted (see --stats) and skipped. Names are printed escaped in text\n"
      "(\\n, \\xHH for control bytes and invalid UTF-8); JSON keeps them exact.\n"
      "A damaged capture prints what was read before the damage, then one error line, exit 1.\n\n"
      "examples:\n"
      "  nfsfence decode pcaps/lab-tcp-quota.pcap --nfs-only\n"
      "  nfsfence decode trace.pcapng.zst --format jsonl | jq 'select(.proc_name==\"WRITE\")'\n"
      "  tcpdump -i eth0 -w - port 2049 | nfsfence decode -\n";
  if (auto rc = parse_options(args, synopsis, epilog, opts, pos, vm)) return *rc;
  if (format != "text" && format != "jsonl") {
    error("--format: '" + format + "' is not one of: text, jsonl");
    return kExitUsage;
  }
  auto reader = CaptureReader::open(capture);
  if (!reader) {
    error(reader.error().message);
    return kExitError;
  }
  static char buf[1 << 20];  // static: stdout keeps it until exit
  std::setvbuf(stdout, buf, _IOFBF, sizeof buf);
  bool jsonl = format == "jsonl";
  limits.memory_bytes = memory.value;
  limits.idle_seconds = idle.value;
  Decoder dec(
      [&](const RpcMessage& m) {
        if (nfs_only && !(m.proc && m.is_nfs3_or_mount3())) return;
        std::string line =
            jsonl ? message_json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : message_text(m);
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
      },
      limits);
  RawPacket pkt;
  while ((*reader)->next(pkt)) dec.feed(pkt);
  dec.finish();
  std::fflush(stdout);
  if (stats)
    std::fprintf(stderr, "%s\n", stats_json(dec).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  const CaptureReader& r = **reader;
  return capture_end_status(r.error(), r.truncated() ? r.truncation_detail() : std::string(), allow_truncated);
}

int capture_end_status(const std::string& damage, const std::string& cut, bool allow_truncated) {
  if (!damage.empty()) {
    error(damage + " (what came before it was processed)");
    return kExitError;
  }
  if (cut.empty()) return kExitOk;
  if (allow_truncated) {
    error("warning: " + cut + " (accepted: --allow-truncated)");
    return kExitOk;
  }
  error(cut + " (everything before it was processed; --allow-truncated accepts such captures)");
  return kExitError;
}

}  // namespace nfsfence::cli
