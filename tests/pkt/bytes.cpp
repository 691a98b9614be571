#include "pkt/bytes.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace nfsfence::pkt {

void put8(Bytes& b, uint8_t v) { b.push_back(v); }
void put16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, uint16_t(v >> 16));
  put16(b, uint16_t(v));
}
void put64(Bytes& b, uint64_t v) {
  put32(b, uint32_t(v >> 32));
  put32(b, uint32_t(v));
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

uint16_t get16(ByteView b, size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }
uint32_t get32(ByteView b, size_t at) { return uint32_t(get16(b, at)) << 16 | get16(b, at + 2); }
void set16(Bytes& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}
void set32(Bytes& b, size_t at, uint32_t v) {
  set16(b, at, uint16_t(v >> 16));
  set16(b, at + 2, uint16_t(v));
}

Bytes slice(ByteView b, size_t from, size_t to) {
  to = std::min(to, b.size());
  return from >= to ? Bytes{} : Bytes(b.begin() + long(from), b.begin() + long(to));
}

}  // namespace nfsfence::pkt
