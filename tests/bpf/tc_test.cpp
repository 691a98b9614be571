// BPF_PROG_TEST_RUN fixture tables against the real nfsfence TC and XDP programs.
// Needs root (CAP_BPF + CAP_NET_ADMIN); skips with the reason when loading is refused.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#define PCAP_DONT_INCLUDE_PCAP_BPF_H 1
#include <pcap/pcap.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "src/bpf_loader.h"

namespace {

using Bytes = std::vector<uint8_t>;
using nfsfence::bpf::LoadOptions;
using nfsfence::bpf::TcProgram;
using nfsfence::bpf::XdpProgram;

constexpr int TC_OK = 0, TC_SHOT = 2, XDP_DROP_ = 1, XDP_PASS_ = 2;

// ---------------------------------------------------------------- packet building

void put16(Bytes& b, uint16_t v) { b.push_back(v >> 8); b.push_back(v & 0xff); }
void put32(Bytes& b, uint32_t v) { put16(b, v >> 16); put16(b, v & 0xffff); }
void put_opaque(Bytes& b, const Bytes& d) {
  put32(b, static_cast<uint32_t>(d.size()));
  b.insert(b.end(), d.begin(), d.end());
  while (b.size() % 4) b.push_back(0);
}
uint16_t get16(const Bytes& b, size_t o) { return uint16_t(b[o] << 8 | b[o + 1]); }
uint32_t get32(const Bytes& b, size_t o) { return uint32_t(get16(b, o)) << 16 | get16(b, o + 2); }

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) s += uint32_t(p[n - 1] << 8);
  return s;
}
uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

struct Flow {
  bool v6 = false;
  bool udp = false;
  uint16_t sport = 811, dport = 2049;
  uint32_t seq = 1000;
};

struct Layout {  // offsets inside a frame this file built or parsed
  size_t l3 = 14, l4 = 0, pay = 0;
  bool v6 = false, udp = false;
};

// Parse back what build() makes (also used on captured frames: Ethernet, no VLAN).
Layout layout_of(const Bytes& f) {
  Layout L;
  L.v6 = get16(f, 12) == 0x86dd;
  if (L.v6) {
    L.l4 = 14 + 40;
    L.udp = f[14 + 6] == 17;
  } else {
    L.l4 = 14 + (f[14] & 15) * 4;
    L.udp = f[14 + 9] == 17;
  }
  L.pay = L.udp ? L.l4 + 8 : L.l4 + (f[L.l4 + 12] >> 4) * 4;
  return L;
}

uint16_t l4_checksum(const Bytes& f, const Layout& L, size_t l4len) {
  uint32_t s = 0;
  if (L.v6) {
    s = sum16(&f[14 + 8], 32);
    s += l4len >> 16;
    s += l4len & 0xffff;
    s += L.udp ? 17 : 6;
  } else {
    s = sum16(&f[14 + 12], 8);
    s += L.udp ? 17 : 6;
    s += uint32_t(l4len);
  }
  return fold(sum16(&f[L.l4], l4len, s));
}

size_t l4_len(const Bytes& f, const Layout& L) {
  return L.v6 ? get16(f, 14 + 4) : get16(f, 14 + 2) - (f[14] & 15) * 4;
}

// Recompute IP and L4 checksums (captures carry offloaded, unfinished ones).
void fix_checksums(Bytes& f) {
  Layout L = layout_of(f);
  if (!L.v6) {
    f[14 + 10] = f[14 + 11] = 0;
    uint16_t c = ~fold(sum16(&f[14], (f[14] & 15) * 4));
    f[14 + 10] = c >> 8;
    f[14 + 11] = c & 0xff;
  }
  size_t csum = L.l4 + (L.udp ? 6 : 16);
  f[csum] = f[csum + 1] = 0;
  uint16_t c = ~l4_checksum(f, L, l4_len(f, L));
  if (L.udp && c == 0) c = 0xffff;
  f[csum] = c >> 8;
  f[csum + 1] = c & 0xff;
}

// The independent checksum verifier: a valid packet sums to 0xffff.
::testing::AssertionResult checksums_ok(const Bytes& f) {
  Layout L = layout_of(f);
  if (!L.v6 && fold(sum16(&f[14], (f[14] & 15) * 4)) != 0xffff)
    return ::testing::AssertionFailure() << "bad IPv4 header checksum";
  if (fold(l4_checksum(f, L, l4_len(f, L))) != 0xffff)
    return ::testing::AssertionFailure() << "bad " << (L.udp ? "UDP" : "TCP") << " checksum";
  return ::testing::AssertionSuccess();
}

Bytes build(const Flow& fl, const Bytes& payload, uint8_t tcp_flags = 0x18) {
  Bytes f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
  put16(f, fl.v6 ? 0x86dd : 0x0800);
  size_t l4len = (fl.udp ? 8 : 20) + payload.size();
  if (fl.v6) {
    put32(f, 0x60000000);
    put16(f, uint16_t(l4len));
    f.push_back(fl.udp ? 17 : 6);
    f.push_back(64);
    Bytes src(16, 0), dst(16, 0);
    src[0] = dst[0] = 0xfd;
    src[15] = 1;
    dst[15] = 2;
    f.insert(f.end(), src.begin(), src.end());
    f.insert(f.end(), dst.begin(), dst.end());
  } else {
    f.insert(f.end(), {0x45, 0});
    put16(f, uint16_t(20 + l4len));
    put32(f, 0x12344000);
    f.insert(f.end(), {64, uint8_t(fl.udp ? 17 : 6), 0, 0, 10, 99, 0, 1, 10, 99, 0, 2});
  }
  put16(f, fl.sport);
  put16(f, fl.dport);
  if (fl.udp) {
    put16(f, uint16_t(l4len));
    put16(f, 0);
  } else {
    put32(f, fl.seq);
    put32(f, 77);
    f.push_back(0x50);
    f.push_back(tcp_flags);
    put16(f, 65535);
    put32(f, 0);
  }
  f.insert(f.end(), payload.begin(), payload.end());
  fix_checksums(f);
  return f;
}

Flow reply_flow(Flow fl) {  // server -> client; addresses swapped by build_reply()
  std::swap(fl.sport, fl.dport);
  return fl;
}

Bytes build_reply(const Flow& call_flow, const Bytes& payload, uint8_t tcp_flags = 0x18, uint32_t seq = 5000) {
  Flow r = reply_flow(call_flow);
  r.seq = seq;
  Bytes f = build(r, payload, tcp_flags);
  Layout L = layout_of(f);
  size_t a = L.v6 ? 14 + 8 : 14 + 12, n = L.v6 ? 16 : 4;
  for (size_t i = 0; i < n; i++) std::swap(f[a + i], f[a + n + i]);
  return f;
}

Bytes fh_of(uint8_t tag, size_t len = 32) {
  Bytes fh(len);
  for (size_t i = 0; i < len; i++) fh[i] = uint8_t(tag + i * 7);
  return fh;
}

struct CallOpts {
  uint32_t xid = 0x1234;
  uint32_t prog = 100003, vers = 3, proc = 7;
  size_t data_len = 64;  // WRITE payload bytes actually included
  uint32_t count = 0;    // WRITE count (0 = data_len)
  size_t cred_body = 24;
};

// An RPC call message (no record mark): AUTH_UNIX cred, AUTH_NULL verf, then args.
Bytes rpc_call(const Bytes& fh, const CallOpts& o = {}) {
  Bytes m;
  put32(m, o.xid);
  put32(m, 0);
  put32(m, 2);
  put32(m, o.prog);
  put32(m, o.vers);
  put32(m, o.proc);
  put32(m, 1);
  put_opaque(m, Bytes(o.cred_body, 0x5a));
  put32(m, 0);
  put32(m, 0);
  put_opaque(m, fh);
  if (o.proc == 7) {
    put32(m, 0);
    put32(m, 4096);  // offset
    put32(m, o.count ? o.count : uint32_t(o.data_len));
    put32(m, 2);  // FILE_SYNC
    put_opaque(m, Bytes(o.data_len, 0xab));
  } else if (o.proc == 6) {
    put32(m, 0);
    put32(m, 0);
    put32(m, 8192);
  }
  return m;
}

Bytes rpc_reply(uint32_t xid, uint32_t nfsstat) {
  Bytes m;
  put32(m, xid);
  put32(m, 1);
  put32(m, 0);  // MSG_ACCEPTED
  put32(m, 0);
  put32(m, 0);  // verf AUTH_NULL
  put32(m, 0);  // SUCCESS
  put32(m, nfsstat);
  put32(m, 0);  // wcc_data: no pre_op_attr
  put32(m, 0);  // no post_op_attr
  if (nfsstat == 0) {
    put32(m, 13);
    put32(m, 2);
    put32(m, 0x11111111);
    put32(m, 0x22222222);
  }
  return m;
}

Bytes mark(const Bytes& msg, bool last = true, size_t len = 0) {
  Bytes r;
  put32(r, uint32_t(len ? len : msg.size()) | (last ? 0x80000000u : 0));
  r.insert(r.end(), msg.begin(), msg.end());
  return r;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes r;
  for (auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

// Offset of the WRITE handle bytes inside a frame built from mark(rpc_call()).
size_t fh_offset(const Bytes& f, size_t msg_at) {
  size_t o = msg_at + 24;
  o += 8 + ((get32(f, o + 4) + 3) & ~3u);  // cred
  o += 8 + ((get32(f, o + 4) + 3) & ~3u);  // verf
  return o + 4;
}

// ---------------------------------------------------------------- running

struct RunResult {
  int err = 0;
  uint32_t retval = 0;
  Bytes out;
};

RunResult test_run(int fd, const Bytes& in, bool xdp = false) {
  RunResult r;
  r.out.resize(in.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = r.out.data(),
              .data_size_in = uint32_t(in.size()), .data_size_out = uint32_t(r.out.size()),
              .repeat = 1);
  (void)xdp;
  r.err = bpf_prog_test_run_opts(fd, &o) ? errno : 0;
  r.retval = o.retval;
  r.out.resize(o.data_size_out);
  return r;
}

struct Event {
  uint32_t type, flags;
  Bytes data;
};

// Everything the programs have put in the ring buffer (read after the runs).
std::vector<Event> drain_events(const nfsfence::bpf::MapSet& m) {
  std::vector<Event> out;
  auto cb = [](void* ctx, void* data, size_t) -> int {
    auto* ev = static_cast<nfsf_event*>(data);
    static_cast<std::vector<Event>*>(ctx)->push_back({ev->type, ev->flags, Bytes(ev->data, ev->data + ev->len)});
    return 0;
  };
  ring_buffer* rb = ring_buffer__new(m.events_fd, cb, &out, nullptr);
  if (!rb) {
    ADD_FAILURE() << "ring_buffer__new failed";
    return out;
  }
  ring_buffer__consume(rb);
  ring_buffer__free(rb);
  return out;
}

std::string load_skip_reason;

class BpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!load_skip_reason.empty()) GTEST_SKIP() << load_skip_reason;
  }
  TcProgram& tc(nfsf_action a = NFSF_ACTION_REWRITE) {
    auto& slot = a == NFSF_ACTION_DROP ? tc_drop_ : tc_rw_;
    if (!slot) {
      LoadOptions opt;
      opt.action = a;
      opt.events_bytes = 1 << 20;
      auto p = TcProgram::load(opt);
      if (!p) throw std::runtime_error(p.error().message());
      slot = std::move(*p);
    }
    return *slot;
  }
  XdpProgram& xdp(nfsf_action a = NFSF_ACTION_REWRITE) {
    auto& slot = a == NFSF_ACTION_DROP ? xdp_drop_ : xdp_rw_;
    if (!slot) {
      LoadOptions opt;
      opt.action = a;
      opt.events_bytes = 1 << 20;
      auto p = XdpProgram::load(opt);
      if (!p) throw std::runtime_error(p.error().message());
      slot = std::move(*p);
    }
    return *slot;
  }
  static void setup_maps(const nfsfence::bpf::MapSet& m, const Bytes& fh, uint32_t tree, bool over) {
    ASSERT_TRUE(m.set_handle_tree(fh, tree)) << "set_handle_tree";
    ASSERT_TRUE(m.set_tree_over(tree, over)) << "set_tree_over";
  }
  static uint64_t ctr(const nfsfence::bpf::MapSet& m, nfsf_counter c) {
    auto r = m.counters();
    EXPECT_TRUE(r);
    return r ? (*r)[c] : ~0ull;
  }

  std::unique_ptr<TcProgram> tc_rw_, tc_drop_;
  std::unique_ptr<XdpProgram> xdp_rw_, xdp_drop_;
};

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

nfsf_xid_key xid_key_for_reply(const Bytes& call_frame, uint32_t xid) {
  nfsf_xid_key k{};
  Layout L = layout_of(call_frame);
  size_t a = L.v6 ? 14 + 8 : 14 + 12, n = L.v6 ? 16 : 4;
  std::memcpy(k.flow.saddr, &call_frame[a + n], n);  // reply: server -> client
  std::memcpy(k.flow.daddr, &call_frame[a], n);
  std::memcpy(&k.flow.sport, &call_frame[L.l4 + 2], 2);
  std::memcpy(&k.flow.dport, &call_frame[L.l4], 2);
  k.flow.family = L.v6 ? 6 : 4;
  k.flow.proto = L.udp ? 17 : 6;
  k.xid = htonl(xid);
  return k;
}

// Everything equal except [at, at+len) which must be all NFSF_FH_POISON.
::testing::AssertionResult poisoned_only(const Bytes& in, const Bytes& out, size_t at, size_t len) {
  if (in.size() != out.size()) return ::testing::AssertionFailure() << "length changed";
  for (size_t i = 0; i < in.size(); i++) {
    bool in_fh = i >= at && i < at + len;
    bool csum = false;
    Layout L = layout_of(in);
    size_t c = L.l4 + (L.udp ? 6 : 16);
    csum = i == c || i == c + 1;
    if (in_fh && out[i] != NFSF_FH_POISON) return ::testing::AssertionFailure() << "fh byte " << i - at << " not poisoned";
    if (!in_fh && !csum && out[i] != in[i]) return ::testing::AssertionFailure() << "byte " << i << " changed";
  }
  return checksums_ok(out);
}

// ---------------------------------------------------------------- rewrite / drop table

struct WriteCase {
  const char* name;
  Flow flow;
  nfsf_action action;
};

class WriteOverTree : public BpfTest, public ::testing::WithParamInterface<WriteCase> {};

TEST_P(WriteOverTree, RefusedAndReplyRewritten) {
  const WriteCase& c = GetParam();
  auto& p = tc(c.action);
  Bytes fh = fh_of(1, 36);  // not a multiple of 4: exercises the pad mask
  setup_maps(p.maps(), fh, 3, true);
  CallOpts co;
  co.xid = 0xabcdef01;
  co.data_len = 100;
  Bytes msg = rpc_call(fh, co);
  Bytes in = build(c.flow, c.flow.udp ? msg : mark(msg));
  size_t msg_at = layout_of(in).pay + (c.flow.udp ? 0 : 4);
  RunResult r = test_run(c.action == NFSF_ACTION_DROP ? p.egress_fd() : p.egress_fd(), in);
  ASSERT_EQ(r.err, 0);
  auto tr = p.maps().tree(3);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->refused_writes, 1u);
  EXPECT_EQ(tr->refused_bytes, 100u);
  EXPECT_EQ(tr->writes, 0u);
  auto key = xid_key_for_reply(in, co.xid);
  if (c.action == NFSF_ACTION_DROP) {
    EXPECT_EQ(r.retval, uint32_t(TC_SHOT));
    EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_REFUSED_DROP), 1u);
    auto pv = p.maps().poisoned(key);
    ASSERT_TRUE(pv);
    EXPECT_FALSE(pv->has_value());
    return;
  }
  EXPECT_EQ(r.retval, uint32_t(TC_OK));
  EXPECT_TRUE(poisoned_only(in, r.out, fh_offset(in, msg_at), fh.size()));
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_REFUSED_REWRITE), 1u);
  auto pv = p.maps().poisoned(key);
  ASSERT_TRUE(pv);
  ASSERT_TRUE(pv->has_value()) << "poisoned XID not recorded";
  EXPECT_EQ((*pv)->tree, 3u);

  // The server answers the poisoned handle with NFS3ERR_STALE (70): ingress -> DQUOT.
  Bytes rmsg = rpc_reply(co.xid, 70);
  Bytes rin = build_reply(c.flow, c.flow.udp ? rmsg : mark(rmsg));
  RunResult rr = test_run(p.ingress_fd(), rin);
  ASSERT_EQ(rr.err, 0);
  EXPECT_EQ(rr.retval, uint32_t(TC_OK));
  size_t st = layout_of(rin).pay + (c.flow.udp ? 0 : 4) + 24;
  EXPECT_EQ(get32(rr.out, st), 69u);
  EXPECT_TRUE(checksums_ok(rr.out));
  Bytes expect = rin;
  expect[st + 3] = 69;
  for (size_t i = 0; i < expect.size(); i++) {
    Layout L = layout_of(rin);
    size_t cs = L.l4 + (L.udp ? 6 : 16);
    if (i != cs && i != cs + 1) EXPECT_EQ(rr.out[i], expect[i]) << "reply byte " << i;
  }
  EXPECT_EQ(ctr(p.maps(), NFSF_C_REPLY_REWRITTEN), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Table, WriteOverTree,
    ::testing::Values(WriteCase{"rewrite_tcp4", Flow{}, NFSF_ACTION_REWRITE},
                      WriteCase{"rewrite_tcp6", Flow{.v6 = true}, NFSF_ACTION_REWRITE},
                      WriteCase{"rewrite_udp4", Flow{.udp = true}, NFSF_ACTION_REWRITE},
                      WriteCase{"rewrite_udp6", Flow{.v6 = true, .udp = true}, NFSF_ACTION_REWRITE},
                      WriteCase{"drop_tcp4", Flow{}, NFSF_ACTION_DROP},
                      WriteCase{"drop_tcp6", Flow{.v6 = true}, NFSF_ACTION_DROP},
                      WriteCase{"drop_udp4", Flow{.udp = true}, NFSF_ACTION_DROP}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- pass-through table

struct PassCase {
  const char* name;
  std::function<Bytes(const Bytes& fh)> packet;
  bool tree_over;
  std::vector<std::pair<nfsf_counter, uint64_t>> counters;
};

class PassThrough : public BpfTest, public ::testing::WithParamInterface<PassCase> {};

TEST_P(PassThrough, UnchangedAndCounted) {
  const PassCase& c = GetParam();
  auto& p = tc();
  Bytes fh = fh_of(9);
  setup_maps(p.maps(), fh, 5, c.tree_over);
  Bytes in = c.packet(fh);
  RunResult r = test_run(p.egress_fd(), in);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.retval, uint32_t(TC_OK));
  EXPECT_EQ(r.out, in);
  for (auto [ctr_id, want] : c.counters)
    EXPECT_EQ(ctr(p.maps(), ctr_id), want) << nfsfence::bpf::counter_name(ctr_id);
}

Bytes write_frame(const Bytes& fh, Flow fl = {}) { return build(fl, mark(rpc_call(fh))); }

INSTANTIATE_TEST_SUITE_P(
    Table, PassThrough,
    ::testing::Values(
        PassCase{"write_under_tree", [](const Bytes& fh) { return write_frame(fh); }, false,
                 {{NFSF_C_WRITE_ALLOWED, 1}, {NFSF_C_WRITE_CALLS, 1}}},
        PassCase{"write_unknown_fh", [](const Bytes&) { return write_frame(fh_of(200)); }, true,
                 {{NFSF_C_WRITE_UNKNOWN_FH, 1}, {NFSF_C_WRITE_REFUSED_REWRITE, 0}}},
        PassCase{"read_call", [](const Bytes& fh) { CallOpts o; o.proc = 6; return build(Flow{}, mark(rpc_call(fh, o))); },
                 true, {{NFSF_C_RPC_CALLS, 1}, {NFSF_C_WRITE_CALLS, 0}, {NFSF_C_EVENTS, 1}}},
        PassCase{"getattr_call", [](const Bytes& fh) { CallOpts o; o.proc = 1; return build(Flow{}, mark(rpc_call(fh, o))); },
                 true, {{NFSF_C_RPC_CALLS, 1}, {NFSF_C_WRITE_CALLS, 0}}},
        PassCase{"non_nfs_tcp", [](const Bytes& fh) { Flow f; f.dport = 80; return build(f, mark(rpc_call(fh))); },
                 true, {{NFSF_C_NFS_PACKETS, 0}, {NFSF_C_PACKETS, 1}}},
        PassCase{"write_v2_not_v3", [](const Bytes& fh) { CallOpts o; o.vers = 2; return build(Flow{}, mark(rpc_call(fh, o))); },
                 true, {{NFSF_C_WRITE_CALLS, 0}, {NFSF_C_MID_RECORD, 1}}},
        PassCase{"bad_ihl", [](const Bytes& fh) { Bytes f = write_frame(fh); f[14] = 0x43; return f; },
                 true, {{NFSF_C_ERR_BAD_IP, 1}}},
        PassCase{"truncated_tcp_header", [](const Bytes& fh) { Bytes f = write_frame(fh); f.resize(14 + 20 + 10); f[17] = 30; return f; },
                 true, {{NFSF_C_ERR_SHORT, 1}}},
        PassCase{"bad_doff", [](const Bytes& fh) { Bytes f = write_frame(fh); f[14 + 20 + 12] = 0x20; return f; },
                 true, {{NFSF_C_ERR_BAD_TCP, 1}}},
        PassCase{"garbage_payload", [](const Bytes&) { Bytes g(200); for (size_t i = 0; i < g.size(); i++) g[i] = uint8_t(i * 37 + 11); return build(Flow{}, g); },
                 true, {{NFSF_C_MID_RECORD, 1}, {NFSF_C_WRITE_CALLS, 0}}},
        PassCase{"fh_too_long", [](const Bytes&) { return write_frame(Bytes(80, 1)); },
                 true, {{NFSF_C_ERR_FH_LEN, 1}}},
        PassCase{"runt_frame", [](const Bytes&) { return Bytes(14, 0); }, true, {{NFSF_C_PACKETS, 1}, {NFSF_C_NFS_PACKETS, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- in-kernel handle learning

// A dir-op call (LOOKUP 3, CREATE 8, MKDIR 9, ...): diropargs3 { dir; name; } then the rest.
Bytes dirop_call(const Bytes& dir, uint32_t proc, const std::string& name, uint32_t xid) {
  CallOpts o;
  o.proc = proc;
  o.xid = xid;
  Bytes m = rpc_call(dir, o);
  put_opaque(m, Bytes(name.begin(), name.end()));
  if (proc == 8) put32(m, 0);  // createhow3: UNCHECKED
  if (proc == 8 || proc == 9)
    for (int i = 0; i < 6; i++) put32(m, 0);  // sattr3: nothing set
  return m;
}

// Its reply: LOOKUP3res (nfs_fh3 object) or CREATE3res-style (post_op_fh3 obj).
Bytes dirop_reply(uint32_t xid, uint32_t proc, uint32_t nfsstat, bool follows, const Bytes& obj) {
  Bytes m;
  put32(m, xid);
  put32(m, 1);
  put32(m, 0);  // MSG_ACCEPTED
  put32(m, 0);
  put32(m, 0);  // verf AUTH_NULL
  put32(m, 0);  // SUCCESS
  put32(m, nfsstat);
  if (nfsstat == 0) {
    if (proc == 3) {
      put_opaque(m, obj);
      put32(m, 0);  // obj_attributes
      put32(m, 0);  // dir_attributes
    } else {
      put32(m, follows ? 1 : 0);
      if (follows) put_opaque(m, obj);
      put32(m, 0);  // obj_attributes
      put32(m, 0);  // dir_wcc: no pre_op_attr
      put32(m, 0);  //          no post_op_attr
    }
  } else if (proc == 3) {
    put32(m, 0);  // dir_attributes
  } else {
    put32(m, 0);
    put32(m, 0);
  }
  return m;
}

struct DirOpCase {
  const char* name;
  Flow flow;
  uint32_t proc;
  std::string fname = "newfile";
  bool dir_mapped = true;
  uint32_t status = 0;
  bool follows = true;
  uint32_t premapped = 0;  // the new handle already maps to this tree (0: unmapped)
  bool want_pending = true;
  bool want_learned = true;
};

void PrintTo(const DirOpCase& c, std::ostream* os) { *os << c.name; }

class DirOp : public BpfTest, public ::testing::WithParamInterface<DirOpCase> {};

TEST_P(DirOp, ReplyHandleMappedBeforeTheAgentSeesIt) {
  const DirOpCase& c = GetParam();
  auto& p = tc();
  const auto& m = p.maps();
  Bytes dir = fh_of(40, 28), obj = fh_of(90, 30);  // 30: exercises the XDR pad
  if (c.dir_mapped) ASSERT_TRUE(m.set_handle_tree(dir, 1));
  ASSERT_TRUE(m.set_tree_over(1, true));
  if (c.premapped) ASSERT_TRUE(m.set_handle_tree(obj, c.premapped));
  auto frame = [&](const Flow& fl, const Bytes& msg) { return build(fl, fl.udp ? msg : mark(msg)); };

  // 1. egress: the call passes unchanged; (reply flow, XID) -> tree recorded.
  const uint32_t xid = 0x0d1e0001;
  Bytes cmsg = dirop_call(dir, c.proc, c.fname, xid);
  Bytes in = frame(c.flow, cmsg);
  RunResult r = test_run(p.egress_fd(), in);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.retval, uint32_t(TC_OK));
  EXPECT_EQ(r.out, in);
  auto key = xid_key_for_reply(in, xid);
  auto pd = m.pending_dirop(key);
  ASSERT_TRUE(pd);
  EXPECT_EQ(pd->has_value(), c.want_pending);
  if (pd->has_value()) {
    EXPECT_EQ((*pd)->tree, 1u);
    EXPECT_EQ((*pd)->proc, c.proc);
  }
  EXPECT_EQ(ctr(m, NFSF_C_DIROP_PENDING), c.want_pending ? 1u : 0u);

  // 2. ingress: the reply passes unchanged; the new handle is mapped, the entry deleted.
  Bytes rin = build_reply(c.flow, c.flow.udp ? dirop_reply(xid, c.proc, c.status, c.follows, obj)
                                             : mark(dirop_reply(xid, c.proc, c.status, c.follows, obj)));
  RunResult rr = test_run(p.ingress_fd(), rin);
  ASSERT_EQ(rr.err, 0);
  EXPECT_EQ(rr.retval, uint32_t(TC_OK));
  EXPECT_EQ(rr.out, rin);
  pd = m.pending_dirop(key);
  ASSERT_TRUE(pd);
  EXPECT_FALSE(pd->has_value()) << "pending entry not deleted by the reply";
  auto ht = m.handle_tree(obj);
  ASSERT_TRUE(ht);
  if (c.premapped) {
    ASSERT_TRUE(ht->has_value());
    EXPECT_EQ(**ht, c.premapped) << "the kernel must not overwrite a mapping the agent made";
  } else if (c.want_learned) {
    ASSERT_TRUE(ht->has_value()) << "new handle not mapped";
    EXPECT_EQ(**ht, 1u);
  } else {
    EXPECT_FALSE(ht->has_value()) << "handle mapped although it must not be";
  }
  EXPECT_EQ(ctr(m, NFSF_C_HANDLE_LEARNED), c.want_learned && !c.premapped ? 1u : 0u);
  EXPECT_EQ(ctr(m, NFSF_C_HANDLE_MISSED), 0u);

  // 3. egress: the first WRITE to the new handle (tree 1 over) is poisoned.
  Flow wf = c.flow;
  wf.seq = c.flow.seq + uint32_t(in.size() - layout_of(in).pay);
  CallOpts wo;
  wo.xid = 0x0d1e0002;
  Bytes win = frame(wf, rpc_call(obj, wo));
  RunResult wr = test_run(p.egress_fd(), win);
  ASSERT_EQ(wr.err, 0);
  EXPECT_EQ(wr.retval, uint32_t(TC_OK));
  if (c.want_learned && !c.premapped) {
    EXPECT_TRUE(poisoned_only(win, wr.out, fh_offset(win, layout_of(win).pay + (wf.udp ? 0 : 4)), obj.size()));
    EXPECT_EQ(ctr(m, NFSF_C_WRITE_REFUSED_REWRITE), 1u);
    EXPECT_EQ(m.tree(1)->refused_writes, 1u);
  } else if (!c.premapped) {
    EXPECT_EQ(wr.out, win);
    EXPECT_EQ(ctr(m, NFSF_C_WRITE_UNKNOWN_FH), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, DirOp,
    ::testing::Values(DirOpCase{.name = "create_tcp4", .flow = Flow{}, .proc = 8},
                      DirOpCase{.name = "create_udp4", .flow = Flow{.udp = true}, .proc = 8},
                      DirOpCase{.name = "create_tcp6", .flow = Flow{.v6 = true}, .proc = 8},
                      DirOpCase{.name = "create_udp6", .flow = Flow{.v6 = true, .udp = true}, .proc = 8},
                      DirOpCase{.name = "lookup_tcp4", .flow = Flow{}, .proc = 3},
                      DirOpCase{.name = "lookup_udp4", .flow = Flow{.udp = true}, .proc = 3},
                      DirOpCase{.name = "mkdir_tcp4", .flow = Flow{}, .proc = 9, .fname = "d"},
                      DirOpCase{.name = "create_exist_fails", .flow = Flow{}, .proc = 8, .status = 17,
                                .want_learned = false},
                      DirOpCase{.name = "lookup_noent_fails", .flow = Flow{}, .proc = 3, .status = 2,
                                .want_learned = false},
                      DirOpCase{.name = "create_unmapped_dir", .flow = Flow{}, .proc = 8, .dir_mapped = false,
                                .want_pending = false, .want_learned = false},
                      DirOpCase{.name = "create_no_handle_follows", .flow = Flow{}, .proc = 8, .follows = false,
                                .want_learned = false},
                      DirOpCase{.name = "lookup_dotdot_not_followed", .flow = Flow{}, .proc = 3, .fname = "..",
                                .want_pending = false, .want_learned = false},
                      DirOpCase{.name = "lookup_dot_not_followed", .flow = Flow{}, .proc = 3, .fname = ".",
                                .want_pending = false, .want_learned = false},
                      DirOpCase{.name = "lookup_known_handle_kept", .flow = Flow{}, .proc = 3, .premapped = 2}),
    [](const auto& info) { return std::string(info.param.name); });

// A dir-op reply cut by the end of the skb (in its handle) is carried: the handle is mapped
// when the next skb completes it.
TEST_F(BpfTest, DirOpReplyCutIsCarriedAndLearned) {
  auto& p = tc();
  Bytes dir = fh_of(41), obj = fh_of(91);
  ASSERT_TRUE(p.maps().set_handle_tree(dir, 1));
  Bytes in = build(Flow{}, mark(dirop_call(dir, 8, "f", 9)));
  ASSERT_EQ(test_run(p.egress_fd(), in).err, 0);
  Bytes rec = mark(dirop_reply(9, 8, 0, true, obj));
  const size_t k = 4 + 28 + 4 + 4 + 10;  // header, status, follows, len, 10 bytes of the handle
  Bytes r1 = build_reply(Flow{}, Bytes(rec.begin(), rec.begin() + long(k)));
  EXPECT_EQ(test_run(p.ingress_fd(), r1).out, r1);
  auto ht = p.maps().handle_tree(obj);
  ASSERT_TRUE(ht);
  EXPECT_FALSE(ht->has_value());
  Bytes r2 = build_reply(Flow{}, Bytes(rec.begin() + long(k), rec.end()), 0x18, 5000 + uint32_t(k));
  EXPECT_EQ(test_run(p.ingress_fd(), r2).out, r2);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_HANDLE_LEARNED), 1u);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_HANDLE_MISSED), 0u);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_HEAD_CARRIED), 1u);
  ht = p.maps().handle_tree(obj);
  ASSERT_TRUE(ht);
  EXPECT_EQ(ht->value_or(0), 1u);
}

// ---------------------------------------------------------------- TCP stream cases

TEST_F(BpfTest, MidRecordSegmentIsNotParsed) {
  auto& p = tc();
  Bytes fh = fh_of(3);
  setup_maps(p.maps(), fh, 2, true);
  Flow fl;
  fl.seq = 100;
  ASSERT_EQ(test_run(p.egress_fd(), build(fl, {}, 0x02)).err, 0);  // SYN: record 1 at seq 101
  // A WRITE to an unknown handle announcing a 100000-byte record; only its head here.
  CallOpts big;
  big.data_len = 200;
  big.count = 100000;
  Bytes head = mark(rpc_call(fh_of(77), big), true, 100000);
  fl.seq = 101;
  Bytes s1 = build(fl, head);
  EXPECT_EQ(test_run(p.egress_fd(), s1).out, s1);
  // The next segment lies inside that record but its bytes look exactly like a WRITE head
  // to the over-quota tree: it must pass untouched.
  fl.seq = 101 + uint32_t(head.size());
  Bytes s2 = build(fl, mark(rpc_call(fh)));
  RunResult r = test_run(p.egress_fd(), s2);
  EXPECT_EQ(r.retval, uint32_t(TC_OK));
  EXPECT_EQ(r.out, s2);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_REFUSED_REWRITE), 0u);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_MID_RECORD), 1u);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_FLOW_NEW), 1u);
}

// A long reply nobody asked to stream (a READ reply) yields one event, its head, and its
// later segments none. Found by bench/veth_bench.sh: an unset "stream until" seq (0) was
// compared as lying ahead of every seq in the upper half of the 32-bit space, so on half of
// all connections (random ISN) every segment of every long reply went to the ring buffer.
TEST_F(BpfTest, LongReplyStreamsOnlyItsHeadWhateverTheIsn) {
  auto& p = tc();
  for (uint32_t isn : {0x10000000u, 0x90000000u, 0xfffff000u}) {
    ASSERT_TRUE(p.maps().reset_counters());
    ASSERT_EQ(test_run(p.ingress_fd(), build_reply(Flow{}, {}, 0x12, isn)).err, 0);  // SYN-ACK
    Bytes head = mark(rpc_reply(5, 0), true, 100000);
    ASSERT_EQ(test_run(p.ingress_fd(), build_reply(Flow{}, head, 0x18, isn + 1)).err, 0);
    uint32_t next = isn + 1 + uint32_t(head.size());
    for (int i = 0; i < 3; i++, next += 1400)
      ASSERT_EQ(test_run(p.ingress_fd(), build_reply(Flow{}, Bytes(1400, 0x5a), 0x18, next)).err, 0);
    EXPECT_EQ(ctr(p.maps(), NFSF_C_RPC_REPLIES), 1u) << std::hex << isn;
    EXPECT_EQ(ctr(p.maps(), NFSF_C_MID_RECORD), 3u) << std::hex << isn;
    EXPECT_EQ(ctr(p.maps(), NFSF_C_EVENTS), 1u) << std::hex << isn;
  }
}

TEST_F(BpfTest, TwoWritesInOneSkbSecondOver) {
  auto& p = tc();
  Bytes fh_ok = fh_of(10), fh_over = fh_of(20, 40);
  setup_maps(p.maps(), fh_ok, 1, false);
  setup_maps(p.maps(), fh_over, 2, true);
  CallOpts a, b;
  a.xid = 1;
  b.xid = 2;
  Bytes r1 = mark(rpc_call(fh_ok, a)), r2 = mark(rpc_call(fh_over, b));
  Bytes in = build(Flow{}, cat({r1, r2}));
  RunResult r = test_run(p.egress_fd(), in);
  ASSERT_EQ(r.err, 0);
  size_t pay = layout_of(in).pay;
  EXPECT_TRUE(poisoned_only(in, r.out, fh_offset(in, pay + r1.size() + 4), fh_over.size()));
  EXPECT_EQ(p.maps().tree(1)->writes, 1u);
  EXPECT_EQ(p.maps().tree(2)->refused_writes, 1u);
}

TEST_F(BpfTest, DropModeTwoWritesSecondOverDropsSkb) {
  auto& p = tc(NFSF_ACTION_DROP);
  Bytes fh_ok = fh_of(10), fh_over = fh_of(20);
  setup_maps(p.maps(), fh_ok, 1, false);
  setup_maps(p.maps(), fh_over, 2, true);
  Bytes in = build(Flow{}, cat({mark(rpc_call(fh_ok)), mark(rpc_call(fh_over))}));
  EXPECT_EQ(test_run(p.egress_fd(), in).retval, uint32_t(TC_SHOT));
}

TEST_F(BpfTest, RetransmissionGetsSameVerdict) {
  auto& p = tc();
  Bytes fh = fh_of(4);
  setup_maps(p.maps(), fh, 4, true);
  Flow fl;
  fl.seq = 500;
  ASSERT_EQ(test_run(p.egress_fd(), build(fl, {}, 0x02)).err, 0);
  fl.seq = 501;
  Bytes in = build(fl, mark(rpc_call(fh)));
  RunResult first = test_run(p.egress_fd(), in);
  size_t at = fh_offset(in, layout_of(in).pay + 4);
  ASSERT_TRUE(poisoned_only(in, first.out, at, fh.size()));
  // A following record moves next_mark on, then the original bytes are retransmitted.
  fl.seq = 501 + uint32_t(in.size() - layout_of(in).pay);
  CallOpts g;
  g.proc = 1;
  test_run(p.egress_fd(), build(fl, mark(rpc_call(fh_of(50), g))));
  RunResult again = test_run(p.egress_fd(), in);
  EXPECT_EQ(again.out, first.out);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_RETRANS_HEAD), 1u);
  EXPECT_EQ(p.maps().tree(4)->refused_writes, 1u) << "a retransmission is not a new WRITE";

  // Drop mode: the retransmission is dropped as well.
  auto& d = tc(NFSF_ACTION_DROP);
  setup_maps(d.maps(), fh, 4, true);
  fl.seq = 500;
  test_run(d.egress_fd(), build(fl, {}, 0x02));
  EXPECT_EQ(test_run(d.egress_fd(), in).retval, uint32_t(TC_SHOT));
  EXPECT_EQ(test_run(d.egress_fd(), in).retval, uint32_t(TC_SHOT));
  EXPECT_EQ(ctr(d.maps(), NFSF_C_RETRANS_HEAD), 1u);
}

TEST_F(BpfTest, FlowOpenedBeforeAttachResyncs) {
  auto& p = tc();
  Bytes fh = fh_of(6);
  setup_maps(p.maps(), fh, 6, true);
  Flow fl;
  fl.seq = 90000;
  Bytes junk(700, 0xab);  // WRITE data of a record whose head we never saw
  Bytes s1 = build(fl, junk);
  EXPECT_EQ(test_run(p.egress_fd(), s1).out, s1);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_MID_RECORD), 1u);
  fl.seq += uint32_t(junk.size());
  CallOpts g;
  g.proc = 1;
  Bytes s2 = build(fl, cat({mark(rpc_call(fh_of(1), g)), mark(rpc_call(fh))}));
  RunResult r = test_run(p.egress_fd(), s2);
  size_t pay = layout_of(s2).pay;
  size_t second = pay + mark(rpc_call(fh_of(1), g)).size() + 4;
  EXPECT_TRUE(poisoned_only(s2, r.out, fh_offset(s2, second), fh.size()));
  EXPECT_EQ(ctr(p.maps(), NFSF_C_RESYNC), 1u);
}

// A WRITE head to an over-quota tree cut by the end of an skb at every byte: the skb that
// completes it carries the refusal (the handle if it lies wholly there, else the offset,
// else the count: all 0xff), except when the cut falls after the count began, where the
// WRITE passes and is counted; a head whole in the first skb is refused there.
TEST_F(BpfTest, WriteHeadCutAtEveryByteIsRefusedWhereItCanBe) {
  auto& p = tc();
  Bytes fh = fh_of(8);
  setup_maps(p.maps(), fh, 8, true);
  CallOpts co;
  co.data_len = 200;
  Bytes rec = mark(rpc_call(fh, co));
  const size_t fh_at = fh_offset(rec, 4), off_at = fh_at + fh.size(), count_at = off_at + 8,
               head_end = count_at + 12;
  for (size_t k = 1; k <= head_end + 2; k++) {
    SCOPED_TRACE("cut after byte " + std::to_string(k));
    uint64_t refused = ctr(p.maps(), NFSF_C_WRITE_REFUSED_REWRITE), split = ctr(p.maps(), NFSF_C_ERR_HEAD_SPLIT);
    Flow fl;
    fl.sport = uint16_t(1000 + k);
    fl.seq = 0xfffffff0u;  // the cut also crosses the sequence-number wrap for small k
    test_run(p.egress_fd(), build(fl, {}, 0x02));
    fl.seq += 1;
    Bytes s1 = build(fl, Bytes(rec.begin(), rec.begin() + long(k)));
    fl.seq += uint32_t(k);
    Bytes s2 = build(fl, Bytes(rec.begin() + long(k), rec.end()));
    RunResult r1 = test_run(p.egress_fd(), s1), r2 = test_run(p.egress_fd(), s2);
    ASSERT_EQ(r1.retval, uint32_t(TC_OK));
    ASSERT_EQ(r2.retval, uint32_t(TC_OK));
    size_t pay1 = layout_of(s1).pay, pay2 = layout_of(s2).pay;
    if (k >= head_end) {  // the whole head in s1: refused there
      EXPECT_TRUE(poisoned_only(s1, r1.out, pay1 + fh_at, fh.size()));
      EXPECT_EQ(r2.out, s2);
    } else if (k <= count_at) {
      size_t at = k <= fh_at ? fh_at : k <= off_at ? off_at : count_at;
      size_t n = k <= fh_at ? fh.size() : k <= off_at ? 8 : 4;
      EXPECT_EQ(r1.out, s1);
      EXPECT_TRUE(poisoned_only(s2, r2.out, pay2 + at - k, n)) << "field at " << at;
    } else {  // the cut fell after the count began: nothing left to refuse with
      EXPECT_EQ(r1.out, s1);
      EXPECT_EQ(r2.out, s2);
      EXPECT_EQ(ctr(p.maps(), NFSF_C_ERR_HEAD_SPLIT), split + 1);
    }
    EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_REFUSED_REWRITE), refused + (k > count_at && k < head_end ? 0 : 1));
  }
  EXPECT_EQ(ctr(p.maps(), NFSF_C_HEAD_CARRIED), head_end - 1);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_CALLS), head_end + 2);
}

// TCP resends the original bytes of a lost segment: a retransmitted continuation is
// refused again (and counted once); in drop mode the continuation is what is dropped.
TEST_F(BpfTest, CutWriteHeadRetransmittedOrDropped) {
  for (nfsf_action a : {NFSF_ACTION_REWRITE, NFSF_ACTION_DROP}) {
    auto& p = tc(a);
    Bytes fh = fh_of(9);
    setup_maps(p.maps(), fh, 9, true);
    Bytes rec = mark(rpc_call(fh));
    const size_t k = fh_offset(rec, 4) + 3;  // inside the handle: the offset carries it
    Flow fl;
    fl.seq = 100;
    test_run(p.egress_fd(), build(fl, {}, 0x02));
    fl.seq = 101;
    Bytes s1 = build(fl, Bytes(rec.begin(), rec.begin() + long(k)));
    fl.seq = 101 + uint32_t(k);
    Bytes s2 = build(fl, Bytes(rec.begin() + long(k), rec.end()));
    EXPECT_EQ(test_run(p.egress_fd(), s1).retval, uint32_t(TC_OK));
    for (int round = 0; round < 2; round++) {
      RunResult r = test_run(p.egress_fd(), s2);
      if (a == NFSF_ACTION_DROP) {
        EXPECT_EQ(r.retval, uint32_t(TC_SHOT)) << round;
      } else {
        EXPECT_EQ(r.retval, uint32_t(TC_OK));
        EXPECT_TRUE(poisoned_only(s2, r.out, layout_of(s2).pay + fh.size() - 3, 8)) << round;
      }
    }
    EXPECT_EQ(ctr(p.maps(), a == NFSF_ACTION_DROP ? NFSF_C_WRITE_REFUSED_DROP : NFSF_C_WRITE_REFUSED_REWRITE), 1u);
    EXPECT_EQ(ctr(p.maps(), NFSF_C_HEAD_CARRIED), 1u);
  }
}

// The reply to a poisoned WRITE cut at every byte: its status becomes NFS3ERR_DQUOT in
// whichever skb holds the status word whole; a status word cut in two is counted.
TEST_F(BpfTest, PoisonedReplyCutAtEveryByteIsRewrittenWhereItCanBe) {
  auto& p = tc();
  Bytes fh = fh_of(10);
  setup_maps(p.maps(), fh, 10, true);
  CallOpts co;
  co.xid = 4242;
  Bytes rec = mark(rpc_reply(co.xid, 10001));  // NFS3ERR_BADHANDLE, as ganesha answers
  const size_t st_at = 4 + 24;
  for (size_t k = 1; k < rec.size(); k++) {
    SCOPED_TRACE("cut after byte " + std::to_string(k));
    uint64_t split = ctr(p.maps(), NFSF_C_ERR_HEAD_SPLIT);
    Flow fl;
    fl.sport = uint16_t(3000 + k);
    ASSERT_EQ(test_run(p.egress_fd(), build(fl, mark(rpc_call(fh, co)))).err, 0);  // poisons the XID
    uint32_t isn = 0x7ffffff0u;
    test_run(p.ingress_fd(), build_reply(fl, {}, 0x12, isn));
    Bytes s1 = build_reply(fl, Bytes(rec.begin(), rec.begin() + long(k)), 0x18, isn + 1);
    Bytes s2 = build_reply(fl, Bytes(rec.begin() + long(k), rec.end()), 0x18, isn + 1 + uint32_t(k));
    RunResult r1 = test_run(p.ingress_fd(), s1), r2 = test_run(p.ingress_fd(), s2);
    Bytes want1 = s1, want2 = s2;
    const uint8_t dquot[4] = {0, 0, 0, 69};
    if (k <= st_at) {
      std::copy(dquot, dquot + 4, want2.begin() + long(layout_of(s2).pay + st_at - k));
    } else if (k >= st_at + 4) {
      std::copy(dquot, dquot + 4, want1.begin() + long(layout_of(s1).pay + st_at));
    } else {
      EXPECT_EQ(ctr(p.maps(), NFSF_C_ERR_HEAD_SPLIT), split + 1);
    }
    for (auto pr : {std::pair{&r1, &want1}, std::pair{&r2, &want2}}) {
      Bytes got = pr.first->out, want = *pr.second;
      Layout L = layout_of(want);
      size_t c = L.l4 + 16;  // checksums verified on their own below
      got[c] = want[c] = got[c + 1] = want[c + 1] = 0;
      EXPECT_EQ(got, want);
      EXPECT_TRUE(checksums_ok(pr.first->out));
    }
  }
  EXPECT_EQ(ctr(p.maps(), NFSF_C_REPLY_REWRITTEN), rec.size() - 1 - 3);
}

// A cut head reaches the agent as one event holding the whole head (WRITE: up to the data
// length word, never data), not as two pieces.
TEST_F(BpfTest, CutHeadReachesTheAgentAsOneEvent) {
  auto& p = tc();
  Bytes fh = fh_of(11);
  setup_maps(p.maps(), fh, 11, false);
  CallOpts w;
  w.data_len = 300;
  Bytes rec = mark(rpc_call(fh, w));
  const size_t head_end = fh_offset(rec, 4) + fh.size() + 20;
  Flow fl;
  fl.seq = 7;
  test_run(p.egress_fd(), build(fl, {}, 0x02));
  fl.seq = 8;
  test_run(p.egress_fd(), build(fl, Bytes(rec.begin(), rec.begin() + 50)));
  fl.seq = 58;
  test_run(p.egress_fd(), build(fl, Bytes(rec.begin() + 50, rec.end())));
  auto events = drain_events(p.maps());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, Bytes(rec.begin(), rec.begin() + long(head_end)));
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_ALLOWED), 1u);
}

// The kernel's room bound (tree_room): with full_at = 100,000 bytes of WRITEs, a tree not
// flagged over takes WRITEs while its write_bytes stays within it and refuses the one that
// would pass it (counted room_refused, its bytes not counted as written); a retransmission
// of a refused head is refused again even after the room grew; 0 means no bound.
TEST_F(BpfTest, TreeRoomStopsATreeAtItsLimitBeforeTheAgentDoes) {
  auto& p = tc();
  Bytes fh = fh_of(15);
  setup_maps(p.maps(), fh, 15, false);
  ASSERT_TRUE(p.maps().set_tree_room(15, 100000));
  auto write_of = [&](uint32_t xid, uint32_t count, uint16_t sport) {
    CallOpts co;
    co.xid = xid;
    co.count = count;
    Flow fl;
    fl.sport = sport;
    return build(fl, mark(rpc_call(fh, co)));
  };
  Bytes w1 = write_of(1, 60000, 901), w2 = write_of(2, 40000, 902), w3 = write_of(3, 1, 903);
  EXPECT_EQ(test_run(p.egress_fd(), w1).out, w1);  // 60,000 <= 100,000
  EXPECT_EQ(test_run(p.egress_fd(), w2).out, w2);  // 100,000 <= 100,000
  RunResult r3 = test_run(p.egress_fd(), w3);      // 100,001 > 100,000
  EXPECT_TRUE(poisoned_only(w3, r3.out, fh_offset(w3, layout_of(w3).pay + 4), fh.size()));
  EXPECT_EQ(ctr(p.maps(), NFSF_C_ROOM_REFUSED), 1u);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_REFUSED_REWRITE), 1u);
  auto t = p.maps().tree(15);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->write_bytes, 100000u);
  EXPECT_EQ(t->refused_bytes, 1u);
  // the agent finds room again (a delete): a retransmission of the refused head is still
  // refused, a new WRITE passes
  ASSERT_TRUE(p.maps().set_tree_room(15, 200000));
  EXPECT_TRUE(poisoned_only(w3, test_run(p.egress_fd(), w3).out, fh_offset(w3, layout_of(w3).pay + 4), fh.size()));
  Bytes w4 = write_of(4, 1000, 904);
  EXPECT_EQ(test_run(p.egress_fd(), w4).out, w4);
  ASSERT_TRUE(p.maps().set_tree_room(15, 0));  // no bound
  Bytes w5 = write_of(5, 1000000, 905);
  EXPECT_EQ(test_run(p.egress_fd(), w5).out, w5);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_WRITE_ALLOWED), 4u);
}

TEST_F(BpfTest, ReplyAcceptedByServerIsLeftAlone) {
  auto& p = tc();
  Bytes fh = fh_of(12);
  setup_maps(p.maps(), fh, 12, true);
  CallOpts co;
  co.xid = 77;
  Bytes in = build(Flow{}, mark(rpc_call(fh, co)));
  test_run(p.egress_fd(), in);
  Bytes rin = build_reply(Flow{}, mark(rpc_reply(77, 0)));
  RunResult r = test_run(p.ingress_fd(), rin);
  EXPECT_EQ(r.out, rin);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_REPLY_ACCEPTED), 1u);
  // A reply to an XID never poisoned is not touched either.
  Bytes other = build_reply(Flow{}, mark(rpc_reply(78, 70)));
  EXPECT_EQ(test_run(p.ingress_fd(), other).out, other);
  EXPECT_EQ(ctr(p.maps(), NFSF_C_REPLY_REWRITTEN), 0u);
}

TEST_F(BpfTest, EventsCarryHeadsNeverWriteData) {
  auto& p = tc();
  Bytes fh = fh_of(13);
  setup_maps(p.maps(), fh, 13, false);
  CallOpts w;
  w.data_len = 1000;
  Bytes rec = mark(rpc_call(fh, w));
  test_run(p.egress_fd(), build(Flow{}, rec));
  auto events = drain_events(p.maps());
  ASSERT_EQ(events.size(), 1u);
  size_t head = fh_offset(rec, 4) + fh.size() + 20;  // fh + offset + count + stable + len
  EXPECT_EQ(events[0].data, Bytes(rec.begin(), rec.begin() + long(head)));
}

// The agent learns where connections start and end from the events: the first event after
// a SYN says NFSF_EVF_NEW_CONN (later ones do not), a FIN or RST is an NFSF_EV_FLOW_END.
TEST_F(BpfTest, EventsMarkConnectionStartAndEnd) {
  auto& p = tc();
  Flow fl;
  fl.seq = 0x90000000u;
  test_run(p.egress_fd(), build(fl, {}, 0x02));  // SYN
  CallOpts a, b;
  a.xid = 1;
  b.xid = 2;
  Bytes r1 = mark(rpc_call(fh_of(1), a)), r2 = mark(rpc_call(fh_of(2), b));
  fl.seq += 1;
  test_run(p.egress_fd(), build(fl, r1));
  fl.seq += uint32_t(r1.size());
  test_run(p.egress_fd(), build(fl, r2));
  fl.seq += uint32_t(r2.size());
  test_run(p.egress_fd(), build(fl, {}, 0x11));  // FIN+ACK
  test_run(p.egress_fd(), build(fl, {}, 0x04));  // RST
  std::vector<std::pair<uint32_t, uint32_t>> events;  // type, flags
  for (const Event& e : drain_events(p.maps())) events.emplace_back(e.type, e.flags);
  const uint32_t eg = NFSF_EVF_EGRESS, head = NFSF_EVF_REC_HEAD | NFSF_EVF_TRUNC;
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0], std::make_pair(uint32_t(NFSF_EV_STREAM), eg | head | NFSF_EVF_NEW_CONN));
  EXPECT_EQ(events[1], std::make_pair(uint32_t(NFSF_EV_STREAM), eg | head));
  EXPECT_EQ(events[2], std::make_pair(uint32_t(NFSF_EV_FLOW_END), eg));
  EXPECT_EQ(events[3], std::make_pair(uint32_t(NFSF_EV_FLOW_END), eg | NFSF_EVF_RST));
}

// TC test_run builds a linear skb (PAGE_SIZE bound); big "GSO" skbs run through XDP frags.
TEST_F(BpfTest, GsoSizedSkbTailOfRecordThenWriteHead) {
  Bytes fh = fh_of(14);
  Flow fl;
  fl.seq = 1;
  CallOpts big;
  big.data_len = 60000;
  Bytes r1 = mark(rpc_call(fh_of(99), big));
  Bytes tail(r1.begin() + 1000, r1.end());  // the record's head went in an earlier skb
  Bytes r2 = mark(rpc_call(fh));
  Bytes in = build(fl, cat({tail, r2}));
  size_t w2 = layout_of(in).pay + tail.size() + 4;

  auto& x = xdp();
  setup_maps(x.maps(), fh, 14, true);
  // state: SYN at seq 0 -> first record at 1, whose head (1000 bytes) went before
  fl.seq = 0;
  ASSERT_EQ(test_run(x.prog_fd(), build(fl, {}, 0x02)).err, 0);
  fl.seq = 1;
  Bytes h = build(fl, Bytes(r1.begin(), r1.begin() + 1000));
  RunResult rh = test_run(x.prog_fd(), h);
  ASSERT_EQ(rh.err, 0);
  Bytes in2 = in;
  // rebuild with the right seq (1 + 1000)
  {
    Flow f2;
    f2.seq = 1001;
    in2 = build(f2, cat({tail, r2}));
  }
  RunResult r = test_run(x.prog_fd(), in2);
  ASSERT_EQ(r.err, 0) << "XDP test_run of a " << in2.size() << "-byte multi-buffer frame";
  EXPECT_EQ(r.retval, uint32_t(XDP_PASS_));
  EXPECT_TRUE(poisoned_only(in2, r.out, fh_offset(in2, w2), fh.size()));
  EXPECT_EQ(ctr(x.maps(), NFSF_C_WRITE_REFUSED_REWRITE), 1u);

  // The same through TC when the kernel's test_run takes non-linear skbs.
  auto& p = tc();
  setup_maps(p.maps(), fh, 14, true);
  RunResult t = test_run(p.egress_fd(), in2);
  if (t.err == EINVAL)
    GTEST_SKIP() << "this kernel's TC test_run only takes linear skbs up to a page; covered by XDP above";
}

// ---------------------------------------------------------------- XDP

TEST_F(BpfTest, XdpDropAndRewrite) {
  Bytes fh = fh_of(15, 28);
  for (auto [action, udp] : {std::pair{NFSF_ACTION_DROP, false}, std::pair{NFSF_ACTION_DROP, true},
                             std::pair{NFSF_ACTION_REWRITE, false}, std::pair{NFSF_ACTION_REWRITE, true}}) {
    SCOPED_TRACE(std::string(action == NFSF_ACTION_DROP ? "drop" : "rewrite") + (udp ? " udp" : " tcp"));
    auto& x = xdp(action);
    setup_maps(x.maps(), fh, 15, true);
    Flow fl;
    fl.udp = udp;
    fl.sport = udp ? 900 : 901;
    Bytes msg = rpc_call(fh);
    Bytes in = build(fl, udp ? msg : mark(msg));
    RunResult r = test_run(x.prog_fd(), in);
    ASSERT_EQ(r.err, 0);
    if (action == NFSF_ACTION_DROP) {
      EXPECT_EQ(r.retval, uint32_t(XDP_DROP_));
    } else {
      EXPECT_EQ(r.retval, uint32_t(XDP_PASS_));
      EXPECT_TRUE(poisoned_only(in, r.out, fh_offset(in, layout_of(in).pay + (udp ? 0 : 4)), fh.size()));
    }
    Bytes under = build(fl, udp ? rpc_call(fh_of(16)) : mark(rpc_call(fh_of(16))));
    EXPECT_EQ(test_run(x.prog_fd(), under).retval, uint32_t(XDP_PASS_));
  }
}

// Odd segment start: the handle lands at an odd offset from the TCP header.
TEST_F(BpfTest, OddOffsetChecksum) {
  auto& p = tc();
  Bytes fh = fh_of(17, 33);
  setup_maps(p.maps(), fh, 17, true);
  Flow fl;
  fl.seq = 1;
  test_run(p.egress_fd(), build(fl, {}, 0x02));
  Bytes first(1001, 0);  // 1 byte shorter... a record of 997 bytes + mark = 1001 bytes
  Bytes r0 = mark(Bytes(996, 0), true, 997);
  r0.push_back(0);
  Bytes r1 = mark(rpc_call(fh));
  fl.seq = 2;
  Bytes in = build(fl, cat({r0, r1}));
  RunResult r = test_run(p.egress_fd(), in);
  size_t at = fh_offset(in, layout_of(in).pay + r0.size() + 4);
  ASSERT_EQ((at - layout_of(in).l4) % 2, 1u);
  EXPECT_TRUE(poisoned_only(in, r.out, at, fh.size()));
}

// ---------------------------------------------------------------- real captures

Bytes frame_from_pcap(const std::string& path, int number) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* pc = pcap_open_offline(path.c_str(), err);
  if (!pc) return {};
  pcap_pkthdr* h;
  const u_char* d;
  Bytes out;
  for (int i = 1; pcap_next_ex(pc, &h, &d) == 1; i++)
    if (i == number) {
      out.assign(d, d + h->caplen);
      break;
    }
  pcap_close(pc);
  return out;
}

std::string shared_pcaps() {
  const char* e = std::getenv("NFSF_SHARED_PCAPS");
  return e ? e : "../shared/pcaps";
}

struct CaptureCase {
  const char* name;
  const char* file;
  int write_frame;
  int reply_frame;  // 0: none
};

class Capture : public BpfTest, public ::testing::WithParamInterface<CaptureCase> {};

TEST_P(Capture, RealWriteIsPoisonedAndAcceptedReplyLeftAlone) {
  const CaptureCase& c = GetParam();
  std::string path = shared_pcaps() + "/" + c.file;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent (../shared not mounted)";
  Bytes in = frame_from_pcap(path, c.write_frame);
  ASSERT_FALSE(in.empty());
  fix_checksums(in);  // captured on the sender: offloaded checksums are not final
  Layout L = layout_of(in);
  size_t at = fh_offset(in, L.pay + (L.udp ? 0 : 4));
  Bytes fh(in.begin() + at, in.begin() + at + get32(in, at - 4));
  auto& p = tc();
  setup_maps(p.maps(), fh, 21, true);
  RunResult r = test_run(p.egress_fd(), in);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.retval, uint32_t(TC_OK));
  EXPECT_TRUE(poisoned_only(in, r.out, at, fh.size()));
  EXPECT_EQ(ctr(p.maps(), NFSF_C_RESYNC), L.udp ? 0u : 1u);
  if (c.reply_frame) {
    Bytes rin = frame_from_pcap(path, c.reply_frame);
    fix_checksums(rin);
    RunResult rr = test_run(p.ingress_fd(), rin);
    EXPECT_EQ(rr.out, rin);  // the captured server said NFS3_OK: left alone, counted
    EXPECT_EQ(ctr(p.maps(), NFSF_C_REPLY_ACCEPTED), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Pcaps, Capture,
                         ::testing::Values(CaptureCase{"tcpdump_write_verf_cookie", "tcpdump/nfs-write-verf-cookie.pcapng", 1, 2},
                                           CaptureCase{"zeek_nfs_write", "zeek/nfs_write.pcap", 133, 134}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
