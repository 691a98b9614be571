#include "nfs/ring_event.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <vector>

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
  out.mono_ns = ev->ts_ns;
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

nfsf_flow_key to_kernel_flow(const FlowKey& f) {
  nfsf_flow_key k{};
  std::memcpy(k.saddr, f.src.addr.data(), 16);
  std::memcpy(k.daddr, f.dst.addr.data(), 16);
  k.sport = htons(f.src.port);
  k.dport = htons(f.dst.port);
  k.family = f.src.v6 ? 6 : 4;
  k.proto = uint8_t(f.transport);
  return k;
}

void EventLag::add(uint64_t ns) {
  ring_[n_++ % kWindow] = ns;
  max_ = std::max(max_, ns);
  sum_ = sum_ + ns < sum_ ? UINT64_MAX : sum_ + ns;
}

EventLag::Summary EventLag::summary() const {
  Summary s;
  s.n = n_;
  s.max_ns = max_;
  s.sum_ns = sum_;
  size_t k = size_t(std::min<uint64_t>(n_, kWindow));
  if (k == 0) return s;
  std::vector<uint64_t> v(ring_.begin(), ring_.begin() + long(k));
  auto at = [&](double q) {
    size_t i = std::min(k - 1, size_t(q * double(k)));
    std::nth_element(v.begin(), v.begin() + long(i), v.end());
    return v[i];
  };
  s.p50_ns = at(0.50);
  s.p99_ns = at(0.99);
  return s;
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
