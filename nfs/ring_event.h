// The BPF ring buffer's events (struct nfsf_event, bpf/include/nfsfence_abi.h) as decoder
// input: what the live agent does with each one, apart from the agent so that it can be
// unit-tested and fuzzed without root or BPF.
#pragma once

#include "nfs/decoder.h"

namespace nfsfence {

struct RingEvent {
  uint32_t type = 0;   // enum nfsf_event_type
  uint32_t flags = 0;  // enum nfsf_event_flags
  L4Packet pkt;        // payload points into the event
};

// False if `size` bytes cannot hold an event header. Lengths inside the event are clamped
// to what `size` holds; `mono_to_real_ns` turns the event's CLOCK_MONOTONIC stamp into
// wall time; `frame` numbers it for the decoder.
bool parse_ring_event(const void* data, size_t size, int64_t mono_to_real_ns, uint64_t frame, RingEvent& out);

// FLOW_END closes the direction's stream state (RST: both directions), NEW_CONN starts it
// anew (a reused 4-tuple's sequence numbers have nothing to do with the old stream's),
// everything else is fed to the decoder.
void feed_ring_event(Decoder& dec, const RingEvent& ev);

}  // namespace nfsfence
