// Reading packets from pcap / pcapng files (libpcap), streaming: one packet at a time.
#pragma once

#include <memory>
#include <string>

#include "nfs/common.h"

namespace nfsfence {

// DLT values we decode (others are counted as unsupported link types).
enum LinkType : int {
  kLinkEthernet = 1,     // DLT_EN10MB (802.1Q / QinQ tags are skipped)
  kLinkRaw = 101,        // LINKTYPE_RAW (IPv4 or IPv6 by version nibble); also DLT_RAW 12/14
  kLinkLinuxSll = 113,   // Linux cooked capture v1
  kLinkLinuxSll2 = 276,  // Linux cooked capture v2
  kLinkIpv4 = 228,
  kLinkIpv6 = 229,
  kLinkNull = 0,  // BSD loopback
};

struct RawPacket {
  uint64_t frame = 0;  // 1-based packet number in the capture
  Timestamp ts;
  const uint8_t* data = nullptr;  // valid until the next call to next()
  uint32_t caplen = 0;
  uint32_t wire_len = 0;
  int linktype = 0;  // LINKTYPE_* of the interface the packet came from
};

class CaptureReader {
 public:
  // Opens a pcap or pcapng capture: a file, a pipe or FIFO, or standard input ("-"),
  // plain or compressed (gzip, bzip2, xz, zstd, lz4: detected by magic, decompressed
  // in-process). A missing, unreadable or non-capture input gives an error whose message
  // names it and the reason.
  static Expected<std::unique_ptr<CaptureReader>> open(const std::string& path);
  virtual ~CaptureReader() = default;
  // Next packet, or false at the end. A truncated final record (or a compressed stream
  // cut short) ends the stream and sets truncated(), with truncation_detail() naming the
  // input and the packet; other read errors set error(), also naming the input.
  virtual bool next(RawPacket& out) = 0;
  virtual bool truncated() const = 0;
  virtual const std::string& error() const = 0;
  virtual const std::string& truncation_detail() const = 0;
};

}  // namespace nfsfence
