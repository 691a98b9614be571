// nfsf_bpf_bench: ns per packet of nfsfence's TC programs with BPF_PROG_TEST_RUN, per packet
// class, against the null TC program (bpf/tc/null.bpf.c) measured in the same run.
// See docs/benchmarks.md ("TC data plane"). Needs root (CAP_BPF + CAP_NET_ADMIN).
//
// Two ways of timing, both using the kernel's own per-run duration (bpf_prog_test_run_opts
// .duration: ktime around the program call, syscall and skb setup excluded):
//   repeat  one test_run with .repeat = N re-runs the SAME skb N times: warm caches, warm flow
//           state, and the packet and the flow state as the previous run left them. Head
//           classes would turn into "mid-record" after the first run (the flow's next mark moves
//           past the packet), so for repeat mode those packets carry, after the record, a 4-byte
//           invalid record mark: the flow loses sync at the end of every run and the next run
//           resyncs on the head (path: resync + head + bad mark; an upper bound of the head path).
//           The counters are read before/after to show which path every run took.
//   fresh   .repeat = 1, S samples, the flow state reset from userspace before every call
//           (outside the timed region) to "synced, next mark at this packet's first byte": the
//           exact steady-state path of a head segment. Median of the per-call durations; each
//           includes ~1 ktime_get_ns() of timer overhead, the same for the null program.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "nfs/rpc.h"
#include "nfs/xdr_writer.h"
#include "nfsfence_null.skel.h"
#include "pkt/pkt.h"
#include "src/bpf_loader.h"

namespace {

using nfsfence::Bytes;
using nfsfence::Endpoint;
using nfsfence::kProgNfs;
using nfsfence::XdrWriter;
namespace pkt = nfsfence::pkt;
using nfsfence::bpf::Counters;
using nfsfence::bpf::LoadOptions;
using nfsfence::bpf::TcProgram;

// ------------------------------------------------------------------ packet building
// (tests/pkt, the packet library the tests share)

const Endpoint kCli = pkt::ep("10.99.0.1"), kSrv = pkt::ep("10.99.0.2");

struct Seg {
  bool from_server = false;  // reply direction: src = server
  uint16_t sport = 811, dport = 2049;
  uint32_t seq = 1000;
};

// The 12-byte timestamp option (NOP NOP TS) that Linux sends: 1448-byte MSS segments in
// 1514-byte frames.
const Bytes kTsOption = [] {
  Bytes o{1, 1, 8, 10};
  pkt::put32(o, 123456);
  pkt::put32(o, 654321);
  return o;
}();

// Ethernet / IPv4 / TCP with the timestamp option, checksums correct.
Bytes build(const Seg& s, const Bytes& payload) {
  pkt::Seg f{.src = s.from_server ? kSrv : kCli,
             .dst = s.from_server ? kCli : kSrv,
             .seq = s.seq,
             .ack = 77,
             .flags = pkt::kPsh | pkt::kAck,
             .tcp_options = kTsOption,
             .ip_id = 0x1234,
             .dont_fragment = true};
  f.src.port = s.sport;
  f.dst.port = s.dport;
  return pkt::frame(f, payload);
}

// AUTH_UNIX: stamp, machine name, uid, gid, gids (what libnfs sends)
XdrWriter rpc_call_head(uint32_t xid, uint32_t proc) {
  XdrWriter x;
  pkt::call_head(x, xid, kProgNfs, 3, proc, pkt::kAuthUnix, pkt::auth_unix(0x5a5a5a5a, "nfsf-cli", 0, 0));
  return x;
}

// A WRITE call message: `data_len` data bytes follow the head in the record, but only
// `data_in_pkt` of them are included (0xab).
Bytes write_call(uint32_t xid, const Bytes& fh, uint32_t data_len, size_t data_in_pkt) {
  XdrWriter x = rpc_call_head(xid, 7);
  Bytes m = pkt::write3_head(x, fh, 1 << 20, data_len, 0 /* UNSTABLE */, data_len).bytes();
  m.insert(m.end(), data_in_pkt, 0xab);
  return m;
}

Bytes read_call(uint32_t xid, const Bytes& fh) {
  XdrWriter x = rpc_call_head(xid, 6);
  return pkt::read3_args(x, fh, 1 << 20, 1 << 20).bytes();
}

// WRITE3res OK: wcc_data (pre-op attrs + post-op attrs), count, committed, verf.
Bytes write_reply(uint32_t xid, uint64_t used) {
  const pkt::NfsTime t0{1700000000, 1700000001}, t1{1700000002, 1700000003}, t2{1700000004, 1700000005};
  pkt::Fattr3 post{.size = used, .used = used, .fsid = 1, .fileid = 4242, .atime = t0, .mtime = t1, .ctime = t2};
  XdrWriter x;
  x.reply_header(xid);
  return pkt::write3res(x, 0, pkt::WccAttr{used - 65536, t0, t1}, post, 65536, 0, 0x1111111122222222ull).bytes();
}

// FSSTAT3res OK with post_op_attr (a directory), what ganesha sends for `df`.
Bytes fsstat_reply(uint32_t xid) {
  pkt::Fattr3 a{.type = 2, .mode = 0755, .nlink = 4, .size = 4096, .used = 4096, .fsid = 1, .fileid = 77};
  XdrWriter x;
  x.reply_header(xid);
  return pkt::fsstat3res(x, 0, a,
                         {.tbytes = 40ull << 30,
                          .fbytes = 10ull << 30,
                          .abytes = 9ull << 30,
                          .tfiles = 1u << 20,
                          .ffiles = 1u << 19,
                          .afiles = 1u << 19,
                          .invarsec = 0})
      .bytes();
}

Bytes fsstat_call(uint32_t xid, const Bytes& fh) {
  XdrWriter x = rpc_call_head(xid, 18);
  return x.opaque(fh).bytes();
}

// ------------------------------------------------------------------ running

struct Run {
  uint32_t duration = 0, retval = 0;
  int err = 0;
};

Run test_run(int fd, const Bytes& in, uint32_t repeat) {
  Run r;
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_size_in = uint32_t(in.size()), .repeat = int(repeat));
  r.err = bpf_prog_test_run_opts(fd, &o) ? errno : 0;
  r.duration = o.duration;
  r.retval = o.retval;
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

nfsf_flow_key flow_key(const Seg& s) {
  nfsf_flow_key k{};
  std::memcpy(k.saddr, (s.from_server ? kSrv : kCli).addr.data(), 4);
  std::memcpy(k.daddr, (s.from_server ? kCli : kSrv).addr.data(), 4);
  k.sport = htons(s.sport);
  k.dport = htons(s.dport);
  k.family = 4;
  k.proto = 6;
  return k;
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "nfsf_bpf_bench: %s\n", m.c_str());
  std::exit(1);
}

struct Tc {
  std::string name;
  std::unique_ptr<TcProgram> prog;
  ring_buffer* rb = nullptr;
};

int drop_event(void*, void*, size_t) { return 0; }

struct Class {
  std::string name;
  bool ingress = false;
  Seg seg;
  Bytes fresh_pkt;   // exact packet of the class
  Bytes repeat_pkt;  // what repeat mode runs (head classes: + an invalid trailing mark)
  // flow state to install before a fresh call (nullopt: leave as is)
  std::optional<nfsf_flow_state> fresh_state;
  std::function<void(const Tc&)> prepare;      // per program, once (e.g. establish flow state)
  std::function<void(const Tc&)> before_each;  // per program, before every fresh call (untimed)
  nfsf_counter path = NFSF_C_PACKETS;          // counter that must advance once per run
  bool repeat_ok = true;
};

constexpr uint16_t kBase = 700;

}  // namespace

int main(int argc, char** argv) {
  uint32_t repeat = 1000000, samples = 20000, trials = 5, nhandles = 100000;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> uint32_t {
      if (i + 1 >= argc) die("missing value for " + a);
      return uint32_t(std::strtoul(argv[++i], nullptr, 0));
    };
    if (a == "--repeat")
      repeat = val();
    else if (a == "--samples")
      samples = val();
    else if (a == "--trials")
      trials = val();
    else if (a == "--handles")
      nhandles = val();
    else {
      std::printf(
          "usage: nfsf_bpf_bench [--repeat N=1000000] [--samples S=20000] [--trials T=5] "
          "[--handles H=100000]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  libbpf_set_print([](libbpf_print_level l, const char* f, va_list ap) {
    return l == LIBBPF_WARN ? std::vfprintf(stderr, f, ap) : 0;
  });

  nfsfence_null* null_skel = nfsfence_null__open_and_load();
  if (!null_skel) die(std::string("loading the null program: ") + std::strerror(errno));
  const int null_fd = bpf_program__fd(null_skel->progs.null_tc);

  // Two nfsfence loads: events off (verdict only) and on (what the agent runs: control-plane
  // RPC heads streamed to the ring buffer; fresh mode drains it between calls).
  std::vector<Tc> tcs;
  for (bool ev : {false, true}) {
    LoadOptions opt;
    opt.emit_events = ev;
    auto p = TcProgram::load(opt);
    if (!p) die("TcProgram::load: " + p.error().message());
    Tc t{ev ? "tc+events" : "tc", std::move(*p), nullptr};
    if (ev) {
      t.rb = ring_buffer__new(t.prog->maps().events_fd, drop_event, nullptr, nullptr);
      if (!t.rb) die("ring_buffer__new");
    }
    tcs.push_back(std::move(t));
  }

  // Handles: the WRITE's handle in tree 1 (under quota) and tree 2 (over), plus H random
  // handles (a realistic map population for the hash lookup).
  const Bytes fh_under = [] {
    Bytes b(40);
    for (size_t i = 0; i < b.size(); i++) b[i] = uint8_t(0x11 + i * 7);
    return b;
  }();
  const Bytes fh_over = [] {
    Bytes b(40);
    for (size_t i = 0; i < b.size(); i++) b[i] = uint8_t(0x22 + i * 5);
    return b;
  }();
  std::mt19937_64 rng(1);
  for (auto& t : tcs) {
    const auto& m = t.prog->maps();
    std::mt19937_64 r2(1);
    for (uint32_t i = 0; i < nhandles; i++) {
      Bytes fh(40);
      for (auto& c : fh) c = uint8_t(r2());
      if (!m.set_handle_tree(fh, 3 + i % 100)) die("set_handle_tree (fill)");
    }
    if (!m.set_handle_tree(fh_under, 1) || !m.set_handle_tree(fh_over, 2) || !m.set_tree_over(1, false) ||
        !m.set_tree_over(2, true) ||
        !m.set_tree_df(1, nfsf_tree_df{.limit = 1ull << 30, .used = 300ull << 20, .flags = NFSF_DF_REWRITE, .pad = 0}))
      die("map setup");
  }

  constexpr size_t kMss = 1448;
  std::vector<Class> cls;
  auto synced_at = [](uint32_t seq) {
    nfsf_flow_state s{};
    s.next_mark = seq;
    s.flags = NFSF_FS_SYNCED;
    return s;
  };
  // A head class: the fresh packet is the first segment of a record of rec_len bytes; the
  // repeat packet is a complete shorter record + an invalid mark (len 1) so each run resyncs.
  auto head_class = [&](std::string name, bool ingress, uint16_t port_off, const Bytes& msg_full, uint32_t rec_len,
                        const Bytes& msg_short, nfsf_counter path, bool repeat_ok) {
    Class c;
    c.name = std::move(name);
    c.ingress = ingress;
    c.seg.from_server = ingress;
    c.seg.sport = ingress ? 2049 : uint16_t(kBase + port_off);
    c.seg.dport = ingress ? uint16_t(kBase + port_off) : 2049;
    c.seg.seq = 100000;
    Bytes p = pkt::record_claiming(msg_full, rec_len);
    if (p.size() > kMss) p.resize(kMss);
    c.fresh_pkt = build(c.seg, p);
    Bytes q = pkt::record_claiming(msg_short, uint32_t(msg_short.size()));
    pkt::put32(q, 1);  // invalid record mark: the walk stops unsynced
    c.repeat_pkt = build(c.seg, q);
    c.fresh_state = synced_at(c.seg.seq);
    c.path = path;
    c.repeat_ok = repeat_ok;
    cls.push_back(std::move(c));
  };
  const uint32_t wlen = 1 << 20;
  {
    Bytes full = write_call(0x1001, fh_under, wlen, kMss);
    uint32_t hdr = uint32_t(write_call(0x1001, fh_under, wlen, 0).size());
    Bytes shrt = write_call(0x1001, fh_under, uint32_t(kMss - 8 - hdr), kMss - 8 - hdr);
    head_class("WRITE head, under quota", false, 1, full, hdr + wlen, shrt, NFSF_C_WRITE_ALLOWED, true);
  }
  {
    Bytes full = write_call(0x2001, fh_over, wlen, kMss);
    uint32_t hdr = uint32_t(write_call(0x2001, fh_over, wlen, 0).size());
    Bytes shrt = write_call(0x2001, fh_over, uint32_t(kMss - 8 - hdr), kMss - 8 - hdr);
    // repeat: the first run poisons the handle inside the re-used skb, the next ones see an
    // unknown handle: not the rewrite path, so fresh mode only.
    head_class("WRITE head, over quota (rewrite)", false, 2, full, hdr + wlen, shrt, NFSF_C_WRITE_REFUSED_REWRITE,
               false);
  }
  {
    Class c;
    c.name = "mid-record segment";
    c.seg.sport = kBase + 3;
    c.seg.seq = 200000;
    Seg head = c.seg;
    Bytes hp = pkt::record_claiming(write_call(0x3001, fh_under, wlen, kMss),
                                    uint32_t(write_call(0x3001, fh_under, wlen, 0).size()) + wlen);
    hp.resize(kMss);
    Bytes head_pkt = build(head, hp);
    c.seg.seq = head.seq + 10 * kMss;
    c.fresh_pkt = c.repeat_pkt = build(c.seg, Bytes(kMss, 0xab));
    // As a real flow gets there: the head segment first (next mark = head + 4 + record).
    c.prepare = [head_pkt](const Tc& t) {
      Run r = test_run(t.prog->egress_fd(), head_pkt, 1);
      if (r.err) die("head packet for the mid-record class: " + std::string(std::strerror(r.err)));
    };
    c.path = NFSF_C_MID_RECORD;
    cls.push_back(std::move(c));
  }
  {
    Bytes m = read_call(0x4001, fh_under);
    head_class("READ call", false, 4, m, uint32_t(m.size()), m, NFSF_C_RPC_CALLS, true);
  }
  {
    Bytes m = write_reply(0x1001, 5 << 20);
    head_class("WRITE reply (ingress)", true, 5, m, uint32_t(m.size()), m, NFSF_C_RPC_REPLIES, true);
  }
  {
    Bytes m = fsstat_call(0x6001, fh_under);
    head_class("FSSTAT call, handle in a tree", false, 6, m, uint32_t(m.size()), m, NFSF_C_RPC_CALLS, true);
  }
  {
    // The same reply twice: to an FSSTAT of the export root (no pending entry: the one
    // lookup every reply makes, then passed) and to one of tree 1 (the entry is put back
    // before every call, untimed; repeat mode would rewrite only its first run).
    Bytes m = fsstat_reply(0x7001);
    head_class("FSSTAT reply, export root (passed)", true, 7, m, uint32_t(m.size()), m, NFSF_C_RPC_REPLIES, true);
    head_class("FSSTAT reply, tree (rewritten)", true, 8, m, uint32_t(m.size()), m, NFSF_C_FSSTAT_REWRITTEN, false);
    nfsf_xid_key k{};
    k.flow = flow_key(cls.back().seg);
    k.xid = htonl(0x7001);
    cls.back().before_each = [k](const Tc& t) {
      nfsf_dirop d{.tree = 1, .proc = 18};
      if (bpf_map_update_elem(t.prog->maps().pending_dirop_fd, &k, &d, BPF_ANY))
        die("pending_dirop update: " + std::string(std::strerror(errno)));
    };
  }
  {
    Class c;
    c.name = "non-NFS (TCP to port 22)";
    c.seg.sport = 40000;
    c.seg.dport = 22;
    c.fresh_pkt = c.repeat_pkt = build(c.seg, Bytes(kMss, 0x42));
    c.path = NFSF_C_PACKETS;
    cls.push_back(std::move(c));
  }

  for (auto& c : cls)
    if (c.prepare)
      for (auto& t : tcs) c.prepare(t);

  auto reset_state = [&](const Tc& t, const Class& c) {
    if (!c.fresh_state) return;
    nfsf_flow_key k = flow_key(c.seg);
    if (bpf_map_update_elem(t.prog->maps().flows_fd, &k, &*c.fresh_state, BPF_ANY))
      die("flows update: " + std::string(std::strerror(errno)));
  };
  auto counters = [](const Tc& t) {
    auto r = t.prog->maps().counters();
    if (!r) die("counters: " + r.error().message());
    return *r;
  };

  // results[class][prog][mode] = samples (per-trial values)
  const size_t NP = 1 + tcs.size();  // 0 = null
  std::vector<std::vector<std::vector<double>>> rep(cls.size(), std::vector<std::vector<double>>(NP)),
      fr(cls.size(), std::vector<std::vector<double>>(NP));
  std::vector<std::vector<std::string>> rep_path(cls.size(), std::vector<std::string>(NP)),
      fr_path(cls.size(), std::vector<std::string>(NP));
  std::vector<std::vector<double>> rep_lost(cls.size(), std::vector<double>(NP, 0));

  auto path_note = [&](const Counters& a, const Counters& b, nfsf_counter want, uint64_t runs) {
    char buf[256];
    uint64_t d = b[want] - a[want];
    std::string s;
    std::snprintf(buf, sizeof buf, "%s %.3f/run", nfsfence::bpf::counter_name(want), double(d) / double(runs));
    s = buf;
    for (int i = 0; i < NFSF_C_MAX; i++) {
      auto ci = nfsf_counter(i);
      if (ci == want || ci == NFSF_C_PACKETS || ci == NFSF_C_NFS_PACKETS || ci == NFSF_C_EVENTS ||
          ci == NFSF_C_EVENTS_LOST)
        continue;
      uint64_t di = b[i] - a[i];
      if (di) {
        std::snprintf(buf, sizeof buf, ", %s %.3f", nfsfence::bpf::counter_name(ci), double(di) / double(runs));
        s += buf;
      }
    }
    return s;
  };

  for (uint32_t trial = 0; trial < trials; trial++) {
    for (size_t ci = 0; ci < cls.size(); ci++) {
      const Class& c = cls[ci];
      for (size_t pi = 0; pi < NP; pi++) {
        const Tc* t = pi ? &tcs[pi - 1] : nullptr;
        const int fd = pi == 0 ? null_fd : (c.ingress ? t->prog->ingress_fd() : t->prog->egress_fd());
        // repeat mode
        if (c.repeat_ok) {
          if (t) reset_state(*t, c);
          if (t && t->rb) ring_buffer__consume(t->rb);
          Counters a{}, b{};
          if (t) a = counters(*t);
          Run r = test_run(fd, c.repeat_pkt, repeat);
          if (r.err) die(c.name + ": test_run: " + std::strerror(r.err));
          rep[ci][pi].push_back(r.duration);
          if (t) {
            b = counters(*t);
            // the first run may differ (state from the previous mode); the note is per run
            if (trial == 0) rep_path[ci][pi] = path_note(a, b, c.path, repeat);
            uint64_t ev = b[NFSF_C_EVENTS] - a[NFSF_C_EVENTS], lost = b[NFSF_C_EVENTS_LOST] - a[NFSF_C_EVENTS_LOST];
            if (ev + lost) rep_lost[ci][pi] = double(lost) / double(ev + lost);
          }
          if (t && t->rb) ring_buffer__consume(t->rb);
        }
        // fresh mode
        std::vector<double> d;
        d.reserve(samples);
        Counters a{}, b{};
        if (t) a = counters(*t);
        for (uint32_t s = 0; s < samples; s++) {
          if (t) reset_state(*t, c);
          if (t && c.before_each) c.before_each(*t);
          Run r = test_run(fd, c.fresh_pkt, 1);
          if (r.err) die(c.name + ": test_run: " + std::strerror(r.err));
          d.push_back(r.duration);
          if (t && t->rb) ring_buffer__consume(t->rb);
        }
        if (t) {
          b = counters(*t);
          if (trial == 0) fr_path[ci][pi] = path_note(a, b, c.path, samples);
        }
        fr[ci][pi].push_back(median(d));
      }
    }
  }

  std::printf("nfsf_bpf_bench: repeat=%u samples=%u trials=%u handles=%u (median over trials)\n\n", repeat, samples,
              trials, nhandles);
  std::printf("| class | mode | null ns | tc ns | ratio | tc+events ns | ratio |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (size_t ci = 0; ci < cls.size(); ci++) {
    for (int mode = 0; mode < 2; mode++) {
      auto& v = mode == 0 ? rep[ci] : fr[ci];
      if (v[0].empty()) {
        std::printf("| %s | %s | n/a | n/a | | n/a | |\n", cls[ci].name.c_str(), mode == 0 ? "repeat" : "fresh");
        continue;
      }
      double n = median(v[0]), a = median(v[1]), e = median(v[2]);
      std::printf("| %s | %s | %.1f | %.1f | %.2f | %.1f | %.2f |\n", cls[ci].name.c_str(),
                  mode == 0 ? "repeat" : "fresh", n, a, a / n, e, e / n);
    }
  }
  std::printf("\npaths (counter deltas per run, first trial):\n");
  for (size_t ci = 0; ci < cls.size(); ci++) {
    for (size_t pi = 1; pi < NP; pi++) {
      if (cls[ci].repeat_ok)
        std::printf(
            "  %-34s %-10s repeat: %s%s\n", cls[ci].name.c_str(), tcs[pi - 1].name.c_str(), rep_path[ci][pi].c_str(),
            rep_lost[ci][pi] > 0 ? (", events lost " + std::to_string(int(rep_lost[ci][pi] * 100)) + "%").c_str() : "");
      std::printf("  %-34s %-10s fresh:  %s\n", cls[ci].name.c_str(), tcs[pi - 1].name.c_str(),
                  fr_path[ci][pi].c_str());
    }
  }
  for (auto& t : tcs)
    if (t.rb) ring_buffer__free(t.rb);
  nfsfence_null__destroy(null_skel);
  return 0;
}
