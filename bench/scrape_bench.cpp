// Scrape cost of `attach --metrics` (docs/benchmarks.md "Metrics scrape"): two MetricsServers
// (src/metrics.h) on 127.0.0.1, one published with 1 tree and one with N trees, scraped in
// alternating rounds over HTTP (raw socket, GET /metrics, Connection: close) in one run.
// Prints ms per scrape (median and mean), bytes per scrape, the ratio N trees : 1 tree, and
// the cost of publish() with N trees (the agent calls it once a second).
//
//   build/bench/nfsf_scrape_bench [TREES=1000] [SCRAPES=200]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/metrics.h"

using nfsfence::agent::MetricsServer;
using nfsfence::agent::MetricsSnapshot;
using Clock = std::chrono::steady_clock;

namespace {

MetricsSnapshot snapshot(unsigned trees) {
  MetricsSnapshot s;
  for (unsigned i = 0; i < trees; i++) {
    MetricsSnapshot::Tree t;
    char name[64];  // csi-driver-nfs volume names: pvc-UUID
    std::snprintf(name, sizeof name, "pvc-%08x-1f2e-4d3c-9b8a-%012x", i * 2654435761u, i);
    t.name = name;
    t.limit = (10ull << 30) + i;
    t.usage = (uint64_t(i) * 7919) << 10;
    t.over = i % 17 == 0;
    t.writes = 100000 + i;
    t.write_bytes = (100000ull + i) << 16;
    t.refused_writes = i % 17 == 0 ? 1000 + i : 0;
    t.refused_bytes = t.refused_writes << 16;
    s.trees.push_back(std::move(t));
  }
  for (size_t c = 0; c < s.counters.size(); c++) s.counters[c] = 1000 * (c + 1);
  s.handles = 123456;
  s.reply_lag_count = 4096;
  s.reply_lag_sum_s = 0.5;
  s.reply_lag_p50_s = 0.0001;
  s.reply_lag_p99_s = 0.001;
  return s;
}

std::unique_ptr<MetricsServer> start(int& port) {
  for (port = 19109; port < 19300; port++) {
    auto m = MetricsServer::start("127.0.0.1:" + std::to_string(port));
    if (m) return std::move(*m);
  }
  std::fprintf(stderr, "nfsf_scrape_bench: no free port in 19109..19299\n");
  std::exit(1);
}

// One GET /metrics; returns the bytes of the whole response (headers included), 0 on error.
size_t scrape(int port, size_t& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return 0;
  }
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::write(fd, req, sizeof req - 1) != ssize_t(sizeof req - 1)) {
    ::close(fd);
    return 0;
  }
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) resp.append(buf, size_t(n));
  ::close(fd);
  auto hdr = resp.find("\r\n\r\n");
  if (resp.compare(0, 12, "HTTP/1.1 200") != 0 || hdr == std::string::npos) return 0;
  body = resp.size() - hdr - 4;
  return resp.size();
}

struct Stats {
  std::vector<double> ms;
  size_t body = 0;
  double median() {
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }
  double mean() const {
    double s = 0;
    for (double m : ms) s += m;
    return s / double(ms.size());
  }
};

void one(int port, Stats& st) {
  size_t body = 0;
  auto t0 = Clock::now();
  if (!scrape(port, body)) {
    std::fprintf(stderr, "nfsf_scrape_bench: scrape of 127.0.0.1:%d failed\n", port);
    std::exit(1);
  }
  st.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  st.body = body;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned trees = argc > 1 ? unsigned(std::atoi(argv[1])) : 1000;
  unsigned scrapes = argc > 2 ? unsigned(std::atoi(argv[2])) : 200;
  if (trees == 0 || scrapes == 0) {
    std::fprintf(stderr, "usage: nfsf_scrape_bench [TREES=1000] [SCRAPES=200]\n");
    return 2;
  }
  int port1 = 0, portn = 0;
  auto small = start(port1);
  auto big = start(portn);
  small->publish(snapshot(1));
  // publish() with N trees, as the agent does once a second (the first one has nothing to
  // merge with; the ones after keep counters monotonic against the previous snapshot)
  big->publish(snapshot(trees));
  std::vector<double> pub;
  for (int i = 0; i < 20; i++) {
    auto s = snapshot(trees);
    auto t0 = Clock::now();
    big->publish(std::move(s));
    pub.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(pub.begin(), pub.end());
  Stats s1, sn;
  for (int i = 0; i < 10; i++) one(port1, s1), one(portn, sn);  // warm-up
  s1.ms.clear();
  sn.ms.clear();
  for (unsigned i = 0; i < scrapes; i++) {  // alternating: both see the same machine state
    one(port1, s1);
    one(portn, sn);
  }
  double m1 = s1.median(), mn = sn.median();
  std::printf("scrapes: %u each, alternating, 127.0.0.1, GET /metrics, Connection: close\n", scrapes);
  std::printf("%5u trees: %8.3f ms/scrape median, %8.3f mean, %9zu bytes/scrape (body)\n", trees, mn, sn.mean(),
              sn.body);
  std::printf("%5u tree:  %8.3f ms/scrape median, %8.3f mean, %9zu bytes/scrape (body)\n", 1u, m1, s1.mean(), s1.body);
  std::printf("ratio %u trees / 1 tree: %.1fx time, %.1fx bytes\n", trees, mn / m1, double(sn.body) / double(s1.body));
  std::printf("publish() with %u trees: %.3f ms median (of 20)\n", trees, pub[pub.size() / 2]);
  return 0;
}
