// Big-endian integers and byte runs: the bottom of the packet library (tests/pkt), shared
// by the unit tests, the BPF tests, the benchmarks and the fuzz seed corpus.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "nfs/common.h"

namespace nfsfence::pkt {

// Appending.
void put8(Bytes& b, uint8_t v);
void put16(Bytes& b, uint16_t v);
void put32(Bytes& b, uint32_t v);
void put64(Bytes& b, uint64_t v);
void put_bytes(Bytes& b, ByteView v);
Bytes concat(std::initializer_list<ByteView> parts);
Bytes hex(std::string_view h);  // from_hex that aborts the binary on bad input

// Reading and patching in place (offsets must lie inside b).
uint16_t get16(ByteView b, size_t at);
uint32_t get32(ByteView b, size_t at);
void set16(Bytes& b, size_t at, uint16_t v);
void set32(Bytes& b, size_t at, uint32_t v);

// Bytes [from, to) of b (to clamped to the size).
Bytes slice(ByteView b, size_t from, size_t to = SIZE_MAX);

}  // namespace nfsfence::pkt
