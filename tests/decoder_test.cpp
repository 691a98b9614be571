// The decoder glue: TCP/UDP payloads in, matched RPC messages out.
#include <gtest/gtest.h>

#include "nfs/decoder.h"
#include "nfs/xdr_writer.h"

using namespace nfsfence;

namespace {

// fattr3 with the fields accounting reads; the rest zero.
XdrWriter& fattr(XdrWriter& x, uint32_t type, uint64_t size, uint64_t used) {
  x.u32(type).u32(0644).u32(1).u32(0).u32(0).u64(size).u64(used).u32(0).u32(0).u64(1).u64(77);
  for (int i = 0; i < 6; i++) x.u32(0);
  return x;
}

const Bytes kFh(28, 0xab);

struct Harness {
  std::vector<RpcMessage> msgs;
  Decoder dec{[this](const RpcMessage& m) { msgs.push_back(m); }};
  uint32_t cseq = 1000, sseq = 5000;
  uint64_t frame = 0;
  L4Packet pkt(bool to_server, Transport t, const Bytes& payload) {
    L4Packet p;
    p.flow.transport = t;
    p.flow.src.addr = {10, 0, 0, uint8_t(to_server ? 1 : 2)};
    p.flow.dst.addr = {10, 0, 0, uint8_t(to_server ? 2 : 1)};
    p.flow.src.port = to_server ? 800 : 2049;
    p.flow.dst.port = to_server ? 2049 : 800;
    p.payload = ByteView(payload.data(), payload.size());
    p.wire_payload_len = uint32_t(payload.size());
    p.frame = p.first_frame = ++frame;
    return p;
  }
  void tcp(bool to_server, const Bytes& payload) {
    L4Packet p = pkt(to_server, Transport::Tcp, payload);
    uint32_t& seq = to_server ? cseq : sseq;
    p.seq = seq;
    seq += uint32_t(payload.size());
    dec.feed_l4(p);
  }
  void udp(bool to_server, const Bytes& payload) { dec.feed_l4(pkt(to_server, Transport::Udp, payload)); }
};

Bytes write_call(uint32_t xid, uint32_t count) {
  XdrWriter x;
  x.call_header(xid, kProgNfs, 3, 7).opaque(kFh).u64(4096).u32(count).u32(0);
  x.opaque(Bytes(count, 0x5a));
  return x.record();
}

Bytes write_reply(uint32_t xid, uint64_t size) {
  XdrWriter x;
  x.reply_header(xid).u32(0).u32(0);             // NFS3_OK, wcc before: absent
  fattr(x.u32(1), 1, size, size);                // wcc after
  x.u32(512).u32(0).u64(0x1122334455667788ull);  // count, committed, verf
  return x.record();
}

}  // namespace

TEST(Decoder, TcpCallAndReplyMatchedByXid) {
  Harness h;
  h.tcp(true, write_call(7, 512));
  h.tcp(false, write_reply(7, 4608));
  h.dec.finish();
  ASSERT_EQ(h.msgs.size(), 2u);
  const RpcMessage& c = h.msgs[0];
  EXPECT_EQ(c.type, MsgType::Call);
  EXPECT_EQ(*c.proc, NFS3_WRITE);
  EXPECT_STREQ(c.proc_name, "WRITE");
  EXPECT_EQ(*c.fields.fh, kFh);
  EXPECT_EQ(*c.fields.offset, 4096u);
  EXPECT_EQ(*c.fields.count, 512u);
  const RpcMessage& r = h.msgs[1];
  EXPECT_EQ(r.type, MsgType::Reply);
  ASSERT_TRUE(r.proc);
  EXPECT_EQ(*r.proc, NFS3_WRITE);
  ASSERT_TRUE(r.call);
  EXPECT_EQ(*r.call->fh, kFh);
  EXPECT_EQ(*r.fields.status, 0u);
  EXPECT_EQ(r.fields.attr->size, 4608u);
  EXPECT_EQ(*r.fields.res_count, 512u);
  EXPECT_EQ(h.dec.stats().unmatched_replies, 0u);
}

TEST(Decoder, LargeWriteSplitAcrossSegmentsIsNotBuffered) {
  Harness h;
  Bytes rec = write_call(9, 1 << 20);
  for (size_t off = 0; off < rec.size(); off += 1448)
    h.tcp(true, Bytes(rec.begin() + long(off), rec.begin() + long(std::min(rec.size(), off + 1448))));
  h.dec.finish();
  ASSERT_EQ(h.msgs.size(), 1u);
  EXPECT_EQ(*h.msgs[0].fields.count, 1u << 20);
  EXPECT_EQ(h.msgs[0].frame, 1u);  // the frame where the record starts
  EXPECT_EQ(h.msgs[0].msg_len, rec.size() - 4);
}

TEST(Decoder, ReplyWithoutCallIsCountedAndHasNoProc) {
  Harness h;
  h.tcp(false, write_reply(99, 1));
  h.dec.finish();
  ASSERT_EQ(h.msgs.size(), 1u);
  EXPECT_FALSE(h.msgs[0].proc);
  EXPECT_EQ(h.dec.stats().unmatched_replies, 1u);
}

TEST(Decoder, UdpRetransmittedCallAndReplyStillMatch) {
  Harness h;
  XdrWriter call;
  call.call_header(5, kProgNfs, 3, 1).opaque(kFh);  // GETATTR
  XdrWriter reply;
  fattr(reply.reply_header(5).u32(0), 1, 10, 4096);
  h.udp(true, call.bytes());
  h.udp(true, call.bytes());  // retransmission
  h.udp(false, reply.bytes());
  h.udp(false, reply.bytes());  // duplicate reply
  ASSERT_EQ(h.msgs.size(), 4u);
  EXPECT_EQ(h.dec.stats().duplicate_calls, 1u);
  EXPECT_EQ(h.dec.stats().unmatched_replies, 0u);
  for (int i : {2, 3}) {
    ASSERT_TRUE(h.msgs[i].proc) << i;
    EXPECT_EQ(*h.msgs[i].proc, NFS3_GETATTR);
    EXPECT_EQ(h.msgs[i].fields.attr->used, 4096u);
  }
}

TEST(Decoder, OtherProgramsCountedNotDecoded) {
  Harness h;
  XdrWriter v4;
  v4.call_header(1, kProgNfs, 4, 1).u32(0);
  h.udp(true, v4.bytes());
  XdrWriter acl;
  acl.call_header(2, kProgNfsAcl, 3, 0);
  h.udp(true, acl.bytes());
  ASSERT_EQ(h.msgs.size(), 2u);
  EXPECT_FALSE(h.msgs[0].is_nfs3_or_mount3());
  EXPECT_EQ(h.dec.stats().not_decoded, 2u);
  EXPECT_EQ(h.dec.stats().other_programs.at(std::to_string(kProgNfs) + "v4"), 1u);
  EXPECT_EQ(h.dec.stats().other_programs.at(std::to_string(kProgNfsAcl) + "v3"), 1u);
}

TEST(Decoder, GarbageDatagramsCountedAndSkipped) {
  Harness h;
  h.udp(true, Bytes{1, 2, 3});
  h.udp(true, Bytes(64, 0xff));
  XdrWriter ok;
  ok.call_header(3, kProgNfs, 3, 0);
  h.udp(true, ok.bytes());
  ASSERT_EQ(h.msgs.size(), 1u);
  EXPECT_EQ(h.dec.stats().malformed_rpc + h.dec.stats().truncated_rpc, 2u);
}

TEST(Decoder, LookupReplyCarriesCallArguments) {
  Harness h;
  XdrWriter c;
  c.call_header(11, kProgNfs, 3, 3).opaque(kFh).str("vol-a");
  XdrWriter r;
  fattr(r.reply_header(11).u32(0).opaque(Bytes(20, 0x11)).u32(1), 2, 4096, 4096).u32(0);
  h.tcp(true, c.record());
  h.tcp(false, r.record());
  h.dec.finish();
  ASSERT_EQ(h.msgs.size(), 2u);
  EXPECT_EQ(*h.msgs[1].call->name, "vol-a");
  EXPECT_EQ(*h.msgs[1].call->dir_fh, kFh);
  EXPECT_EQ(*h.msgs[1].fields.obj_fh, Bytes(20, 0x11));
  EXPECT_EQ(h.msgs[1].fields.attr->type, 2u);
}

TEST(Decoder, ReusedFourTupleNeedsCloseFlow) {
  // A new connection on the same 4-tuple starts at a random ISN; when that lies "behind"
  // the old stream, its records look like retransmissions until the flow is closed.
  XdrWriter c;
  c.call_header(21, kProgNfs, 3, 0);
  Bytes rec = c.record();
  Harness h;
  h.cseq = 100000;
  h.tcp(true, rec);
  ASSERT_EQ(h.msgs.size(), 1u);
  h.cseq = 5000;  // the new connection's ISN, behind the old position
  h.tcp(true, rec);
  EXPECT_EQ(h.msgs.size(), 1u) << "without close_flow the new connection is taken for a retransmission";
  FlowKey f = h.pkt(true, Transport::Tcp, rec).flow;
  h.dec.close_flow(f);
  h.cseq = 5000;
  h.tcp(true, rec);
  EXPECT_EQ(h.msgs.size(), 2u);
}
