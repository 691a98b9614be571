// A minimal XDR encoder (RFC 4506) for building RPC calls: the agent's walk client and
// the tests' hand-built messages.
#pragma once

#include <string>

#include "nfs/common.h"

namespace nfsfence {

class XdrWriter {
 public:
  XdrWriter& u32(uint32_t v) {
    for (int i = 3; i >= 0; i--) b_.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
  XdrWriter& u64(uint64_t v) { return u32(uint32_t(v >> 32)).u32(uint32_t(v)); }
  XdrWriter& opaque(ByteView d) {  // variable-length opaque: length, bytes, padding
    u32(uint32_t(d.size()));
    return fixed(d);
  }
  XdrWriter& opaque(const Bytes& d) { return opaque(ByteView(d.data(), d.size())); }
  XdrWriter& fixed(ByteView d) {  // fixed-length opaque: bytes, padding
    b_.insert(b_.end(), d.begin(), d.end());
    while (b_.size() % 4) b_.push_back(0);
    return *this;
  }
  XdrWriter& str(std::string_view s) { return opaque(ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }
  // RPC call header with AUTH_SYS (uid/gid, machine name) or AUTH_NONE when uid < 0.
  XdrWriter& call_header(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, int uid = -1, int gid = 0) {
    u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc);
    if (uid < 0) {
      u32(0).u32(0);
    } else {
      XdrWriter cred;
      cred.u32(0).str("nfsfence").u32(uint32_t(uid)).u32(uint32_t(gid)).u32(0);
      u32(1).opaque(cred.bytes());
    }
    return u32(0).u32(0);  // verifier AUTH_NONE
  }
  // Accepted SUCCESS reply header.
  XdrWriter& reply_header(uint32_t xid) { return u32(xid).u32(1).u32(0).u32(0).u32(0).u32(0); }
  // The message with a last-fragment record mark in front (RFC 5531 section 11).
  Bytes record() const {
    XdrWriter r;
    r.u32(0x80000000u | uint32_t(b_.size()));
    r.b_.insert(r.b_.end(), b_.begin(), b_.end());
    return r.b_;
  }
  const Bytes& bytes() const { return b_; }
  size_t size() const { return b_.size(); }

 private:
  Bytes b_;
};

}  // namespace nfsfence
