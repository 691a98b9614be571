// Capture files (tests/pkt): classic pcap (micro- or nanosecond) and pcapng, written
// little-endian, whole in memory or streamed to a file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence::pkt {

struct Frame {
  Bytes data;
  uint32_t wire_len = 0;  // 0: data.size()
  int64_t sec = 1700000000;
  uint32_t nsec = 0;
};

void append_pcap_header(Bytes& b, int linktype, bool nano = false, uint32_t snaplen = 262144);
// subsec: microseconds, or nanoseconds in a nanosecond file; wire_len 0: caplen.
void append_pcap_record_header(Bytes& b, uint32_t sec, uint32_t subsec, uint32_t caplen, uint32_t wire_len = 0);
void append_pcap_record(Bytes& b, uint32_t sec, uint32_t subsec, ByteView data, uint32_t wire_len = 0);
Bytes pcap_file(int linktype, const std::vector<Frame>& frames, bool nano = false, uint32_t snaplen = 262144);
// SHB + IDB + one EPB per frame (nanosecond if_tsresol).
Bytes pcapng_file(int linktype, const std::vector<Frame>& frames, uint32_t snaplen = 262144);

// A classic pcap streamed to a file (captures too large to hold).
class PcapWriter {
 public:
  PcapWriter() = default;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter();
  bool open(const std::string& path, int linktype = 1, bool nano = false, uint32_t snaplen = 262144);
  void put(ByteView data, uint64_t ts_ns, uint32_t wire_len = 0);
  bool close();                              // flushes; false on any write error
  uint64_t bytes() const { return bytes_; }  // file size so far
  uint64_t packets() const { return packets_; }

 private:
  FILE* f_ = nullptr;
  bool nano_ = false;
  uint64_t bytes_ = 0, packets_ = 0;
  Bytes buf_;
};

}  // namespace nfsfence::pkt
