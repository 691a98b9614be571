// Reply events wake the agent at most once per nfsf_wake_ns, or when the ring is 1/8 full;
// calls never do (bpf/include/nfsf_events.h). The window here is 10 s, so nothing depends on
// how fast the test runs.
#include <gtest/gtest.h>

#include "tests/bpf/bpf_table.h"

namespace nfsfence::bpftest {
namespace {

class Wakeup : public BpfRunner {
 protected:
  std::unique_ptr<bpf::TcProgram> load(uint32_t events_bytes) {
    bpf::LoadOptions opt;
    opt.events_bytes = events_bytes;
    opt.wake_ns = 10'000'000'000ull;
    auto r = bpf::TcProgram::load(opt);
    if (!r) throw std::runtime_error(r.error().message());
    return std::move(*r);
  }
  // One WRITE reply on a connection of its own (client port `port`), and its counter deltas.
  bpf::Counters reply(bpf::TcProgram& prog, uint16_t port) {
    Flow f;
    f.sport = port;
    Bytes frame = build_reply(f, mark(write_reply_msg(port, 0)));
    auto before = prog.maps().counters();
    RunResult r = test_run(prog.ingress_fd(), frame);
    EXPECT_EQ(r.err, 0);
    auto after = prog.maps().counters();
    bpf::Counters d{};
    if (before && after)
      for (size_t i = 0; i < d.size(); i++) d[i] = (*after)[i] - (*before)[i];
    return d;
  }
};

TEST_F(Wakeup, OneWakeupPerWindowForReplies) {
  auto prog = load(1 << 20);
  auto first = reply(*prog, 900), second = reply(*prog, 901), third = reply(*prog, 902);
  for (auto* d : {&first, &second, &third}) EXPECT_EQ((*d)[NFSF_C_EVENTS], 1u);
  EXPECT_EQ(first[NFSF_C_EVENTS_WAKEUP], 1u) << "the first reply after a quiet window wakes the agent";
  EXPECT_EQ(second[NFSF_C_EVENTS_WAKEUP], 0u) << "a reply within the window waits for the agent's next poll";
  EXPECT_EQ(third[NFSF_C_EVENTS_WAKEUP], 0u);
}

TEST_F(Wakeup, AFullEighthOfTheRingWakesTheAgentInsideTheWindow) {
  // A 64 KiB ring that nobody reads; every event takes a whole struct nfsf_event (2 KiB and
  // its header), so within a few events the unread data is past 1/8 (8 KiB).
  auto prog = load(64 << 10);
  std::vector<uint64_t> woke;
  for (uint16_t port = 910; port < 930; port++) {
    auto d = reply(*prog, port);
    EXPECT_EQ(d[NFSF_C_EVENTS], 1u) << "reply " << woke.size() + 1;
    woke.push_back(d[NFSF_C_EVENTS_WAKEUP]);
  }
  std::string seen;
  for (uint64_t w : woke) seen += std::to_string(w);
  SCOPED_TRACE("wakeups per reply: " + seen);
  EXPECT_EQ(woke[0], 1u) << "the first reply: the window had passed";
  EXPECT_EQ(woke[1], 0u) << "the second: inside the window, the ring nearly empty";
  // then, once the unread data passes 1/8 of the ring, every reply wakes
  size_t first = 2;
  while (first < woke.size() && woke[first] == 0) first++;
  EXPECT_LE(first, 8u) << "the ring passes 1/8 within 8 events of 2 KiB";
  for (size_t k = first; k < woke.size(); k++) EXPECT_EQ(woke[k], 1u) << "reply " << k + 1;
}

}  // namespace
}  // namespace nfsfence::bpftest
