// The agent's Prometheus metrics without the network: a snapshot's families as
// prometheus-cpp serializes them, and the monotonic counters MetricsServer serves; then one
// scrape over a loopback socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "src/metrics.h"

namespace nfsfence::agent {
namespace {

MetricsSnapshot snapshot() {
  MetricsSnapshot s;
  MetricsSnapshot::Tree a;
  a.name = "vol-a";
  a.limit = 1048576;
  a.usage = 1114112;
  a.over = true;
  a.writes = 17;
  a.write_bytes = 17 * 65536;
  a.refused_writes = 3;
  a.refused_bytes = 3 * 65536;
  s.trees.push_back(a);
  s.counters[NFSF_C_PACKETS] = 1000;
  s.counters[NFSF_C_ERR_FH_LEN] = 2;
  s.counters[NFSF_C_WRITE_REFUSED_REWRITE] = 3;
  s.counters[NFSF_C_FSSTAT_REWRITTEN] = 5;
  s.handles = 42;
  s.reply_lag_count = 10;
  s.reply_lag_sum_s = 0.01;
  s.reply_lag_p50_s = 0.0005;
  s.reply_lag_p99_s = 0.004;
  return s;
}

std::string text(const MetricsSnapshot& s) {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, metric_families(s));
  return os.str();
}

TEST(Metrics, SnapshotAsTextExposition) {
  std::string t = text(snapshot());
  for (const char* line :
       {"nfsfence_agent_up 1", "nfsfence_tree_limit_bytes{tree=\"vol-a\"} 1048576",
        "nfsfence_tree_usage_bytes{tree=\"vol-a\"} 1114112", "nfsfence_tree_over{tree=\"vol-a\"} 1",
        "nfsfence_tree_writes_total{tree=\"vol-a\"} 17", "nfsfence_tree_write_bytes_total{tree=\"vol-a\"} 1114112",
        "nfsfence_tree_refused_writes_total{tree=\"vol-a\"} 3",
        "nfsfence_tree_refused_bytes_total{tree=\"vol-a\"} 196608", "nfsfence_packets_total 1000",
        "nfsfence_parse_errors_total{reason=\"fh_len\"} 2", "nfsfence_parse_errors_total{reason=\"short\"} 0",
        "nfsfence_write_verdicts_total{verdict=\"refused_rewrite\"} 3", "nfsfence_handles 42",
        "nfsfence_fsstat_replies_total{result=\"rewritten\"} 5", "nfsfence_fsstat_replies_total{result=\"cut\"} 0",
        "nfsfence_reply_lag_seconds{quantile=\"0.99\"} 0.004", "nfsfence_reply_lag_seconds_count 10",
        "# TYPE nfsfence_tree_refused_writes_total counter", "# TYPE nfsfence_tree_over gauge"})
    EXPECT_NE(t.find(std::string(line) + "\n"), std::string::npos) << line << "\n--- in ---\n" << t;
  // every err_* counter is a reason, and only those
  EXPECT_EQ(t.find("reason=\"err_"), std::string::npos);
  EXPECT_EQ(t.find("reason=\"packets\""), std::string::npos);
}

TEST(Metrics, ListenAddressesAreChecked) {
  EXPECT_EQ(check_listen_address("127.0.0.1:9109"), "");
  EXPECT_EQ(check_listen_address("[::1]:9109"), "");
  for (const char* bad : {"9109", ":9109", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:91x"})
    EXPECT_NE(check_listen_address(bad), "") << bad;
}

// A free loopback port: bind to 0, read it back, close (the exposer binds it next).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

std::string scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) {
    if (fd >= 0) close(fd);
    return "";
  }
  std::string req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n", out;
  (void)!write(fd, req.data(), req.size());
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fd);
  return out;
}

TEST(Metrics, ServedCountersNeverGoBackAndAPortInUseIsOneLine) {
  int port = free_port();
  if (port < 0) GTEST_SKIP() << "no loopback socket here";
  std::string addr = "127.0.0.1:" + std::to_string(port);
  auto m = MetricsServer::start(addr);
  ASSERT_TRUE(m) << m.error().message;
  MetricsSnapshot s = snapshot();
  (*m)->publish(s);
  s.trees[0].write_bytes -= 65536;  // the kernel lowers write_bytes after a room refusal
  s.trees[0].usage = 0;             // a gauge may go down
  s.counters[NFSF_C_PACKETS] = 999;
  (*m)->publish(s);
  std::string body = scrape(port);
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("nfsfence_tree_write_bytes_total{tree=\"vol-a\"} 1114112\n"), std::string::npos) << body;
  EXPECT_NE(body.find("nfsfence_packets_total 1000\n"), std::string::npos) << body;
  EXPECT_NE(body.find("nfsfence_tree_usage_bytes{tree=\"vol-a\"} 0\n"), std::string::npos) << body;

  auto again = MetricsServer::start(addr);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("cannot listen"), std::string::npos) << again.error().message;
  EXPECT_EQ(again.error().message.find('\n'), std::string::npos) << again.error().message;
}

}  // namespace
}  // namespace nfsfence::agent
