// The decoder's memory and idle bounds, apart from the decoder so that its configuration
// (ReplayOptions, the CLI) does not pull in the capture pipeline.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nfsfence {

// Bounds on the decoder's memory in total (per flow and per call the reassembler and the
// XID table have their own): the TCP flows' reassembly state, the calls waiting for their
// replies and the replies waiting for their calls share one byte budget; when it is
// exceeded the least recently active flow or the oldest call goes first (counted). Flows
// idle for idle_seconds of capture time are closed as a FIN would (counted as info).
struct DecoderLimits {
  size_t memory_bytes = 48u << 20;  // with the rest of the process: under 100 MB of RSS
  int64_t idle_seconds = 300;
};

}  // namespace nfsfence
