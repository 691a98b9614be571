#include <gtest/gtest.h>

#include "nfs/record.h"
#include "nfs/rpc.h"
#include "test_util.h"

namespace nfsfence {
namespace {

using namespace nfsfence::test;

struct Got {
  uint64_t frame;
  Timestamp ts;
  Bytes data;
  uint64_t record_len;
  bool complete;
};

// Bodies that are clearly not RPC headers (so resync tests only find the real records).
Bytes filler(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(0xA0 + ((i + seed) % 7));
  return b;
}

Bytes call_msg(uint32_t xid, size_t body = 40) { return rpc_call(xid, kProgNfs, 3, 7, filler(body, uint8_t(xid))); }
Bytes reply_msg(uint32_t xid, size_t body = 40) { return rpc_reply(xid, filler(body, uint8_t(xid))); }

class Record : public ::testing::Test {
 protected:
  std::vector<Got> got;
  size_t policy_calls = 0;
  std::function<size_t(ByteView, uint64_t)> want = [](ByteView, uint64_t len) { return size_t(len); };
  RecordAssembler ra{[this](ByteView head, uint64_t len) {
                       ++policy_calls;
                       return want(head, len);
                     },
                     [this](const RecordHead& h) {
                       got.push_back({h.frame, h.ts, Bytes(h.data.begin(), h.data.end()), h.record_len, h.complete});
                     }};
  uint64_t frame = 0;

  void seg(uint32_t seq, ByteView payload, uint32_t wire = 0, bool syn = false) {
    ++frame;
    ra.segment(seq, payload, wire ? wire : uint32_t(payload.size()), syn, frame, Timestamp{int64_t(frame), 0});
  }
  void syn(uint32_t isn) { seg(isn, {}, 0, true); }
  // Sends `stream` from seq in segments of `mss`.
  void send(uint32_t seq, ByteView stream, size_t mss) {
    for (size_t off = 0; off < stream.size(); off += mss)
      seg(seq + uint32_t(off), stream.subspan(off, std::min(mss, stream.size() - off)));
  }
  const RecordStats& st() const { return ra.stats(); }
};

TEST(PlausibleRecordStart, CallsAndReplies) {
  Bytes c = record(call_msg(1));
  Bytes r = record(reply_msg(2));
  EXPECT_TRUE(plausible_record_start(c.data(), c.size()));
  EXPECT_TRUE(plausible_record_start(r.data(), r.size()));
  EXPECT_FALSE(plausible_record_start(c.data(), 15));  // too short to check
  Bytes bad = c;
  bad[15] = 3;  // rpcvers 3
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  bad = c;
  bad[11] = 2;  // msg_type 2
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  bad = c;
  bad[0] = bad[1] = bad[2] = 0;
  bad[3] = 0;  // zero length
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  bad = c;
  bad[0] = 0x81;  // 16 MiB + : too large
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  bad = r;
  bad[15] = 2;  // reply_stat 2
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  bad = r;
  bad[27] = 9;  // accept_stat 9
  EXPECT_FALSE(plausible_record_start(bad.data(), bad.size()));
  Bytes zeros(64, 0);
  EXPECT_FALSE(plausible_record_start(zeros.data(), zeros.size()));
}

TEST_F(Record, OneRecordInOneSegment) {
  syn(1000);
  Bytes m = call_msg(7);
  seg(1001, record(m));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, m);
  EXPECT_EQ(got[0].record_len, m.size());
  EXPECT_TRUE(got[0].complete);
  EXPECT_EQ(got[0].frame, 2u);
  EXPECT_EQ(got[0].ts.sec, 2);
  EXPECT_EQ(st().records, 1u);
  EXPECT_EQ(ra.buffered_bytes(), 0u);
}

TEST_F(Record, TwoRecordsInOneSegment) {
  syn(0);
  Bytes a = call_msg(1), b = call_msg(2, 100);
  seg(1, concat({record(a), record(b)}));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, a);
  EXPECT_EQ(got[1].data, b);
  EXPECT_EQ(got[1].frame, 2u);
}

TEST_F(Record, RecordOverThreeHundredSegments) {
  syn(5000);
  Bytes m = reply_msg(9, 300 * 100);
  Bytes s = concat({record(m), record(reply_msg(10))});
  send(5001, s, 100);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, m);
  EXPECT_EQ(got[0].record_len, m.size());
  EXPECT_TRUE(got[0].complete);
  EXPECT_EQ(got[0].frame, 2u);  // the segment with the record mark
  EXPECT_EQ(got[1].data, reply_msg(10));
  EXPECT_GE(policy_calls, 1u);
  EXPECT_EQ(ra.buffered_bytes(), 0u);
}

TEST_F(Record, MarkSplitAcrossSegments) {
  syn(0);
  Bytes s = record(call_msg(3));
  seg(1, ByteView(s).subspan(0, 2));
  seg(3, ByteView(s).subspan(2));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame, 2u);
  EXPECT_EQ(got[0].data, call_msg(3));
}

TEST_F(Record, ThreeFragmentRecord) {
  syn(0);
  Bytes m = call_msg(4, 400);
  ByteView v(m);
  Bytes s =
      concat({record(v.subspan(0, 100), false), record(v.subspan(100, 200), false), record(v.subspan(300), true)});
  seg(1, s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, m);
  EXPECT_EQ(got[0].record_len, m.size());
  EXPECT_TRUE(got[0].complete);
}

TEST_F(Record, MultiFragmentRecordWithSmallPolicy) {
  syn(0);
  Bytes m = call_msg(4, 4000);
  ByteView v(m);
  Bytes s = concat({record(v.subspan(0, 1000), false), record(v.subspan(1000, 1000), false),
                    record(v.subspan(2000), true), record(call_msg(5))});
  std::vector<uint64_t> asked_len;
  want = [&](ByteView head, uint64_t len) {
    asked_len.push_back(len);
    return size_t(64);
  };
  send(1, s, 300);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(asked_len.size(), 1u);
  EXPECT_EQ(asked_len[0], 1000u);          // asked with the first fragment's length
  EXPECT_EQ(got[0].record_len, m.size());  // delivered once the last mark was seen
  EXPECT_FALSE(got[0].complete);
  ASSERT_GE(got[0].data.size(), 64u);
  EXPECT_EQ(Bytes(got[0].data.begin(), got[0].data.begin() + 64), Bytes(m.begin(), m.begin() + 64));
  EXPECT_EQ(got[1].data, call_msg(5));
}

TEST_F(Record, Retransmission) {
  syn(0);
  Bytes s = concat({record(call_msg(1)), record(call_msg(2))});
  size_t half = s.size() / 2;
  seg(1, ByteView(s).subspan(0, half));
  seg(1, ByteView(s).subspan(0, half));  // retransmitted
  seg(1 + uint32_t(half), ByteView(s).subspan(half));
  seg(1 + uint32_t(half), ByteView(s).subspan(half));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(st().retransmitted, 2u);
}

TEST_F(Record, OverlappingSegments) {
  syn(0);
  Bytes s = concat({record(call_msg(1, 200)), record(call_msg(2, 200))});
  seg(1, ByteView(s).subspan(0, 150));
  seg(101, ByteView(s).subspan(100, 200));  // 50 bytes old, 150 new
  seg(201, ByteView(s).subspan(200));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, call_msg(1, 200));
  EXPECT_EQ(got[1].data, call_msg(2, 200));
  EXPECT_EQ(st().overlapping, 2u);
}

TEST_F(Record, OutOfOrder) {
  syn(0);
  Bytes m = call_msg(1, 1000);
  Bytes s = record(m);
  ByteView v(s);
  seg(1, v.subspan(0, 400));
  seg(801, v.subspan(800));
  seg(801, v.subspan(800));  // duplicate while waiting
  EXPECT_TRUE(got.empty());
  EXPECT_GT(ra.buffered_bytes(), 0u);
  seg(401, v.subspan(400, 400));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, m);
  EXPECT_EQ(got[0].frame, 2u);
  EXPECT_EQ(st().out_of_order, 1u);
  EXPECT_EQ(st().gaps, 0u);
  EXPECT_EQ(ra.buffered_bytes(), 0u);
}

TEST_F(Record, GapThenResync) {
  syn(0);
  Bytes a = record(call_msg(1, 100)), b = record(call_msg(2, 100)), c = record(call_msg(3, 100));
  seg(1, a);
  // b is lost; c arrives and waits; finish() gives up on the hole.
  seg(1 + uint32_t(a.size() + b.size()), c);
  EXPECT_EQ(got.size(), 1u);
  ra.finish();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].data, call_msg(3, 100));
  EXPECT_EQ(got[1].frame, 3u);
  EXPECT_EQ(st().gaps, 1u);
  EXPECT_EQ(st().resyncs, 1u);
}

TEST_F(Record, GapGivenUpWhenTooMuchIsBufferedAhead) {
  syn(0);
  Bytes lost = record(call_msg(1, 100));
  uint32_t seq = 1 + uint32_t(lost.size());
  for (int i = 0; i < 300; ++i) {
    Bytes r = record(call_msg(uint32_t(100 + i), 100));
    seg(seq, r);
    seq += uint32_t(r.size());
    EXPECT_LE(ra.buffered_bytes(), 256u * 200u);
  }
  EXPECT_EQ(st().gaps, 1u);
  ASSERT_EQ(got.size(), 300u);
  EXPECT_EQ(got[0].data, call_msg(100, 100));
  EXPECT_EQ(got[299].data, call_msg(399, 100));
  EXPECT_EQ(ra.buffered_bytes(), 0u);
}

TEST_F(Record, HoleInsideANeededRecordTruncatesIt) {
  syn(0);
  Bytes m = reply_msg(1, 2000);
  Bytes s = concat({record(m), record(reply_msg(2))});
  ByteView v(s);
  seg(1, v.subspan(0, 500));
  seg(1001, v.subspan(1000));  // 500..999 never arrives
  ra.finish();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].complete);
  EXPECT_EQ(got[0].record_len, m.size());
  EXPECT_EQ(got[0].data, Bytes(m.begin(), m.begin() + 496));
  EXPECT_EQ(got[1].data, reply_msg(2));
  EXPECT_EQ(st().gaps, 1u);
  EXPECT_EQ(st().truncated_records, 1u);
  EXPECT_EQ(st().resyncs, 0u);  // the next mark position was known
}

TEST_F(Record, MidConnectionStart) {
  // The first segment is the tail of a record we never saw the start of.
  Bytes tail = filler(300, 1);
  Bytes next = record(reply_msg(5));
  seg(777000, tail);
  seg(777300, next);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, reply_msg(5));
  EXPECT_EQ(got[0].frame, 2u);
  EXPECT_EQ(st().resyncs, 1u);
  seg(777300 + uint32_t(next.size()), record(call_msg(6)));
  ASSERT_EQ(got.size(), 2u);
}

TEST_F(Record, MidConnectionStartInsideASegment) {
  // [tail of an unknown record][record A][record B]: A is checked by B following it.
  Bytes a = record(reply_msg(5)), b = record(reply_msg(6));
  seg(10, concat({filler(37, 2), a, b}));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, reply_msg(5));
  EXPECT_EQ(got[1].data, reply_msg(6));
}

TEST_F(Record, WriteDataThatLooksLikeAHeaderIsNotTrusted) {
  // Mid-connection: WRITE payload that contains a fake call header whose claimed length
  // runs past the segment: not trusted inside a segment.
  Bytes fake = record(rpc_call(0x1234, kProgNfs, 3, 7, filler(2000, 3)));
  fake.resize(200);
  seg(50, concat({filler(100, 4), fake, filler(100, 5)}));
  EXPECT_TRUE(got.empty());
  // The next segment starts with a real record.
  seg(50 + 400, record(call_msg(8)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, call_msg(8));
}

TEST_F(Record, BadRecordMarkResyncs) {
  syn(0);
  Bytes good = record(call_msg(1));
  Bytes s = concat({good, Bytes{0, 0, 0, 0}, filler(20, 1), record(call_msg(2)), record(call_msg(3))});
  seg(1, s);
  EXPECT_EQ(st().bad_record_marks, 1u);
  EXPECT_EQ(st().resyncs, 1u);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].data, call_msg(2));
  EXPECT_EQ(got[2].data, call_msg(3));
}

TEST_F(Record, SequenceWrap) {
  syn(0xFFFFFF00u);
  Bytes s;
  for (uint32_t i = 0; i < 10; ++i) put_bytes(s, record(call_msg(i, 60)));
  uint32_t base = 0xFFFFFF01u;
  // Send out of order around the wrap point too.
  ByteView v(s);
  seg(base, v.subspan(0, 200));
  seg(base + 400, v.subspan(400));
  seg(base + 200, v.subspan(200, 200));
  seg(base + 200, v.subspan(200, 200));  // retransmitted after the wrap
  ASSERT_EQ(got.size(), 10u);
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(got[i].data, call_msg(i, 60));
  EXPECT_EQ(st().retransmitted, 1u);
  EXPECT_EQ(st().gaps, 0u);
}

class BigWrite : public Record {
 protected:
  Bytes write_call() { return rpc_call(42, kProgNfs, 3, 7, filler(1u << 20, 9)); }
  void SetUp() override {
    want = [](ByteView head, uint64_t len) { return size_t(200); };
  }
};

TEST_F(BigWrite, OnlyThePrefixIsBuffered) {
  syn(0);
  Bytes w = write_call();
  Bytes s = concat({record(w), record(call_msg(43))});
  size_t max_buffered = 0;
  for (size_t off = 0; off < s.size(); off += 1448) {
    seg(1 + uint32_t(off), ByteView(s).subspan(off, std::min<size_t>(1448, s.size() - off)));
    max_buffered = std::max(max_buffered, ra.buffered_bytes());
  }
  EXPECT_LE(max_buffered, RecordAssembler::kPeek + 4);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].record_len, w.size());
  EXPECT_FALSE(got[0].complete);
  ASSERT_GE(got[0].data.size(), 200u);
  EXPECT_LE(got[0].data.size(), RecordAssembler::kPeek);
  EXPECT_EQ(Bytes(got[0].data.begin(), got[0].data.begin() + 200), Bytes(w.begin(), w.begin() + 200));
  EXPECT_EQ(got[0].frame, 2u);
  EXPECT_EQ(got[1].data, call_msg(43));
  EXPECT_EQ(policy_calls, 1u);
  EXPECT_EQ(st().gaps, 0u);
  EXPECT_EQ(st().truncated_records, 0u);
}

TEST_F(BigWrite, SnaplenCutAndLostSegmentsInTheSkippedPartAreNotGaps) {
  syn(0);
  Bytes w = write_call();
  Bytes s = concat({record(w), record(call_msg(43))});
  size_t n = 0;
  for (size_t off = 0; off < s.size(); off += 1448, ++n) {
    size_t len = std::min<size_t>(1448, s.size() - off);
    bool in_write_body = off > 1448 && off + len < w.size() + 4;
    if (in_write_body && n % 50 == 7) continue;  // lost
    ByteView v = ByteView(s).subspan(off, len);
    if (in_write_body && n % 3 == 0) v = v.subspan(0, 60);  // snaplen 60 payload bytes
    seg(1 + uint32_t(off), v, uint32_t(len));
    EXPECT_LE(ra.buffered_bytes(), 4096u);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].data, call_msg(43));
  EXPECT_EQ(st().gaps, 0u);
  EXPECT_EQ(st().resyncs, 0u);
}

TEST_F(BigWrite, FinishInsideTheSkippedPart) {
  syn(0);
  Bytes w = write_call();
  Bytes s = record(w);
  seg(1, ByteView(s).subspan(0, 5000));
  ASSERT_EQ(got.size(), 1u);  // delivered as soon as the needed prefix was there
  ra.finish();
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(st().truncated_records, 0u);
}

TEST_F(Record, NewSynRestartsTheStream) {
  syn(100);
  Bytes s = record(call_msg(1, 500));
  seg(101, ByteView(s).subspan(0, 100));
  syn(0x80000000u);  // a new ISN far from the old stream
  seg(0x80000001u, record(call_msg(2)));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].complete);
  EXPECT_EQ(got[1].data, call_msg(2));
}

TEST_F(Record, SynNearTheStreamPositionIsNotANewConnection) {
  // A corrupted header with the SYN bit (seen in real captures) must not move the stream
  // back and deliver records again.
  syn(1000);
  Bytes a = record(call_msg(1)), b = record(call_msg(2));
  seg(1001, a);
  seg(1001, a, 0, true);  // "SYN" carrying a retransmission
  seg(1001 + uint32_t(a.size()), b);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].data, call_msg(2));
  EXPECT_EQ(st().retransmitted, 1u);
}

}  // namespace
}  // namespace nfsfence
