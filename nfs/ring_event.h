// The BPF ring buffer's events (struct nfsf_event, bpf/include/nfsfence_abi.h) as decoder
// input: what the live agent does with each one, apart from the agent so that it can be
// unit-tested and fuzzed without root or BPF.
#pragma once

#include <array>

#include "nfs/decoder.h"
#include "nfsfence_abi.h"

namespace nfsfence {

struct RingEvent {
  uint32_t type = 0;     // enum nfsf_event_type
  uint32_t flags = 0;    // enum nfsf_event_flags
  uint64_t mono_ns = 0;  // when the program made it (CLOCK_MONOTONIC, bpf_ktime_get_ns)
  L4Packet pkt;          // payload points into the event
};

// How long events waited between the program and the agent: exact percentiles over the
// last kWindow, the count and the largest of all.
class EventLag {
 public:
  static constexpr size_t kWindow = 4096;
  void add(uint64_t ns);
  struct Summary {
    uint64_t n = 0;       // events ever added
    uint64_t sum_ns = 0;  // of all of them (saturating)
    uint64_t p50_ns = 0, p99_ns = 0, max_ns = 0;
  };
  Summary summary() const;

 private:
  std::array<uint64_t, kWindow> ring_{};
  uint64_t n_ = 0, max_ = 0, sum_ = 0;
};

// False if `size` bytes cannot hold an event header. Lengths inside the event are clamped
// to what `size` holds; `mono_to_real_ns` turns the event's CLOCK_MONOTONIC stamp into
// wall time; `frame` numbers it for the decoder.
bool parse_ring_event(const void* data, size_t size, int64_t mono_to_real_ns, uint64_t frame, RingEvent& out);

// The kernel's key of a flow (struct nfsf_flow_key): the inverse of what parse_ring_event
// reads from an event, for lookups in the maps keyed by flow (poisoned, flows, ...).
nfsf_flow_key to_kernel_flow(const FlowKey& f);

// FLOW_END closes the direction's stream state (RST: both directions), NEW_CONN starts it
// anew (a reused 4-tuple's sequence numbers have nothing to do with the old stream's),
// everything else is fed to the decoder.
void feed_ring_event(Decoder& dec, const RingEvent& ev);

}  // namespace nfsfence
