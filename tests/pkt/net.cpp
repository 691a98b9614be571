#include "pkt/net.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

#include "pkt/bytes.h"

namespace nfsfence::pkt {

Endpoint ep(const std::string& addr, uint16_t port) {
  Endpoint e;
  e.port = port;
  if (addr.find(':') != std::string::npos) {
    e.v6 = true;
    if (inet_pton(AF_INET6, addr.c_str(), e.addr.data()) != 1) throw std::invalid_argument(addr);
  } else if (inet_pton(AF_INET, addr.c_str(), e.addr.data()) != 1) {
    throw std::invalid_argument(addr);
  }
  return e;
}

namespace {

void tcp_header(Bytes& b, const TcpHdr& h) {
  put16(b, h.sport);
  put16(b, h.dport);
  put32(b, h.seq);
  put32(b, h.ack);
  size_t doff = (20 + h.options.size()) / 4;
  put8(b, uint8_t((h.doff_override >= 0 ? h.doff_override : int(doff)) << 4));
  put8(b, h.flags);
  put16(b, h.window);
  put16(b, 0);  // checksum
  put16(b, 0);  // urgent
  put_bytes(b, h.options);
}

void udp_header(Bytes& b, uint16_t sport, uint16_t dport, size_t payload_len, int len_override) {
  put16(b, sport);
  put16(b, dport);
  put16(b, uint16_t(len_override >= 0 ? len_override : int(8 + payload_len)));
  put16(b, 0);
}

void ipv4_header(Bytes& b, const Endpoint& s, const Endpoint& d, uint8_t proto, size_t l4_len, const Ipv4Opts& o) {
  size_t hlen = 20 + o.option_bytes;
  int ihl = o.ihl_override >= 0 ? o.ihl_override : int(hlen / 4);
  int ver = o.version_override >= 0 ? o.version_override : 4;
  put8(b, uint8_t((ver << 4) | (ihl & 0xf)));
  put8(b, 0);
  put16(b, uint16_t(o.total_len_override >= 0 ? o.total_len_override : int(hlen + l4_len)));
  put16(b, o.id);
  put16(b, uint16_t((o.dont_fragment ? 0x4000 : 0) | (o.more_fragments ? 0x2000 : 0) | ((o.frag_offset / 8) & 0x1fff)));
  put8(b, o.ttl);
  put8(b, proto);
  put16(b, 0);
  put_bytes(b, ByteView(s.addr.data(), 4));
  put_bytes(b, ByteView(d.addr.data(), 4));
  for (size_t i = 0; i < o.option_bytes; ++i) put8(b, 1);
}

void ipv6_header(Bytes& b, const Endpoint& s, const Endpoint& d, uint8_t next, size_t payload_len) {
  put32(b, 0x60000000);
  put16(b, uint16_t(payload_len));
  put8(b, next);
  put8(b, 64);
  put_bytes(b, ByteView(s.addr.data(), 16));
  put_bytes(b, ByteView(d.addr.data(), 16));
}

void ethernet_header(Bytes& b, uint16_t ethertype, std::initializer_list<uint16_t> vlan_tpids, const Mac& dst,
                     const Mac& src) {
  put_bytes(b, dst);
  put_bytes(b, src);
  uint16_t vid = 100;
  for (uint16_t tpid : vlan_tpids) {
    put16(b, tpid);
    put16(b, vid++);  // TCI; the next TPID/ethertype follows
  }
  put16(b, ethertype);
}

// The L4 checksum over the pseudo header and [l4, l4 + len) (not complemented).
uint16_t l4_sum(ByteView f, const Layout& L, size_t len) {
  uint32_t s = csum_add(0, f.subspan(L.addr(), 2 * L.addr_len()));
  s += uint32_t(len >> 16) + uint32_t(len & 0xffff);
  s += L.udp ? 17 : 6;
  return csum_fold(csum_add(s, f.subspan(L.l4, len)));
}

}  // namespace

Bytes tcp(const TcpHdr& h, ByteView payload) {
  Bytes b;
  tcp_header(b, h);
  put_bytes(b, payload);
  return b;
}

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, ByteView payload, size_t option_bytes,
          int doff_override) {
  Bytes nops(option_bytes, 1);
  return tcp(
      TcpHdr{
          .sport = sport, .dport = dport, .seq = seq, .flags = flags, .options = nops, .doff_override = doff_override},
      payload);
}

Bytes udp(uint16_t sport, uint16_t dport, ByteView payload, int len_override) {
  Bytes b;
  udp_header(b, sport, dport, payload.size(), len_override);
  put_bytes(b, payload);
  return b;
}

Bytes ipv4(const Endpoint& src, const Endpoint& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o) {
  Bytes b;
  ipv4_header(b, src, dst, proto, l4.size(), o);
  put_bytes(b, l4);
  return b;
}

Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o) {
  return ipv4(ep(src), ep(dst), proto, l4, o);
}

std::vector<Bytes> ipv4_fragments(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4,
                                  size_t chunk, uint16_t id) {
  std::vector<Bytes> out;
  for (size_t off = 0; off < l4.size(); off += chunk) {
    size_t n = std::min(chunk, l4.size() - off);
    Ipv4Opts o;
    o.id = id;
    o.frag_offset = uint16_t(off);
    o.more_fragments = off + n < l4.size();
    out.push_back(ipv4(src, dst, proto, l4.subspan(off, n), o));
  }
  return out;
}

Bytes ipv6(const Endpoint& src, const Endpoint& dst, uint8_t next, ByteView payload) {
  Bytes b;
  ipv6_header(b, src, dst, next, payload.size());
  put_bytes(b, payload);
  return b;
}

Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, ByteView payload) {
  return ipv6(ep(src), ep(dst), next, payload);
}

Bytes ipv6_ext(uint8_t next, uint8_t len8) {
  Bytes b(8 * (size_t(len8) + 1), 0);
  b[0] = next;
  b[1] = len8;
  return b;
}

Bytes ipv6_frag_header(uint8_t next, uint16_t offset, bool more, uint32_t id) {
  Bytes b;
  put8(b, next);
  put8(b, 0);
  put16(b, uint16_t((offset & 0xfff8) | (more ? 1 : 0)));
  put32(b, id);
  return b;
}

Bytes ethernet(uint16_t ethertype, ByteView payload, std::initializer_list<uint16_t> vlan_tpids, const Mac& dst,
               const Mac& src) {
  Bytes b;
  ethernet_header(b, ethertype, vlan_tpids, dst, src);
  put_bytes(b, payload);
  return b;
}

Bytes sll(uint16_t protocol, ByteView payload) {
  Bytes b;
  put16(b, 0);  // packet type: to us
  put16(b, 1);  // ARPHRD_ETHER
  put16(b, 6);  // address length
  put_bytes(b, hex("02 00 00 00 00 01 00 00"));
  put16(b, protocol);
  put_bytes(b, payload);
  return b;
}

Bytes sll2(uint16_t protocol, ByteView payload) {
  Bytes b;
  put16(b, protocol);
  put16(b, 0);  // reserved
  put32(b, 2);  // interface index
  put16(b, 1);  // ARPHRD_ETHER
  put8(b, 0);   // packet type
  put8(b, 6);   // address length
  put_bytes(b, hex("02 00 00 00 00 01 00 00"));
  put_bytes(b, payload);
  return b;
}

Bytes null_loop(uint32_t af, ByteView payload, bool little_endian) {
  Bytes b;
  if (little_endian) {
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(af >> (8 * i)));
  } else {
    put32(b, af);
  }
  put_bytes(b, payload);
  return b;
}

Bytes eth_tcp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint32_t seq,
               uint8_t flags, ByteView payload) {
  return ethernet(0x0800, ipv4(src, dst, 6, tcp(sport, dport, seq, flags, payload)));
}

Bytes eth_udp4(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, ByteView payload) {
  return ethernet(0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)));
}

// ------------------------------------------------------------------ complete frames

void frame_into(Bytes& f, const Seg& s, ByteView payload) {
  f.clear();
  const bool v6 = s.src.v6;
  const uint8_t proto = s.udp ? 17 : 6;
  const size_t l4len = (s.udp ? 8 : 20 + s.tcp_options.size()) + payload.size();
  ethernet_header(f, v6 ? 0x86dd : 0x0800, {}, s.dst_mac, s.src_mac);
  if (v6) {
    ipv6_header(f, s.src, s.dst, proto, l4len);
  } else {
    ipv4_header(f, s.src, s.dst, proto, l4len, Ipv4Opts{.id = s.ip_id, .dont_fragment = s.dont_fragment});
    set16(f, 14 + 10, uint16_t(~csum_fold(csum_add(0, ByteView(f).subspan(14, 20)))));
  }
  if (s.udp)
    udp_header(f, s.src.port, s.dst.port, payload.size(), -1);
  else
    tcp_header(f, TcpHdr{.sport = s.src.port,
                         .dport = s.dst.port,
                         .seq = s.seq,
                         .ack = s.ack,
                         .flags = s.flags,
                         .window = s.window,
                         .options = s.tcp_options});
  put_bytes(f, payload);
  if (s.l4_checksum) {
    Layout L{.l3 = 14, .l4 = v6 ? 54u : 34u, .pay = 0, .v6 = v6, .udp = s.udp};
    uint16_t c = uint16_t(~l4_sum(f, L, l4len));
    if (s.udp && c == 0) c = 0xffff;
    set16(f, L.l4_csum(), c);
  }
}

Bytes frame(const Seg& s, ByteView payload) {
  Bytes f;
  frame_into(f, s, payload);
  return f;
}

// ------------------------------------------------------------------ checksums

uint32_t csum_add(uint32_t s, ByteView p) {
  size_t n = p.size();
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) s += uint32_t(p[n - 1] << 8);
  return s;
}

uint16_t csum_fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

Layout layout_of(ByteView f) {
  Layout L;
  L.v6 = get16(f, 12) == 0x86dd;
  if (L.v6) {
    L.l4 = 14 + 40;
    L.udp = f[14 + 6] == 17;
  } else {
    L.l4 = 14 + (f[14] & 15) * 4;
    L.udp = f[14 + 9] == 17;
  }
  L.pay = L.udp ? L.l4 + 8 : L.l4 + (f[L.l4 + 12] >> 4) * 4;
  return L;
}

size_t l4_len(ByteView f, const Layout& L) { return L.v6 ? get16(f, 14 + 4) : get16(f, 14 + 2) - (f[14] & 15) * 4; }

void fix_checksums(Bytes& f) {
  Layout L = layout_of(f);
  if (!L.v6) {
    size_t ihl = (f[14] & 15) * 4;
    set16(f, 14 + 10, 0);
    set16(f, 14 + 10, uint16_t(~csum_fold(csum_add(0, ByteView(f).subspan(14, ihl)))));
  }
  set16(f, L.l4_csum(), 0);
  uint16_t c = uint16_t(~l4_sum(f, L, l4_len(f, L)));
  if (L.udp && c == 0) c = 0xffff;
  set16(f, L.l4_csum(), c);
}

std::string checksum_error(ByteView f) {
  Layout L = layout_of(f);
  if (!L.v6 && csum_fold(csum_add(0, f.subspan(14, (f[14] & 15) * 4))) != 0xffff) return "bad IPv4 header checksum";
  if (l4_sum(f, L, l4_len(f, L)) != 0xffff) return L.udp ? "bad UDP checksum" : "bad TCP checksum";
  return "";
}

}  // namespace nfsfence::pkt
