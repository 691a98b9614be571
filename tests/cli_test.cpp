// The binary's behaviour on bad input: one line on stderr naming the file and the reason,
// a non-zero exit, nothing on stdout.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

struct Outcome {
  int code;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("NFSF_BIN");
    if (!bin || !fs::exists(bin)) GTEST_SKIP() << "NFSF_BIN not set (run through ctest)";
    bin_ = bin;
    dir_ = fs::temp_directory_path() / ("nfsf-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  Outcome run(const std::string& args) {
    std::string cmd = bin_ + " " + args + " >" + (dir_ / "out").string() + " 2>" + (dir_ / "err").string();
    int st = std::system(cmd.c_str());
    return Outcome{WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(dir_ / "out"), slurp(dir_ / "err")};
  }
  fs::path write(const std::string& name, const std::string& bytes) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  static void one_line_error(const Outcome& r, int code, const std::string& needle) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("nfsfence: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  std::string bin_;
  fs::path dir_;
};

// A pcap global header (LINKTYPE_ETHERNET) and one 60-byte record header.
std::string pcap_header() {
  std::string h("\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00", 24);
  return h;
}

const char* kPolicy = "export: /e\ntrees:\n  - {name: a, path: a, limit: 1M}\n";

}  // namespace

TEST_F(Cli, HelpTeachesWithExamples) {
  Outcome r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("replay"), std::string::npos);
  for (const char* sub : {"decode", "replay"}) {
    Outcome s = run(std::string(sub) + " --help");
    EXPECT_EQ(s.code, 0) << sub;
    EXPECT_NE(s.out.find("examples:"), std::string::npos) << sub;
    EXPECT_NE(s.out.find("--format"), std::string::npos) << sub;
  }
}

TEST_F(Cli, UsageErrorsExit2) {
  one_line_error(run("frobnicate"), 2, "unknown command 'frobnicate'");
  one_line_error(run("decode"), 2, "capture");
  one_line_error(run("replay x.pcap"), 2, "policy");
  one_line_error(run("decode x.pcap --format xml"), 2, "'xml' is not one of");
  one_line_error(run("decode x.pcap --bogus"), 2, "bogus");
}

TEST_F(Cli, MissingCapture) {
  fs::path p = dir_ / "nope.pcap";
  one_line_error(run("decode " + p.string()), 1, p.string());
}

TEST_F(Cli, NotACapture) {
  fs::path p = write("text.pcap", "this is not a capture file at all, just text\n");
  one_line_error(run("decode " + p.string()), 1, p.string());
  fs::path pol = write("p.yaml", kPolicy);
  one_line_error(run("replay " + p.string() + " --policy " + pol.string()), 1, p.string());
}

TEST_F(Cli, EmptyFile) {
  fs::path p = write("empty.pcap", "");
  one_line_error(run("decode " + p.string()), 1, p.string());
}

// Issue 8, class 6: a cut capture was a warning with exit 0. It is exit 1 now (the
// partial results still printed), or a warning with exit 0 under --allow-truncated.
TEST_F(Cli, TruncatedCaptureFailsUnlessAllowed) {
  // A valid header, then a record header promising 60 bytes with only 10 present.
  std::string rec("\x00\x00\x00\x00\x00\x00\x00\x00\x3c\x00\x00\x00\x3c\x00\x00\x00", 16);
  fs::path p = write("trunc.pcap", pcap_header() + rec + std::string(10, 'x'));
  one_line_error(run("decode " + p.string()), 1,
                 p.string() +
                     ": packet 1: the file ends inside its packet data (everything before it was processed; "
                     "--allow-truncated accepts such captures)");
  Outcome r = run("decode --allow-truncated " + p.string());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "nfsfence: warning: " + p.string() +
                       ": packet 1: the file ends inside its packet data (accepted: --allow-truncated)\n");
}

TEST_F(Cli, BadPolicyNamesKeyAndLine) {
  fs::path cap = write("ok.pcap", pcap_header());
  fs::path pol = write("bad.yaml", "export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 5Gx\n");
  one_line_error(run("replay " + cap.string() + " --policy " + pol.string()), 1,
                 pol.string() + ":5: trees[0].limit: '5Gx' is not a size");
  one_line_error(run("replay " + cap.string() + " --policy " + (dir_ / "none.yaml").string()), 1, "none.yaml");
}

TEST_F(Cli, EmptyCaptureReplaysToZero) {
  fs::path cap = write("ok.pcap", pcap_header());
  fs::path pol = write("p.yaml", kPolicy);
  Outcome r = run("replay " + cap.string() + " --policy " + pol.string() + " --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"packets\": 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"usage_bytes\": 0"), std::string::npos) << r.out;
}

// `nfsfence events`: which log, and the errors when there is none or more than one.
TEST_F(Cli, EventsWithoutAnAgent) {
  one_line_error(run("events --no-follow --state-dir " + (dir_ / "missing").string()), 1, "does not exist");
  fs::create_directories(dir_ / "state");
  one_line_error(run("events --no-follow --state-dir " + (dir_ / "state").string()), 1, "no agent's event log in");
  write("state/eth0.json", "{\"pid\": 1}");  // a state file without a log is no log
  one_line_error(run("events --no-follow --state-dir " + (dir_ / "state").string()), 1, "no agent's event log in");
}

TEST_F(Cli, EventsOfTwoAgentsNeedAnInterface) {
  fs::create_directories(dir_ / "state");
  write("state/eth0.events.jsonl", "{\"time\":\"T0\",\"type\":\"agent_started\",\"pins\":\"fresh\"}\n");
  write("state/eth1.events.jsonl", "{\"time\":\"T1\",\"type\":\"tree_over\",\"tree\":\"a\",\"limit_bytes\":1024}\n");
  std::string sd = " --no-follow --state-dir " + (dir_ / "state").string();
  one_line_error(run("events" + sd), 2, "event logs of 2 agents in " + (dir_ / "state").string() + ": eth0, eth1");
  one_line_error(run("events eth9" + sd), 1, "no event log for eth9");
  Outcome r = run("events eth1" + sd);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "T1 tree_over a limit=1Ki\n");
  r = run("events eth0 --format json" + sd);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"time\":\"T0\",\"type\":\"agent_started\",\"pins\":\"fresh\"}\n");
  one_line_error(run("events eth0 --format yaml" + sd), 2, "--format");
}

TEST_F(Cli, EventsOfOneAgentOldestFirstDamagedLinesSkipped) {
  fs::create_directories(dir_ / "state");
  write("state/lsm.events.jsonl.1", "{\"time\":\"T0\",\"type\":\"a\"}\n");
  write("state/lsm.events.jsonl", "{\"time\":\"T1\",\"ty\n{\"time\":\"T2\",\"type\":\"b\"}\n{\"time\":\"T3\"");
  Outcome r = run("events --no-follow --state-dir " + (dir_ / "state").string());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "T0 a\nT2 b\n");  // the unfinished last line is not printed
  EXPECT_NE(r.err.find("1 damaged line(s)"), std::string::npos) << r.err;
}
