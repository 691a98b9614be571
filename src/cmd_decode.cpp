#include <cstdio>
#include <nlohmann/json.hpp>

#include "nfs/decoder.h"
#include "nfs/json_out.h"
#include "src/options.h"

namespace nfsfence::cli {

int cmd_decode(const std::vector<std::string>& args) {
  po::options_description opts("options");
  std::string capture, format;
  bool stats = false, nfs_only = false;
  opts.add_options()
      ("capture", po::value(&capture)->required(), "pcap or pcapng file (also .bz2-compressed)")
      ("format,f", po::value(&format)->default_value("text"),
       "text: one line per message, for people\n"
       "jsonl: one JSON object per message (schema: docs/decode-schema.md)")
      ("nfs-only", po::bool_switch(&nfs_only), "print only NFSv3 and MOUNT v3 messages (other RPC is still counted)")
      ("stats", po::bool_switch(&stats), "print the packet, RPC and error counters (JSON) to stderr at the end");
  po::positional_options_description pos;
  pos.add("capture", 1);
  po::variables_map vm;
  const char* synopsis = "nfsfence decode CAPTURE [--format text|jsonl] [--nfs-only] [--stats]";
  const char* epilog =
      "Decodes every ONC-RPC message in the capture: Ethernet (802.1Q), Linux cooked v1/v2 and raw IP\n"
      "links; IPv4 (fragments reassembled) and IPv6; TCP with RPC record marking (reassembled across\n"
      "segments, retransmissions and gaps) and UDP. NFSv3 and MOUNT v3 arguments and results are\n"
      "decoded; other programs (NFSv4, NFSACL, portmap, ...) are shown with their numbers only.\n"
      "Malformed packets are counted (see --stats) and skipped.\n\n"
      "examples:\n"
      "  nfsfence decode pcaps/lab-tcp-quota.pcap --nfs-only\n"
      "  nfsfence decode trace.pcapng --format jsonl | jq 'select(.proc_name==\"WRITE\")'\n";
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
  std::vector<char> buf(1 << 20);
  std::setvbuf(stdout, buf.data(), _IOFBF, buf.size());
  bool jsonl = format == "jsonl";
  Decoder dec([&](const RpcMessage& m) {
    if (nfs_only && !(m.proc && m.is_nfs3_or_mount3())) return;
    std::string line = jsonl ? message_json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                             : message_text(m);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  });
  RawPacket pkt;
  while ((*reader)->next(pkt)) dec.feed(pkt);
  dec.finish();
  std::fflush(stdout);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (stats) std::fprintf(stderr, "%s\n", stats_json(dec).dump(2).c_str());
  if (!(*reader)->error().empty()) {
    error((*reader)->error());
    return kExitError;
  }
  if ((*reader)->truncated()) error("warning: " + capture + ": the capture ends in the middle of a packet");
  return kExitOk;
}

}  // namespace nfsfence::cli
