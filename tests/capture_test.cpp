#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "nfs/capture.h"
#include "test_util.h"

namespace nfsfence {
namespace {

using test::Frame;

std::vector<Frame> three_frames() {
  std::vector<Frame> f(3);
  for (int i = 0; i < 3; ++i) {
    f[i].data = test::eth_udp4("10.0.0.1", 1000, "10.0.0.2", 2049, Bytes(size_t(10 + i), uint8_t(i)));
    f[i].sec = 1700000000 + i;
    f[i].nsec = 123456000u + uint32_t(i);  // the micro file keeps only the microseconds
  }
  f[2].wire_len = uint32_t(f[2].data.size()) + 100;  // snaplen cut
  return f;
}

struct Read {
  std::vector<RawPacket> pkts;
  std::vector<Bytes> data;
  bool truncated = false;
  std::string error;
};

Read read_all(const std::string& path, bool keep_data = true) {
  Read r;
  auto rd = CaptureReader::open(path);
  EXPECT_TRUE(rd) << (rd ? "" : rd.error().message);
  if (!rd) return r;
  RawPacket p;
  while ((*rd)->next(p)) {
    r.pkts.push_back(p);
    if (keep_data) r.data.emplace_back(p.data, p.data + p.caplen);
  }
  EXPECT_FALSE((*rd)->next(p));  // stays at the end
  r.truncated = (*rd)->truncated();
  r.error = (*rd)->error();
  return r;
}

TEST(Capture, ClassicPcapMicroseconds) {
  auto frames = three_frames();
  Read r = read_all(test::write_pcap("micro.pcap", kLinkEthernet, frames));
  ASSERT_EQ(r.pkts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.pkts[i].frame, i + 1);
    EXPECT_EQ(r.pkts[i].linktype, kLinkEthernet);
    EXPECT_EQ(r.pkts[i].ts.sec, 1700000000 + int64_t(i));
    EXPECT_EQ(r.pkts[i].ts.nsec, 123456000);
    EXPECT_EQ(r.data[i], frames[i].data);
  }
  EXPECT_EQ(r.pkts[2].wire_len, r.pkts[2].caplen + 100);
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(r.error, "");
}

TEST(Capture, ClassicPcapNanoseconds) {
  auto frames = three_frames();
  Read r = read_all(test::write_pcap("nano.pcap", kLinkEthernet, frames, true));
  ASSERT_EQ(r.pkts.size(), 3u);
  EXPECT_EQ(r.pkts[1].ts.nsec, 123456001);
  EXPECT_EQ(r.pkts[2].ts.nsec, 123456002);
}

TEST(Capture, Pcapng) {
  auto frames = three_frames();
  Read r = read_all(test::write_pcapng("one.pcapng", kLinkEthernet, frames));
  ASSERT_EQ(r.pkts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.pkts[i].frame, i + 1);
    EXPECT_EQ(r.pkts[i].ts.sec, 1700000000 + int64_t(i));
    EXPECT_EQ(r.pkts[i].ts.nsec, 123456000 + int64_t(i));
    EXPECT_EQ(r.data[i], frames[i].data);
  }
  EXPECT_EQ(r.pkts[2].wire_len, r.pkts[2].caplen + 100);
  EXPECT_FALSE(r.truncated);
}

TEST(Capture, LinkTypesAreReportedAsLinktypeValues) {
  std::vector<Frame> f(1);
  f[0].data = test::ipv4("10.0.0.1", "10.0.0.2", 17, test::udp(1, 2, Bytes(4, 0)));
  for (int lt : {int(kLinkRaw), int(kLinkIpv4), int(kLinkLinuxSll), int(kLinkLinuxSll2), int(kLinkNull)}) {
    Read r = read_all(test::write_pcap("lt" + std::to_string(lt) + ".pcap", lt, f));
    ASSERT_EQ(r.pkts.size(), 1u);
    EXPECT_EQ(r.pkts[0].linktype, lt);
  }
}

TEST(Capture, TruncatedLastRecordEndsTheStream) {
  auto frames = three_frames();
  std::string full = test::write_pcap("full.pcap", kLinkEthernet, frames);
  Bytes b = test::read_file(full);
  b.resize(b.size() - 5);
  Read r = read_all(test::write_file("cut.pcap", b));
  EXPECT_EQ(r.pkts.size(), 2u);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.error, "");
}

TEST(Capture, TruncatedRecordHeader) {
  auto frames = three_frames();
  Bytes b = test::read_file(test::write_pcap("full2.pcap", kLinkEthernet, frames));
  size_t last = frames[2].data.size() + 16;
  b.resize(b.size() - last + 7);  // 7 bytes of the last record header
  Read r = read_all(test::write_file("cut2.pcap", b));
  EXPECT_EQ(r.pkts.size(), 2u);
  EXPECT_TRUE(r.truncated);
}

TEST(Capture, TruncatedPcapng) {
  auto frames = three_frames();
  Bytes b = test::read_file(test::write_pcapng("full.pcapng", kLinkEthernet, frames));
  b.resize(b.size() - 9);
  Read r = read_all(test::write_file("cut.pcapng", b));
  EXPECT_EQ(r.pkts.size(), 2u);
  EXPECT_TRUE(r.truncated) << r.error;
}

TEST(Capture, MissingFileNamesTheFile) {
  std::string path = test::temp_dir() + "/does-not-exist.pcap";
  auto rd = CaptureReader::open(path);
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().message, path + ": No such file or directory");
}

TEST(Capture, NotACapture) {
  std::string path = test::write_file("text.pcap", test::hex("48656c6c6f2c20776f726c64210a00000000"));
  auto rd = CaptureReader::open(path);
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().message.rfind(path + ": ", 0), 0u) << rd.error().message;
  EXPECT_EQ(rd.error().message.find('\n'), std::string::npos);
}

TEST(Capture, EmptyFile) {
  std::string path = test::write_file("empty.pcap", {});
  auto rd = CaptureReader::open(path);
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().message.rfind(path + ": ", 0), 0u);
}

TEST(Capture, Directory) {
  auto rd = CaptureReader::open(test::temp_dir());
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().message, test::temp_dir() + ": Is a directory");
}

TEST(Capture, Bzip2Compressed) {
  auto frames = three_frames();
  std::string path = test::write_pcap("comp.pcap", kLinkEthernet, frames, true);
  std::string cmd = "bzip2 -kf '" + path + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  Read r = read_all(path + ".bz2");
  ASSERT_EQ(r.pkts.size(), 3u);
  EXPECT_EQ(r.data[1], frames[1].data);
  EXPECT_EQ(r.pkts[1].ts.nsec, 123456001);
  EXPECT_FALSE(r.truncated);
}

TEST(Capture, Bzip2Cut) {
  // A big enough capture that bzip2 has several blocks; cut the compressed file.
  std::vector<Frame> frames(1500);
  for (size_t i = 0; i < frames.size(); ++i) {
    Bytes payload(600);
    for (size_t j = 0; j < payload.size(); ++j) payload[j] = uint8_t((i * 7919 + j * 31) ^ (j >> 3));
    frames[i].data = test::eth_udp4("10.0.0.1", 1000, "10.0.0.2", 2049, payload);
  }
  std::string path = test::write_pcap("bigcomp.pcap", kLinkEthernet, frames);
  ASSERT_EQ(std::system(("bzip2 -1 -kf '" + path + "'").c_str()), 0);  // 100k blocks
  Bytes z = test::read_file(path + ".bz2");
  z.resize(z.size() / 2);
  Read r = read_all(test::write_file("bigcomp-cut.pcap.bz2", z));
  EXPECT_LT(r.pkts.size(), frames.size());
  EXPECT_TRUE(r.truncated);
}

TEST(Capture, Bzip2OfNonCapture) {
  std::string path = test::write_file("notpcap.txt", test::hex("0102030405060708090a0b0c0d0e0f10111213141516"));
  ASSERT_EQ(std::system(("bzip2 -kf '" + path + "'").c_str()), 0);
  auto rd = CaptureReader::open(path + ".bz2");
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().message.rfind(path + ".bz2: ", 0), 0u) << rd.error().message;
}

// Every capture in ../shared/pcaps: our packet count must equal tshark's.
TEST(Capture, SharedPcapsPacketCountsMatchTshark) {
  const char* dir = std::getenv("NFSF_SHARED_PCAPS");
  if (!dir || !std::filesystem::is_directory(dir))
    GTEST_SKIP() << "NFSF_SHARED_PCAPS (../shared/pcaps) is absent; real-capture test skipped";
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark is not installed";
  bool have_capinfos = std::system("command -v capinfos >/dev/null 2>&1") == 0;
  int checked = 0;
  for (const auto& de : std::filesystem::recursive_directory_iterator(dir)) {
    if (!de.is_regular_file()) continue;
    std::string path = de.path().string();
    std::string name = de.path().filename().string();
    bool bz = name.ends_with(".bz2");
    std::string base = bz ? name.substr(0, name.size() - 4) : name;
    if (!base.ends_with(".pcap") && !base.ends_with(".pcapng")) continue;
    SCOPED_TRACE(path);
    Read r = read_all(path, false);
    EXPECT_EQ(r.error, "");
    std::string plain = path;
    if (bz) {
      plain = test::temp_dir() + "/shared-" + base;
      ASSERT_EQ(std::system(("bzip2 -dc '" + path + "' > '" + plain + "'").c_str()), 0);
    }
    // capinfos (from the same Wireshark libraries as tshark) is much faster than a tshark
    // run; fall back to tshark when it is missing.
    std::string cmd = have_capinfos
                          ? "capinfos -c -M -T -r '" + plain + "' 2>/dev/null | tail -1 | awk -F'\\t' '{print $NF}'"
                          : "tshark -n -r '" + plain + "' -T fields -e frame.number 2>/dev/null | wc -l";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    unsigned long n = 0;
    ASSERT_EQ(fscanf(p, "%lu", &n), 1) << cmd;
    pclose(p);
    if (bz) std::filesystem::remove(plain);
    EXPECT_EQ(r.pkts.size(), n);
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

}  // namespace
}  // namespace nfsfence
