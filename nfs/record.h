// TCP stream reassembly that follows ONC-RPC record marking (RFC 5531 section 11).
//
// One RecordAssembler per directed TCP flow. It turns segments (in any order, with
// retransmissions, overlaps and gaps) into RPC records. It never buffers a whole large
// record: once it has seen the first bytes of a record it asks the PrefixPolicy how many
// bytes of it the decoder needs (all of a LOOKUP reply, only the header of a WRITE call)
// and skips the rest without storing it. Memory per flow is bounded.
#pragma once

#include <functional>
#include <memory>

#include "nfs/common.h"

namespace nfsfence {

struct RecordHead {
  uint64_t frame = 0;       // frame of the segment holding the record's first byte
  Timestamp ts;             // its timestamp
  ByteView data;            // the first bytes of the record (fragment marks removed)
  uint64_t record_len = 0;  // total record length (sum of fragment lengths), when known
  bool complete = false;    // data holds the whole record
};

struct RecordStats {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t retransmitted = 0;      // segments wholly before the stream position
  uint64_t overlapping = 0;        // segments partly before the stream position (front trimmed)
  uint64_t out_of_order = 0;       // segments buffered ahead of the stream position
  uint64_t gaps = 0;               // stream holes given up on
  uint64_t resyncs = 0;            // times a plausible RPC header was searched for
  uint64_t bad_record_marks = 0;   // implausible marks (zero length, > max record)
  uint64_t truncated_records = 0;  // records whose needed prefix had holes
};

// Given the first bytes of a record (at least min(record_len, kPeek) of them) and its
// length, return how many bytes the decoder needs (<= record_len).
using PrefixPolicy = std::function<size_t(ByteView head, uint64_t record_len)>;

class RecordAssembler {
 public:
  static constexpr size_t kPeek = 256;
  static constexpr uint32_t kMaxFragment = 16u << 20;  // larger marks are implausible

  using Sink = std::function<void(const RecordHead&)>;
  RecordAssembler(PrefixPolicy policy, Sink sink);
  ~RecordAssembler();
  // Feeds one TCP segment's payload. `seq` is the sequence number of payload[0];
  // `syn` marks the SYN segment (the stream starts at seq+1).
  void segment(uint32_t seq, ByteView payload, uint32_t wire_len, bool syn, uint64_t frame, Timestamp ts);
  // End of capture or FIN/RST: flush what is buffered.
  void finish();
  // Gives up every hole: the segments waiting behind them are delivered now (the other
  // direction is ending, so no retransmission will fill them in time to matter).
  void flush_out_of_order();
  const RecordStats& stats() const;
  size_t buffered_bytes() const;  // for the memory bound tests
  // Heap this assembler holds (buffers' capacity and its own state), for the decoder's
  // global memory budget.
  size_t memory_bytes() const;
  // Segments are waiting behind a hole: a call in them has not been delivered yet.
  bool has_out_of_order() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True if `p` (n bytes) looks like the start of an RPC record: a record mark with a
// plausible length followed by an RPC CALL or REPLY header. Used to resynchronise.
bool plausible_record_start(const uint8_t* p, size_t n);

}  // namespace nfsfence
