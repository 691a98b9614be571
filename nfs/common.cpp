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
  uint64_t tail = (uint64_t(k.src.port) << 32) | (uint64_t(k.dst.port) << 16) |
                  (uint64_t(k.transport) << 8) | (uint64_t(k.src.v6) << 1) | uint64_t(k.dst.v6);
  return size_t(mix64(h ^ tail));
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

// Length of the valid UTF-8 sequence at s[i] (2..4), or 0 if it is not one. Overlong
// forms, surrogates and code points past U+10FFFF are not valid.
static size_t utf8_seq(std::string_view s, size_t i) {
  auto cont = [&](size_t k) { return i + k < s.size() && (uint8_t(s[i + k]) & 0xc0) == 0x80; };
  uint8_t c = uint8_t(s[i]);
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    uint8_t c1 = uint8_t(s[i + 1]);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    uint8_t c1 = uint8_t(s[i + 1]);
    if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) return 0;
    return 4;
  }
  return 0;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (uint8_t(s[i]) < 0x80) {
      i++;
      continue;
    }
    size_t n = utf8_seq(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  auto esc = [&](uint8_t b) {
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 15];
  };
  for (size_t i = 0; i < s.size();) {
    uint8_t c = uint8_t(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += char(c);
      i++;
      continue;
    }
    if (c < 0x80) {
      if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else esc(c);  // NUL, ESC, DEL and the other C0 controls
      i++;
      continue;
    }
    size_t n = utf8_seq(s, i);
    // C1 controls (U+0080..U+009F, as C2 80..C2 9F) act on terminals too, and the
    // bidirectional controls and line/paragraph separators (U+200E/F, U+2028..202E,
    // U+2066..2069) reorder or split what follows: escape their bytes.
    uint32_t cp = n == 3 ? (uint32_t(c & 0x0f) << 12) | (uint32_t(uint8_t(s[i + 1]) & 0x3f) << 6) |
                               (uint8_t(s[i + 2]) & 0x3f)
                         : 0;
    bool hidden = cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (n == 0 || (n == 2 && c == 0xc2 && uint8_t(s[i + 1]) < 0xa0) || hidden) {
      for (size_t k = 0; k < std::max<size_t>(n, 1); k++) esc(uint8_t(s[i + k]));
      i += std::max<size_t>(n, 1);
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace nfsfence
