// Link layer -> IPv4/IPv6 (with fragment reassembly) -> TCP/UDP.
//
// Every header is checked twice: the fixed part must be captured, then its real length
// (IHL, TCP data offset, extension header length) must be possible before it is used.
#include "nfs/netparse.h"

#include <algorithm>
#include <vector>

namespace nfsfence {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86DD;
constexpr int kMaxVlanTags = 8;
constexpr int kMaxIpv6ExtHeaders = 8;

// Fragment table bounds: NFS over UDP sends a dozen fragments per WRITE and they arrive
// within milliseconds, so a small table is plenty; the bounds stop a flood of lone
// fragments from growing memory.
constexpr size_t kMaxFragDatagrams = 128;
constexpr size_t kMaxFragBytes = 8u << 20;
constexpr int64_t kFragTimeoutSec = 30;
constexpr uint32_t kMaxDatagram = 65535;

// Half-open byte range [b, e).
struct Range {
  uint32_t b, e;
};

// Sorted, non-overlapping ranges; tiny (a datagram has at most ~45 fragments).
void add_range(std::vector<Range>& v, uint32_t b, uint32_t e) {
  if (b >= e) return;
  auto it = std::lower_bound(v.begin(), v.end(), b, [](const Range& r, uint32_t x) { return r.e < x; });
  uint32_t nb = b, ne = e;
  auto first = it;
  while (it != v.end() && it->b <= ne) {
    nb = std::min(nb, it->b);
    ne = std::max(ne, it->e);
    ++it;
  }
  it = v.erase(first, it);
  v.insert(it, Range{nb, ne});
}

// Length of the range starting at 0, or 0.
uint32_t prefix_len(const std::vector<Range>& v) { return (!v.empty() && v[0].b == 0) ? v[0].e : 0; }

struct FragKey {
  std::array<uint8_t, 16> src{}, dst{};
  uint32_t id = 0;
  uint8_t proto = 0;
  bool v6 = false;
  bool operator==(const FragKey&) const = default;
};

struct FragEntry {
  FragKey key;
  Bytes buf;                // datagram payload (after the IP header), grown as needed
  std::vector<Range> wire;  // ranges covered on the wire
  std::vector<Range> capd;  // ranges whose bytes were captured
  uint32_t total = 0;       // payload length, known once the last fragment is seen
  bool have_last = false;
  uint64_t first_frame = 0;  // frame of the offset-0 fragment (or first seen until then)
  bool have_first = false;
  Timestamp started;
  uint64_t order = 0;  // insertion order, for oldest-first eviction
};

}  // namespace

struct NetParser::Impl {
  Sink sink;
  NetStats st;
  std::vector<FragEntry> frags;
  size_t frag_bytes = 0;
  uint64_t frag_order = 0;

  explicit Impl(Sink s) : sink(std::move(s)) {}

  void feed(const RawPacket& pkt);
  void ethertype(uint16_t type, const uint8_t* p, uint32_t n, const RawPacket& pkt);
  void ip_by_version(const uint8_t* p, uint32_t n, const RawPacket& pkt);
  void ipv4(const uint8_t* p, uint32_t n, const RawPacket& pkt);
  void ipv6(const uint8_t* p, uint32_t n, const RawPacket& pkt);
  void l4(uint8_t proto, const Endpoint& src, const Endpoint& dst, const uint8_t* p, uint32_t cap, uint32_t wire,
          uint64_t frame, uint64_t first_frame, const Timestamp& ts);
  void fragment(const FragKey& key, uint32_t off, bool more, const uint8_t* p, uint32_t cap, uint32_t wire,
                const Endpoint& src, const Endpoint& dst, const RawPacket& pkt);
  void drop_frag(size_t i) {
    frag_bytes -= frags[i].buf.capacity();
    frags.erase(frags.begin() + ptrdiff_t(i));
  }
  void evict(const Timestamp& now);
};

NetParser::NetParser(Sink sink) : impl_(std::make_unique<Impl>(std::move(sink))) {}
NetParser::~NetParser() = default;
void NetParser::feed(const RawPacket& pkt) { impl_->feed(pkt); }
const NetStats& NetParser::stats() const { return impl_->st; }

void NetParser::Impl::feed(const RawPacket& pkt) {
  ++st.packets;
  const uint8_t* p = pkt.data;
  uint32_t n = pkt.caplen;
  switch (pkt.linktype) {
    case kLinkEthernet:
      if (n < 14) {
        ++st.truncated;
        return;
      }
      ethertype(load_be16(p + 12), p + 14, n - 14, pkt);
      return;
    case kLinkLinuxSll:
      if (n < 16) {
        ++st.truncated;
        return;
      }
      ethertype(load_be16(p + 14), p + 16, n - 16, pkt);
      return;
    case kLinkLinuxSll2:
      if (n < 20) {
        ++st.truncated;
        return;
      }
      ethertype(load_be16(p), p + 20, n - 20, pkt);
      return;
    case kLinkRaw:
    case 12:
    case 14:
      ip_by_version(p, n, pkt);
      return;
    case kLinkIpv4:
      ipv4(p, n, pkt);
      return;
    case kLinkIpv6:
      ipv6(p, n, pkt);
      return;
    case kLinkNull:
    case 108: {  // DLT_NULL: AF in the capturing host's byte order; DLT_LOOP: network order
      if (n < 4) {
        ++st.truncated;
        return;
      }
      uint32_t be = load_be32(p);
      uint32_t le = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      uint32_t af = pkt.linktype == 108 ? be : (be < 256 ? be : le);
      if (af == 2) {
        ipv4(p + 4, n - 4, pkt);
      } else if (af == 10 || af == 24 || af == 28 || af == 30) {  // AF_INET6: Linux, BSDs, macOS
        ipv6(p + 4, n - 4, pkt);
      } else {
        ++st.non_ip;
      }
      return;
    }
    default:
      ++st.unsupported_link;
      return;
  }
}

void NetParser::Impl::ethertype(uint16_t type, const uint8_t* p, uint32_t n, const RawPacket& pkt) {
  for (int tags = 0; type == 0x8100 || type == 0x88A8 || type == 0x9100; ++tags) {
    if (tags == kMaxVlanTags) {
      ++st.malformed;
      return;
    }
    if (n < 4) {
      ++st.truncated;
      return;
    }
    type = load_be16(p + 2);
    p += 4;
    n -= 4;
  }
  if (type == kEtherIpv4) {
    ipv4(p, n, pkt);
  } else if (type == kEtherIpv6) {
    ipv6(p, n, pkt);
  } else {
    ++st.non_ip;
  }
}

void NetParser::Impl::ip_by_version(const uint8_t* p, uint32_t n, const RawPacket& pkt) {
  if (n < 1) {
    ++st.truncated;
    return;
  }
  switch (p[0] >> 4) {
    case 4:
      ipv4(p, n, pkt);
      return;
    case 6:
      ipv6(p, n, pkt);
      return;
    default:
      ++st.malformed;
  }
}

void NetParser::Impl::ipv4(const uint8_t* p, uint32_t n, const RawPacket& pkt) {
  if (n < 20) {
    ++st.truncated;
    return;
  }
  uint32_t ihl = uint32_t(p[0] & 0x0f) * 4;
  if ((p[0] >> 4) != 4 || ihl < 20) {
    ++st.malformed;
    return;
  }
  uint32_t total = load_be16(p + 2);
  if (total == 0) {
    // Captured on the sender before TCP segmentation offload: the length is not filled
    // in yet. Trust the frame instead.
    total = n + (pkt.wire_len > pkt.caplen ? pkt.wire_len - pkt.caplen : 0);
  }
  if (total < ihl) {
    ++st.malformed;
    return;
  }
  if (n < ihl) {
    ++st.truncated;
    return;
  }
  uint32_t cap = std::min(n, total) - ihl;  // drops Ethernet padding
  uint32_t wire = total - ihl;
  Endpoint src, dst;
  std::memcpy(src.addr.data(), p + 12, 4);
  std::memcpy(dst.addr.data(), p + 16, 4);
  uint8_t proto = p[9];
  uint16_t fl = load_be16(p + 6);
  bool more = fl & 0x2000;
  uint32_t off = uint32_t(fl & 0x1fff) * 8;
  if (more || off != 0) {
    FragKey key;
    key.src = src.addr;
    key.dst = dst.addr;
    key.id = load_be16(p + 4);
    key.proto = proto;
    fragment(key, off, more, p + ihl, cap, wire, src, dst, pkt);
    return;
  }
  l4(proto, src, dst, p + ihl, cap, wire, pkt.frame, pkt.frame, pkt.ts);
}

void NetParser::Impl::ipv6(const uint8_t* p, uint32_t n, const RawPacket& pkt) {
  if (n < 40) {
    ++st.truncated;
    return;
  }
  if ((p[0] >> 4) != 6) {
    ++st.malformed;
    return;
  }
  uint32_t plen = load_be16(p + 4);
  if (plen == 0) plen = n - 40 + (pkt.wire_len > pkt.caplen ? pkt.wire_len - pkt.caplen : 0);  // jumbogram / TSO
  Endpoint src, dst;
  src.v6 = dst.v6 = true;
  std::memcpy(src.addr.data(), p + 8, 16);
  std::memcpy(dst.addr.data(), p + 24, 16);
  uint8_t next = p[6];
  const uint8_t* q = p + 40;
  uint32_t cap = std::min(n - 40, plen);
  uint32_t wire = plen;
  for (int i = 0;; ++i) {
    if (i > kMaxIpv6ExtHeaders) {
      ++st.malformed;
      return;
    }
    uint32_t hlen;
    switch (next) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60:   // destination options
      case 135:  // mobility
        if (cap < 2) {
          ++st.truncated;
          return;
        }
        hlen = (uint32_t(q[1]) + 1) * 8;
        break;
      case 51:  // authentication header
        if (cap < 2) {
          ++st.truncated;
          return;
        }
        hlen = (uint32_t(q[1]) + 2) * 4;
        break;
      case 44: {  // fragment
        if (cap < 8) {
          ++st.truncated;
          return;
        }
        uint16_t fo = load_be16(q + 2);
        uint32_t off = uint32_t(fo & 0xfff8);
        bool more = fo & 1;
        if (wire < 8) {
          ++st.malformed;
          return;
        }
        if (off == 0 && !more) {  // atomic fragment: a whole datagram
          next = q[0];
          q += 8;
          cap -= 8;
          wire -= 8;
          continue;
        }
        FragKey key;
        key.src = src.addr;
        key.dst = dst.addr;
        key.v6 = true;
        key.id = load_be32(q + 4);
        key.proto = q[0];
        fragment(key, off, more, q + 8, cap - 8, wire - 8, src, dst, pkt);
        return;
      }
      default:
        l4(next, src, dst, q, cap, wire, pkt.frame, pkt.frame, pkt.ts);
        return;
    }
    if (hlen > wire) {
      ++st.malformed;
      return;
    }
    if (hlen > cap) {
      ++st.truncated;
      return;
    }
    next = q[0];
    q += hlen;
    cap -= hlen;
    wire -= hlen;
  }
}

void NetParser::Impl::l4(uint8_t proto, const Endpoint& src, const Endpoint& dst, const uint8_t* p, uint32_t cap,
                         uint32_t wire, uint64_t frame, uint64_t first_frame, const Timestamp& ts) {
  L4Packet out;
  out.frame = frame;
  out.first_frame = first_frame;
  out.ts = ts;
  out.flow.src = src;
  out.flow.dst = dst;
  if (proto == 6) {
    if (cap < 20) {
      if (wire < 20) {
        ++st.malformed;
      } else {
        ++st.truncated;
      }
      return;
    }
    uint32_t doff = uint32_t(p[12] >> 4) * 4;
    if (doff < 20 || doff > wire) {
      ++st.malformed;
      return;
    }
    if (doff > cap) {
      ++st.truncated;
      return;
    }
    out.flow.transport = Transport::Tcp;
    out.flow.src.port = load_be16(p);
    out.flow.dst.port = load_be16(p + 2);
    out.seq = load_be32(p + 4);
    out.tcp_flags = p[13];
    out.payload = ByteView(p + doff, cap - doff);
    out.wire_payload_len = wire - doff;
  } else if (proto == 17) {
    if (cap < 8) {
      if (wire < 8) {
        ++st.malformed;
      } else {
        ++st.truncated;
      }
      return;
    }
    uint32_t ulen = load_be16(p + 4);
    if (ulen == 0) ulen = wire;  // IPv6 jumbogram convention
    if (ulen < 8 || ulen > wire) {
      ++st.malformed;
      return;
    }
    out.flow.transport = Transport::Udp;
    out.flow.src.port = load_be16(p);
    out.flow.dst.port = load_be16(p + 2);
    out.payload = ByteView(p + 8, std::min(cap, ulen) - 8);
    out.wire_payload_len = ulen - 8;
  } else {
    ++st.other_l4;
    return;
  }
  sink(out);
}

void NetParser::Impl::evict(const Timestamp& now) {
  for (size_t i = 0; i < frags.size();) {
    if (now.sec - frags[i].started.sec > kFragTimeoutSec) {
      ++st.ip_frag_dropped;
      drop_frag(i);
    } else {
      ++i;
    }
  }
}

void NetParser::Impl::fragment(const FragKey& key, uint32_t off, bool more, const uint8_t* p, uint32_t cap,
                               uint32_t wire, const Endpoint& src, const Endpoint& dst, const RawPacket& pkt) {
  ++st.ip_fragments;
  uint32_t end = off + wire;
  if (end > kMaxDatagram || (more && wire == 0)) {
    ++st.malformed;
    return;
  }
  size_t idx = frags.size();
  for (size_t i = 0; i < frags.size(); ++i) {
    if (frags[i].key == key) {
      idx = i;
      break;
    }
  }
  if (idx == frags.size()) {
    evict(pkt.ts);
    while (!frags.empty() && (frags.size() >= kMaxFragDatagrams || frag_bytes >= kMaxFragBytes)) {
      size_t oldest = 0;
      for (size_t i = 1; i < frags.size(); ++i)
        if (frags[i].order < frags[oldest].order) oldest = i;
      ++st.ip_frag_dropped;
      drop_frag(oldest);
    }
    FragEntry e;
    e.key = key;
    e.first_frame = pkt.frame;
    e.started = pkt.ts;
    e.order = ++frag_order;
    frags.push_back(std::move(e));
    idx = frags.size() - 1;
  }
  FragEntry& e = frags[idx];

  // Consistency: a second "last fragment" with another length, or data past the known
  // end, means the datagram cannot be rebuilt reliably.
  bool bad = false;
  if (!more) {
    if (e.have_last && e.total != end) bad = true;
    if (!e.wire.empty() && e.wire.back().e > end) bad = true;
  } else if (e.have_last && end > e.total) {
    bad = true;
  }
  // Overlapping captured bytes must agree (a duplicate is the common, harmless case).
  uint32_t cend = off + cap;
  for (const Range& r : e.capd) {
    uint32_t b = std::max(r.b, off), x = std::min(r.e, cend);
    if (b < x && std::memcmp(e.buf.data() + b, p + (b - off), x - b) != 0) {
      bad = true;
      break;
    }
  }
  if (bad) {
    ++st.ip_frag_dropped;
    drop_frag(idx);
    return;
  }
  if (!more) {
    e.have_last = true;
    e.total = end;
  }
  if (off == 0 && !e.have_first) {
    e.have_first = true;
    e.first_frame = pkt.frame;
  }
  if (cap > 0) {
    if (e.buf.size() < cend) {
      size_t before = e.buf.capacity();
      e.buf.resize(std::max<size_t>(cend, e.have_last ? e.total : 0));
      frag_bytes += e.buf.capacity() - before;
    }
    std::memcpy(e.buf.data() + off, p, cap);
    add_range(e.capd, off, cend);
  }
  add_range(e.wire, off, end);

  if (!(e.have_last && e.wire.size() == 1 && e.wire[0].b == 0 && e.wire[0].e == e.total)) return;
  ++st.ip_reassembled;
  // The L4 parser sees only the captured bytes that follow on from offset 0; a
  // snaplen-cut fragment in the middle ends what the decoder may read.
  uint32_t have = std::min(prefix_len(e.capd), e.total);
  l4(key.proto, src, dst, e.buf.data(), have, e.total, pkt.frame, e.first_frame, pkt.ts);
  drop_frag(idx);
}

}  // namespace nfsfence
