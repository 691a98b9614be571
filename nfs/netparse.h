// Link, IP (v4 with fragment reassembly, v6) and TCP/UDP parsing.
#pragma once

#include <functional>
#include <memory>

#include "nfs/capture.h"
#include "nfs/common.h"

namespace nfsfence {

struct L4Packet {
  uint64_t frame = 0;        // frame of the packet that completed it (last fragment for IPv4)
  uint64_t first_frame = 0;  // frame of the first fragment (== frame when not fragmented)
  Timestamp ts;
  FlowKey flow;
  uint32_t seq = 0;               // TCP only
  uint8_t tcp_flags = 0;          // TCP only (SYN=0x02, FIN=0x01, RST=0x04)
  ByteView payload;               // captured payload bytes
  uint32_t wire_payload_len = 0;  // payload length from the IP header (> payload.size() when snaplen cut it)
};

struct NetStats {
  uint64_t packets = 0;
  uint64_t non_ip = 0;  // ARP, LLDP, ... (counted, not errors)
  uint64_t unsupported_link = 0;
  uint64_t malformed = 0;  // impossible header lengths, bad versions
  uint64_t truncated = 0;  // header cut by snaplen
  uint64_t other_l4 = 0;   // ICMP, SCTP, ...
  uint64_t ip_fragments = 0;
  uint64_t ip_reassembled = 0;
  uint64_t ip_frag_dropped = 0;  // incomplete or overlapping-inconsistent datagrams evicted
};

class NetParser {
 public:
  using Sink = std::function<void(const L4Packet&)>;
  explicit NetParser(Sink sink);
  ~NetParser();
  void feed(const RawPacket& pkt);
  const NetStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nfsfence
