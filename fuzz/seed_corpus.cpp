// nfsf_seed_corpus OUTDIR CAPTURE...: writes seeds for fuzz_packets (groups of 8 packets in
// its chunk format), fuzz_stream (the TCP segments of each flow), fuzz_nfs3 (RPC bodies)
// and fuzz_ring (each capture's first packets as the agent's ring buffer events).
#include <arpa/inet.h>

#include <cstddef>
#include <fstream>
#include <map>

#include "nfs/netparse.h"
#include "nfs/record.h"
#include "nfs/rpc.h"
#include "nfsfence_abi.h"
#include "pkt/bytes.h"

using namespace nfsfence;
using pkt::put16;

namespace {
int n_seeds = 0;
void write_seed(const std::string& dir, const Bytes& b) {
  if (b.empty() || n_seeds > 3000) return;
  std::ofstream(dir + "/seed" + std::to_string(n_seeds++), std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
uint8_t link_selector(int link) {
  switch (link) {
    case kLinkEthernet:
      return 0;
    case kLinkRaw:
      return 1;
    case kLinkLinuxSll:
      return 2;
    case kLinkLinuxSll2:
      return 3;
    default:
      return 0;
  }
}
void nfs3_seed(const std::string& out, ByteView msg) {
  RpcHeader h;
  if (parse_rpc_header(msg, h) != RpcParse::Ok || h.body_offset > msg.size()) return;
  Bytes b{uint8_t(h.type == MsgType::Call ? (h.proc & 0x1f) | (h.prog == kProgMount ? 0x80 : 0) : 0),
          uint8_t(h.type == MsgType::Call)};
  b.insert(b.end(), msg.begin() + long(h.body_offset), msg.end());
  write_seed(out + "/nfs3", b);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string out = argv[1];
  for (int i = 2; i < argc; i++) {
    auto r = CaptureReader::open(argv[i]);
    if (!r) continue;
    Bytes group;
    int in_group = 0;
    std::map<std::string, Bytes> streams;  // per flow, in fuzz_stream's chunk format
    std::map<std::string, uint32_t> last_seq;
    Bytes ring;  // [u16 size][struct nfsf_event]...
    NetParser net([&](const L4Packet& p) {
      if (ring.size() < 60000) {
        nfsf_event ev{};
        ev.type = p.flow.transport == Transport::Udp ? NFSF_EV_DGRAM : NFSF_EV_STREAM;
        ev.len = uint32_t(std::min<size_t>(p.payload.size(), NFSF_EVENT_DATA_MAX));
        ev.wire_len = p.wire_payload_len;
        ev.seq = p.seq;
        ev.flow.proto = p.flow.transport == Transport::Udp ? 17 : 6;
        ev.flow.family = p.flow.src.v6 ? 6 : 4;
        std::memcpy(ev.flow.saddr, p.flow.src.addr.data(), 16);
        std::memcpy(ev.flow.daddr, p.flow.dst.addr.data(), 16);
        ev.flow.sport = htons(p.flow.src.port);
        ev.flow.dport = htons(p.flow.dst.port);
        std::memcpy(ev.data, p.payload.data(), ev.len);
        size_t n = offsetof(nfsf_event, data) + ev.len;
        put16(ring, uint16_t(n));
        const auto* b = reinterpret_cast<const uint8_t*>(&ev);
        ring.insert(ring.end(), b, b + n);
      }
      if (p.flow.transport == Transport::Udp) {
        nfs3_seed(out, p.payload);
        return;
      }
      std::string key = p.flow.src.str() + p.flow.dst.str();
      Bytes& s = streams[key];
      if (s.size() > 60000 || p.payload.size() > 60000) return;
      uint32_t prev = last_seq.count(key) ? last_seq[key] : p.seq;
      uint32_t delta = p.seq - prev;
      last_seq[key] = p.seq;
      s.push_back(uint8_t(0x80 | (p.flow.dst.port == 2049 ? 0 : 0x40)));
      for (int k = 3; k >= 0; k--) s.push_back(uint8_t(delta >> (8 * k)));
      put16(s, uint16_t(p.payload.size()));
      s.insert(s.end(), p.payload.begin(), p.payload.end());
    });
    RawPacket pkt;
    while ((*r)->next(pkt)) {
      if (group.empty()) group.push_back(link_selector(pkt.linktype));
      size_t len = std::min<size_t>(pkt.caplen, 65535);
      put16(group, uint16_t(len));
      group.insert(group.end(), pkt.data, pkt.data + len);
      if (++in_group == 8) {
        write_seed(out + "/packets", group);
        group.clear();
        in_group = 0;
      }
      net.feed(pkt);
    }
    write_seed(out + "/packets", group);
    for (auto& [k, s] : streams) write_seed(out + "/stream", s);
    write_seed(out + "/ring", ring);
  }
  return 0;
}
