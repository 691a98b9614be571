// The segments of one directed TCP flow that arrived ahead of the stream position, waiting
// for the hole in front of them: RecordAssembler's reorder queue (nfs/record.h), apart
// from its record-marking state machine.
//
// Segments are copied in (the capture's buffer does not outlive the call) and kept sorted
// by sequence number relative to the stream position at insertion (32-bit serial
// arithmetic, so sequence wrap-around is free). The queue does not decide when a hole is
// given up: over_bounds() says when it holds more than kMaxSegments segments or kMaxBytes
// captured bytes, and the assembler then gives up the first hole. The buffers of segments
// taken out can be given back for reuse (a few, of bounded size).
#pragma once

#include <vector>

#include "nfs/common.h"

namespace nfsfence {

struct HeldSegment {
  uint32_t seq = 0;   // sequence number of data[0]
  uint32_t wire = 0;  // payload length on the wire (>= data.size() under a snaplen)
  Bytes data;         // the captured payload
  uint64_t frame = 0;
  Timestamp ts;
};

class ReorderQueue {
 public:
  static constexpr size_t kMaxBytes = 4u << 20;
  static constexpr size_t kMaxSegments = 256;

  // Holds a copy of a segment that starts ahead of `pos`. False, and nothing held, when a
  // segment at the same sequence number that is at least as long (on the wire and in
  // captured bytes) is already waiting: a retransmission.
  bool insert(uint32_t pos, uint32_t seq, ByteView payload, uint32_t wire, uint64_t frame, Timestamp ts);
  // Drops the leading segments that end at or before `pos`: the stream has passed them.
  void drop_behind(uint32_t pos);
  // The first segment (lowest sequence number); only when !empty().
  const HeldSegment& front() const { return q_.front(); }
  // Takes the first segment out; its buffer can be handed back with recycle().
  HeldSegment pop_front();
  void recycle(Bytes&& buf);
  void clear();

  bool empty() const { return q_.empty(); }
  size_t size() const { return q_.size(); }
  size_t bytes() const { return bytes_; }  // captured bytes held
  bool over_bounds() const { return q_.size() > kMaxSegments || bytes_ > kMaxBytes; }
  // Heap the queue holds: its segments and spare buffers, by capacity.
  size_t memory_bytes() const;

 private:
  static constexpr size_t kMaxSpare = 16;
  static constexpr size_t kMaxSpareCapacity = 256u << 10;

  std::vector<HeldSegment> q_;
  size_t bytes_ = 0;
  std::vector<Bytes> spare_;
};

}  // namespace nfsfence
