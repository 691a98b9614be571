// The agents' event log (src/event_log.h): appending, the one rotation, a follower that
// reads across rotations and restarts and holds a partial last line back.
#include "src/event_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using nfsfence::agent::event_log_of;
using nfsfence::agent::event_logs_in;
using nfsfence::agent::event_text;
using nfsfence::agent::EventFollower;
using nfsfence::agent::EventLog;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("nfsf-events-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = event_log_of(dir_.string(), "eth0");
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::vector<std::string> lines_of(const std::string& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  void append_raw(const std::string& bytes) {
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
    ::close(fd);
  }
  fs::path dir_;
  std::string path_;
};

// Collects what a follower hands on, as the sequence numbers the test's events carry.
struct Seen {
  std::vector<std::string> lines;
  std::vector<int> seqs() const {
    std::vector<int> out;
    for (const auto& l : lines) out.push_back(json::parse(l)["seq"].get<int>());
    return out;
  }
};

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; i++) v.push_back(i);
  return v;
}

}  // namespace

TEST_F(EventLogTest, AppendsOneJsonObjectPerLineTimeAndTypeFirst) {
  EventLog log(path_);
  log.emit_at(1764652200123000000LL, "tree_over", json{{"tree", "vol-a"}, {"usage_bytes", 1048576}});
  log.emit("agent_exiting");
  auto lines = lines_of(path_);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"time":"2025-12-02T05:10:00.123Z","type":"tree_over","tree":"vol-a","usage_bytes":1048576})");
  json second = json::parse(lines[1]);
  EXPECT_EQ(second["type"], "agent_exiting");
  EXPECT_EQ(second["time"].get<std::string>().size(), 24u);
  // fields cannot replace the time or the type
  log.emit("x", json{{"type", "y"}, {"time", "z"}, {"name", "bad\xff"}});
  json third = json::parse(lines_of(path_)[2]);
  EXPECT_EQ(third["type"], "x");
  EXPECT_NE(third["time"], "z");
  EXPECT_EQ(third["name"], "bad\xEF\xBF\xBD");  // invalid UTF-8 replaced, not thrown
}

TEST_F(EventLogTest, RotatesOnceKeepingAtMostTwoFiles) {
  EventLog log(path_, 400);
  for (int i = 0; i < 100; i++) log.emit("t", json{{"seq", i}});
  auto cur = lines_of(path_), old = lines_of(path_ + ".1");
  EXPECT_LE(fs::file_size(path_), 400u);
  EXPECT_LE(fs::file_size(path_ + ".1"), 400u);
  ASSERT_FALSE(cur.empty());
  ASSERT_FALSE(old.empty());
  // the rotated file holds the lines just before the current file's, none lost between them
  int last_old = json::parse(old.back())["seq"].get<int>(), first_cur = json::parse(cur.front())["seq"].get<int>();
  EXPECT_EQ(last_old + 1, first_cur);
  EXPECT_EQ(json::parse(cur.back())["seq"].get<int>(), 99);
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names.size(), 2u);
}

TEST_F(EventLogTest, FollowerReadsExistingThenNewLinesAcrossRotations) {
  EventLog log(path_, 500);
  for (int i = 0; i < 12; i++) log.emit("t", json{{"seq", i}});  // already rotated once
  ASSERT_TRUE(fs::exists(path_ + ".1"));
  Seen seen;
  EventFollower f(path_, [&](std::string_view l) { seen.lines.emplace_back(l); });
  f.read_existing();
  // what the two files hold, oldest first
  std::vector<int> expect;
  for (auto& l : lines_of(path_ + ".1")) expect.push_back(json::parse(l)["seq"].get<int>());
  for (auto& l : lines_of(path_)) expect.push_back(json::parse(l)["seq"].get<int>());
  EXPECT_EQ(seen.seqs(), expect);
  EXPECT_EQ(expect.back(), 11);
  // one rotation at most between two polls: every line arrives once, in order
  int next = 12;
  for (int round = 0; round < 20; round++) {
    for (int k = 0; k < 4; k++) log.emit("t", json{{"seq", next++}});
    f.poll();
  }
  std::vector<int> got = seen.seqs();
  std::vector<int> tail(got.end() - (next - 12), got.end());
  EXPECT_EQ(tail, range(12, next));
  EXPECT_EQ(f.poll(), 0u);
}

TEST_F(EventLogTest, FollowerWaitsForThePartialLastLine) {
  Seen seen;
  append_raw("{\"seq\":0}\n{\"seq\":");
  EventFollower f(path_, [&](std::string_view l) { seen.lines.emplace_back(l); });
  f.read_existing();
  EXPECT_EQ(seen.seqs(), std::vector<int>{0});
  EXPECT_EQ(f.poll(), 0u);
  append_raw("1");
  EXPECT_EQ(f.poll(), 0u);
  append_raw("}\n{\"seq\":2}\n");
  EXPECT_EQ(f.poll(), 2u);
  EXPECT_EQ(seen.seqs(), (std::vector<int>{0, 1, 2}));
}

TEST_F(EventLogTest, FollowerSeesTheFileMadeLaterAndAnAgentRestart) {
  Seen seen;
  EventFollower f(path_, [&](std::string_view l) { seen.lines.emplace_back(l); });
  f.read_existing();  // nothing there yet
  EXPECT_TRUE(seen.lines.empty());
  {
    EventLog first(path_);
    first.emit("agent_started", json{{"seq", 0}});
  }
  EXPECT_EQ(f.poll(), 1u);
  // an agent that died inside a write left half a line: the next agent ends it, and its own
  // lines come whole after it (the damaged one is handed on: `events` skips what is not JSON)
  append_raw("{\"seq\":9");
  EventLog second(path_);
  second.emit("agent_started", json{{"seq", 1}});
  EXPECT_EQ(f.poll(), 2u);
  ASSERT_EQ(seen.lines.size(), 3u);
  EXPECT_EQ(seen.lines[1], "{\"seq\":9");
  EXPECT_EQ(json::parse(seen.lines[2])["seq"], 1);
  // removed behind the agent's back: the agent makes it again, the follower opens it
  fs::remove(path_);
  second.emit("t", json{{"seq", 2}});
  EXPECT_EQ(f.wait_and_poll(100), 1u);
  EXPECT_EQ(json::parse(seen.lines.back())["seq"], 2);
}

TEST_F(EventLogTest, ListsTheLogsOfAStateDir) {
  EventLog a(event_log_of(dir_.string(), "eth1"));
  EventLog b(event_log_of(dir_.string(), "lsm"));
  std::ofstream(dir_ / "eth0.events.jsonl.1") << "";  // only a rotated file left
  std::ofstream(dir_ / "eth1.json") << "{}";          // a state file is not a log
  EXPECT_EQ(event_logs_in(dir_.string()), (std::vector<std::string>{"eth0", "eth1", "lsm"}));
  EXPECT_TRUE(event_logs_in((dir_ / "missing").string()).empty());
}

TEST_F(EventLogTest, TextIsOneReadableLine) {
  ordered_json e = ordered_json::parse(
      R"({"time":"2026-12-02T05:10:00.123Z","type":"writes_refused","tree":"vol\na","count":16,"bytes":1048576,"interval_s":1.002})");
  EXPECT_EQ(event_text(e), "2026-12-02T05:10:00.123Z writes_refused vol\\na count=16 bytes=1Mi interval_s=1.002");
  e = ordered_json::parse(
      R"({"time":"T","type":"tree_over","tree":"a","path":"a","usage_bytes":1100000,"limit_bytes":1048576,"iface":"x"})");
  EXPECT_EQ(event_text(e), "T tree_over a path=a usage=1.05Mi limit=1Mi");
}
