// Endpoint formatting, flow hashing, hex and terminal-safe text helpers.
#include "nfs/common.h"

#include <algorithm>

#include <arpa/inet.h>

namespace nfsfence {

std::string Endpoint::addr_str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof buf)) return "?";
  return buf;
}

std::string Endpoint::str() const {
  std::string out;
  if (v6) {
    out = "[" + addr_str() + "]";
  } else {
    out = addr_str();
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

namespace {
// 64-bit mixer (a murmur3-style finaliser); cheap and good enough to spread flow keys.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  uint64_t h = mix64(load64(k.src.addr.data()) ^ 0x9e3779b97f4a7c15ULL);
  h = mix64(h ^ load64(k.src.addr.data() + 8));
  h = mix64(h ^ load64(k.dst.addr.data()));
  h = mix64(h ^ load64(k.dst.addr.data() + 8));
  uint64_t tail = (uint64_t(k.src.port) << 32) | (uint64_t(k.dst.port) << 16) | (uint64_t(k.transport) << 8) |
                  (uint64_t(k.src.v6) << 1) | uint64_t(k.dst.v6);
  return size_t(mix64(h ^ tail));
}

namespace {
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kB64[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16 | (i + 1 < in.size() ? uint8_t(in[i + 1]) << 8 : 0);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> unbase64(std::string_view in) {
  std::string out;
  uint32_t v = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad) return std::nullopt;  // data after padding
    const char* p = c ? std::strchr(kB64, c) : nullptr;
    if (!p) return std::nullopt;
    v = v << 6 | uint32_t(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((v >> bits) & 0xff);
    }
  }
  if (pad > 2 || (in.size() % 4) != 0) return std::nullopt;
  return out;
}

std::string to_hex(ByteView b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(b.size() * 2, '\0');
  for (size_t i = 0; i < b.size(); ++i) {
    out[2 * i] = kDigits[b[i] >> 4];
    out[2 * i + 1] = kDigits[b[i] & 0xf];
  }
  return out;
}

// Accepts upper or lower case digits; whitespace and ':' between bytes are ignored so that
// fixtures can be written as "de ad be ef" or "de:ad:be:ef".
Expected<Bytes> from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  out.reserve(hex.size() / 2);
  int hi = -1;
  for (size_t i = 0; i < hex.size(); ++i) {
    char c = hex[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':') {
      if (hi >= 0) return make_error("hex: separator inside a byte at offset " + std::to_string(i));
      continue;
    }
    int v = nibble(c);
    if (v < 0) return make_error("hex: invalid character at offset " + std::to_string(i));
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(uint8_t((hi << 4) | v));
      hi = -1;
    }
  }
  if (hi >= 0) return make_error("hex: odd number of digits");
  return out;
}

}  // namespace nfsfence

namespace nfsfence {

size_t utf8_char(std::string_view s, size_t i, uint32_t& cp) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = n == 1 ? c : c & (0x7f >> n);
  for (size_t k = 1; k < n; k++) {
    unsigned char d = s[i + k];
    if ((d >> 6) != 2) return 0;
    cp = (cp << 6) | (d & 0x3f);
  }
  static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

std::string printable(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_char(s, i, cp);
    if (cp == '\n' || cp == '\t' || cp == '\r') {
      out += cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : "\\r";
      i++;
      continue;
    }
    // C0 and C1 controls and DEL act on terminals; the bidirectional controls and the
    // line/paragraph separators (U+200E/F, U+2028..202E, U+2066..2069) reorder or split
    // what follows; invalid UTF-8 is not text: their bytes are written as \xHH.
    bool hidden = n == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x200e || cp == 0x200f ||
                  (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (!hidden) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    for (size_t k = 0; k < std::max<size_t>(n, 1); k++) {
      uint8_t b = uint8_t(s[i + k]);
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
    i += std::max<size_t>(n, 1);
  }
  return out;
}

}  // namespace nfsfence
