#include <gtest/gtest.h>

#include <unordered_set>

#include "nfs/common.h"
#include "test_util.h"

namespace nfsfence {
namespace {

TEST(Common, EndpointStrIpv4) {
  Endpoint e = test::ep("10.0.0.1", 2049);
  EXPECT_EQ(e.addr_str(), "10.0.0.1");
  EXPECT_EQ(e.str(), "10.0.0.1:2049");
}

TEST(Common, EndpointStrIpv6) {
  Endpoint e = test::ep("fe80::1", 2049);
  EXPECT_TRUE(e.v6);
  EXPECT_EQ(e.addr_str(), "fe80::1");
  EXPECT_EQ(e.str(), "[fe80::1]:2049");
}

TEST(Common, FlowKeyHashIsConsistentAndSpreads) {
  FlowKey a{test::ep("10.0.0.1", 700), test::ep("10.0.0.2", 2049), Transport::Tcp};
  FlowKey b = a;
  FlowKeyHash h;
  EXPECT_EQ(h(a), h(b));
  EXPECT_NE(h(a), h(a.reversed()));
  FlowKey u = a;
  u.transport = Transport::Udp;
  EXPECT_NE(h(a), h(u));
  std::unordered_set<size_t> seen;
  for (uint16_t port = 1; port <= 1000; ++port) {
    FlowKey k = a;
    k.src.port = port;
    seen.insert(h(k));
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Common, HexRoundTrip) {
  Bytes b = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(b), "0001abff");
  auto back = from_hex("0001ABff");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
  EXPECT_EQ(to_hex({}), "");
}

TEST(Common, HexSeparators) {
  auto r = from_hex("de ad:be\nef");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (Bytes{0xde, 0xad, 0xbe, 0xef}));
}

TEST(Common, HexErrors) {
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_FALSE(from_hex("a b"));
  auto r = from_hex("0g");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("invalid character"), std::string::npos);
}

TEST(Common, BigEndianLoads) {
  uint8_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(load_be16(p), 0x0102);
  EXPECT_EQ(load_be32(p), 0x01020304u);
  EXPECT_EQ(load_be64(p), 0x0102030405060708ull);
}

// printable(): terminal-safe, one line; valid UTF-8 stays as it is.
TEST(Common, PrintableEscapesWhatActsOnATerminal) {
  EXPECT_EQ(printable("plain name.txt"), "plain name.txt");
  EXPECT_EQ(printable("a\\b"), "a\\b");  // kept: text escaped once passes unchanged
  EXPECT_EQ(printable(printable("x\ny")), "x\\ny");
  EXPECT_EQ(printable("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
  EXPECT_EQ(printable(std::string("nul\0end", 7)), "nul\\x00end");
  EXPECT_EQ(printable("\x1b[2J\x07\x7f"), "\\x1b[2J\\x07\\x7f");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\xc2\\x9b"
            "31m");                                                                    // C1 CSI
  EXPECT_EQ(printable("abc\xe2\x80\xaetxt"), "abc\\xe2\\x80\\xaetxt");                 // U+202E right-to-left override
  EXPECT_EQ(printable("x\xe2\x80\xa8y"), "x\\xe2\\x80\\xa8y");                         // U+2028 line separator
  EXPECT_EQ(printable("\xff\xc0\xaf\xed\xa0\x80"), "\\xff\\xc0\\xaf\\xed\\xa0\\x80");  // invalid, overlong, surrogate
  EXPECT_EQ(printable("cut\xe2\x82"), "cut\\xe2\\x82");
  uint32_t cp = 0;
  EXPECT_EQ(utf8_char("\xc3\xa9", 0, cp), 2u);
  EXPECT_EQ(cp, 0xe9u);
  EXPECT_EQ(utf8_char("\xe9", 0, cp), 0u);
  EXPECT_EQ(utf8_char("\xf4\x90\x80\x80", 0, cp), 0u);  // past U+10FFFF
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
}

}  // namespace
}  // namespace nfsfence

// RFC 4648 section 10's test vectors, both ways, and what decoding refuses.
TEST(Base64, Rfc4648Vectors) {
  using nfsfence::base64;
  using nfsfence::unbase64;
  const std::pair<const char*, const char*> v[] = {{"", ""},
                                                   {"f", "Zg=="},
                                                   {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="},
                                                   {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, enc] : v) {
    EXPECT_EQ(base64(plain), enc);
    EXPECT_EQ(unbase64(enc), std::optional<std::string>(plain));
  }
  std::string all;
  for (int i = 0; i < 256; i++) all += char(i);
  EXPECT_EQ(unbase64(base64(all)), std::optional<std::string>(all));
  for (const char* bad : {"Zm9", "Zm=v", "Z!==", "Zg===", "Zm9v\n"}) EXPECT_FALSE(unbase64(bad)) << bad;
}
