// RPC call/reply header parsing (RFC 5531), fixtures built by hand; the XDR read cursor.
#include <gtest/gtest.h>

#include "nfs/rpc.h"
#include "nfs/xdr_reader.h"

namespace nfsfence {
namespace {

class W {
 public:
  W& u32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b_.push_back(uint8_t(v >> s));
    return *this;
  }
  W& opaque(const Bytes& d) {
    u32(uint32_t(d.size()));
    b_.insert(b_.end(), d.begin(), d.end());
    while (b_.size() % 4) b_.push_back(0);
    return *this;
  }
  W& raw(const Bytes& d) {
    b_.insert(b_.end(), d.begin(), d.end());
    return *this;
  }
  const Bytes& bytes() const { return b_; }
  size_t size() const { return b_.size(); }

 private:
  Bytes b_;
};

Bytes auth_unix_body() {
  W w;
  w.u32(12345).opaque({'h', 'o', 's', 't', '1'}).u32(1000).u32(1000).u32(2).u32(10).u32(20);
  return w.bytes();
}

W call_header(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc) {
  W w;
  w.u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc);
  w.u32(1).opaque(auth_unix_body());  // AUTH_UNIX cred
  w.u32(0).opaque({});                // AUTH_NONE verf
  return w;
}

TEST(Rpc, CallHeader) {
  W w = call_header(0xdeadbeef, kProgNfs, 3, 7);
  size_t hdr = w.size();
  w.u32(0x11111111);  // first argument word
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.xid, 0xdeadbeefu);
  EXPECT_EQ(h.type, MsgType::Call);
  EXPECT_EQ(h.rpcvers, 2u);
  EXPECT_EQ(h.prog, kProgNfs);
  EXPECT_EQ(h.vers, 3u);
  EXPECT_EQ(h.proc, 7u);
  EXPECT_EQ(h.cred_flavor, 1u);
  EXPECT_EQ(h.body_offset, hdr);
  EXPECT_EQ(h.body_offset, 24u + 8 + auth_unix_body().size() + 8);
}

TEST(Rpc, CallHeaderWithVerifierBody) {
  W w;
  w.u32(1).u32(0).u32(2).u32(kProgMount).u32(3).u32(1);
  w.u32(0).opaque({});
  w.u32(6).opaque({1, 2, 3, 4, 5});  // RPCSEC_GSS-like verifier, padded to 8
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.cred_flavor, 0u);
  EXPECT_EQ(h.body_offset, 24u + 8 + 8 + 8);
}

TEST(Rpc, HeaderOnlyCallIsOk) {
  W w = call_header(7, kProgNfs, 3, 0);
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.body_offset, w.size());
}

TEST(Rpc, CallTruncatedAtEveryByte) {
  W w = call_header(9, kProgNfs, 3, 1);
  const Bytes& b = w.bytes();
  for (size_t n = 0; n < b.size(); ++n) {
    RpcHeader h;
    EXPECT_EQ(parse_rpc_header(ByteView(b.data(), n), h), RpcParse::Truncated) << n;
  }
}

TEST(Rpc, AuthBodyBound) {
  for (uint32_t len : {400u, 401u, 0xffffffffu}) {
    W w;
    w.u32(1).u32(0).u32(2).u32(kProgNfs).u32(3).u32(1).u32(1).u32(len);
    if (len <= 400) w.raw(Bytes(len, 0));
    w.u32(0).u32(0);
    RpcHeader h;
    EXPECT_EQ(parse_rpc_header(w.bytes(), h), len <= 400 ? RpcParse::Ok : RpcParse::Malformed) << len;
  }
  // Verifier too long in a reply.
  W r;
  r.u32(1).u32(1).u32(0).u32(0).u32(401);
  RpcHeader h;
  EXPECT_EQ(parse_rpc_header(r.bytes(), h), RpcParse::Malformed);
}

TEST(Rpc, BadMessageTypeAndVersion) {
  RpcHeader h;
  W bad_type;
  bad_type.u32(1).u32(2).u32(2);
  EXPECT_EQ(parse_rpc_header(bad_type.bytes(), h), RpcParse::Malformed);
  W bad_vers;
  bad_vers.u32(1).u32(0).u32(3).u32(kProgNfs).u32(3).u32(0).u32(0).u32(0).u32(0).u32(0);
  EXPECT_EQ(parse_rpc_header(bad_vers.bytes(), h), RpcParse::Malformed);
}

TEST(Rpc, AcceptedSuccessReply) {
  W w;
  w.u32(0x42).u32(1).u32(0).u32(0).opaque({}).u32(0);
  size_t hdr = w.size();
  w.u32(0);  // nfsstat3
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.xid, 0x42u);
  EXPECT_EQ(h.type, MsgType::Reply);
  EXPECT_EQ(h.reply_stat, 0u);
  EXPECT_EQ(h.accept_stat, 0u);
  EXPECT_EQ(h.body_offset, hdr);
  EXPECT_EQ(hdr, 24u);
}

TEST(Rpc, AcceptedReplyWithVerifier) {
  W w;
  w.u32(5).u32(1).u32(0).u32(6).opaque(Bytes(37, 0xab)).u32(0);
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.body_offset, 12u + 8 + 40 + 4);
}

TEST(Rpc, AcceptStats) {
  for (uint32_t st : {1u, 3u, 4u, 5u}) {
    W w;
    w.u32(1).u32(1).u32(0).u32(0).opaque({}).u32(st);
    RpcHeader h;
    ASSERT_EQ(parse_rpc_header(w.bytes(), h), RpcParse::Ok) << st;
    EXPECT_EQ(h.accept_stat, st);
    EXPECT_EQ(h.body_offset, 24u);
  }
  // PROG_MISMATCH carries low and high.
  W pm;
  pm.u32(1).u32(1).u32(0).u32(0).opaque({}).u32(2).u32(2).u32(4);
  RpcHeader h;
  ASSERT_EQ(parse_rpc_header(pm.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.accept_stat, 2u);
  EXPECT_EQ(h.body_offset, 32u);
  for (size_t n = 0; n < pm.size(); ++n)
    EXPECT_EQ(parse_rpc_header(ByteView(pm.bytes().data(), n), h), RpcParse::Truncated) << n;
  // Undefined accept_stat.
  W bad;
  bad.u32(1).u32(1).u32(0).u32(0).opaque({}).u32(6);
  EXPECT_EQ(parse_rpc_header(bad.bytes(), h), RpcParse::Malformed);
}

TEST(Rpc, DeniedReplies) {
  RpcHeader h;
  W mism;
  mism.u32(3).u32(1).u32(1).u32(0).u32(2).u32(2);  // RPC_MISMATCH low=2 high=2
  ASSERT_EQ(parse_rpc_header(mism.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.reply_stat, 1u);
  EXPECT_EQ(h.reject_stat, 0u);
  EXPECT_EQ(h.body_offset, 24u);
  for (size_t n = 0; n < mism.size(); ++n)
    EXPECT_EQ(parse_rpc_header(ByteView(mism.bytes().data(), n), h), RpcParse::Truncated) << n;

  W auth;
  auth.u32(4).u32(1).u32(1).u32(1).u32(5);  // AUTH_ERROR AUTH_TOOWEAK
  ASSERT_EQ(parse_rpc_header(auth.bytes(), h), RpcParse::Ok);
  EXPECT_EQ(h.reject_stat, 1u);
  EXPECT_EQ(h.body_offset, 20u);
  for (size_t n = 0; n < auth.size(); ++n)
    EXPECT_EQ(parse_rpc_header(ByteView(auth.bytes().data(), n), h), RpcParse::Truncated) << n;

  W bad_reject;
  bad_reject.u32(4).u32(1).u32(1).u32(2).u32(0);
  EXPECT_EQ(parse_rpc_header(bad_reject.bytes(), h), RpcParse::Malformed);
  W bad_reply_stat;
  bad_reply_stat.u32(4).u32(1).u32(2).u32(0);
  EXPECT_EQ(parse_rpc_header(bad_reply_stat.bytes(), h), RpcParse::Malformed);
}

TEST(Rpc, RandomGarbageNeverCrashes) {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  for (int i = 0; i < 20000; ++i) {
    Bytes b(next() % 80);
    for (auto& c : b) c = uint8_t(next());
    // Make the header plausible often enough to exercise deeper paths.
    if (b.size() >= 8 && (i & 1)) {
      b[4] = b[5] = b[6] = 0;
      b[7] = uint8_t(i & 2 ? 1 : 0);
      if (b.size() >= 12 && !(i & 2)) b[8] = b[9] = b[10] = 0, b[11] = 2;
    }
    RpcHeader h;
    RpcParse r = parse_rpc_header(b, h);
    if (r == RpcParse::Ok) {
      EXPECT_LE(h.body_offset, b.size());
    }
  }
}

// ---------------------------------------------------------------- XdrReader

TEST(XdrReader, ReadsInOrder) {
  W w;
  w.u32(7).u32(0x01020304).u32(0x05060708).opaque({1, 2, 3, 4, 5}).u32(9);
  const Bytes& b = w.bytes();
  XdrReader r(b);
  uint32_t v = 0;
  uint64_t q = 0;
  ASSERT_TRUE(r.peek_u32(v));
  EXPECT_EQ(v, 7u);
  EXPECT_EQ(r.pos(), 0u);  // peek does not move
  ASSERT_TRUE(r.u32(v));
  EXPECT_EQ(v, 7u);
  ASSERT_TRUE(r.u64(q));
  EXPECT_EQ(q, 0x0102030405060708ull);
  uint32_t len = 0;
  ASSERT_TRUE(r.u32(len));
  ByteView raw;
  ASSERT_TRUE(r.bytes(2, raw));
  EXPECT_EQ(raw.data(), b.data() + 16);  // a view into the buffer, not a copy
  EXPECT_EQ(Bytes(raw.begin(), raw.end()), (Bytes{1, 2}));
  ASSERT_TRUE(r.seek(16));
  ASSERT_TRUE(r.skip_opaque(len));  // 5 bytes and 3 of padding
  EXPECT_EQ(r.pos(), 24u);
  ASSERT_TRUE(r.u32(v));
  EXPECT_EQ(v, 9u);
  EXPECT_EQ(r.left(), 0u);
}

// GCC 12 warns that u64() would read past the 7-byte buffer on the path its own length check
// rules out (-Warray-bounds after inlining): a false positive, for this test only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
TEST(XdrReader, ShortReadsFailWithoutMoving) {
  Bytes b{0, 0, 0, 1, 0, 0, 0};  // one word and 3 bytes
  XdrReader r(b);
  uint32_t v = 0;
  uint64_t q = 0;
  ByteView raw;
  ASSERT_TRUE(r.u32(v));
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(r.u32(v));
    EXPECT_FALSE(r.peek_u32(v));
    EXPECT_FALSE(r.u64(q));
    EXPECT_FALSE(r.bytes(4, raw));
    EXPECT_FALSE(r.skip(4));
    EXPECT_FALSE(r.skip_opaque(1));  // 1 byte + 3 of padding
    EXPECT_FALSE(r.skip_opaque(0xffffffffu));
    EXPECT_FALSE(r.seek(b.size() + 1));
    EXPECT_EQ(r.pos(), 4u);
    EXPECT_EQ(r.left(), 3u);
  }
  EXPECT_TRUE(r.bytes(3, raw));
  EXPECT_EQ(r.left(), 0u);
  EXPECT_TRUE(r.seek(b.size()));
  EXPECT_TRUE(r.seek(0));
  EXPECT_FALSE(r.u64(q));  // 7 bytes
  EXPECT_EQ(r.pos(), 0u);
  XdrReader empty{ByteView{}};
  EXPECT_FALSE(empty.u32(v));
  EXPECT_TRUE(empty.skip_opaque(0));
}
#pragma GCC diagnostic pop

}  // namespace
}  // namespace nfsfence
