// A bounds-checked XDR decoder (RFC 4506) over bytes it does not own: the counterpart of
// nfs/xdr_writer.h and the one read cursor of the protocol core. parse_rpc_header reads
// with it directly; the NFSv3 / MOUNT v3 decoders (nfs/nfs3.cpp) run the rpcgen functions
// over an XDR stream whose every get goes through one.
//
// Every read checks the bytes left before it touches them; a read that does not fit
// returns false and leaves the position where it was. Running out of bytes is the only
// way a read fails, so a caller can tell a short message from a malformed one.
#pragma once

#include "nfs/common.h"

namespace nfsfence {

class XdrReader {
 public:
  explicit XdrReader(ByteView b) : b_(b) {}

  bool u32(uint32_t& v) {
    if (left() < 4) return false;
    v = load_be32(b_.data() + pos_);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (left() < 8) return false;
    v = load_be64(b_.data() + pos_);
    pos_ += 8;
    return true;
  }
  // The next word without consuming it.
  bool peek_u32(uint32_t& v) const {
    if (left() < 4) return false;
    v = load_be32(b_.data() + pos_);
    return true;
  }
  // `n` raw bytes (no padding); `out` points into the buffer.
  bool bytes(size_t n, ByteView& out) {
    if (left() < n) return false;
    out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }
  // An opaque body of `len` bytes and its padding to a multiple of 4.
  bool skip_opaque(uint32_t len) { return skip(padded(len)); }
  // Moves to an absolute position within the buffer.
  bool seek(size_t pos) {
    if (pos > b_.size()) return false;
    pos_ = pos;
    return true;
  }

  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }
  static size_t padded(uint32_t len) { return (size_t(len) + 3) & ~size_t(3); }

 private:
  ByteView b_;
  size_t pos_ = 0;
};

}  // namespace nfsfence
