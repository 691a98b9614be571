// Zero-copy, allocation-free cursors over the NFSv3 WRITE call and READ reply heads
// (RFC 1813 sections 3.3.7 and 3.3.6). Checked against the XDR decoder in tests.
#include "nfs/nfs3.h"

namespace nfsfence {
namespace {

constexpr uint32_t kFhMax = 64;
constexpr size_t kFattr3Size = 84;  // 5 x u32, size, used, rdev, fsid, fileid, 3 x nfstime3


class Cursor {
 public:
  explicit Cursor(ByteView b) : p_(b.data()), n_(b.size()) {}
  bool u32(uint32_t& v) {
    if (n_ - pos_ < 4) return false;
    v = load_be32(p_ + pos_);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (n_ - pos_ < 8) return false;
    v = load_be64(p_ + pos_);
    pos_ += 8;
    return true;
  }
  // `len` bytes plus XDR padding to a multiple of 4; returns the start.
  bool opaque(uint32_t len, const uint8_t*& start) {
    size_t padded = (size_t(len) + 3) & ~size_t(3);
    if (n_ - pos_ < padded) return false;
    start = p_ + pos_;
    pos_ += padded;
    return true;
  }
  const uint8_t* at() const { return p_ + pos_; }
  bool have(size_t k) const { return n_ - pos_ >= k; }
  void advance(size_t k) { pos_ += k; }
  size_t pos() const { return pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace

DecodeResult fast_write_call(ByteView body, WriteHead& out) {
  Cursor c(body);
  uint32_t fh_len = 0;
  if (!c.u32(fh_len)) return DecodeResult::Truncated;
  if (fh_len > kFhMax) return DecodeResult::Malformed;
  const uint8_t* fh = nullptr;
  if (!c.opaque(fh_len, fh)) return DecodeResult::Truncated;
  out.fh = ByteView(fh, fh_len);
  if (!c.u64(out.offset)) return DecodeResult::Truncated;
  if (!c.u32(out.count)) return DecodeResult::Truncated;
  if (!c.u32(out.stable)) return DecodeResult::Truncated;
  if (out.stable > 2) return DecodeResult::Malformed;  // UNSTABLE, DATA_SYNC, FILE_SYNC
  if (!c.u32(out.data_len)) return DecodeResult::Truncated;
  out.data_offset = c.pos();
  return DecodeResult::Ok;
}

DecodeResult fast_read_reply(ByteView body, ReadHead& out) {
  Cursor c(body);
  out = ReadHead{};
  if (!c.u32(out.status)) return DecodeResult::Truncated;
  if (!valid_nfsstat3(out.status)) return DecodeResult::Malformed;
  uint32_t follows = 0;
  if (!c.u32(follows)) return DecodeResult::Truncated;
  if (follows > 1) return DecodeResult::Malformed;
  if (follows) {
    if (!c.have(kFattr3Size)) return DecodeResult::Truncated;
    const uint8_t* a = c.at();
    Attr attr;
    attr.type = load_be32(a);
    if (attr.type < 1 || attr.type > 7) return DecodeResult::Malformed;
    attr.nlink = load_be32(a + 8);
    attr.size = load_be64(a + 20);
    attr.used = load_be64(a + 28);
    attr.fileid = load_be64(a + 52);
    out.attr = attr;
    c.advance(kFattr3Size);
  }
  if (out.status != 0) return DecodeResult::Ok;  // READ3resfail: attributes only
  if (!c.u32(out.count)) return DecodeResult::Truncated;
  uint32_t eof = 0;
  if (!c.u32(eof)) return DecodeResult::Truncated;
  if (eof > 1) return DecodeResult::Malformed;
  out.eof = eof != 0;
  if (!c.u32(out.data_len)) return DecodeResult::Truncated;
  out.data_offset = c.pos();
  return DecodeResult::Ok;
}

}  // namespace nfsfence
