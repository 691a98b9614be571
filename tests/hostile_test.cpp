// Hostile input (issue 8): a generator of crafted captures and policies, one group per
// class of failure, each run through the real `nfsfence` binary as a child with explicit
// bounds on its exit code, its stderr lines, its wall time (generous: 30 s, a hang
// detector, not a benchmark) and its peak RSS (getrusage of the child through wait4).
//
// The captures are made here at test time in the test's temporary directory (none is
// committed). Each TEST names the class it covers; each failed on the code before the fix.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "nfs/capture.h"
#include "nfs/rpc.h"
#include "nfs/xdr_writer.h"
#include "test_util.h"

namespace nfsfence::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kWallBound = 30.0;  // seconds: a hang, not a slow run
constexpr long kRssBoundKb = 100 * 1024;

// ----------------------------------------------------------------- running the binary

struct Child {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
  double secs = 0;
  long rss_kb = 0;
  bool timed_out = false;
  size_t err_lines() const { return size_t(std::count(err.begin(), err.end(), '\n')); }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string bin() {
  const char* b = std::getenv("NFSF_BIN");
  return b ? b : "nfsfence";  // test_main.cpp sets NFSF_BIN
}

// Children are forked by a small spawner process made before any test runs: a child's
// ru_maxrss counts its pre-exec image, so forking from this (large) test process would
// charge the captures the test built to the binary under test.
struct Spawner {
  int req = -1, resp = -1;
  pid_t pid = -1;
  void start() {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) std::abort();
    pid = fork();
    if (pid == 0) {
      close(a[1]), close(b[0]);
      serve(a[0], b[1]);
      _exit(0);
    }
    close(a[0]), close(b[1]);
    req = a[1], resp = b[0];
  }
  static bool read_all(int fd, void* p, size_t n) {
    auto* c = static_cast<char*>(p);
    while (n) {
      ssize_t k = read(fd, c, n);
      if (k <= 0) return false;
      c += k, n -= size_t(k);
    }
    return true;
  }
  struct Result {
    int status;
    long rss_kb;
    double secs;
    bool timed_out;
  };
  // Request: total length, then NUL-separated in, out, err, argv...
  static void serve(int in, int out) {
    for (;;) {
      uint32_t len;
      if (!read_all(in, &len, 4)) return;
      std::string buf(len, '\0');
      if (!read_all(in, buf.data(), len)) return;
      std::vector<std::string> parts;
      for (size_t at = 0; at < buf.size();) {
        size_t e = buf.find('\0', at);
        parts.push_back(buf.substr(at, e - at));
        at = e + 1;
      }
      auto t0 = std::chrono::steady_clock::now();
      pid_t c = fork();
      if (c == 0) {
        int i = open(parts[0].c_str(), O_RDONLY), o = open(parts[1].c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644),
            e = open(parts[2].c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(i, 0), dup2(o, 1), dup2(e, 2);
        std::vector<char*> argv;
        for (size_t k = 3; k < parts.size(); k++) argv.push_back(parts[k].data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
      }
      Result r{};
      rusage ru{};
      int st = 0;
      for (;;) {
        if (wait4(c, &st, WNOHANG, &ru) == c) break;
        r.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r.secs > kWallBound) {
          r.timed_out = true;
          kill(c, SIGKILL);
          wait4(c, &st, 0, &ru);
          break;
        }
        usleep(5000);
      }
      r.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.status = st;
      r.rss_kb = ru.ru_maxrss;
      if (write(out, &r, sizeof r) != ssize_t(sizeof r)) return;
    }
  }
  Result spawn(const std::vector<std::string>& parts) {
    std::string buf;
    for (auto& p : parts) buf += p + '\0';
    uint32_t len = uint32_t(buf.size());
    Result r{};
    if (write(req, &len, 4) != 4 || write(req, buf.data(), len) != ssize_t(len) || !read_all(resp, &r, sizeof r))
      std::abort();
    return r;
  }
};
Spawner g_spawner;
struct SpawnerEnv : ::testing::Environment {
  void SetUp() override { g_spawner.start(); }
};
[[maybe_unused]] auto* g_env = ::testing::AddGlobalTestEnvironment(new SpawnerEnv);

// Runs `nfsfence ARGS` with stdin from `in` (a path, default /dev/null) and stdout to
// `out_path` (default: captured). Killed after kWallBound seconds.
Child run(const std::vector<std::string>& args, const std::string& in = "/dev/null", const std::string& out_path = "") {
  static int n = 0;
  std::string base = temp_dir() + "/run" + std::to_string(++n);
  std::string out = out_path.empty() ? base + ".out" : out_path, err = base + ".err";
  std::vector<std::string> parts{in, out, err, bin()};
  parts.insert(parts.end(), args.begin(), args.end());
  Spawner::Result sr = g_spawner.spawn(parts);
  Child r;
  r.timed_out = sr.timed_out;
  r.secs = sr.secs;
  r.rss_kb = sr.rss_kb;
  r.code = WIFEXITED(sr.status) ? WEXITSTATUS(sr.status) : 128 + WTERMSIG(sr.status);
  if (out_path.empty()) r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// The bounds every run of the corpus keeps, whatever the input.
void bounded(const Child& r, const std::string& what) {
  EXPECT_FALSE(r.timed_out) << what << ": still running after " << kWallBound << " s (a hang)";
  EXPECT_LT(r.code, 128) << what << ": killed by signal " << r.code - 128 << "\n" << r.err;
  EXPECT_LT(r.rss_kb, kRssBoundKb) << what << ": peak RSS " << r.rss_kb / 1024 << " MB";
}

// An error run: exit 1 and exactly one line on stderr that names `needle`.
void one_line_error(const Child& r, const std::string& what, const std::string& needle, int code = 1) {
  bounded(r, what);
  EXPECT_EQ(r.code, code) << what << "\n" << r.err;
  EXPECT_EQ(r.err_lines(), 1u) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": stderr does not name '" << needle << "'\n" << r.err;
}

uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // the test machine is little-endian, as write_pcap's files
}

bool have(const char* tool) {
  return std::system(("command -v " + std::string(tool) + " >/dev/null 2>&1").c_str()) == 0;
}

std::string sh_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// ----------------------------------------------------------------- building traffic

const std::string kCli = "10.9.0.1", kSrv = "10.9.0.2";

Bytes fh_of(uint32_t id) {  // a 16-byte file handle
  Bytes b;
  put32(b, 0xfeed0001);
  put32(b, 0);
  put32(b, id);
  put32(b, ~id);
  return b;
}

void fattr(XdrWriter& w, uint32_t type, uint64_t size, uint64_t fileid) {
  w.u32(type).u32(0644).u32(1).u32(0).u32(0).u64(size).u64(size).u32(0).u32(0).u64(1).u64(fileid);
  for (int i = 0; i < 6; i++) w.u32(0);  // atime, mtime, ctime
}

// A TCP connection client:port -> server:2049 written as Ethernet frames; records larger
// than a segment are split, as a sender would.
struct Conn {
  uint16_t cport;
  uint32_t cseq = 1000, sseq = 500000;
  std::vector<Frame>* out;
  int64_t sec = 1700000000;
  Conn(std::vector<Frame>& o, uint16_t port, bool syn = true) : cport(port), out(&o) {
    if (!syn) return;
    frame(true, kSyn, {}, cseq++);
    frame(false, kSyn | kAck, {}, sseq++);
  }
  void frame(bool to_server, uint8_t flags, ByteView payload, uint32_t seq) {
    Frame f;
    f.data = to_server ? eth_tcp4(kCli, cport, kSrv, 2049, seq, flags, payload)
                       : eth_tcp4(kSrv, 2049, kCli, cport, seq, flags, payload);
    f.sec = sec;
    out->push_back(std::move(f));
  }
  void send(bool to_server, const Bytes& rec, size_t mss = 60000) {
    uint32_t& seq = to_server ? cseq : sseq;
    for (size_t off = 0; off < rec.size(); off += mss) {
      size_t n = std::min(mss, rec.size() - off);
      frame(to_server, kAck | kPsh, ByteView(rec.data() + off, n), seq);
      seq += uint32_t(n);
    }
  }
  void call(const XdrWriter& w) { send(true, w.record()); }
  void reply(const XdrWriter& w) { send(false, w.record()); }
};

uint32_t g_xid = 1;

// MNT /e -> root handle 1.
void mount(Conn& c) {
  uint32_t x = g_xid++;
  XdrWriter call;
  call.call_header(x, kProgMount, 3, 1).str("/e");
  c.call(call);
  XdrWriter rep;
  rep.reply_header(x).u32(0).opaque(fh_of(1)).u32(1).u32(1);
  c.reply(rep);
}

void lookup(Conn& c, uint32_t dir, const std::string& name, uint32_t child, uint32_t type, uint64_t size = 0) {
  uint32_t x = g_xid++;
  XdrWriter call;
  call.call_header(x, kProgNfs, 3, 3).opaque(fh_of(dir)).str(name);
  c.call(call);
  XdrWriter rep;
  rep.reply_header(x).u32(0).opaque(fh_of(child)).u32(1);
  fattr(rep, type, size, child);
  rep.u32(0);  // dir attributes: none
  c.reply(rep);
}

// READDIRPLUS of `dir` listing regular files ids [first, first+n) of `size` bytes each.
void readdirplus(Conn& c, uint32_t dir, uint32_t first, uint32_t n, uint64_t size) {
  uint32_t x = g_xid++;
  XdrWriter call;
  call.call_header(x, kProgNfs, 3, 17).opaque(fh_of(dir)).u64(0).u64(0).u32(65536).u32(1 << 20);
  c.call(call);
  XdrWriter rep;
  rep.reply_header(x).u32(0).u32(0).u64(0);
  for (uint32_t i = first; i < first + n; i++) {
    rep.u32(1).u64(i).str("f" + std::to_string(i)).u64(i).u32(1);
    fattr(rep, 1, size, i);
    rep.u32(1).opaque(fh_of(i));
  }
  rep.u32(0).u32(1);
  c.reply(rep);
}

void rename(Conn& c, uint32_t from_dir, const std::string& from, uint32_t to_dir, const std::string& to) {
  uint32_t x = g_xid++;
  XdrWriter call;
  call.call_header(x, kProgNfs, 3, 14).opaque(fh_of(from_dir)).str(from).opaque(fh_of(to_dir)).str(to);
  c.call(call);
  XdrWriter rep;
  rep.reply_header(x).u32(0).u32(0).u32(0).u32(0).u32(0);  // two empty wcc_data
  c.reply(rep);
}

std::string policy_file(const std::string& name, const std::string& body) {
  std::string text = "export: /e\nserver: " + kSrv + "\n" + body;
  return write_file(name, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

const std::string kTwoTrees =
    "trees:\n  - {name: vol-a, path: a, limit: 1Gi}\n  - {name: vol-b, path: b, limit: 1Gi}\n";

// A capture of ~n KB: metadata traffic that decodes to many lines (for pipes, compression).
std::string metadata_capture(const std::string& name, uint32_t files) {
  std::vector<Frame> fr;
  Conn c(fr, 800);
  mount(c);
  lookup(c, 1, "a", 2, 2);
  for (uint32_t i = 0; i < files; i += 200) readdirplus(c, 2, 100 + i, 200, 4096);
  return write_pcap(name, kLinkEthernet, fr);
}

json stats_of(const Child& r) {
  // --stats prints the JSON counters after any error lines.
  size_t at = r.err.find('{');
  return at == std::string::npos ? json() : json::parse(r.err.substr(at), nullptr, false);
}

// ======================================================================= class 1

// A damaged compressed capture larger than a pipe buffer deadlocked the reader with its
// `bzip2` child; every compressed format is now read in-process and damage is one line.
TEST(Hostile, DamagedCompressedCapturesFailInOneLine) {
  std::string plain = metadata_capture("c1.pcap", 20000);  // ~4 MB
  struct Z {
    const char* tool;
    const char* ext;
  };
  for (Z z : {Z{"bzip2", "bz2"}, Z{"gzip", "gz"}, Z{"xz", "xz"}, Z{"zstd", "zst"}, Z{"lz4", "lz4"}}) {
    if (!have(z.tool)) {
      ADD_FAILURE() << z.tool << " is missing (scripts/deps.sh installs it)";
      continue;
    }
    std::string zp = plain + "." + z.ext;
    ASSERT_EQ(std::system((std::string(z.tool) + " -c " + sh_quote(plain) + " > " + sh_quote(zp)).c_str()), 0);
    Bytes b = read_file(zp);
    ASSERT_GT(b.size(), 70000u) << "the compressed file must exceed a pipe buffer";
    // Whole: decodes like the plain file.
    Child whole = run({"decode", zp}), ref = run({"decode", plain});
    bounded(whole, zp);
    EXPECT_EQ(whole.code, 0) << whole.err;
    EXPECT_EQ(whole.out, ref.out) << zp;
    // A flipped byte, and a cut: exit 1, one line naming the file, no hang.
    Bytes flipped = b;
    flipped[b.size() / 2] ^= 0x5a;
    std::string fp = write_file(std::string("flipped.pcap.") + z.ext, flipped);
    one_line_error(run({"decode", fp}), fp, fp);
    Bytes cut(b.begin(), b.begin() + ptrdiff_t(b.size() / 2));
    std::string cp = write_file(std::string("cut.pcap.") + z.ext, cut);
    one_line_error(run({"replay", cp, "-p", policy_file("c1.yaml", kTwoTrees)}), cp, cp);
    // A cut is a truncated capture (accepted with --allow-truncated), a flipped byte is
    // damage (never accepted), whatever the file is called.
    Child ok = run({"decode", "--allow-truncated", cp});
    EXPECT_EQ(ok.code, 0) << cp << ": a cut compressed capture is a truncated one\n" << ok.err;
    EXPECT_EQ(ok.err.rfind("nfsfence: warning: " + cp, 0), 0u) << ok.err;
    std::string tricky = temp_dir() + "/truncated-" + std::string(z.ext) + ".pcap." + z.ext;
    fs::copy_file(fp, tricky, fs::copy_options::overwrite_existing);
    one_line_error(run({"decode", "--allow-truncated", tricky}), tricky, tricky);
  }
}

// gzip: a damaged CRC is damage (libarchive 3.6 did not check it: this decoded silently),
// concatenated members are one capture, bytes after the last member are damage.
TEST(Hostile, GzipIsCheckedWhole) {
  std::string plain = metadata_capture("c1g.pcap", 2000);
  Child ref = run({"decode", plain});
  Bytes p = read_file(plain);
  std::string gz = plain + ".gz";
  ASSERT_EQ(std::system(("gzip -c " + sh_quote(plain) + " > " + sh_quote(gz)).c_str()), 0);
  Bytes z = read_file(gz);
  Bytes crc = z;
  crc[crc.size() - 8] ^= 1;  // the trailer's CRC-32
  std::string cp = write_file("crc.pcap.gz", crc);
  one_line_error(run({"decode", cp}), cp, cp + ": gzip decompression failed: incorrect data check");
  // Two members: the capture cut in two, each half gzipped, concatenated.
  std::string h1 = write_file("h1", ByteView(p.data(), 4000)),
              h2 = write_file("h2", ByteView(p.data() + 4000, p.size() - 4000));
  std::string two = temp_dir() + "/two.pcap.gz";
  ASSERT_EQ(std::system(("(gzip -c " + sh_quote(h1) + "; gzip -c " + sh_quote(h2) + ") > " + sh_quote(two)).c_str()),
            0);
  Child t = run({"decode", two});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out, ref.out);
  Bytes junk = z;
  junk.push_back('x');
  std::string jp = write_file("junk.pcap.gz", junk);
  one_line_error(run({"decode", jp}), jp, jp + ": gzip decompression failed: data after the end");
}

// A pcapng whose second block has a bad length, compressed: one line naming the file.
TEST(Hostile, DamagedPcapngInsideBzip2) {
  std::vector<Frame> fr(2000);
  for (size_t i = 0; i < fr.size(); i++) fr[i].data = eth_udp4(kCli, 900, kSrv, 2049, Bytes(200, uint8_t(i)));
  Bytes ng = read_file(write_pcapng("c1b.pcapng", kLinkEthernet, fr));
  // Block 3 (the second EPB) starts after SHB + IDB + the first EPB: corrupt its length.
  size_t shb = load_le32(ng.data() + 4), idb = load_le32(ng.data() + shb + 4);
  size_t epb = load_le32(ng.data() + shb + idb + 4);
  size_t at = shb + idb + epb + 4;
  ng[at] = 0x03, ng[at + 1] = 0x00, ng[at + 2] = 0x00, ng[at + 3] = 0x00;
  std::string p = write_file("c1b-bad.pcapng", ng);
  ASSERT_EQ(std::system(("bzip2 -kf " + sh_quote(p)).c_str()), 0);
  one_line_error(run({"decode", p + ".bz2"}), "pcapng.bz2", p + ".bz2");
  one_line_error(run({"decode", p}), "pcapng", p);
}

// ======================================================================= class 2

// replay --format json aborted (std::terminate) on a capture path that is not UTF-8.
TEST(Hostile, NonUtf8PathsNeverAbort) {
  std::string plain = metadata_capture("c2.pcap", 200);
  std::string odd = temp_dir() + "/caf\xe9-\xff.pcap";
  fs::copy_file(plain, odd, fs::copy_options::overwrite_existing);
  Child r = run({"replay", odd, "-p", policy_file("c2.yaml", kTwoTrees), "--format", "json"});
  bounded(r, "replay json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out.substr(0, 200);
  EXPECT_EQ(j["capture"], temp_dir() + "/caf\xef\xbf\xbd-\xef\xbf\xbd.pcap");  // U+FFFD for each bad byte
  // Errors that name it stay one escaped line.
  std::string bad = temp_dir() + "/no\nsuch\x1b[2J.pcap";
  one_line_error(run({"decode", bad}), "newline path", "no\\nsuch\\x1b[2J.pcap");
}

// ======================================================================= class 3

// 30,000 renames of one directory over 100,000 cached files: every rename recounted every
// handle (about 3e9 node visits, minutes). Proportional updates make it seconds.
TEST(Hostile, RenameChurnIsProportional) {
  std::vector<Frame> fr;
  Conn c(fr, 801);
  mount(c);
  lookup(c, 1, "a", 2, 2);
  lookup(c, 1, "b", 3, 2);
  for (uint32_t i = 0; i < 100000; i += 250) readdirplus(c, 2, 1000 + i, 250, 1000);
  lookup(c, 2, "d", 4, 2);  // a directory inside vol-a, renamed back and forth
  lookup(c, 4, "x", 5, 1, 777);
  for (int i = 0; i < 30000; i++) rename(c, 2, i % 2 ? "d2" : "d", 2, i % 2 ? "d" : "d2");
  rename(c, 2, "d", 3, "d");  // finally into vol-b: its file moves with it
  std::string cap = write_pcap("c3.pcap", kLinkEthernet, fr);
  Child r = run({"replay", cap, "-p", policy_file("c3.yaml", kTwoTrees), "--format", "json"});
  bounded(r, "rename churn");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["trees"][0]["usage_bytes"], 100000u * 1000u);
  EXPECT_EQ(j["trees"][1]["usage_bytes"], 777u);
  EXPECT_EQ(j["trees"][0]["files"], 100000u);
  std::printf("rename churn: %.2f s, %ld MB\n", r.secs, r.rss_kb / 1024);
}

// ======================================================================= class 4

// A SYN flood: every SYN made a flow that lived until the end (~800 bytes each).
TEST(Hostile, SynFloodStaysWithinMemory) {
  std::vector<Frame> fr;
  fr.reserve(300000);
  for (uint32_t i = 0; i < 300000; i++) {
    Frame f;
    char src[32];
    std::snprintf(src, sizeof src, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    f.data = eth_tcp4(src, uint16_t(1024 + i % 60000), kSrv, 2049, i * 7919, kSyn, {});
    fr.push_back(std::move(f));
  }
  std::string cap = write_pcap("c4-syn.pcap", kLinkEthernet, fr);
  Child r = run({"decode", cap, "--stats"});
  bounded(r, "SYN flood");
  EXPECT_EQ(r.code, 0) << r.err.substr(0, 300);
  json s = stats_of(r);
  EXPECT_GT(s["errors"]["flows_evicted"].get<uint64_t>(), 0u) << s.dump();
  std::printf("SYN flood: %.2f s, %ld MB\n", r.secs, r.rss_kb / 1024);
}

// Unfinished 4 MiB metadata records on many flows, out-of-order data held behind holes,
// and unanswered calls with long names: all within one budget (here 16 MiB, so that a
// small capture shows it; the default is 48 MiB).
TEST(Hostile, OneBudgetForRecordsHolesAndCalls) {
  std::vector<Frame> fr;
  // 8 flows, each starting a 4 MiB LOOKUP call and sending 3 MiB of it.
  for (uint16_t k = 0; k < 8; k++) {
    Conn c(fr, uint16_t(2000 + k));
    XdrWriter w;
    w.call_header(g_xid++, kProgNfs, 3, 3).opaque(fh_of(1)).str(std::string(4u << 20, 'n'));
    Bytes rec = w.record();
    rec.resize(3u << 20);
    c.send(true, rec);
  }
  // 8 flows with a 1-byte hole and 3 MiB of data behind it.
  for (uint16_t k = 0; k < 8; k++) {
    Conn c(fr, uint16_t(3000 + k));
    c.cseq += 1;
    c.send(true, Bytes(3u << 20, 0x41));
  }
  // 6,000 unanswered LOOKUPs with 3 KB names on one flow.
  Conn c(fr, 4000);
  for (int i = 0; i < 6000; i++) {
    XdrWriter w;
    w.call_header(g_xid++, kProgNfs, 3, 3).opaque(fh_of(1)).str(std::string(3000, char('a' + i % 26)));
    c.call(w);
  }
  std::string cap = write_pcap("c4-budget.pcap", kLinkEthernet, fr);
  Child base = run({"decode", metadata_capture("c4-small.pcap", 200), "--max-memory", "16Mi"});
  Child r = run({"decode", cap, "--stats", "--max-memory", "16Mi"});
  bounded(r, "budget");
  EXPECT_EQ(r.code, 0) << r.err.substr(0, 300);
  json s = stats_of(r);
  EXPECT_GT(s["errors"]["flows_evicted"].get<uint64_t>(), 0u) << s.dump();
  EXPECT_GT(s["errors"]["calls_evicted"].get<uint64_t>(), 0u) << s.dump();
  // The budget plus what the process needs anyway (measured on a small capture) plus slack
  // for malloc's own bookkeeping.
  EXPECT_LT(r.rss_kb, base.rss_kb + 16 * 1024 + 20 * 1024) << "base " << base.rss_kb << " KB";
  std::printf("budget 16Mi: %ld MB (small capture: %ld MB)\n", r.rss_kb / 1024, base.rss_kb / 1024);
}

// Idle flows are closed by capture time: a flow silent for longer than --idle-timeout.
TEST(Hostile, IdleFlowsAreClosed) {
  std::vector<Frame> fr;
  for (uint16_t k = 0; k < 50; k++) {
    Conn c(fr, uint16_t(5000 + k), false);
    c.sec = 1700000000 + k * 10;
    c.frame(true, kSyn, {}, c.cseq++);
    c.frame(false, kSyn | kAck, {}, c.sseq++);
    mount(c);
  }
  std::string cap = write_pcap("c4-idle.pcap", kLinkEthernet, fr);
  Child r = run({"decode", cap, "--stats", "--idle-timeout", "100"});
  bounded(r, "idle");
  json s = stats_of(r);
  // Connection k speaks at 10*k s: when 49 spoke, 0..38 had been silent for more than
  // 100 s, both directions: 39 connections, 78 flows.
  EXPECT_EQ(s["info"]["flows_idle_closed"].get<uint64_t>(), 78u) << s.dump();
  EXPECT_EQ(s["errors"]["tcp_resyncs"], 0u) << s.dump();
  EXPECT_EQ(s["calls"], 50u);
  EXPECT_EQ(s["replies"], 50u);
  EXPECT_EQ(s["errors"]["unmatched_replies"], 0u);
}

// A flood of distinct file handles: the handle cache is the quota's state and is bounded by
// --max-handles (about 330 bytes each), not by --max-memory; past it new handles are
// dropped, counted and reported, and memory stays where the bound puts it.
TEST(Hostile, HandleFloodIsBoundedByMaxHandles) {
  std::string cap = [] {
    std::vector<Frame> fr;
    Conn c(fr, 810);
    mount(c);
    lookup(c, 1, "a", 2, 2);
    for (uint32_t i = 0; i < 300000; i += 250) readdirplus(c, 2, 1000 + i, 250, 100);
    return write_pcap("c4-handles.pcap", kLinkEthernet, fr);
  }();
  Child r = run({"replay", cap, "-p", policy_file("c4h.yaml", kTwoTrees), "--max-handles", "100000"});
  bounded(r, "handle flood");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("handle cache: 100000 handles (--max-handles 100000)"), std::string::npos) << r.out;
  // 300,002 handles (root, a, 300,000 files): 200,002 not cached, each tried twice (the
  // READDIRPLUS entry's link and its attributes).
  EXPECT_NE(r.out.find("warning: the handle cache was full: 400004 times a new handle was not cached"),
            std::string::npos)
      << r.out;
  std::printf("handle flood (100k of 300k cached): %.2f s, %ld MB\n", r.secs, r.rss_kb / 1024);
}

// More replies behind a hole than the held-reply bound (1024): the oldest go out unmatched
// (counted), the rest match when the hole is filled; replies keep their order.
TEST(Hostile, HeldRepliesAreBounded) {
  std::string cap = [] {
    std::vector<Frame> fr;
    Conn c(fr, 811);
    mount(c);
    uint32_t first = g_xid;
    std::vector<Bytes> calls;
    for (int i = 0; i < 1500; i++) {
      XdrWriter w;
      w.call_header(g_xid++, kProgNfs, 3, 1).opaque(fh_of(1));  // GETATTR
      calls.push_back(w.record());
    }
    uint32_t s0 = c.cseq;
    Bytes rest;  // all but the first call, in two segments behind the hole the first leaves
    for (size_t i = 1; i < calls.size(); i++) rest.insert(rest.end(), calls[i].begin(), calls[i].end());
    c.cseq = s0 + uint32_t(calls[0].size());
    c.send(true, rest);
    for (int i = 0; i < 1500; i++) {
      XdrWriter r;
      r.reply_header(first + uint32_t(i)).u32(0);
      fattr(r, 2, 0, 1);
      c.reply(r);
    }
    c.frame(true, kAck | kPsh, calls[0], s0);  // fills the hole
    return write_pcap("c10-held.pcap", kLinkEthernet, fr);
  }();
  Child d = run({"decode", cap, "--stats", "--format", "jsonl"});
  bounded(d, "held bound");
  json s = stats_of(d);
  // The replies come out in capture order (their xids ascend), matched or not.
  std::istringstream lines(d.out);
  std::string line;
  uint32_t last = 0, replies = 0;
  while (std::getline(lines, line)) {
    json m = json::parse(line);
    if (m["type"] != "reply" || m["proc_name"] == "MNT") continue;
    EXPECT_GT(m["xid"].get<uint32_t>(), last) << line;
    last = m["xid"].get<uint32_t>();
    replies++;
  }
  EXPECT_EQ(replies, 1500u);
  EXPECT_EQ(s["info"]["held_replies_unmatched"].get<uint64_t>(), 1500u - 1024u) << s.dump();
  EXPECT_EQ(s["info"]["replies_reordered"].get<uint64_t>(), 1024u) << s.dump();
  EXPECT_EQ(s["errors"]["unmatched_replies"].get<uint64_t>(), 1500u - 1024u) << s.dump();
}

// The capture ends with a hole still open: the calls behind it are delivered at the end,
// and the replies held for them still match (they were released unmatched, and before
// their calls, when the reply flow was closed first).
TEST(Hostile, HeldRepliesMatchCallsFlushedAtTheEnd) {
  std::string cap = [] {
    std::vector<Frame> fr;
    Conn c(fr, 812);
    mount(c);
    uint32_t x1 = g_xid++, x2 = g_xid++, x3 = g_xid++;
    XdrWriter l1, l2, l3;
    l1.call_header(x1, kProgNfs, 3, 1).opaque(fh_of(1));
    l2.call_header(x2, kProgNfs, 3, 1).opaque(fh_of(1));
    l3.call_header(x3, kProgNfs, 3, 1).opaque(fh_of(1));
    Bytes r1 = l1.record(), r2 = l2.record(), r3 = l3.record();
    uint32_t s2 = c.cseq + uint32_t(r1.size());  // call 1 is never captured
    c.frame(true, kAck | kPsh, r2, s2);
    for (uint32_t x : {x1, x2}) {
      XdrWriter r;
      r.reply_header(x).u32(0);
      fattr(r, 2, 0, 1);
      c.reply(r);
    }
    c.frame(true, kAck | kPsh, r3, s2 + uint32_t(r2.size()));  // the call flow is the last one active
    return write_pcap("c10-end.pcap", kLinkEthernet, fr);
  }();
  Child d = run({"decode", cap, "--stats"});
  bounded(d, "hole at the end");
  json s = stats_of(d);
  EXPECT_EQ(s["info"]["replies_reordered"].get<uint64_t>(), 1u) << s.dump();       // reply 2
  EXPECT_EQ(s["info"]["held_replies_unmatched"].get<uint64_t>(), 1u) << s.dump();  // reply 1: its call was lost
  EXPECT_EQ(s["errors"]["unmatched_replies"].get<uint64_t>(), 1u) << s.dump();
}

// ======================================================================= class 5

// `-`, /dev/stdin, a pipe, a FIFO carrying .bz2: the same output as the file.
TEST(Hostile, PipesAndStandardInput) {
  std::string plain = metadata_capture("c5.pcap", 4000);
  ASSERT_EQ(std::system(("bzip2 -kf " + sh_quote(plain)).c_str()), 0);
  Child ref = run({"decode", plain});
  ASSERT_EQ(ref.code, 0);
  Child dash = run({"decode", "-"}, plain);
  EXPECT_EQ(dash.code, 0) << dash.err;
  EXPECT_EQ(dash.out, ref.out);
  Child dev = run({"decode", "/dev/stdin"}, plain + ".bz2");
  EXPECT_EQ(dev.code, 0) << dev.err;
  EXPECT_EQ(dev.out, ref.out);
  std::string out = temp_dir() + "/c5-pipe.out";
  std::string cmd =
      "cat " + sh_quote(plain + ".bz2") + " | timeout 30 " + sh_quote(bin()) + " decode - > " + sh_quote(out);
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(slurp(out), ref.out);
  // A plain capture through a real pipe (not a redirected file, which is mapped).
  cmd = "cat " + sh_quote(plain) + " | timeout 30 " + sh_quote(bin()) + " decode - > " + sh_quote(out);
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(slurp(out), ref.out);
  std::string fifo = temp_dir() + "/c5.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // timeout: if nfsfence never opened the FIFO, the writer must not block the test.
  std::thread writer(
      [&] { std::system(("timeout 30 cat " + sh_quote(plain + ".bz2") + " > " + sh_quote(fifo)).c_str()); });
  Child ff = run({"decode", fifo});
  writer.join();
  bounded(ff, "fifo");
  EXPECT_EQ(ff.code, 0) << ff.err;
  EXPECT_EQ(ff.out, ref.out);
  one_line_error(run({"decode", "-"}), "empty stdin", "standard input: empty");
}

// ======================================================================= class 6

TEST(Hostile, ErrorsExitNonZeroAndNameTheInput) {
  std::string plain = metadata_capture("c6.pcap", 400);
  Bytes b = read_file(plain);
  b.resize(b.size() - 7);
  std::string cut = write_file("c6-cut.pcap", b);
  std::string pol = policy_file("c6.yaml", kTwoTrees);
  Child r = run({"replay", cut, "-p", pol});
  one_line_error(r, "cut replay", cut + ": packet ");
  EXPECT_NE(r.out.find("vol-a"), std::string::npos) << "the partial report is printed";
  Child ok = run({"replay", cut, "-p", pol, "--allow-truncated"});
  EXPECT_EQ(ok.code, 0);
  EXPECT_NE(ok.err.find("warning: " + cut), std::string::npos) << ok.err;
  // Output to a full disk is an error.
  one_line_error(run({"decode", plain}, "/dev/null", "/dev/full"), "/dev/full", "standard output: No space left");
  one_line_error(run({"replay", plain, "-p", pol, "--format", "json"}, "/dev/null", "/dev/full"), "/dev/full json",
                 "standard output: No space left");
  one_line_error(run({"decode", temp_dir()}), "directory", temp_dir() + ": Is a directory");
}

// ======================================================================= class 7

TEST(Hostile, NothingSilentlyIgnored) {
  std::string cap = metadata_capture("c7.pcap", 400);
  // A server that matches nothing: named, with the servers the capture has.
  std::string text = "export: /e\nserver: 10.9.0.3\n" + kTwoTrees;
  std::string typo = write_file("c7-typo.yaml", ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  Child r = run({"replay", cap, "-p", typo});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("warning: the policy's server '10.9.0.3' matched none of the "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("servers in the capture: " + kSrv), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("MNT"), std::string::npos) << "no false claim about a missing MNT:\n" << r.out;
  // --max-handles: drops are in the text report; -1 is refused.
  Child small = run({"replay", cap, "-p", policy_file("c7.yaml", kTwoTrees), "--max-handles", "100"});
  EXPECT_EQ(small.code, 0) << small.err;
  EXPECT_NE(small.out.find("warning: the handle cache was full: "), std::string::npos) << small.out;
  one_line_error(run({"replay", cap, "-p", typo, "--max-handles", "-1"}), "-1", "'--max-handles'", 2);
  one_line_error(run({"replay", cap, "-p", typo, "--max-memory", "lots"}), "lots", "'--max-memory'", 2);
}

// ======================================================================= class 8

TEST(Hostile, SizesAreExactIntegers) {
  std::string cap = metadata_capture("c8.pcap", 10);
  std::string pol = policy_file("c8.yaml", "trees:\n  - {name: big, path: a, limit: 9007199254740993}\n");
  Child r = run({"replay", cap, "-p", pol, "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["trees"][0]["limit_bytes"].get<uint64_t>(), 9007199254740993ull);
  // Two files whose sizes sum past 2^64 saturate instead of wrapping to a small number.
  std::vector<Frame> fr;
  Conn c(fr, 806);
  mount(c);
  lookup(c, 1, "a", 2, 2);
  lookup(c, 2, "x", 10, 1, 0x8000000000000001ull);  // the sum wraps to 2
  lookup(c, 2, "y", 11, 1, 0x8000000000000001ull);
  std::string cap2 = write_pcap("c8-huge.pcap", kLinkEthernet, fr);
  Child h = run({"replay", cap2, "-p", pol, "--format", "json"});
  ASSERT_EQ(h.code, 0) << h.err;
  json t = json::parse(h.out)["trees"][0];
  EXPECT_EQ(t["usage_bytes"].get<uint64_t>(), UINT64_MAX) << t.dump();
  EXPECT_TRUE(t["over_limit"].get<bool>());
}

// ======================================================================= class 9

// Names with a newline, an escape sequence and a NUL: one line each in text, escaped;
// exact in JSON.
TEST(Hostile, NamesAreEscapedInTextAndExactInJson) {
  std::vector<Frame> fr;
  Conn c(fr, 807);
  mount(c);
  const char kEvil[] = "x\ny\x1b]0;pwned\x07z\0w\xff";
  const std::string evil(kEvil, sizeof kEvil - 1);
  lookup(c, 1, evil, 2, 2);
  std::string cap = write_pcap("c9.pcap", kLinkEthernet, fr);
  Child t = run({"decode", cap});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(std::count(t.out.begin(), t.out.end(), '\n'), 4) << t.out;  // 4 messages, 4 lines
  EXPECT_NE(t.out.find("name=x\\ny\\x1b]0;pwned\\x07z\\x00w\\xff"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find('\x1b'), std::string::npos);
  Child j = run({"decode", cap, "--format", "jsonl"});
  ASSERT_EQ(j.code, 0) << j.err;
  std::istringstream lines(j.out);
  std::string line;
  int named = 0;
  while (std::getline(lines, line)) {
    json m = json::parse(line);
    if (m.contains("name")) {
      named++;
      // Exact up to the invalid byte, which JSON cannot carry: U+FFFD.
      EXPECT_EQ(m["name"].get<std::string>(), evil.substr(0, evil.size() - 1) + "\xef\xbf\xbd");
    }
  }
  EXPECT_EQ(named, 1);
}

// ======================================================================= class 10

// Classic pcap 2.2 (caplen and len in the old order) with a packet cut by the snaplen:
// the mmap reader misread it; libpcap knows the old order.
TEST(Hostile, OldPcapVersionIsReadLikeLibpcap) {
  std::vector<Frame> fr;
  Conn c(fr, 808);
  mount(c);
  lookup(c, 1, "a", 2, 2);
  // Version 2.2: each record header has len before caplen. The last packet is cut to 60
  // bytes by the snaplen (len stays its wire length).
  Bytes f;
  auto le32 = [&](uint32_t v) {
    for (int i = 0; i < 4; i++) f.push_back(uint8_t(v >> (8 * i)));
  };
  le32(0xa1b2c3d4);
  f.push_back(2), f.push_back(0), f.push_back(2), f.push_back(0);  // version 2.2
  le32(0), le32(0), le32(65535), le32(kLinkEthernet);
  for (size_t i = 0; i < fr.size(); i++) {
    uint32_t len = uint32_t(fr[i].data.size()), cap = i + 1 == fr.size() ? 60 : len;
    le32(uint32_t(1700000000 + i)), le32(0), le32(len), le32(cap);
    f.insert(f.end(), fr[i].data.begin(), fr[i].data.begin() + cap);
  }
  std::string cap = write_file("c10-v22.pcap", f);
  Child r = run({"decode", cap, "--stats"});
  bounded(r, "pcap 2.2");
  EXPECT_EQ(r.code, 0) << r.err;
  json s = stats_of(r);
  EXPECT_EQ(s["packets"].get<uint64_t>(), fr.size()) << r.err;
  EXPECT_EQ(s["calls"], 2u) << s.dump();
  EXPECT_GE(s["errors"]["truncated_records"].get<uint64_t>() + s["errors"]["truncated_rpc"].get<uint64_t>(), 1u)
      << "the cut LOOKUP reply: " << s.dump();
}

// A call held behind out-of-order data was emitted after its reply: the reply counted as
// unmatched and lost its post-op attributes.
TEST(Hostile, ReplyBeforeItsDelayedCallStillMatches) {
  std::vector<Frame> fr;
  Conn c(fr, 809);
  mount(c);
  // The client sends two calls; the segment with the first is lost and retransmitted
  // after the server's reply to the second... and to the first.
  uint32_t x1 = g_xid++, x2 = g_xid++;
  XdrWriter l1, l2;
  l1.call_header(x1, kProgNfs, 3, 3).opaque(fh_of(1)).str("a");
  l2.call_header(x2, kProgNfs, 3, 3).opaque(fh_of(1)).str("b");
  Bytes r1 = l1.record(), r2 = l2.record();
  uint32_t s1 = c.cseq, s2 = c.cseq + uint32_t(r1.size());
  c.frame(true, kAck | kPsh, r2, s2);  // second call first: behind a hole
  XdrWriter a1, a2;
  a1.reply_header(x1).u32(0).opaque(fh_of(2)).u32(1);
  fattr(a1, 2, 0, 2);
  a1.u32(0);
  a2.reply_header(x2).u32(0).opaque(fh_of(3)).u32(1);
  fattr(a2, 2, 0, 3);
  a2.u32(0);
  c.reply(a1);
  c.reply(a2);
  c.frame(true, kAck | kPsh, r1, s1);  // the retransmission fills the hole
  c.cseq = s2 + uint32_t(r2.size());
  lookup(c, 2, "f", 10, 1, 5000);  // a file in vol-a: accounted only if "a" was learned
  lookup(c, 3, "g", 11, 1, 7000);  // a file in vol-b
  std::string cap = write_pcap("c10-ooo.pcap", kLinkEthernet, fr);
  Child d = run({"decode", cap, "--stats"});
  json s = stats_of(d);
  EXPECT_EQ(s["errors"]["unmatched_replies"], 0u) << s.dump();
  EXPECT_EQ(s["info"]["replies_reordered"], 2u) << s.dump();
  Child r = run({"replay", cap, "-p", policy_file("c10.yaml", kTwoTrees), "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["trees"][0]["usage_bytes"], 5000u);
  EXPECT_EQ(j["trees"][1]["usage_bytes"], 7000u);
}

}  // namespace
}  // namespace nfsfence::test
