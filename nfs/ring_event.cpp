#include "nfs/ring_event.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>

#include "nfsfence_abi.h"

namespace nfsfence {

bool parse_ring_event(const void* data, size_t size, int64_t mono_to_real_ns, uint64_t frame, RingEvent& out) {
  if (size < offsetof(nfsf_event, data)) return false;
  const auto* ev = static_cast<const nfsf_event*>(data);
  uint32_t len = uint32_t(std::min<size_t>(ev->len, size - offsetof(nfsf_event, data)));
  len = std::min<uint32_t>(len, NFSF_EVENT_DATA_MAX);
  out = RingEvent{};
  out.type = ev->type;
  out.flags = ev->flags;
  L4Packet& p = out.pkt;
  p.flow.transport = ev->flow.proto == 17 ? Transport::Udp : Transport::Tcp;
  bool v6 = ev->flow.family == 6;
  p.flow.src.v6 = p.flow.dst.v6 = v6;
  std::memcpy(p.flow.src.addr.data(), ev->flow.saddr, 16);
  std::memcpy(p.flow.dst.addr.data(), ev->flow.daddr, 16);
  p.flow.src.port = ntohs(ev->flow.sport);
  p.flow.dst.port = ntohs(ev->flow.dport);
  p.seq = ev->seq;
  p.payload = ByteView(ev->data, len);
  p.wire_payload_len = std::max(ev->wire_len, len);
  p.frame = p.first_frame = frame;
  // Unsigned arithmetic, then the split: a stamp near 2^64 must not overflow int64.
  uint64_t real = ev->ts_ns + uint64_t(mono_to_real_ns);
  p.ts = Timestamp{int64_t(real / 1000000000ull), int64_t(real % 1000000000ull)};
  return true;
}

void feed_ring_event(Decoder& dec, const RingEvent& ev) {
  if (ev.type == NFSF_EV_FLOW_END) {
    dec.close_flow(ev.pkt.flow);
    if (ev.flags & NFSF_EVF_RST) dec.close_flow(ev.pkt.flow.reversed());
    return;
  }
  if (ev.flags & NFSF_EVF_NEW_CONN) dec.close_flow(ev.pkt.flow);
  dec.feed_l4(ev.pkt);
}

}  // namespace nfsfence
