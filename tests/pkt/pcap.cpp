#include "pkt/pcap.h"

#include "pkt/bytes.h"

namespace nfsfence::pkt {

namespace {
void le16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
void le32(Bytes& b, uint32_t v) {
  le16(b, uint16_t(v));
  le16(b, uint16_t(v >> 16));
}
}  // namespace

void append_pcap_header(Bytes& b, int linktype, bool nano, uint32_t snaplen) {
  le32(b, nano ? 0xa1b23c4d : 0xa1b2c3d4);
  le16(b, 2);
  le16(b, 4);
  le32(b, 0);  // thiszone
  le32(b, 0);  // sigfigs
  le32(b, snaplen);
  le32(b, uint32_t(linktype));
}

void append_pcap_record_header(Bytes& b, uint32_t sec, uint32_t subsec, uint32_t caplen, uint32_t wire_len) {
  le32(b, sec);
  le32(b, subsec);
  le32(b, caplen);
  le32(b, wire_len ? wire_len : caplen);
}

void append_pcap_record(Bytes& b, uint32_t sec, uint32_t subsec, ByteView data, uint32_t wire_len) {
  append_pcap_record_header(b, sec, subsec, uint32_t(data.size()), wire_len);
  put_bytes(b, data);
}

Bytes pcap_file(int linktype, const std::vector<Frame>& frames, bool nano, uint32_t snaplen) {
  Bytes b;
  append_pcap_header(b, linktype, nano, snaplen);
  for (const Frame& f : frames)
    append_pcap_record(b, uint32_t(f.sec), nano ? f.nsec : f.nsec / 1000, f.data, f.wire_len);
  return b;
}

Bytes pcapng_file(int linktype, const std::vector<Frame>& frames, uint32_t snaplen) {
  Bytes b;
  // Section Header Block
  le32(b, 0x0A0D0D0A);
  le32(b, 28);
  le32(b, 0x1A2B3C4D);
  le16(b, 1);
  le16(b, 0);
  le32(b, 0xffffffff);  // section length unknown
  le32(b, 0xffffffff);
  le32(b, 28);
  // Interface Description Block with if_tsresol = 9 (nanoseconds)
  le32(b, 1);
  le32(b, 32);
  le16(b, uint16_t(linktype));
  le16(b, 0);
  le32(b, snaplen);
  le16(b, 9);  // if_tsresol
  le16(b, 1);
  b.insert(b.end(), {9, 0, 0, 0});
  le16(b, 0);  // opt_endofopt
  le16(b, 0);
  le32(b, 32);
  for (const Frame& f : frames) {
    uint32_t cap = uint32_t(f.data.size());
    uint32_t padded = (cap + 3) & ~3u;
    uint32_t len = 32 + padded;
    uint64_t ts = uint64_t(f.sec) * 1000000000ull + f.nsec;
    le32(b, 6);
    le32(b, len);
    le32(b, 0);  // interface id
    le32(b, uint32_t(ts >> 32));
    le32(b, uint32_t(ts));
    le32(b, cap);
    le32(b, f.wire_len ? f.wire_len : cap);
    put_bytes(b, f.data);
    b.insert(b.end(), padded - cap, 0);
    le32(b, len);
  }
  return b;
}

PcapWriter::~PcapWriter() { close(); }

bool PcapWriter::open(const std::string& path, int linktype, bool nano, uint32_t snaplen) {
  close();
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) return false;
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 22);
  nano_ = nano;
  buf_.clear();
  append_pcap_header(buf_, linktype, nano, snaplen);
  std::fwrite(buf_.data(), 1, buf_.size(), f_);
  bytes_ = buf_.size();
  packets_ = 0;
  return true;
}

void PcapWriter::put(ByteView data, uint64_t ts_ns, uint32_t wire_len) {
  buf_.clear();
  append_pcap_record_header(buf_, uint32_t(ts_ns / 1000000000ull),
                            uint32_t(nano_ ? ts_ns % 1000000000ull : ts_ns / 1000 % 1000000), uint32_t(data.size()),
                            wire_len);
  std::fwrite(buf_.data(), 1, buf_.size(), f_);
  std::fwrite(data.data(), 1, data.size(), f_);
  bytes_ += buf_.size() + data.size();
  packets_++;
}

bool PcapWriter::close() {
  if (!f_) return true;
  std::fflush(f_);
  bool ok = !std::ferror(f_);
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  return ok;
}

}  // namespace nfsfence::pkt
