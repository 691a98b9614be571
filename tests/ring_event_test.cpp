// The agent's ring-event path without root or BPF: nfsf_event records (the ABI the programs
// write) through parse_ring_event / feed_ring_event, and the reply-lag summary.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "nfs/ring_event.h"
#include "nfsfence_abi.h"

namespace nfsfence {
namespace {

std::vector<uint8_t> event(uint32_t type, uint32_t flags, const std::vector<uint8_t>& data, uint32_t wire_len) {
  std::vector<uint8_t> buf(offsetof(nfsf_event, data) + data.size());
  nfsf_event ev{};
  ev.type = type;
  ev.flags = flags;
  ev.len = uint32_t(data.size());
  ev.ts_ns = 5'000'000'123ull;
  ev.flow.family = 4;
  ev.flow.proto = 6;
  ev.flow.saddr[0] = 10, ev.flow.saddr[3] = 2;
  ev.flow.daddr[0] = 10, ev.flow.daddr[3] = 1;
  ev.flow.sport = htons(2049);
  ev.flow.dport = htons(812);
  ev.seq = 777;
  ev.wire_len = wire_len;
  std::memcpy(buf.data(), &ev, offsetof(nfsf_event, data));
  std::memcpy(buf.data() + offsetof(nfsf_event, data), data.data(), data.size());
  return buf;
}

TEST(RingEvent, FieldsComeThroughAndTimeIsShiftedToWallClock) {
  auto b = event(NFSF_EV_STREAM, NFSF_EVF_INGRESS | NFSF_EVF_REC_HEAD, {1, 2, 3, 4, 5, 6, 7, 8}, 100);
  RingEvent ev;
  ASSERT_TRUE(parse_ring_event(b.data(), b.size(), 1'000'000'000, 42, ev));
  EXPECT_EQ(ev.type, uint32_t(NFSF_EV_STREAM));
  EXPECT_EQ(ev.flags, uint32_t(NFSF_EVF_INGRESS | NFSF_EVF_REC_HEAD));
  EXPECT_EQ(ev.mono_ns, 5'000'000'123ull);
  EXPECT_EQ(ev.pkt.ts.sec, 6);
  EXPECT_EQ(ev.pkt.ts.nsec, 123);
  EXPECT_EQ(ev.pkt.flow.transport, Transport::Tcp);
  EXPECT_EQ(ev.pkt.flow.src.port, 2049);
  EXPECT_EQ(ev.pkt.flow.dst.port, 812);
  EXPECT_EQ(ev.pkt.flow.src.addr[3], 2);
  EXPECT_FALSE(ev.pkt.flow.src.v6);
  EXPECT_EQ(ev.pkt.seq, 777u);
  EXPECT_EQ(ev.pkt.payload.size(), 8u);
  EXPECT_EQ(ev.pkt.wire_payload_len, 100u);
  EXPECT_EQ(ev.pkt.frame, 42u);
}

// The agent looks an answered WRITE up in `poisoned` by the reply's flow: the key it builds
// must be the bytes the program wrote (an IPv4 and a UDP/IPv6 flow).
TEST(RingEvent, KernelFlowKeyIsTheInverseOfTheEventsFlow) {
  for (bool v6 : {false, true}) {
    auto b = event(NFSF_EV_STREAM, NFSF_EVF_INGRESS, {1, 2, 3, 4}, 4);
    auto* raw = reinterpret_cast<nfsf_event*>(b.data());
    if (v6) {
      raw->flow.family = 6;
      raw->flow.proto = 17;
      raw->flow.saddr[15] = 9;
      raw->flow.daddr[0] = 0xfe;
    }
    RingEvent ev;
    ASSERT_TRUE(parse_ring_event(b.data(), b.size(), 0, 1, ev));
    nfsf_flow_key k = to_kernel_flow(ev.pkt.flow);
    EXPECT_EQ(std::memcmp(&k, &raw->flow, sizeof k), 0) << "v6=" << v6;
    EXPECT_EQ(k.sport, htons(2049));
  }
}

TEST(RingEvent, LengthsAreClampedToWhatTheRecordHolds) {
  auto b = event(NFSF_EV_STREAM, 0, {9, 9, 9, 9}, 0);
  reinterpret_cast<nfsf_event*>(b.data())->len = 1u << 30;  // a lying length
  RingEvent ev;
  ASSERT_TRUE(parse_ring_event(b.data(), b.size(), 0, 1, ev));
  EXPECT_EQ(ev.pkt.payload.size(), 4u);
  EXPECT_EQ(ev.pkt.wire_payload_len, 4u);  // never less than the payload
  EXPECT_FALSE(parse_ring_event(b.data(), offsetof(nfsf_event, data) - 1, 0, 1, ev));
}

TEST(EventLag, PercentilesOverTheWindowAndTheMaxOfAll) {
  EventLag lag;
  EXPECT_EQ(lag.summary().n, 0u);
  EXPECT_EQ(lag.summary().p99_ns, 0u);
  lag.add(1'000'000'000);  // one slow event, then pushed out of the window
  for (uint64_t i = 1; i <= EventLag::kWindow; i++) lag.add(i * 1000);
  auto s = lag.summary();
  EXPECT_EQ(s.n, EventLag::kWindow + 1);
  EXPECT_EQ(s.max_ns, 1'000'000'000u);
  EXPECT_EQ(s.p50_ns, (EventLag::kWindow / 2 + 1) * 1000);
  EXPECT_EQ(s.p99_ns, (size_t(0.99 * EventLag::kWindow) + 1) * 1000);
}

}  // namespace
}  // namespace nfsfence
