// The agent's ring-event path: arbitrary event records through parse_ring_event and
// feed_ring_event (as src/agent.cpp does with every ring buffer sample) into the decoder
// and the accounting engine, with a small decoder budget so that eviction runs too.
// Input: [u16 size][bytes]... each chunk one ring buffer sample of that many bytes.
#include "nfs/accounting.h"
#include "nfs/ring_event.h"
#include "nfsfence_abi.h"

using namespace nfsfence;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Policy policy = [] {
    auto p = parse_policy(
        "export: /e\ntrees:\n  - {name: a, path: a, limit: 1M}\n  - {name: b, path: a/b, limit: 2M}\n", "fuzz");
    if (!p) __builtin_trap();
    return *p;
  }();
  Accounting acct(policy, 4096);
  DecoderLimits lim;
  lim.memory_bytes = 256 << 10;
  Decoder dec([&](const RpcMessage& m) { acct.on_message(m); }, lim);
  alignas(8) uint8_t ev[sizeof(nfsf_event)];
  size_t pos = 0;
  uint64_t frame = 0;
  while (pos + 2 <= size) {
    size_t n = std::min<size_t>(load_be16(data + pos), size - pos - 2);
    n = std::min(n, sizeof ev);
    std::memcpy(ev, data + pos + 2, n);
    pos += 2 + n;
    RingEvent re;
    if (!parse_ring_event(ev, n, 0, frame + 1, re)) continue;
    frame++;
    feed_ring_event(dec, re);
  }
  dec.finish();
  for (auto& t : acct.trees())
    if (t.peak < t.usage) __builtin_trap();  // peak is a maximum of usage
  return 0;
}
