// Helpers for byte-level test fixtures: build link/IP/TCP/UDP frames, RPC records, and
// write pcap / pcapng files to a temporary directory.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence::test {

// Appending big-endian integers and byte runs.
void put8(Bytes& b, uint8_t v);
void put16(Bytes& b, uint16_t v);
void put32(Bytes& b, uint32_t v);
void put_bytes(Bytes& b, ByteView v);
Bytes concat(std::initializer_list<ByteView> parts);
Bytes hex(std::string_view h);  // from_hex that aborts the test binary on bad input

// Address from text ("10.0.0.1", "fe80::1"); v6 chosen by the text.
Endpoint ep(const std::string& addr, uint16_t port = 0);

// --- L4
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
// TCP header (doff from the header + option bytes; pass doff_override to forge bad ones).
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
  size_t option_bytes = 0;   // IP options (NOPs), multiple of 4
};
Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o = {});
// Splits an L4 datagram into IPv4 fragments carrying `chunk` bytes each (multiple of 8).
std::vector<Bytes> ipv4_fragments(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4,
                                  size_t chunk, uint16_t id);
// An IPv6 packet; `payload` may start with extension headers, `next` is the first one.
Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, ByteView payload);
// A generic IPv6 extension header (hop-by-hop 0, routing 43, dest-opts 60) of 8*(1+len8) bytes.
Bytes ipv6_ext(uint8_t next, uint8_t len8 = 0);
Bytes ipv6_frag_header(uint8_t next, uint16_t offset, bool more, uint32_t id);

// --- link layers
Bytes ethernet(uint16_t ethertype, ByteView payload, std::initializer_list<uint16_t> vlan_tpids = {});
Bytes sll(uint16_t protocol, ByteView payload);   // Linux cooked v1, 16-byte header
Bytes sll2(uint16_t protocol, ByteView payload);  // Linux cooked v2, 20-byte header
Bytes null_loop(uint32_t af, ByteView payload, bool little_endian = true);

// Convenience: Ethernet/IPv4/TCP and Ethernet/IPv4/UDP frames.
Bytes eth_tcp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint32_t seq,
               uint8_t flags, ByteView payload);
Bytes eth_udp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, ByteView payload);

// --- ONC RPC
// Record mark + data (one fragment).
Bytes record(ByteView msg, bool last = true);
// A call header (AUTH_NONE cred and verf) followed by `body`.
Bytes rpc_call(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, ByteView body = {});
// An accepted SUCCESS reply (AUTH_NONE verf) followed by `body`.
Bytes rpc_reply(uint32_t xid, ByteView body = {});

// --- capture files
struct Frame {
  Bytes data;
  uint32_t wire_len = 0;  // 0: data.size()
  int64_t sec = 1700000000;
  uint32_t nsec = 0;
};
// A fresh directory under $TMPDIR for this test binary, created once and removed at exit
// (kept when NFSF_KEEP_TMP is set).
std::string temp_dir();
// Writes a classic pcap (microsecond or nanosecond magic) and returns the path.
std::string write_pcap(const std::string& name, int linktype, const std::vector<Frame>& frames, bool nano = false,
                       uint32_t snaplen = 262144);
// Writes a pcapng file: SHB + IDB + one EPB per frame (nanosecond if_tsresol).
std::string write_pcapng(const std::string& name, int linktype, const std::vector<Frame>& frames,
                         uint32_t snaplen = 262144);
std::string write_file(const std::string& name, ByteView content);
Bytes read_file(const std::string& path);

}  // namespace nfsfence::test
