// The streaming decoder: packets in, RPC messages out. Used by `decode`, `replay` and the
// live agent (which feeds it stream slices from the BPF ring buffer instead of packets).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "nfs/capture.h"
#include "nfs/decoder_limits.h"
#include "nfs/netparse.h"
#include "nfs/record.h"
#include "nfs/rpc_message.h"

namespace nfsfence {

struct DecodeStats {
  uint64_t rpc_messages = 0;
  uint64_t calls = 0, replies = 0;
  uint64_t unmatched_replies = 0;
  uint64_t duplicate_calls = 0;  // retransmitted calls (same xid, same flow)
  uint64_t malformed_rpc = 0;    // payloads that are not RPC
  uint64_t truncated_rpc = 0;    // messages cut before a needed field
  uint64_t malformed_nfs = 0;    // NFS/MOUNT bodies that do not decode
  uint64_t not_decoded = 0;      // RPC of other programs/versions (NFSv4, NFSACL, ...)
  uint64_t pending_evicted = 0;  // calls never answered, evicted from the XID table
  // The global memory budget (DecoderLimits::memory_bytes) at work:
  uint64_t flows_evicted = 0;                      // TCP flows dropped to stay within the budget
  uint64_t calls_evicted = 0;                      // unanswered calls dropped to stay within it
  uint64_t flows_idle_closed = 0;                  // TCP flows closed after DecoderLimits::idle_seconds
  uint64_t replies_reordered = 0;                  // replies held (their call was behind a hole, or an earlier
                                                   // reply of their flow was held), then decoded with their call
  uint64_t replies_held_unmatched = 0;             // replies held, then released without a call (also unmatched)
  std::map<std::string, uint64_t> other_programs;  // "100003v4" -> count
};

class Decoder {
 public:
  using Sink = std::function<void(const RpcMessage&)>;
  explicit Decoder(Sink sink, DecoderLimits limits = {});
  ~Decoder();
  void feed(const RawPacket& pkt);
  // For the agent: TCP stream bytes of a flow (from the ring buffer) and UDP datagrams.
  void feed_l4(const L4Packet& l4);
  void finish();  // flush per-flow buffers (end of capture)
  // Ends one TCP flow as a FIN would (the agent sees no TCP flags: it calls this when a
  // stream slice shows a new connection reusing the 4-tuple).
  void close_flow(const FlowKey& flow);

  const NetStats& net_stats() const;
  const DecodeStats& stats() const;
  RecordStats record_stats() const;  // summed over flows
  size_t flows() const;
  size_t memory_bytes() const;  // what the budget counts now

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nfsfence
