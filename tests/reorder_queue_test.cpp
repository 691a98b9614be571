// The TCP reorder queue on its own (nfs/reorder_queue.h). How the record assembler uses it
// (holes filled, given up, resynchronised) is tested through RecordAssembler in
// record_test.cpp.
#include <gtest/gtest.h>

#include "nfs/reorder_queue.h"

namespace nfsfence {
namespace {

Bytes payload(size_t n, uint8_t fill) { return Bytes(n, fill); }

TEST(ReorderQueue, HeldInSequenceOrderAsCopies) {
  ReorderQueue q;
  Bytes a = payload(100, 3), b = payload(100, 1), c = payload(100, 2);
  ASSERT_TRUE(q.insert(1000, 1300, a, 100, 7, Timestamp{7, 0}));
  ASSERT_TRUE(q.insert(1000, 1100, b, 100, 5, Timestamp{5, 0}));
  ASSERT_TRUE(q.insert(1000, 1200, c, 150, 6, Timestamp{6, 0}));  // snaplen: 150 on the wire
  a.assign(a.size(), 0xff);                                       // the caller's buffer is gone: the queue holds copies
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 300u);
  EXPECT_EQ(q.front().seq, 1100u);

  HeldSegment s = q.pop_front();
  EXPECT_EQ(s.seq, 1100u);
  EXPECT_EQ(s.data, payload(100, 1));
  EXPECT_EQ(s.frame, 5u);
  EXPECT_EQ(s.ts.sec, 5);
  EXPECT_EQ(q.bytes(), 200u);
  s = q.pop_front();
  EXPECT_EQ(s.seq, 1200u);
  EXPECT_EQ(s.wire, 150u);
  EXPECT_EQ(s.data.size(), 100u);
  s = q.pop_front();
  EXPECT_EQ(s.seq, 1300u);
  EXPECT_EQ(s.data, payload(100, 3));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(ReorderQueue, OrderIsRelativeToThePositionAcrossTheWrap) {
  ReorderQueue q;
  const uint32_t pos = 0xFFFFFF00u;
  ASSERT_TRUE(q.insert(pos, 0x00000010u, payload(10, 1), 10, 1, {}));
  ASSERT_TRUE(q.insert(pos, 0xFFFFFF80u, payload(10, 2), 10, 2, {}));
  ASSERT_TRUE(q.insert(pos, 0xFFFFFFF0u, payload(10, 3), 10, 3, {}));
  EXPECT_EQ(q.pop_front().seq, 0xFFFFFF80u);
  EXPECT_EQ(q.pop_front().seq, 0xFFFFFFF0u);
  EXPECT_EQ(q.pop_front().seq, 0x00000010u);
}

TEST(ReorderQueue, RetransmissionWhileWaitingIsRefused) {
  ReorderQueue q;
  ASSERT_TRUE(q.insert(0, 100, payload(50, 1), 50, 1, {}));
  EXPECT_FALSE(q.insert(0, 100, payload(50, 1), 50, 2, {}));  // the same segment again
  EXPECT_FALSE(q.insert(0, 100, payload(30, 1), 50, 3, {}));  // again, cut by a snaplen
  EXPECT_FALSE(q.insert(0, 100, payload(20, 1), 20, 4, {}));  // a shorter one
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 50u);
  // Longer on the wire or in captured bytes: held too (it may cover more of the hole).
  EXPECT_TRUE(q.insert(0, 100, payload(50, 1), 80, 5, {}));
  EXPECT_TRUE(q.insert(0, 100, payload(80, 1), 80, 6, {}));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 180u);
  // The same sequence number elsewhere in the stream is another segment.
  EXPECT_TRUE(q.insert(0, 200, payload(50, 1), 50, 7, {}));
}

TEST(ReorderQueue, BoundsOnSegmentsAndBytes) {
  ReorderQueue q;
  uint32_t seq = 10;
  for (size_t i = 0; i < ReorderQueue::kMaxSegments; ++i, ++seq) {
    ASSERT_TRUE(q.insert(0, seq, payload(1, 0), 1, i, {}));
    EXPECT_FALSE(q.over_bounds());
  }
  ASSERT_TRUE(q.insert(0, seq, payload(1, 0), 1, 0, {}));
  EXPECT_TRUE(q.over_bounds());
  q.pop_front();
  EXPECT_FALSE(q.over_bounds());

  ReorderQueue big;
  ASSERT_TRUE(big.insert(0, 10, payload(ReorderQueue::kMaxBytes, 0), ReorderQueue::kMaxBytes, 1, {}));
  EXPECT_FALSE(big.over_bounds());
  ASSERT_TRUE(big.insert(0, 5, payload(1, 0), 1, 2, {}));
  EXPECT_TRUE(big.over_bounds());
  big.clear();
  EXPECT_FALSE(big.over_bounds());
  EXPECT_EQ(big.bytes(), 0u);
}

TEST(ReorderQueue, DropBehindDropsTheLeadingSegmentsThePositionPassed) {
  ReorderQueue q;
  ASSERT_TRUE(q.insert(0, 10, payload(10, 1), 10, 1, {}));  // [10, 20)
  ASSERT_TRUE(q.insert(0, 20, payload(5, 2), 10, 2, {}));   // [20, 30) on the wire
  ASSERT_TRUE(q.insert(0, 25, payload(15, 3), 15, 3, {}));  // [25, 40)
  ASSERT_TRUE(q.insert(0, 30, payload(5, 4), 5, 4, {}));    // [30, 35)
  ASSERT_TRUE(q.insert(0, 50, payload(10, 5), 10, 5, {}));  // [50, 60)
  q.drop_behind(30);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 30u);
  EXPECT_EQ(q.front().seq, 25u);  // ends past 30: kept
  // Only the leading run goes: [30, 35) stays behind [25, 40) even at 36.
  q.drop_behind(36);
  EXPECT_EQ(q.size(), 3u);
  q.drop_behind(60);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(ReorderQueue, BuffersAreReusedWithinBounds) {
  ReorderQueue q;
  ASSERT_TRUE(q.insert(0, 10, payload(1000, 1), 1000, 1, {}));
  HeldSegment s = q.pop_front();
  const uint8_t* buf = s.data.data();
  q.recycle(std::move(s.data));
  ASSERT_TRUE(q.insert(0, 2000, payload(500, 2), 500, 2, {}));
  EXPECT_EQ(q.front().data.data(), buf);  // the spare buffer was used
  EXPECT_EQ(q.front().data, payload(500, 2));
  q.clear();

  // At most a few spare buffers, none of them large.
  ReorderQueue r;
  for (uint32_t i = 0; i < 40; ++i) ASSERT_TRUE(r.insert(0, 10 + i * 1000, payload(1000, 1), 1000, i, {}));
  EXPECT_GE(r.memory_bytes(), 40u * 1000);
  std::vector<Bytes> out;
  while (!r.empty()) out.push_back(r.pop_front().data);
  for (Bytes& b : out) r.recycle(std::move(b));
  size_t spares = r.memory_bytes();
  EXPECT_LT(spares, 40u * 1000);  // not every buffer is kept
  for (int i = 0; i < 10; ++i) r.recycle(Bytes(1000));
  EXPECT_EQ(r.memory_bytes(), spares);  // and the spare pool is full
  ASSERT_TRUE(r.insert(0, 10, payload(1u << 20, 1), 1u << 20, 1, {}));
  Bytes large = r.pop_front().data;
  size_t before = r.memory_bytes();
  r.recycle(std::move(large));
  EXPECT_EQ(r.memory_bytes(), before);  // a 1 MiB buffer is not kept
}

}  // namespace
}  // namespace nfsfence
