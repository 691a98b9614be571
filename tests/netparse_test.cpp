#include <gtest/gtest.h>

#include "nfs/netparse.h"
#include "test_util.h"

namespace nfsfence {
namespace {

using namespace nfsfence::test;

struct Got {
  L4Packet pkt;
  Bytes payload;
};

class NetParse : public ::testing::Test {
 protected:
  std::vector<Got> got;
  NetParser parser{[this](const L4Packet& p) { got.push_back({p, Bytes(p.payload.begin(), p.payload.end())}); }};
  uint64_t frame = 0;

  void feed(ByteView data, int linktype = kLinkEthernet, uint32_t wire_len = 0, int64_t sec = 100) {
    RawPacket r;
    r.frame = ++frame;
    r.ts.sec = sec;
    r.data = data.data();
    r.caplen = uint32_t(data.size());
    r.wire_len = wire_len ? wire_len : uint32_t(data.size());
    r.linktype = linktype;
    parser.feed(r);
  }
  const NetStats& st() const { return parser.stats(); }
};

const Bytes kPayload = {'h', 'e', 'l', 'l', 'o', '!', 0, 1, 2, 3};

TEST_F(NetParse, EthernetIpv4Tcp) {
  feed(eth_tcp4("10.0.0.1", 800, "10.0.0.2", 2049, 0xdeadbeef, kPsh | kAck, kPayload));
  ASSERT_EQ(got.size(), 1u);
  const L4Packet& p = got[0].pkt;
  EXPECT_EQ(p.flow.transport, Transport::Tcp);
  EXPECT_EQ(p.flow.src.str(), "10.0.0.1:800");
  EXPECT_EQ(p.flow.dst.str(), "10.0.0.2:2049");
  EXPECT_EQ(p.seq, 0xdeadbeefu);
  EXPECT_EQ(p.tcp_flags, kPsh | kAck);
  EXPECT_EQ(got[0].payload, kPayload);
  EXPECT_EQ(p.wire_payload_len, kPayload.size());
  EXPECT_EQ(p.frame, 1u);
  EXPECT_EQ(p.first_frame, 1u);
  EXPECT_EQ(p.ts.sec, 100);
  EXPECT_EQ(st().packets, 1u);
}

TEST_F(NetParse, TcpWithOptions) {
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, 5, kAck, kPayload, 12))));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
}

TEST_F(NetParse, Ipv4OptionsAreSkipped) {
  Ipv4Opts o;
  o.option_bytes = 8;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload), o)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
}

TEST_F(NetParse, EthernetPaddingIsStripped) {
  Bytes f = eth_udp4("10.0.0.1", 1000, "10.0.0.2", 2049, Bytes{1, 2});
  f.resize(60, 0xee);  // minimum frame size
  feed(f);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, (Bytes{1, 2}));
  EXPECT_EQ(got[0].pkt.wire_payload_len, 2u);
  EXPECT_EQ(got[0].pkt.flow.transport, Transport::Udp);
}

TEST_F(NetParse, Vlan8021Q) {
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload)), {0x8100}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
}

TEST_F(NetParse, VlanQinQ) {
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 17, udp(1, 2, kPayload)), {0x88A8, 0x8100, 0x8100}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
  EXPECT_EQ(got[0].pkt.flow.src.str(), "[fe80::1]:1");
}

TEST_F(NetParse, TooManyVlanTagsIsMalformed) {
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload)),
                {0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100}));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st().malformed, 1u);
}

TEST_F(NetParse, TruncatedVlanTag) {
  Bytes f = hex("020000000002 020000000001 8100 00");
  feed(f);
  EXPECT_EQ(st().truncated, 1u);
}

TEST_F(NetParse, NonIpAndShortEthernet) {
  feed(ethernet(0x0806, Bytes(28, 0)));  // ARP
  feed(hex("0200000000020200"));         // 8 bytes
  EXPECT_EQ(st().non_ip, 1u);
  EXPECT_EQ(st().truncated, 1u);
  EXPECT_TRUE(got.empty());
}

TEST_F(NetParse, LinuxCookedV1AndV2) {
  Bytes ip = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload));
  feed(sll(0x0800, ip), kLinkLinuxSll);
  feed(sll2(0x0800, ip), kLinkLinuxSll2);
  feed(Bytes(15, 0), kLinkLinuxSll);
  feed(Bytes(19, 0), kLinkLinuxSll2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, kPayload);
  EXPECT_EQ(got[1].payload, kPayload);
  EXPECT_EQ(st().truncated, 2u);
}

TEST_F(NetParse, RawIpLinkTypes) {
  Bytes v4 = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload));
  Bytes v6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(1, 2, kPayload));
  feed(v4, kLinkRaw);
  feed(v6, kLinkRaw);
  feed(v4, 12);
  feed(v6, 14);
  feed(v4, kLinkIpv4);
  feed(v6, kLinkIpv6);
  ASSERT_EQ(got.size(), 6u);
  for (const Got& g : got) EXPECT_EQ(g.payload, kPayload);
  EXPECT_FALSE(got[0].pkt.flow.src.v6);
  EXPECT_TRUE(got[1].pkt.flow.src.v6);
  EXPECT_EQ(got[1].pkt.flow.dst.addr_str(), "2001:db8::2");
  feed(hex("50"), kLinkRaw);  // version 5
  EXPECT_EQ(st().malformed, 1u);
  feed(v6, kLinkIpv4);  // version mismatch
  EXPECT_EQ(st().malformed, 2u);
}

TEST_F(NetParse, BsdNullLoopback) {
  Bytes v4 = ipv4("127.0.0.1", "127.0.0.1", 6, tcp(700, 2049, 1, kAck, kPayload));
  Bytes v6 = ipv6("::1", "::1", 6, tcp(700, 2049, 1, kAck, kPayload));
  feed(null_loop(2, v4, true), kLinkNull);
  feed(null_loop(2, v4, false), kLinkNull);
  feed(null_loop(30, v6, true), kLinkNull);   // macOS AF_INET6
  feed(null_loop(24, v6, false), kLinkNull);  // NetBSD/OpenBSD, big-endian host
  feed(null_loop(10, v6, true), kLinkNull);   // Linux AF_INET6
  feed(null_loop(7, v4, true), kLinkNull);
  ASSERT_EQ(got.size(), 5u);
  for (const Got& g : got) EXPECT_EQ(g.payload, kPayload);
  EXPECT_EQ(st().non_ip, 1u);
}

TEST_F(NetParse, UnsupportedLinkType) {
  feed(Bytes(60, 0), 105);  // 802.11
  EXPECT_EQ(st().unsupported_link, 1u);
}

TEST_F(NetParse, Ipv6ExtensionHeaders) {
  Bytes l4 = tcp(700, 2049, 42, kAck, kPayload);
  Bytes chain = concat({ipv6_ext(43, 1), ipv6_ext(60, 0), ipv6_ext(6, 2), l4});
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 0, chain)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
  EXPECT_EQ(got[0].pkt.seq, 42u);
}

TEST_F(NetParse, Ipv6TooManyExtensionHeadersIsMalformed) {
  Bytes chain;
  for (int i = 0; i < 12; ++i) put_bytes(chain, ipv6_ext(60));
  chain.back() = 0;
  chain[8 * 11] = 17;  // last header points at UDP
  put_bytes(chain, udp(1, 2, kPayload));
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 60, chain)));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(st().malformed, 1u);
}

TEST_F(NetParse, Ipv6ExtensionHeaderPastTheEnd) {
  Bytes chain = ipv6_ext(17, 4);  // claims 40 bytes
  chain.resize(16);
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 0, chain)));
  EXPECT_EQ(st().malformed, 1u);
}

TEST_F(NetParse, Ipv6AtomicFragmentAndFragments) {
  feed(ethernet(0x86DD,
                ipv6("fe80::1", "fe80::2", 44, concat({ipv6_frag_header(17, 0, false, 9), udp(1, 2, kPayload)}))));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);

  Bytes dgram = udp(5, 6, Bytes(100, 0x5a));
  ByteView v(dgram);
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 44, concat({ipv6_frag_header(17, 56, false, 7), v.subspan(56)}))));
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 44, concat({ipv6_frag_header(17, 0, true, 7), v.subspan(0, 56)}))));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, Bytes(100, 0x5a));
  EXPECT_EQ(got[1].pkt.first_frame, 3u);
  EXPECT_EQ(got[1].pkt.frame, 3u);
  EXPECT_EQ(st().ip_fragments, 2u);
  EXPECT_EQ(st().ip_reassembled, 1u);
}

TEST_F(NetParse, BadIpv4Headers) {
  Bytes l4 = udp(1, 2, kPayload);
  Ipv4Opts ihl4;
  ihl4.ihl_override = 4;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, l4, ihl4)));
  Ipv4Opts shortlen;
  shortlen.total_len_override = 16;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, l4, shortlen)));
  Ipv4Opts v6ver;
  v6ver.version_override = 6;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, l4, v6ver)));
  EXPECT_EQ(st().malformed, 3u);
  // header cut by snaplen
  Bytes f = eth_udp4("10.0.0.1", 1, "10.0.0.2", 2, kPayload);
  f.resize(14 + 12);
  feed(f);
  // options claimed but not captured
  Ipv4Opts opt;
  opt.option_bytes = 20;
  Bytes g = ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, l4, opt));
  g.resize(14 + 24);
  feed(g);
  EXPECT_EQ(st().truncated, 2u);
  EXPECT_TRUE(got.empty());
}

TEST_F(NetParse, BadTcpAndUdpHeaders) {
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, 3, kAck, kPayload, 0, 4))));   // doff 4
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, 3, kAck, kPayload, 0, 15))));  // doff past end
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload, 7))));              // len < 8
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, kPayload, 200))));            // len past IP
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, Bytes(10, 0))));                         // 10-byte "TCP"
  EXPECT_EQ(st().malformed, 5u);
  Bytes cut = eth_tcp4("10.0.0.1", 1, "10.0.0.2", 2, 3, kAck, kPayload);
  cut.resize(14 + 20 + 15);
  feed(cut, kLinkEthernet, uint32_t(14 + 20 + 20 + kPayload.size()));
  EXPECT_EQ(st().truncated, 1u);
  EXPECT_TRUE(got.empty());
}

TEST_F(NetParse, OtherL4IsCounted) {
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 1, Bytes(8, 0))));  // ICMP
  feed(ethernet(0x86DD, ipv6("fe80::1", "fe80::2", 58, Bytes(8, 0))));   // ICMPv6
  EXPECT_EQ(st().other_l4, 2u);
}

TEST_F(NetParse, SnaplenCutPayload) {
  Bytes f = eth_tcp4("10.0.0.1", 1, "10.0.0.2", 2, 3, kAck, Bytes(1000, 7));
  uint32_t wire = uint32_t(f.size());
  f.resize(14 + 20 + 20 + 100);
  feed(f, kLinkEthernet, wire);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload.size(), 100u);
  EXPECT_EQ(got[0].pkt.wire_payload_len, 1000u);
}

TEST_F(NetParse, TsoZeroTotalLength) {
  Ipv4Opts o;
  o.total_len_override = 0;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, 3, kAck, kPayload), o)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, kPayload);
}

// --- IPv4 fragment reassembly

Bytes big_udp(size_t n) {
  Bytes payload(n);
  for (size_t i = 0; i < n; ++i) payload[i] = uint8_t(i * 13 + (i >> 8));
  return udp(800, 2049, payload);
}

TEST_F(NetParse, FragmentsInOrder) {
  Bytes d = big_udp(16384 + 200);
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, 77);
  ASSERT_EQ(frags.size(), 12u);
  for (auto& f : frags) feed(ethernet(0x0800, f));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, Bytes(d.begin() + 8, d.end()));
  EXPECT_EQ(got[0].pkt.wire_payload_len, d.size() - 8);
  EXPECT_EQ(got[0].pkt.first_frame, 1u);
  EXPECT_EQ(got[0].pkt.frame, 12u);
  EXPECT_EQ(st().ip_fragments, 12u);
  EXPECT_EQ(st().ip_reassembled, 1u);
  EXPECT_EQ(st().ip_frag_dropped, 0u);
}

TEST_F(NetParse, FragmentsOutOfOrderWithDuplicatesAndOverlap) {
  Bytes d = big_udp(6000);
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, 78);
  ASSERT_EQ(frags.size(), 5u);
  // A consistent overlapping fragment: bytes 1000..2999 of the datagram.
  Ipv4Opts o;
  o.id = 78;
  o.frag_offset = 1000;
  o.more_fragments = true;
  Bytes overlap = ipv4("10.0.0.1", "10.0.0.2", 17, ByteView(d).subspan(1000, 1000), o);
  for (int i : {4, 2, 2}) feed(ethernet(0x0800, frags[size_t(i)]));
  feed(ethernet(0x0800, overlap));
  for (int i : {0, 4, 3}) feed(ethernet(0x0800, frags[size_t(i)]));
  EXPECT_TRUE(got.empty());
  feed(ethernet(0x0800, frags[1]));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, Bytes(d.begin() + 8, d.end()));
  EXPECT_EQ(got[0].pkt.first_frame, 5u);  // the offset-0 fragment
  EXPECT_EQ(got[0].pkt.frame, 8u);
  EXPECT_EQ(st().ip_reassembled, 1u);
  // A late duplicate starts a new (incomplete) datagram, which is evicted later.
  EXPECT_EQ(st().ip_frag_dropped, 0u);
}

TEST_F(NetParse, InconsistentOverlapDropsTheDatagram) {
  Bytes d = big_udp(3000);
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, 79);
  feed(ethernet(0x0800, frags[0]));
  Ipv4Opts o;
  o.id = 79;
  o.frag_offset = 1000;
  o.more_fragments = true;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, Bytes(800, 0xff), o)));
  EXPECT_EQ(st().ip_frag_dropped, 1u);
  for (size_t i = 1; i < frags.size(); ++i) feed(ethernet(0x0800, frags[i]));
  EXPECT_TRUE(got.empty());
}

TEST_F(NetParse, FragmentsOfTwoDatagramsInterleaved) {
  Bytes a = big_udp(3000), b = big_udp(2500);
  b[20] = 0x42;
  auto fa = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, a, 1480, 1);
  auto fb = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, b, 1480, 2);
  feed(ethernet(0x0800, fa[0]));
  feed(ethernet(0x0800, fb[1]));
  feed(ethernet(0x0800, fb[0]));
  feed(ethernet(0x0800, fa[2]));
  feed(ethernet(0x0800, fa[1]));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, Bytes(b.begin() + 8, b.end()));
  EXPECT_EQ(got[1].payload, Bytes(a.begin() + 8, a.end()));
}

TEST_F(NetParse, SnaplenCutFragment) {
  Bytes d = big_udp(4000);
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, 80);
  ASSERT_EQ(frags.size(), 3u);
  feed(ethernet(0x0800, frags[0]));
  Bytes mid = ethernet(0x0800, frags[1]);
  uint32_t wire = uint32_t(mid.size());
  mid.resize(14 + 20 + 100);
  feed(mid, kLinkEthernet, wire);
  feed(ethernet(0x0800, frags[2]));
  ASSERT_EQ(got.size(), 1u);
  // Only the contiguous captured prefix is handed on; the true length is known.
  EXPECT_EQ(got[0].payload.size(), 1480u + 100u - 8u);
  EXPECT_EQ(got[0].pkt.wire_payload_len, d.size() - 8);
  EXPECT_EQ(got[0].payload, Bytes(d.begin() + 8, d.begin() + 1580));
}

TEST_F(NetParse, IncompleteDatagramsAreEvictedByCountAndAge) {
  Bytes d = big_udp(3000);
  for (uint16_t id = 0; id < 200; ++id) {
    auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, id);
    feed(ethernet(0x0800, frags[0]));
  }
  EXPECT_EQ(st().ip_frag_dropped, 200u - 128u);
  // 31 s later a new datagram arrives: the old ones time out.
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 17, d, 1480, 999);
  feed(ethernet(0x0800, frags[0]), kLinkEthernet, 0, 131);
  EXPECT_EQ(st().ip_frag_dropped, 200u);
  for (size_t i = 1; i < frags.size(); ++i) feed(ethernet(0x0800, frags[i]), kLinkEthernet, 0, 131);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload.size(), d.size() - 8);
}

TEST_F(NetParse, FragmentPastMaximumIsMalformed) {
  Ipv4Opts o;
  o.id = 5;
  o.frag_offset = 65528;
  feed(ethernet(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, Bytes(100, 0), o)));
  EXPECT_EQ(st().malformed, 1u);
  EXPECT_EQ(st().ip_fragments, 1u);
}

TEST_F(NetParse, FragmentedTcp) {
  Bytes seg = tcp(700, 2049, 1234, kAck | kPsh, Bytes(3000, 9));
  auto frags = ipv4_fragments("10.0.0.1", "10.0.0.2", 6, seg, 1480, 3);
  for (auto it = frags.rbegin(); it != frags.rend(); ++it) feed(ethernet(0x0800, *it));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].pkt.seq, 1234u);
  EXPECT_EQ(got[0].payload, Bytes(3000, 9));
}

}  // namespace
}  // namespace nfsfence
