// Small value types shared by every layer of the protocol core.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <variant>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nfsfence {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// Errors are values: a one-line message that names what failed and why.
struct Error {
  std::string message;
};
// A value or an error: Error (a one-line message) by default; the BPF loader uses
// BpfError (errno + what + where). Our own because libstdc++'s std::expected needs C++23
// concepts that clang 14, which builds the libFuzzer targets, lacks.
template <typename E>
struct Unexpected {
  E error;
};
inline Unexpected<Error> make_error(std::string msg) { return Unexpected<Error>{Error{std::move(msg)}}; }
inline Unexpected<Error> unexpected(Error e) { return Unexpected<Error>{std::move(e)}; }

template <typename T, typename E = Error>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(Unexpected<E> u) : v_(std::in_place_index<1>, std::move(u.error)) {}
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& operator*() { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& value() { return std::get<0>(v_); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  Expected(Unexpected<E> u) : e_(std::move(u.error)) {}
  bool has_value() const { return !e_; }
  explicit operator bool() const { return has_value(); }
  const E& error() const { return *e_; }

 private:
  std::optional<E> e_;
};

struct Timestamp {
  int64_t sec = 0;
  int64_t nsec = 0;
  double seconds() const { return double(sec) + double(nsec) / 1e9; }
  bool operator<(const Timestamp& o) const { return sec != o.sec ? sec < o.sec : nsec < o.nsec; }
};

struct Endpoint {
  std::array<uint8_t, 16> addr{};  // IPv4 uses the first 4 bytes
  bool v6 = false;
  uint16_t port = 0;  // host byte order
  bool operator==(const Endpoint&) const = default;
  std::string str() const;  // "10.0.0.1:2049", "[fe80::1]:2049"
  std::string addr_str() const;
};

enum class Transport : uint8_t { Tcp = 6, Udp = 17 };
inline const char* transport_name(Transport t) { return t == Transport::Tcp ? "tcp" : "udp"; }

// A directed flow: src -> dst.
struct FlowKey {
  Endpoint src, dst;
  Transport transport = Transport::Tcp;
  bool operator==(const FlowKey&) const = default;
  FlowKey reversed() const { return FlowKey{dst, src, transport}; }
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const noexcept;
};

// Text safe for a terminal and for one line: printable ASCII and valid UTF-8 as they
// are; \n \t \r; every other control byte (NUL, ESC, DEL, C1), the bidi controls and
// line separators, and every byte of invalid UTF-8 as \xHH (as tshark shows names).
// Backslashes are kept as they are, so that text escaped once (a policy error quoting a
// key) passes through the CLI's error line unchanged.
std::string printable(std::string_view s);
// The UTF-8 character at s[i]: its length (1..4) with its code point in `cp`, or 0 if
// the bytes there are not valid UTF-8 (stray or cut sequence, overlong, surrogate,
// past U+10FFFF).
size_t utf8_char(std::string_view s, size_t i, uint32_t& cp);
std::string to_hex(ByteView b);
// RFC 4648 base64 with padding (etcd's JSON gateway carries keys and values so); decoding
// refuses anything else (other characters, data after '=', a length not a multiple of 4).
std::string base64(std::string_view in);
std::optional<std::string> unbase64(std::string_view in);
Expected<Bytes> from_hex(std::string_view hex);

// Big-endian loads from possibly unaligned bytes.
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint16_t load_be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
inline uint64_t load_be64(const uint8_t* p) { return (uint64_t(load_be32(p)) << 32) | load_be32(p + 4); }

}  // namespace nfsfence
