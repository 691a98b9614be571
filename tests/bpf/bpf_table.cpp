#include "bpf/bpf_table.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace nfsfence::bpftest {

using namespace pkt;

// ---------------------------------------------------------------- frames

namespace {

Bytes build_dir(const Flow& fl, ByteView payload, uint8_t tcp_flags, bool from_server, uint32_t seq) {
  Endpoint cli = fl.v6 ? ep("fd00::1", fl.sport) : ep("10.99.0.1", fl.sport);
  Endpoint srv = fl.v6 ? ep("fd00::2", fl.dport) : ep("10.99.0.2", fl.dport);
  Seg s{.src = from_server ? srv : cli,
        .dst = from_server ? cli : srv,
        .udp = fl.udp,
        .seq = seq,
        .ack = 77,
        .flags = tcp_flags,
        .ip_id = 0x1234,
        .dont_fragment = true};
  return frame(s, payload);
}

}  // namespace

Bytes build(const Flow& fl, ByteView payload, uint8_t tcp_flags) {
  return build_dir(fl, payload, tcp_flags, false, fl.seq);
}

Bytes build_reply(const Flow& call_flow, ByteView payload, uint8_t tcp_flags, uint32_t seq) {
  return build_dir(call_flow, payload, tcp_flags, true, seq);
}

Bytes fh_of(uint8_t tag, size_t len) {
  Bytes fh(len);
  for (size_t i = 0; i < len; i++) fh[i] = uint8_t(tag + i * 7);
  return fh;
}

Bytes call_msg(const Bytes& fh, const CallOpts& o) {
  XdrWriter x;
  call_head(x, o.xid, o.prog, o.vers, o.proc, kAuthUnix, Bytes(o.cred_body, 0x5a));
  if (o.proc == 7) {
    write3_head(x, fh, 4096, o.count ? o.count : uint32_t(o.data_len), 2 /* FILE_SYNC */, uint32_t(o.data_len));
    x.fixed(Bytes(o.data_len, 0xab));
  } else if (o.proc == 6) {
    read3_args(x, fh, 0, 8192);
  } else {
    x.opaque(fh);
  }
  return x.bytes();
}

Bytes dirop_call(const Bytes& dir, uint32_t proc, const std::string& name, uint32_t xid) {
  CallOpts o;
  o.proc = proc;
  o.xid = xid;
  Bytes m = call_msg(dir, o);
  XdrWriter rest;
  rest.str(name);
  if (proc == 8) rest.u32(0);  // createhow3: UNCHECKED
  if (proc == 8 || proc == 9) sattr3_none(rest);
  put_bytes(m, rest.bytes());
  return m;
}

Bytes write_reply_msg(uint32_t xid, uint32_t nfsstat) {
  XdrWriter x;
  x.reply_header(xid);
  return write3res(x, nfsstat, std::nullopt, std::nullopt, 13, 2, 0x1111111122222222ull).bytes();
}

Bytes dirop_reply(uint32_t xid, uint32_t proc, uint32_t nfsstat, bool follows, const Bytes& obj) {
  XdrWriter x;
  x.reply_header(xid);
  return dirop3res(x, proc, nfsstat, follows, obj).bytes();
}

Bytes mark(ByteView msg, bool last, uint32_t len) { return len ? record_claiming(msg, len, last) : record(msg, last); }

size_t fh_offset(ByteView f, size_t msg_at) {
  size_t o = msg_at + 24;
  o += 8 + ((get32(f, o + 4) + 3) & ~3u);  // cred
  o += 8 + ((get32(f, o + 4) + 3) & ~3u);  // verf
  return o + 4;
}

nfsf_xid_key xid_key_for_reply(ByteView call_frame, uint32_t xid) {
  nfsf_xid_key k{};
  Layout L = layout_of(call_frame);
  size_t a = L.addr(), n = L.addr_len();
  std::memcpy(k.flow.saddr, &call_frame[a + n], n);  // reply: server -> client
  std::memcpy(k.flow.daddr, &call_frame[a], n);
  std::memcpy(&k.flow.sport, &call_frame[L.l4 + 2], 2);
  std::memcpy(&k.flow.dport, &call_frame[L.l4], 2);
  k.flow.family = L.v6 ? 6 : 4;
  k.flow.proto = L.udp ? 17 : 6;
  k.xid = htonl(xid);
  return k;
}

// ---------------------------------------------------------------- rows

const char* prog_name(Prog p) {
  switch (p) {
    case Prog::Tc:
      return "tc";
    case Prog::TcDrop:
      return "tc (drop)";
    case Prog::Xdp:
      return "xdp";
    case Prog::XdpDrop:
      return "xdp (drop)";
  }
  return "?";
}

Out unchanged() { return Out{}; }
Out poisoned(size_t at, size_t len) { return Out{.kind = Out::Poisoned, .at = at, .len = len}; }
Out rewritten(Bytes want) { return Out{.kind = Out::Rewritten, .want = std::move(want)}; }
Out any_out() { return Out{.kind = Out::Any}; }

Setup tree_of(const Bytes& fh, uint32_t tree, bool over) {
  return Setup{.handles = {{fh, tree}}, .over = {{tree, over}}};
}

Step call(std::string what, Bytes in, Out out) {
  return Step{.what = std::move(what), .hook = Hook::Calls, .in = std::move(in), .out = std::move(out)};
}
Step reply(std::string what, Bytes in, Out out) {
  return Step{.what = std::move(what), .hook = Hook::Replies, .in = std::move(in), .out = std::move(out)};
}

Table single(std::string name, std::function<Row()> row) {
  return {std::move(name), [row = std::move(row)] { return std::vector<Row>{row()}; }};
}

void PrintTo(const Table& t, std::ostream* os) { *os << t.name; }
std::string table_name(const ::testing::TestParamInfo<Table>& info) { return info.param.name; }

// ---------------------------------------------------------------- running

RunResult test_run(int fd, const Bytes& in) {
  RunResult r;
  r.out.resize(in.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = r.out.data(), .data_size_in = uint32_t(in.size()),
              .data_size_out = uint32_t(r.out.size()), .repeat = 1);
  r.err = bpf_prog_test_run_opts(fd, &o) ? errno : 0;
  r.retval = o.retval;
  r.out.resize(o.data_size_out);
  return r;
}

::testing::AssertionResult checksums_ok(ByteView f) {
  std::string e = checksum_error(f);
  return e.empty() ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << e;
}

::testing::AssertionResult poisoned_only(ByteView in, ByteView out, size_t at, size_t len) {
  if (in.size() != out.size()) return ::testing::AssertionFailure() << "length changed";
  size_t c = layout_of(in).l4_csum();
  for (size_t i = 0; i < in.size(); i++) {
    bool in_fh = i >= at && i < at + len;
    bool csum = i == c || i == c + 1;
    if (in_fh && out[i] != NFSF_FH_POISON)
      return ::testing::AssertionFailure() << "fh byte " << i - at << " not poisoned";
    if (!in_fh && !csum && out[i] != in[i]) return ::testing::AssertionFailure() << "byte " << i << " changed";
  }
  return checksums_ok(out);
}

namespace {

std::string load_skip_reason;

// Probe once with a two-instruction TC program: if even that cannot be loaded (no root, no
// CAP_BPF, BPF disabled), every test skips with the reason. The verifier also answers
// EACCES, so the real object is NOT the probe: a program the verifier rejects must fail the
// tests, not skip them.
class ProbeEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    const bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0}};
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "nfsf_probe", "GPL", prog, 2, nullptr);
    if (fd < 0) {
      int e = errno;
      load_skip_reason = "cannot load even a trivial TC program here (" + std::string(std::strerror(e)) +
                         "): run as root on a kernel with BPF";
      return;
    }
    ::close(fd);
  }
};
const auto* probe_env = ::testing::AddGlobalTestEnvironment(new ProbeEnv);

bool is_xdp(Prog p) { return p == Prog::Xdp || p == Prog::XdpDrop; }

uint32_t verdict_code(Prog p, Verdict v) {
  constexpr uint32_t kTcOk = 0, kTcShot = 2, kXdpDrop = 1, kXdpPass = 2;
  if (is_xdp(p)) return v == Verdict::Drop ? kXdpDrop : kXdpPass;
  return v == Verdict::Drop ? kTcShot : kTcOk;
}

std::string hexdump(ByteView b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) s += {d[c >> 4], d[c & 15], ' '};
  return s;
}

// A map entry that must be absent (want empty) or present and match (eq).
template <typename Got, typename Want, typename Eq>
void expect_entry(const Got& got, const std::optional<Want>& want, const std::string& what, Eq eq) {
  ASSERT_TRUE(got) << what << ": lookup failed";
  ASSERT_EQ(got->has_value(), want.has_value()) << what << (want ? ": no entry" : ": an entry where none must be");
  if (want) eq(**got, *want);
}

void apply(const bpf::MapSet& m, const Setup& s) {
  for (const auto& [fh, tree] : s.handles) ASSERT_TRUE(m.set_handle_tree(fh, tree)) << "set_handle_tree";
  for (auto [tree, over] : s.over) ASSERT_TRUE(m.set_tree_over(tree, over)) << "set_tree_over";
  for (auto [tree, full_at] : s.room) ASSERT_TRUE(m.set_tree_room(tree, full_at)) << "set_tree_room";
  for (const auto& [tree, df] : s.df) ASSERT_TRUE(m.set_tree_df(tree, df)) << "set_tree_df";
}

}  // namespace

void BpfRunner::SetUp() {
  if (!load_skip_reason.empty()) GTEST_SKIP() << load_skip_reason;
}

void BpfRunner::load(Prog p) {
  bpf::LoadOptions opt;
  opt.action = p == Prog::TcDrop || p == Prog::XdpDrop ? NFSF_ACTION_DROP : NFSF_ACTION_REWRITE;
  opt.events_bytes = 1 << 20;
  // Every reply event wakes the agent: events_wakeups then counts events, not time (the
  // rate limit itself: tests/bpf/wakeup_test.cpp).
  opt.wake_ns = 0;
  if (is_xdp(p)) {
    auto r = bpf::XdpProgram::load(opt);
    if (!r) throw std::runtime_error(r.error().message());
    xdp_[p] = std::move(*r);
  } else {
    auto r = bpf::TcProgram::load(opt);
    if (!r) throw std::runtime_error(r.error().message());
    tc_[p] = std::move(*r);
  }
}

const bpf::MapSet& BpfRunner::maps(Prog p) {
  if (!tc_.count(p) && !xdp_.count(p)) load(p);
  return is_xdp(p) ? xdp_[p]->maps() : tc_[p]->maps();
}

int BpfRunner::fd(Prog p, Hook h) {
  maps(p);
  if (is_xdp(p)) {
    if (h == Hook::Replies) ADD_FAILURE() << "the XDP program has no reply hook";
    return xdp_[p]->prog_fd();
  }
  return h == Hook::Calls ? tc_[p]->egress_fd() : tc_[p]->ingress_fd();
}

std::vector<Event> BpfRunner::drain_events(Prog p) {
  std::vector<Event> out;
  auto cb = [](void* ctx, void* data, size_t) -> int {
    auto* ev = static_cast<nfsf_event*>(data);
    static_cast<std::vector<Event>*>(ctx)->push_back({ev->type, ev->flags, Bytes(ev->data, ev->data + ev->len)});
    return 0;
  };
  ring_buffer* rb = ring_buffer__new(maps(p).events_fd, cb, &out, nullptr);
  if (!rb) {
    ADD_FAILURE() << "ring_buffer__new failed";
    return out;
  }
  ring_buffer__consume(rb);
  ring_buffer__free(rb);
  return out;
}

void BpfRunner::check(const Checks& c, Prog p, const bpf::Counters& base, const std::map<uint32_t, nfsf_tree>& trees0) {
  const auto& m = maps(p);
  if (!c.counters.empty()) {
    auto now = m.counters();
    ASSERT_TRUE(now) << "counters";
    for (auto [id, want] : c.counters) EXPECT_EQ((*now)[id] - base[id], want) << bpf::counter_name(id);
  }
  for (const TreeWant& w : c.trees) {
    auto t = m.tree(w.tree);
    ASSERT_TRUE(t) << "tree " << w.tree;
    const nfsf_tree& t0 = trees0.at(w.tree);
    if (w.writes) {
      EXPECT_EQ(t->writes - t0.writes, *w.writes) << "tree " << w.tree << " writes; " << w.why;
    }
    if (w.write_bytes) {
      EXPECT_EQ(t->write_bytes - t0.write_bytes, *w.write_bytes) << "tree " << w.tree << " write_bytes; " << w.why;
    }
    if (w.refused_writes) {
      EXPECT_EQ(t->refused_writes - t0.refused_writes, *w.refused_writes)
          << "tree " << w.tree << " refused_writes; " << w.why;
    }
    if (w.refused_bytes) {
      EXPECT_EQ(t->refused_bytes - t0.refused_bytes, *w.refused_bytes)
          << "tree " << w.tree << " refused_bytes; " << w.why;
    }
  }
  for (const PoisonedWant& w : c.poisoned)
    expect_entry(m.poisoned(w.key), w.tree, "poisoned XID; " + w.why,
                 [&](const nfsf_poisoned& got, uint32_t tree) { EXPECT_EQ(got.tree, tree) << w.why; });
  for (const HandleWant& w : c.handles)
    expect_entry(m.handle_tree(w.fh), w.tree, "handle mapping; " + w.why,
                 [&](uint32_t got, uint32_t tree) { EXPECT_EQ(got, tree) << w.why; });
  for (const DiropWant& w : c.dirops)
    expect_entry(m.pending_dirop(w.key), w.dirop, "pending dir-op; " + w.why,
                 [&](const nfsf_dirop& got, const nfsf_dirop& d) {
                   EXPECT_EQ(got.tree, d.tree) << w.why;
                   EXPECT_EQ(got.proc, d.proc) << w.why;
                 });
}

void BpfRunner::run_row(const Row& row, Prog p, bpf::Counters* delta) {
  SCOPED_TRACE(row.what + " [" + prog_name(p) + "]");
  if (delta) delta->fill(0);
  if (!row.skip.empty()) GTEST_SKIP() << row.skip;
  for (const auto& [fact, holds] : row.facts) ASSERT_TRUE(holds) << "fixture: " << fact;
  const auto& m = maps(p);
  apply(m, row.setup);
  if (HasFatalFailure()) return;
  drain_events(p);  // earlier rows'
  auto base = m.counters();
  ASSERT_TRUE(base) << "counters";
  std::map<uint32_t, nfsf_tree> trees0;
  auto note_trees = [&](const Checks& c) {
    for (const TreeWant& w : c.trees)
      if (auto t = m.tree(w.tree)) trees0.emplace(w.tree, *t);
  };
  note_trees(row.checks);
  for (const Step& s : row.steps)
    if (s.then) note_trees(*s.then);

  std::vector<Bytes> outs;
  for (size_t i = 0; i < row.steps.size(); i++) {
    const Step& s = row.steps[i];
    SCOPED_TRACE("frame " + std::to_string(i) + ": " + s.what);
    if (s.before) {
      apply(m, *s.before);
      if (HasFatalFailure()) return;
    }
    RunResult r = test_run(fd(p, s.hook), s.in);
    if (s.skip_if_einval && r.err == EINVAL)
      GTEST_SKIP() << "this kernel's test_run refuses the " << s.in.size() << "-byte frame of " << s.what;
    ASSERT_EQ(r.err, 0) << "test_run of a " << s.in.size() << "-byte frame: " << std::strerror(r.err);
    if (s.verdict != Verdict::Any) {
      EXPECT_EQ(r.retval, verdict_code(p, s.verdict)) << "verdict";
    }
    switch (s.out.kind) {
      case Out::Unchanged:
        EXPECT_TRUE(r.out == s.in) << "output changed:\n" << hexdump(r.out) << "\nwas\n" << hexdump(s.in);
        break;
      case Out::Poisoned:
        EXPECT_TRUE(poisoned_only(s.in, r.out, s.out.at, s.out.len)) << "poison at " << s.out.at;
        break;
      case Out::Rewritten: {
        Bytes got = r.out, want = s.out.want;
        size_t c = layout_of(want).l4_csum();  // checksums verified on their own below
        if (got.size() == want.size()) got[c] = want[c] = got[c + 1] = want[c + 1] = 0;
        EXPECT_TRUE(got == want) << "output:\n" << hexdump(got) << "\nwanted\n" << hexdump(want);
        EXPECT_TRUE(checksums_ok(r.out));
        break;
      }
      case Out::Any:
        break;
    }
    if (s.same_out_as) {
      EXPECT_TRUE(r.out == outs.at(*s.same_out_as)) << "output differs from frame " << *s.same_out_as;
    }
    outs.push_back(r.out);
    if (s.then) {
      check(*s.then, p, *base, trees0);
      if (HasFatalFailure()) return;
    }
  }
  check(row.checks, p, *base, trees0);
  if (HasFatalFailure()) return;
  if (row.events) {
    std::vector<Event> got = drain_events(p);
    ASSERT_EQ(got.size(), row.events->size()) << "ring buffer events";
    for (size_t i = 0; i < got.size(); i++) {
      const EventWant& w = (*row.events)[i];
      if (w.type) {
        EXPECT_EQ(got[i].type, *w.type) << "event " << i << " type";
      }
      if (w.flags) {
        EXPECT_EQ(got[i].flags, *w.flags) << "event " << i << " flags";
      }
      if (w.data) {
        EXPECT_EQ(got[i].data, *w.data) << "event " << i << " data";
      }
    }
  }
  if (delta) {
    auto now = m.counters();
    ASSERT_TRUE(now) << "counters";
    for (size_t i = 0; i < now->size(); i++) (*delta)[i] = (*now)[i] - (*base)[i];
  }
}

void BpfRunner::run_table(const Table& t) {
  for (const Row& row : t.rows())
    for (Prog p : row.progs) {
      run_row(row, p);
      if (HasFatalFailure() || IsSkipped()) return;
    }
}

}  // namespace nfsfence::bpftest
