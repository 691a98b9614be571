#include "test_util.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace nfsfence::test {

void put8(Bytes& b, uint8_t v) { b.push_back(v); }
void put16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, uint16_t(v >> 16));
  put16(b, uint16_t(v));
}
void put_bytes(Bytes& b, ByteView v) { b.insert(b.end(), v.begin(), v.end()); }
Bytes concat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (ByteView p : parts) put_bytes(out, p);
  return out;
}
Bytes hex(std::string_view h) {
  auto r = from_hex(h);
  if (!r) {
    std::fprintf(stderr, "bad hex fixture: %s\n", r.error().message.c_str());
    std::abort();
  }
  return *r;
}

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

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, ByteView payload, size_t option_bytes,
          int doff_override) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, seq);
  put32(b, 0);  // ack
  size_t doff = (20 + option_bytes) / 4;
  put8(b, uint8_t((doff_override >= 0 ? doff_override : int(doff)) << 4));
  put8(b, flags);
  put16(b, 65535);  // window
  put16(b, 0);      // checksum (not checked)
  put16(b, 0);      // urgent
  for (size_t i = 0; i < option_bytes; ++i) put8(b, 1);  // NOP
  put_bytes(b, payload);
  return b;
}

Bytes udp(uint16_t sport, uint16_t dport, ByteView payload, int len_override) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, uint16_t(len_override >= 0 ? len_override : int(8 + payload.size())));
  put16(b, 0);
  put_bytes(b, payload);
  return b;
}

Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, ByteView l4, const Ipv4Opts& o) {
  Bytes b;
  size_t hlen = 20 + o.option_bytes;
  int ihl = o.ihl_override >= 0 ? o.ihl_override : int(hlen / 4);
  int ver = o.version_override >= 0 ? o.version_override : 4;
  put8(b, uint8_t((ver << 4) | (ihl & 0xf)));
  put8(b, 0);
  put16(b, uint16_t(o.total_len_override >= 0 ? o.total_len_override : int(hlen + l4.size())));
  put16(b, o.id);
  put16(b, uint16_t((o.more_fragments ? 0x2000 : 0) | ((o.frag_offset / 8) & 0x1fff)));
  put8(b, 64);
  put8(b, proto);
  put16(b, 0);
  Endpoint s = ep(src), d = ep(dst);
  put_bytes(b, ByteView(s.addr.data(), 4));
  put_bytes(b, ByteView(d.addr.data(), 4));
  for (size_t i = 0; i < o.option_bytes; ++i) put8(b, 1);
  put_bytes(b, l4);
  return b;
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

Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, ByteView payload) {
  Bytes b;
  put32(b, 0x60000000);
  put16(b, uint16_t(payload.size()));
  put8(b, next);
  put8(b, 64);
  Endpoint s = ep(src), d = ep(dst);
  put_bytes(b, ByteView(s.addr.data(), 16));
  put_bytes(b, ByteView(d.addr.data(), 16));
  put_bytes(b, payload);
  return b;
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

Bytes ethernet(uint16_t ethertype, ByteView payload, std::initializer_list<uint16_t> vlan_tpids) {
  Bytes b = hex("02 00 00 00 00 02 02 00 00 00 00 01");
  uint16_t vid = 100;
  for (uint16_t tpid : vlan_tpids) {
    put16(b, tpid);
    put16(b, vid++);  // TCI; the next TPID/ethertype follows
  }
  put16(b, ethertype);
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
  put16(b, 0);   // reserved
  put32(b, 2);   // interface index
  put16(b, 1);   // ARPHRD_ETHER
  put8(b, 0);    // packet type
  put8(b, 6);    // address length
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

Bytes record(ByteView msg, bool last) {
  Bytes b;
  put32(b, uint32_t(msg.size()) | (last ? 0x80000000u : 0));
  put_bytes(b, msg);
  return b;
}

Bytes rpc_call(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, ByteView body) {
  Bytes b;
  put32(b, xid);
  put32(b, 0);  // CALL
  put32(b, 2);  // rpcvers
  put32(b, prog);
  put32(b, vers);
  put32(b, proc);
  put32(b, 0);  // cred AUTH_NONE
  put32(b, 0);
  put32(b, 0);  // verf AUTH_NONE
  put32(b, 0);
  put_bytes(b, body);
  return b;
}

Bytes rpc_reply(uint32_t xid, ByteView body) {
  Bytes b;
  put32(b, xid);
  put32(b, 1);  // REPLY
  put32(b, 0);  // MSG_ACCEPTED
  put32(b, 0);  // verf AUTH_NONE
  put32(b, 0);
  put32(b, 0);  // SUCCESS
  put_bytes(b, body);
  return b;
}

std::string temp_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/nfsf_test_XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    // Removed when the test binary exits, unless NFSF_KEEP_TMP is set (for debugging).
    if (!std::getenv("NFSF_KEEP_TMP")) {
      static std::string to_remove = tmpl;
      std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(to_remove, ec);
      });
    }
    return tmpl;
  }();
  return dir;
}

std::string write_file(const std::string& name, ByteView content) {
  std::string path = temp_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(content.data()), std::streamsize(content.size()));
  return path;
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

namespace {
// pcap and pcapng are written little-endian here (readers must handle both; libpcap does).
void le16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
void le32(Bytes& b, uint32_t v) {
  le16(b, uint16_t(v));
  le16(b, uint16_t(v >> 16));
}
}  // namespace

std::string write_pcap(const std::string& name, int linktype, const std::vector<Frame>& frames, bool nano,
                       uint32_t snaplen) {
  Bytes b;
  le32(b, nano ? 0xa1b23c4d : 0xa1b2c3d4);
  le16(b, 2);
  le16(b, 4);
  le32(b, 0);  // thiszone
  le32(b, 0);  // sigfigs
  le32(b, snaplen);
  le32(b, uint32_t(linktype));
  for (const Frame& f : frames) {
    le32(b, uint32_t(f.sec));
    le32(b, nano ? f.nsec : f.nsec / 1000);
    le32(b, uint32_t(f.data.size()));
    le32(b, f.wire_len ? f.wire_len : uint32_t(f.data.size()));
    put_bytes(b, f.data);
  }
  return write_file(name, b);
}

std::string write_pcapng(const std::string& name, int linktype, const std::vector<Frame>& frames, uint32_t snaplen) {
  Bytes b;
  // Section Header Block
  le32(b, 0x0A0D0D0A);
  le32(b, 28);
  le32(b, 0x1A2B3C4D);
  le16(b, 1);
  le16(b, 0);
  le32(b, 0xffffffff);  // section length unknown
  le32(b, 0xffffffff);
  le32(b, 28);
  // Interface Description Block with if_tsresol = 9 (nanoseconds)
  le32(b, 1);
  le32(b, 32);
  le16(b, uint16_t(linktype));
  le16(b, 0);
  le32(b, snaplen);
  le16(b, 9);  // if_tsresol
  le16(b, 1);
  b.insert(b.end(), {9, 0, 0, 0});
  le16(b, 0);  // opt_endofopt
  le16(b, 0);
  le32(b, 32);
  for (const Frame& f : frames) {
    uint32_t cap = uint32_t(f.data.size());
    uint32_t padded = (cap + 3) & ~3u;
    uint32_t len = 32 + padded;
    uint64_t ts = uint64_t(f.sec) * 1000000000ull + f.nsec;
    le32(b, 6);
    le32(b, len);
    le32(b, 0);  // interface id
    le32(b, uint32_t(ts >> 32));
    le32(b, uint32_t(ts));
    le32(b, cap);
    le32(b, f.wire_len ? f.wire_len : cap);
    put_bytes(b, f.data);
    b.insert(b.end(), padded - cap, 0);
    le32(b, len);
  }
  return write_file(name, b);
}

}  // namespace nfsfence::test
