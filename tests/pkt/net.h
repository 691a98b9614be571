// Link/IP/TCP/UDP frames and their checksums (tests/pkt). The low-level builders leave
// checksums 0 (the userspace parser does not check them); frame() builds the complete
// Ethernet frames the BPF programs are run on, checksums correct.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence::pkt {

// Address from text ("10.0.0.1", "fe80::1"); v6 chosen by the text.
Endpoint ep(const std::string& addr, uint16_t port = 0);

// --- L4
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
struct TcpHdr {
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = kPsh | kAck;
  uint16_t window = 65535;
  ByteView options;        // raw option bytes, a multiple of 4
  int doff_override = -1;  // 32-bit words (forge bad ones); -1: from the header + options
};
Bytes tcp(const TcpHdr& h, ByteView payload);
// ack 0, `option_bytes` NOPs.
Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, ByteView payload, size_t option_bytes = 0,
          int doff_override = -1);
Bytes udp(uint16_t sport, uint16_t dport, ByteView payload, int len_override = -1);

// --- IP
struct Ipv4Opts {
  uint16_t id = 1;
  bool more_fragments = false;
  uint16_t frag_offset = 0;  // in bytes (multiple of 8)
  int ihl_override = -1;     // 32-bit words
  int total_len_override = -1;
  int version_override = -1;
  size_t option_bytes = 0;  // IP options (NOPs), multiple of 4
  bool dont_fragment = false;
  uint8_t ttl = 64;
};
Bytes ipv4(const Endpoint& src, const Endpoint& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o = {});
Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o = {});
// Splits an L4 datagram into IPv4 fragments carrying `chunk` bytes each (multiple of 8).
std::vector<Bytes> ipv4_fragments(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4,
                                  size_t chunk, uint16_t id);
// An IPv6 packet; `payload` may start with extension headers, `next` is the first one.
Bytes ipv6(const Endpoint& src, const Endpoint& dst, uint8_t next, ByteView payload);
Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, ByteView payload);
// A generic IPv6 extension header (hop-by-hop 0, routing 43, dest-opts 60) of 8*(1+len8) bytes.
Bytes ipv6_ext(uint8_t next, uint8_t len8 = 0);
Bytes ipv6_frag_header(uint8_t next, uint16_t offset, bool more, uint32_t id);

// --- link layers
using Mac = std::array<uint8_t, 6>;
constexpr Mac kMacA = {2, 0, 0, 0, 0, 1}, kMacB = {2, 0, 0, 0, 0, 2};  // source, destination by default
Bytes ethernet(uint16_t ethertype, ByteView payload, std::initializer_list<uint16_t> vlan_tpids = {},
               const Mac& dst = kMacB, const Mac& src = kMacA);
Bytes sll(uint16_t protocol, ByteView payload);   // Linux cooked v1, 16-byte header
Bytes sll2(uint16_t protocol, ByteView payload);  // Linux cooked v2, 20-byte header
Bytes null_loop(uint32_t af, ByteView payload, bool little_endian = true);

// Convenience: Ethernet/IPv4/TCP and Ethernet/IPv4/UDP frames (checksums 0).
Bytes eth_tcp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint32_t seq,
               uint8_t flags, ByteView payload);
Bytes eth_udp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, ByteView payload);

// --- complete frames, checksums correct
// One Ethernet + IPv4/IPv6 (by src.v6) + TCP/UDP frame. IPv4: DF as set, TTL 64; IPv6: hop
// limit 64, no extension headers.
struct Seg {
  Endpoint src, dst;  // addresses and ports
  bool udp = false;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = kPsh | kAck;
  uint16_t window = 65535;
  ByteView tcp_options;  // raw, a multiple of 4 (the caller keeps them alive)
  uint16_t ip_id = 1;
  bool dont_fragment = false;
  Mac src_mac = kMacA, dst_mac = kMacB;
  bool l4_checksum = true;  // false: the TCP/UDP checksum stays 0 (the IPv4 header's is always set)
};
Bytes frame(const Seg& s, ByteView payload);
void frame_into(Bytes& out, const Seg& s, ByteView payload);  // the same, into a reused buffer

// --- checksums
// One's-complement sum of big-endian 16-bit words (an odd last byte padded with 0).
uint32_t csum_add(uint32_t sum, ByteView data);
uint16_t csum_fold(uint32_t sum);  // carries folded in; not complemented

// Offsets inside an Ethernet frame (no VLAN; IPv6 without extension headers): what frame()
// builds and what most captures hold.
struct Layout {
  size_t l3 = 14, l4 = 0, pay = 0;
  bool v6 = false, udp = false;
  size_t l4_csum() const { return l4 + (udp ? 6 : 16); }  // offset of the L4 checksum field
  size_t addr() const { return l3 + (v6 ? 8 : 12); }      // of the source address
  size_t addr_len() const { return v6 ? 16 : 4; }
};
Layout layout_of(ByteView frame);
size_t l4_len(ByteView frame, const Layout& L);
// Recomputes the IPv4 header and the L4 checksum (captures carry offloaded, unfinished ones).
void fix_checksums(Bytes& frame);
// "" when the IPv4 header and L4 checksums verify (the independent check: a valid packet
// sums to 0xffff), else what is wrong.
std::string checksum_error(ByteView frame);

}  // namespace nfsfence::pkt
