// BPF_PROG_TEST_RUN tables against the real nfsfence TC and XDP programs (tests/bpf/bpf_table.h
// runs them: each row names its programs, map setup, frames, verdicts, outputs and counter
// deltas). Needs root (CAP_BPF + CAP_NET_ADMIN); skips with the reason when loading is refused.
#define PCAP_DONT_INCLUDE_PCAP_BPF_H 1
#include <pcap/pcap.h>

#include <cstdlib>
#include <filesystem>

#include "bpf/bpf_table.h"

namespace nfsfence::bpftest {
namespace {

using namespace pkt;

TEST_P(BpfTable, Runs) { run_table(GetParam()); }

// ---------------------------------------------------------------- rewrite / drop

// A WRITE to an over-quota tree: refused (handle poisoned, or the packet dropped); in
// rewrite mode the server's answer to the poisoned handle (NFS3ERR_STALE) becomes DQUOT.
Table write_over_tree(const char* name, Flow flow, nfsf_action action) {
  return single(name, [=] {
    Bytes fh = fh_of(1, 36);  // not a multiple of 4: exercises the pad mask
    const CallOpts co{.xid = 0xabcdef01, .data_len = 100};
    Bytes msg = call_msg(fh, co);
    Bytes in = build(flow, flow.udp ? msg : mark(msg));
    size_t msg_at = layout_of(in).pay + (flow.udp ? 0 : 4);
    auto key = xid_key_for_reply(in, co.xid);
    TreeWant tree{.tree = 3, .writes = 0, .refused_writes = 1, .refused_bytes = 100};
    Row r{.what = name, .setup = tree_of(fh, 3, true)};
    if (action == NFSF_ACTION_DROP) {
      r.progs = {Prog::TcDrop};
      Step s = call("WRITE to the over-quota tree", in, any_out());
      s.verdict = Verdict::Drop;
      r.steps = {s};
      r.checks = {.counters = {{NFSF_C_WRITE_REFUSED_DROP, 1}}, .trees = {tree}, .poisoned = {{key, std::nullopt}}};
      return r;
    }
    Step s = call("WRITE to the over-quota tree", in, poisoned(fh_offset(in, msg_at), fh.size()));
    s.then = Checks{.counters = {{NFSF_C_WRITE_REFUSED_REWRITE, 1}}, .trees = {tree}, .poisoned = {{key, 3}}};
    // The server answers the poisoned handle with NFS3ERR_STALE (70): ingress -> DQUOT.
    Bytes rmsg = write_reply_msg(co.xid, 70);
    Bytes rin = build_reply(flow, flow.udp ? rmsg : mark(rmsg));
    Bytes want = rin;
    set32(want, layout_of(rin).pay + (flow.udp ? 0 : 4) + 24, 69);
    r.steps = {s, reply("NFS3ERR_STALE reply", rin, rewritten(want))};
    r.checks.counters = {{NFSF_C_REPLY_REWRITTEN, 1}};
    return r;
  });
}

INSTANTIATE_TEST_SUITE_P(WriteOverTree, BpfTable,
                         ::testing::Values(write_over_tree("rewrite_tcp4", Flow{}, NFSF_ACTION_REWRITE),
                                           write_over_tree("rewrite_tcp6", Flow{.v6 = true}, NFSF_ACTION_REWRITE),
                                           write_over_tree("rewrite_udp4", Flow{.udp = true}, NFSF_ACTION_REWRITE),
                                           write_over_tree("rewrite_udp6", Flow{.v6 = true, .udp = true},
                                                           NFSF_ACTION_REWRITE),
                                           write_over_tree("drop_tcp4", Flow{}, NFSF_ACTION_DROP),
                                           write_over_tree("drop_tcp6", Flow{.v6 = true}, NFSF_ACTION_DROP),
                                           write_over_tree("drop_udp4", Flow{.udp = true}, NFSF_ACTION_DROP)),
                         table_name);

// ---------------------------------------------------------------- pass-through

// One frame that passes unchanged and is counted, on TC egress and on XDP.
Table pass_through(const char* name, std::function<Bytes(const Bytes& fh)> packet, bool tree_over, Deltas counters) {
  return single(name, [=] {
    Bytes fh = fh_of(9);
    Row r{.what = name, .progs = {Prog::Tc, Prog::Xdp}, .setup = tree_of(fh, 5, tree_over)};
    r.steps = {call("the frame", packet(fh))};
    r.checks.counters = counters;
    return r;
  });
}

Bytes write_frame(const Bytes& fh, Flow fl = {}) { return build(fl, mark(call_msg(fh))); }
// The WRITE frame cut to `size` bytes, byte `at` set to v.
Bytes forged_write(const Bytes& fh, size_t at, uint8_t v, size_t size = SIZE_MAX) {
  Bytes f = write_frame(fh);
  if (size < f.size()) f.resize(size);
  f[at] = v;
  return f;
}
Bytes proc_frame(const Bytes& fh, uint32_t proc) { return build(Flow{}, mark(call_msg(fh, {.proc = proc}))); }

INSTANTIATE_TEST_SUITE_P(
    PassThrough, BpfTable,
    ::testing::Values(pass_through("write_under_tree", [](const Bytes& fh) { return write_frame(fh); }, false,
                                   {{NFSF_C_WRITE_ALLOWED, 1}, {NFSF_C_WRITE_CALLS, 1}}),
                      pass_through("write_unknown_fh", [](const Bytes&) { return write_frame(fh_of(200)); }, true,
                                   {{NFSF_C_WRITE_UNKNOWN_FH, 1}, {NFSF_C_WRITE_REFUSED_REWRITE, 0}}),
                      pass_through("read_call", [](const Bytes& fh) { return proc_frame(fh, 6); }, true,
                                   {{NFSF_C_RPC_CALLS, 1}, {NFSF_C_WRITE_CALLS, 0}, {NFSF_C_EVENTS, 1}}),
                      pass_through("getattr_call", [](const Bytes& fh) { return proc_frame(fh, 1); }, true,
                                   {{NFSF_C_RPC_CALLS, 1}, {NFSF_C_WRITE_CALLS, 0}}),
                      pass_through("non_nfs_tcp", [](const Bytes& fh) { return write_frame(fh, Flow{.dport = 80}); },
                                   true, {{NFSF_C_NFS_PACKETS, 0}, {NFSF_C_PACKETS, 1}}),
                      pass_through("write_v2_not_v3",
                                   [](const Bytes& fh) { return build(Flow{}, mark(call_msg(fh, {.vers = 2}))); }, true,
                                   {{NFSF_C_WRITE_CALLS, 0}, {NFSF_C_MID_RECORD, 1}}),
                      pass_through("bad_ihl", [](const Bytes& fh) { return forged_write(fh, 14, 0x43); }, true,
                                   {{NFSF_C_ERR_BAD_IP, 1}}),
                      pass_through("truncated_tcp_header",
                                   [](const Bytes& fh) { return forged_write(fh, 17, 30, 14 + 20 + 10); }, true,
                                   {{NFSF_C_ERR_SHORT, 1}}),
                      pass_through("bad_doff", [](const Bytes& fh) { return forged_write(fh, 14 + 20 + 12, 0x20); },
                                   true, {{NFSF_C_ERR_BAD_TCP, 1}}),
                      pass_through("garbage_payload",
                                   [](const Bytes&) {
                                     Bytes g(200);
                                     for (size_t i = 0; i < g.size(); i++) g[i] = uint8_t(i * 37 + 11);
                                     return build(Flow{}, g);
                                   },
                                   true, {{NFSF_C_MID_RECORD, 1}, {NFSF_C_WRITE_CALLS, 0}}),
                      pass_through("fh_too_long", [](const Bytes&) { return write_frame(Bytes(80, 1)); }, true,
                                   {{NFSF_C_ERR_FH_LEN, 1}}),
                      pass_through("runt_frame", [](const Bytes&) { return Bytes(14, 0); }, true,
                                   {{NFSF_C_PACKETS, 1}, {NFSF_C_NFS_PACKETS, 0}})),
    table_name);

// ---------------------------------------------------------------- in-kernel handle learning

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

// A dir-op call in a mapped directory, its reply (the new handle is mapped before the agent
// sees it), then the first WRITE to the new handle (tree 1 over: poisoned).
Table dirop(DirOpCase c) {
  return single(c.name, [c] {
    Bytes dir = fh_of(40, 28), obj = fh_of(90, 30);  // 30: exercises the XDR pad
    auto frame = [&](const Flow& fl, const Bytes& msg) { return build(fl, fl.udp ? msg : mark(msg)); };
    Row r{.what = c.name};
    if (c.dir_mapped) r.setup.handles.push_back({dir, 1});
    r.setup.over = {{1, true}};
    if (c.premapped) r.setup.handles.push_back({obj, c.premapped});

    // 1. egress: the call passes unchanged; (reply flow, XID) -> tree recorded.
    const uint32_t xid = 0x0d1e0001;
    Bytes in = frame(c.flow, dirop_call(dir, c.proc, c.fname, xid));
    auto key = xid_key_for_reply(in, xid);
    Step s1 = call("dir-op call", in);
    s1.then = Checks{.counters = {{NFSF_C_DIROP_PENDING, c.want_pending ? 1u : 0u}},
                     .dirops = {{key, c.want_pending ? std::optional(nfsf_dirop{1, c.proc}) : std::nullopt}}};

    // 2. ingress: the reply passes unchanged; the new handle is mapped, the entry deleted.
    Bytes rmsg = dirop_reply(xid, c.proc, c.status, c.follows, obj);
    Step s2 = reply("dir-op reply", build_reply(c.flow, c.flow.udp ? rmsg : mark(rmsg)));
    std::optional<uint32_t> mapped = c.premapped      ? std::optional(c.premapped)
                                     : c.want_learned ? std::optional(1u)
                                                      : std::nullopt;
    s2.then = Checks{
        .counters = {{NFSF_C_HANDLE_LEARNED, c.want_learned && !c.premapped ? 1u : 0u}, {NFSF_C_HANDLE_MISSED, 0}},
        .handles = {{obj, mapped, c.premapped ? "the kernel must not overwrite a mapping the agent made" : ""}},
        .dirops = {{key, std::nullopt, "pending entry not deleted by the reply"}}};

    // 3. egress: the first WRITE to the new handle (tree 1 over) is poisoned.
    Flow wf = c.flow;
    wf.seq = c.flow.seq + uint32_t(in.size() - layout_of(in).pay);
    Bytes win = frame(wf, call_msg(obj, {.xid = 0x0d1e0002}));
    Step s3 = call("first WRITE to the new handle", win);
    if (c.want_learned && !c.premapped) {
      s3.out = poisoned(fh_offset(win, layout_of(win).pay + (wf.udp ? 0 : 4)), obj.size());
      r.checks = {.counters = {{NFSF_C_WRITE_REFUSED_REWRITE, 1}}, .trees = {{.tree = 1, .refused_writes = 1}}};
    } else if (!c.premapped) {
      r.checks.counters = {{NFSF_C_WRITE_UNKNOWN_FH, 1}};
    } else {
      s3.out = any_out();
    }
    r.steps = {s1, s2, s3};
    return r;
  });
}

INSTANTIATE_TEST_SUITE_P(
    DirOp, BpfTable,
    ::testing::Values(
        dirop({.name = "create_tcp4", .flow = Flow{}, .proc = 8}),
        dirop({.name = "create_udp4", .flow = Flow{.udp = true}, .proc = 8}),
        dirop({.name = "create_tcp6", .flow = Flow{.v6 = true}, .proc = 8}),
        dirop({.name = "create_udp6", .flow = Flow{.v6 = true, .udp = true}, .proc = 8}),
        dirop({.name = "lookup_tcp4", .flow = Flow{}, .proc = 3}),
        dirop({.name = "lookup_udp4", .flow = Flow{.udp = true}, .proc = 3}),
        dirop({.name = "mkdir_tcp4", .flow = Flow{}, .proc = 9, .fname = "d"}),
        dirop({.name = "create_exist_fails", .flow = Flow{}, .proc = 8, .status = 17, .want_learned = false}),
        dirop({.name = "lookup_noent_fails", .flow = Flow{}, .proc = 3, .status = 2, .want_learned = false}),
        dirop({.name = "create_unmapped_dir",
               .flow = Flow{},
               .proc = 8,
               .dir_mapped = false,
               .want_pending = false,
               .want_learned = false}),
        dirop({.name = "create_no_handle_follows", .flow = Flow{}, .proc = 8, .follows = false, .want_learned = false}),
        dirop({.name = "lookup_dotdot_not_followed",
               .flow = Flow{},
               .proc = 3,
               .fname = "..",
               .want_pending = false,
               .want_learned = false}),
        dirop({.name = "lookup_dot_not_followed",
               .flow = Flow{},
               .proc = 3,
               .fname = ".",
               .want_pending = false,
               .want_learned = false}),
        dirop({.name = "lookup_known_handle_kept", .flow = Flow{}, .proc = 3, .premapped = 2})),
    table_name);

// ---------------------------------------------------------------- FSSTAT: df shows the tree (nfsf_fsstat.h)

struct FsstatCase {
  const char* name;
  Flow flow;
  bool mapped = true;  // the call's handle is in tree 1 (false: the export root, in no tree)
  uint32_t flags = NFSF_DF_REWRITE;
  uint64_t limit = 1 << 20, used = 300 << 10;
  bool attrs = true;  // the reply carries post_op_attr
  uint32_t status = 0;
  pkt::FsStat server{.tbytes = 40ull << 30,
                     .fbytes = 10ull << 30,
                     .abytes = 9ull << 30,
                     .tfiles = 1000,
                     .ffiles = 900,
                     .afiles = 800,
                     .invarsec = 0};
  bool want_pending = true;
  std::optional<pkt::FsStat> want;  // nullopt: the reply passes unchanged
};

Bytes fsstat_reply_frame(const Flow& fl, uint32_t xid, uint32_t status, bool attrs, const pkt::FsStat& st) {
  XdrWriter x;
  x.reply_header(xid);
  pkt::Fattr3 a{.type = 2, .mode = 0755, .nlink = 3, .size = 4096, .used = 4096, .fileid = 77};
  fsstat3res(x, status, attrs ? std::optional(a) : std::nullopt, st);
  return build_reply(fl, fl.udp ? x.bytes() : mark(x.bytes()));
}

// An FSSTAT call for a handle, then its reply: for a handle in a tree that rewrites, the
// sizes become the tree's (tbytes = limit, fbytes/abytes = min(server's, limit - used)),
// every other byte stays, checksums valid; otherwise the reply passes as sent.
Table fsstat(FsstatCase c) {
  return single(c.name, [c] {
    Bytes fh = fh_of(50, 30);
    Row r{.what = c.name};
    if (c.mapped) r.setup.handles.push_back({fh, 1});
    r.setup.df = {{1, nfsf_tree_df{.limit = c.limit, .used = c.used, .flags = c.flags, .pad = 0}}};
    const uint32_t xid = 0x0f5a0001;
    Bytes msg = call_msg(fh, {.xid = xid, .proc = 18});
    Bytes in = build(c.flow, c.flow.udp ? msg : mark(msg));
    auto key = xid_key_for_reply(in, xid);
    Step s1 = call("FSSTAT call", in);
    s1.then = Checks{.dirops = {{key, c.want_pending ? std::optional(nfsf_dirop{1, 18}) : std::nullopt}}};
    Bytes rin = fsstat_reply_frame(c.flow, xid, c.status, c.attrs, c.server);
    Step s2 = reply("FSSTAT reply", rin);
    if (c.want) s2.out = rewritten(fsstat_reply_frame(c.flow, xid, c.status, c.attrs, *c.want));
    s2.then = Checks{.counters = {{NFSF_C_FSSTAT_REWRITTEN, c.want ? 1u : 0u}, {NFSF_C_FSSTAT_CUT, 0}},
                     .dirops = {{key, std::nullopt, "pending entry not deleted by the reply"}}};
    r.steps = {s1, s2};
    return r;
  });
}

pkt::FsStat with_sizes(pkt::FsStat s, uint64_t t, uint64_t f, uint64_t a) {
  s.tbytes = t;
  s.fbytes = f;
  s.abytes = a;
  return s;
}

const pkt::FsStat kServer{.tbytes = 40ull << 30,
                          .fbytes = 10ull << 30,
                          .abytes = 9ull << 30,
                          .tfiles = 1000,
                          .ffiles = 900,
                          .afiles = 800,
                          .invarsec = 0};
constexpr uint64_t kLeft = (1 << 20) - (300 << 10);

INSTANTIATE_TEST_SUITE_P(
    Fsstat, BpfTable,
    ::testing::Values(
        fsstat({.name = "rewrite_tcp4", .flow = Flow{}, .want = with_sizes(kServer, 1 << 20, kLeft, kLeft)}),
        fsstat({.name = "rewrite_udp4", .flow = Flow{.udp = true}, .want = with_sizes(kServer, 1 << 20, kLeft, kLeft)}),
        fsstat({.name = "rewrite_tcp6", .flow = Flow{.v6 = true}, .want = with_sizes(kServer, 1 << 20, kLeft, kLeft)}),
        fsstat({.name = "rewrite_udp6",
                .flow = Flow{.v6 = true, .udp = true},
                .want = with_sizes(kServer, 1 << 20, kLeft, kLeft)}),
        fsstat({.name = "rewrite_no_attributes",
                .flow = Flow{},
                .attrs = false,
                .want = with_sizes(kServer, 1 << 20, kLeft, kLeft)}),
        // The disk has less free space than the tree's room: the disk's numbers stay.
        fsstat({.name = "disk_tighter_than_tree",
                .flow = Flow{},
                .server = with_sizes(kServer, 40ull << 30, 500 << 10, 100 << 10),
                .want = with_sizes(kServer, 1 << 20, 500 << 10, 100 << 10)}),
        fsstat({.name = "over_limit_shows_zero_free",
                .flow = Flow{},
                .used = 5 << 20,
                .want = with_sizes(kServer, 1 << 20, 0, 0)}),
        fsstat({.name = "at_limit_shows_zero_free",
                .flow = Flow{},
                .used = 1 << 20,
                .want = with_sizes(kServer, 1 << 20, 0, 0)}),
        fsstat({.name = "policy_pass_leaves_reply", .flow = Flow{}, .flags = 0, .want_pending = false}),
        fsstat({.name = "export_root_left_alone", .flow = Flow{}, .mapped = false, .want_pending = false}),
        fsstat({.name = "error_reply_left_alone", .flow = Flow{}, .attrs = true, .status = 70})),
    table_name);

// ---------------------------------------------------------------- TCP streams (one table each)

std::vector<Table> stream_tables() {
  std::vector<Table> t;

  // A dir-op reply cut by the end of the skb (in its handle) is carried: the handle is
  // mapped when the next skb completes it.
  t.push_back(single("DirOpReplyCutIsCarriedAndLearned", [] {
    Bytes dir = fh_of(41), obj = fh_of(91);
    Row r{.what = "CREATE reply cut in its handle", .setup = {.handles = {{dir, 1}}}};
    Bytes rec = mark(dirop_reply(9, 8, 0, true, obj));
    const size_t k = 4 + 28 + 4 + 4 + 10;  // header, status, follows, len, 10 bytes of the handle
    Step r1 = reply("the reply's first skb", build_reply(Flow{}, slice(rec, 0, k)));
    r1.then = Checks{.handles = {{obj, std::nullopt}}};
    r.steps = {call("CREATE call", build(Flow{}, mark(dirop_call(dir, 8, "f", 9))), any_out()), r1,
               reply("the rest", build_reply(Flow{}, slice(rec, k), kPsh | kAck, 5000 + uint32_t(k)))};
    r.checks = {.counters = {{NFSF_C_HANDLE_LEARNED, 1}, {NFSF_C_HANDLE_MISSED, 0}, {NFSF_C_HEAD_CARRIED, 1}},
                .handles = {{obj, 1}}};
    return r;
  }));

  // An FSSTAT reply cut by the skb end is carried: cut before its sizes, they are in the
  // skb that completes it and are rewritten there; cut inside them, the first part already
  // went out: the reply passes as the server sent it, counted in fsstat_cut.
  for (bool in_sizes : {false, true}) {
    t.push_back(single(in_sizes ? "FsstatReplyCutInSizesPasses" : "FsstatReplyCutBeforeSizesIsRewritten", [in_sizes] {
      Bytes fh = fh_of(52, 32);
      Row r{.what = "FSSTAT reply cut", .setup = {.handles = {{fh, 1}}}};
      r.setup.df = {{1, nfsf_tree_df{.limit = 1 << 20, .used = 300 << 10, .flags = NFSF_DF_REWRITE, .pad = 0}}};
      auto rec_of = [](const pkt::FsStat& st) {
        XdrWriter x;
        x.reply_header(21);
        fsstat3res(x, 0, pkt::Fattr3{.type = 2}, st);
        return mark(x.bytes());
      };
      Bytes rec = rec_of(kServer), want = rec_of(with_sizes(kServer, 1 << 20, kLeft, kLeft));
      const size_t sizes = 4 + 24 + 4 + 4 + 84;  // mark, reply header, status, follows, fattr3
      const size_t k = in_sizes ? sizes + 12 : sizes - 20;
      Bytes second = build_reply(Flow{}, slice(rec, k), kPsh | kAck, 5000 + uint32_t(k));
      Step r2 = reply("the rest", second);
      if (!in_sizes) r2.out = rewritten(build_reply(Flow{}, slice(want, k), kPsh | kAck, 5000 + uint32_t(k)));
      r.steps = {call("FSSTAT call", build(Flow{}, mark(call_msg(fh, {.xid = 21, .proc = 18}))), any_out()),
                 reply("the reply's first skb", build_reply(Flow{}, slice(rec, 0, k))), r2};
      r.checks = {.counters = {{NFSF_C_FSSTAT_REWRITTEN, in_sizes ? 0u : 1u},
                               {NFSF_C_FSSTAT_CUT, in_sizes ? 1u : 0u},
                               {NFSF_C_HEAD_CARRIED, 1}}};
      return r;
    }));
  }

  // The next segment lies inside a 100,000-byte record but its bytes look exactly like a
  // WRITE head to the over-quota tree: it must pass untouched.
  t.push_back(single("MidRecordSegmentIsNotParsed", [] {
    Bytes fh = fh_of(3);
    Flow fl;
    fl.seq = 100;
    Row r{.what = "WRITE-like bytes inside a record", .progs = {Prog::Tc, Prog::Xdp}, .setup = tree_of(fh, 2, true)};
    r.steps.push_back(call("SYN: record 1 at seq 101", build(fl, {}, kSyn), any_out()));
    // A WRITE to an unknown handle announcing a 100000-byte record; only its head here.
    Bytes head = mark(call_msg(fh_of(77), {.data_len = 200, .count = 100000}), true, 100000);
    fl.seq = 101;
    r.steps.push_back(call("the record's head", build(fl, head)));
    fl.seq = 101 + uint32_t(head.size());
    r.steps.push_back(call("a segment inside it", build(fl, mark(call_msg(fh)))));
    r.checks.counters = {{NFSF_C_WRITE_REFUSED_REWRITE, 0}, {NFSF_C_MID_RECORD, 1}, {NFSF_C_FLOW_NEW, 1}};
    return r;
  }));

  // A long reply nobody asked to stream (a READ reply) yields one event, its head, and its
  // later segments none. Found by bench/veth_bench.sh: an unset "stream until" seq (0) was
  // compared as lying ahead of every seq in the upper half of the 32-bit space, so on half of
  // all connections (random ISN) every segment of every long reply went to the ring buffer.
  t.push_back({"LongReplyStreamsOnlyItsHeadWhateverTheIsn", [] {
                 std::vector<Row> rows;
                 for (uint32_t isn : {0x10000000u, 0x90000000u, 0xfffff000u}) {
                   char what[64];
                   std::snprintf(what, sizeof what, "ISN %#x", isn);
                   Row r{.what = what};
                   r.steps.push_back(reply("SYN-ACK", build_reply(Flow{}, {}, kSyn | kAck, isn), any_out()));
                   Bytes head = mark(write_reply_msg(5, 0), true, 100000);
                   r.steps.push_back(reply("the head", build_reply(Flow{}, head, kPsh | kAck, isn + 1), any_out()));
                   uint32_t next = isn + 1 + uint32_t(head.size());
                   for (int i = 0; i < 3; i++, next += 1400)
                     r.steps.push_back(
                         reply("later segment", build_reply(Flow{}, Bytes(1400, 0x5a), kPsh | kAck, next), any_out()));
                   r.checks.counters = {{NFSF_C_RPC_REPLIES, 1}, {NFSF_C_MID_RECORD, 3}, {NFSF_C_EVENTS, 1}};
                   rows.push_back(r);
                 }
                 return rows;
               }});

  t.push_back(single("TwoWritesInOneSkbSecondOver", [] {
    Bytes fh_ok = fh_of(10), fh_over = fh_of(20, 40);
    Bytes r1 = mark(call_msg(fh_ok, {.xid = 1})), r2 = mark(call_msg(fh_over, {.xid = 2}));
    Bytes in = build(Flow{}, concat({r1, r2}));
    Row r{.what = "two WRITEs, the second to the over-quota tree",
          .progs = {Prog::Tc, Prog::Xdp},
          .setup = {.handles = {{fh_ok, 1}, {fh_over, 2}}, .over = {{1, false}, {2, true}}}};
    r.steps = {call("both in one skb", in, poisoned(fh_offset(in, layout_of(in).pay + r1.size() + 4), fh_over.size()))};
    r.checks.trees = {{.tree = 1, .writes = 1}, {.tree = 2, .refused_writes = 1}};
    return r;
  }));

  t.push_back(single("DropModeTwoWritesSecondOverDropsSkb", [] {
    Bytes fh_ok = fh_of(10), fh_over = fh_of(20);
    Row r{.what = "two WRITEs, the second over, drop mode",
          .progs = {Prog::TcDrop, Prog::XdpDrop},
          .setup = {.handles = {{fh_ok, 1}, {fh_over, 2}}, .over = {{1, false}, {2, true}}}};
    Step s =
        call("both in one skb", build(Flow{}, concat({mark(call_msg(fh_ok)), mark(call_msg(fh_over))})), any_out());
    s.verdict = Verdict::Drop;
    r.steps = {s};
    return r;
  }));

  // A following record moves next_mark on, then the original bytes are retransmitted: the
  // same verdict again, counted once.
  t.push_back(
      {"RetransmissionGetsSameVerdict", [] {
         Bytes fh = fh_of(4);
         Flow fl;
         fl.seq = 500;
         Bytes syn = build(fl, {}, kSyn);
         fl.seq = 501;
         Bytes in = build(fl, mark(call_msg(fh)));
         size_t at = fh_offset(in, layout_of(in).pay + 4);
         fl.seq = 501 + uint32_t(in.size() - layout_of(in).pay);
         Row rw{.what = "rewrite mode", .setup = tree_of(fh, 4, true)};
         Step again = call("the WRITE retransmitted", in, any_out());
         again.same_out_as = 1;
         rw.steps = {call("SYN", syn, any_out()), call("WRITE to the over-quota tree", in, poisoned(at, fh.size())),
                     call("a following GETATTR", build(fl, mark(call_msg(fh_of(50), {.proc = 1}))), any_out()), again};
         rw.checks = {.counters = {{NFSF_C_RETRANS_HEAD, 1}},
                      .trees = {{.tree = 4, .refused_writes = 1, .why = "a retransmission is not a new WRITE"}}};
         // Drop mode: the retransmission is dropped as well.
         Row dr{.what = "drop mode", .progs = {Prog::TcDrop}, .setup = tree_of(fh, 4, true)};
         Step drop = call("WRITE to the over-quota tree", in, any_out());
         drop.verdict = Verdict::Drop;
         Step drop2 = drop;
         drop2.what = "the WRITE retransmitted";
         dr.steps = {call("SYN", syn, any_out()), drop, drop2};
         dr.checks.counters = {{NFSF_C_RETRANS_HEAD, 1}};
         return std::vector<Row>{rw, dr};
       }});

  t.push_back(single("FlowOpenedBeforeAttachResyncs", [] {
    Bytes fh = fh_of(6);
    Flow fl;
    fl.seq = 90000;
    Bytes junk(700, 0xab);  // WRITE data of a record whose head we never saw
    Row r{.what = "a flow seen first mid-record", .setup = tree_of(fh, 6, true)};
    Step s1 = call("WRITE data", build(fl, junk));
    s1.then = Checks{.counters = {{NFSF_C_MID_RECORD, 1}}};
    fl.seq += uint32_t(junk.size());
    Bytes first = mark(call_msg(fh_of(1), {.proc = 1}));
    Bytes s2 = build(fl, concat({first, mark(call_msg(fh))}));
    r.steps = {s1,
               call("GETATTR + WRITE", s2, poisoned(fh_offset(s2, layout_of(s2).pay + first.size() + 4), fh.size()))};
    r.checks.counters = {{NFSF_C_RESYNC, 1}};
    return r;
  }));

  // A WRITE head to an over-quota tree cut by the end of an skb at every byte: the skb that
  // completes it carries the refusal (the handle if it lies wholly there, else the offset,
  // else the count: all 0xff), except when the cut falls after the count began, where the
  // WRITE passes and is counted; a head whole in the first skb is refused there. Every cut
  // inside the head is carried; every WRITE is counted once.
  t.push_back({"WriteHeadCutAtEveryByteIsRefusedWhereItCanBe", [] {
                 Bytes fh = fh_of(8);
                 Bytes rec = mark(call_msg(fh, {.data_len = 200}));
                 const size_t fh_at = fh_offset(rec, 4), off_at = fh_at + fh.size(), count_at = off_at + 8,
                              head_end = count_at + 12;
                 std::vector<Row> rows;
                 for (size_t k = 1; k <= head_end + 2; k++) {
                   Row r{.what = "cut after byte " + std::to_string(k), .setup = tree_of(fh, 8, true)};
                   Flow fl;
                   fl.sport = uint16_t(1000 + k);
                   fl.seq = 0xfffffff0u;  // the cut also crosses the sequence-number wrap for small k
                   Bytes syn = build(fl, {}, kSyn);
                   fl.seq += 1;
                   Bytes s1 = build(fl, slice(rec, 0, k));
                   fl.seq += uint32_t(k);
                   Bytes s2 = build(fl, slice(rec, k));
                   size_t pay1 = layout_of(s1).pay, pay2 = layout_of(s2).pay;
                   Step a = call("first part", s1), b = call("second part", s2);
                   bool counted_split = false;
                   if (k >= head_end) {  // the whole head in s1: refused there
                     a.out = poisoned(pay1 + fh_at, fh.size());
                   } else if (k <= count_at) {
                     size_t at = k <= fh_at ? fh_at : k <= off_at ? off_at : count_at;
                     size_t n = k <= fh_at ? fh.size() : k <= off_at ? 8 : 4;
                     b.out = poisoned(pay2 + at - k, n);
                   } else {  // the cut fell after the count began: nothing left to refuse with
                     counted_split = true;
                   }
                   r.steps = {call("SYN", syn, any_out()), a, b};
                   r.checks.counters = {{NFSF_C_WRITE_REFUSED_REWRITE, k > count_at && k < head_end ? 0u : 1u},
                                        {NFSF_C_HEAD_CARRIED, k < head_end ? 1u : 0u},
                                        {NFSF_C_WRITE_CALLS, 1}};
                   if (counted_split) r.checks.counters.push_back({NFSF_C_ERR_HEAD_SPLIT, 1});
                   rows.push_back(r);
                 }
                 return rows;
               }});

  // TCP resends the original bytes of a lost segment: a retransmitted continuation is
  // refused again (and counted once); in drop mode the continuation is what is dropped.
  t.push_back({"CutWriteHeadRetransmittedOrDropped", [] {
                 Bytes fh = fh_of(9);
                 Bytes rec = mark(call_msg(fh));
                 const size_t k = fh_offset(rec, 4) + 3;  // inside the handle: the offset carries it
                 Flow fl;
                 fl.seq = 100;
                 Bytes syn = build(fl, {}, kSyn);
                 fl.seq = 101;
                 Bytes s1 = build(fl, slice(rec, 0, k));
                 fl.seq = 101 + uint32_t(k);
                 Bytes s2 = build(fl, slice(rec, k));
                 std::vector<Row> rows;
                 for (nfsf_action a : {NFSF_ACTION_REWRITE, NFSF_ACTION_DROP}) {
                   bool drop = a == NFSF_ACTION_DROP;
                   Row r{.what = drop ? "drop mode" : "rewrite mode",
                         .progs = {drop ? Prog::TcDrop : Prog::Tc},
                         .setup = tree_of(fh, 9, true)};
                   r.steps = {call("SYN", syn, any_out()), call("head start", s1, any_out())};
                   for (int round = 0; round < 2; round++) {
                     Step s = call(round ? "continuation retransmitted" : "continuation", s2,
                                   drop ? any_out() : poisoned(layout_of(s2).pay + fh.size() - 3, 8));
                     if (drop) s.verdict = Verdict::Drop;
                     r.steps.push_back(s);
                   }
                   r.checks.counters = {{drop ? NFSF_C_WRITE_REFUSED_DROP : NFSF_C_WRITE_REFUSED_REWRITE, 1},
                                        {NFSF_C_HEAD_CARRIED, 1}};
                   rows.push_back(r);
                 }
                 return rows;
               }});

  // The reply to a poisoned WRITE cut at every byte: its status becomes NFS3ERR_DQUOT in
  // whichever skb holds the status word whole; a status word cut in two is counted.
  t.push_back({"PoisonedReplyCutAtEveryByteIsRewrittenWhereItCanBe", [] {
                 Bytes fh = fh_of(10);
                 const CallOpts co{.xid = 4242};
                 Bytes rec = mark(write_reply_msg(co.xid, 10001));  // NFS3ERR_BADHANDLE, as ganesha answers
                 const size_t st_at = 4 + 24;
                 std::vector<Row> rows;
                 for (size_t k = 1; k < rec.size(); k++) {
                   Row r{.what = "cut after byte " + std::to_string(k), .setup = tree_of(fh, 10, true)};
                   Flow fl;
                   fl.sport = uint16_t(3000 + k);
                   uint32_t isn = 0x7ffffff0u;
                   Bytes s1 = build_reply(fl, slice(rec, 0, k), kPsh | kAck, isn + 1);
                   Bytes s2 = build_reply(fl, slice(rec, k), kPsh | kAck, isn + 1 + uint32_t(k));
                   Bytes want1 = s1, want2 = s2;
                   bool status_cut = false;
                   if (k <= st_at)
                     set32(want2, layout_of(s2).pay + st_at - k, 69);
                   else if (k >= st_at + 4)
                     set32(want1, layout_of(s1).pay + st_at, 69);
                   else
                     status_cut = true;
                   Step c = call("the WRITE (poisons the XID)", build(fl, mark(call_msg(fh, co))), any_out());
                   r.steps = {c, reply("SYN-ACK", build_reply(fl, {}, kSyn | kAck, isn), any_out()),
                              reply("first part", s1, rewritten(want1)), reply("second part", s2, rewritten(want2))};
                   r.checks.counters = {{NFSF_C_REPLY_REWRITTEN, status_cut ? 0u : 1u}};
                   if (status_cut) r.checks.counters.push_back({NFSF_C_ERR_HEAD_SPLIT, 1});
                   rows.push_back(r);
                 }
                 return rows;
               }});

  // A cut head reaches the agent as one event holding the whole head (WRITE: up to the data
  // length word, never data), not as two pieces.
  t.push_back(single("CutHeadReachesTheAgentAsOneEvent", [] {
    Bytes fh = fh_of(11);
    Bytes rec = mark(call_msg(fh, {.data_len = 300}));
    const size_t head_end = fh_offset(rec, 4) + fh.size() + 20;
    Flow fl;
    fl.seq = 7;
    Row r{.what = "WRITE head cut after 50 bytes", .setup = tree_of(fh, 11, false)};
    r.steps.push_back(call("SYN", build(fl, {}, kSyn), any_out()));
    fl.seq = 8;
    r.steps.push_back(call("first part", build(fl, slice(rec, 0, 50)), any_out()));
    fl.seq = 58;
    r.steps.push_back(call("second part", build(fl, slice(rec, 50)), any_out()));
    r.events = {{.data = slice(rec, 0, head_end)}};
    r.checks.counters = {{NFSF_C_WRITE_ALLOWED, 1}};
    return r;
  }));

  // The kernel's room bound (tree_room): with full_at = 100,000 bytes of WRITEs, a tree not
  // flagged over takes WRITEs while its write_bytes stays within it and refuses the one that
  // would pass it (counted room_refused, its bytes not counted as written); a retransmission
  // of a refused head is refused again even after the room grew; 0 means no bound.
  t.push_back(single("TreeRoomStopsATreeAtItsLimitBeforeTheAgentDoes", [] {
    Bytes fh = fh_of(15);
    auto write_of = [&](uint32_t xid, uint32_t count, uint16_t sport) {
      return build(Flow{.sport = sport}, mark(call_msg(fh, {.xid = xid, .count = count})));
    };
    Bytes w1 = write_of(1, 60000, 901), w2 = write_of(2, 40000, 902), w3 = write_of(3, 1, 903);
    Bytes w4 = write_of(4, 1000, 904), w5 = write_of(5, 1000000, 905);
    Out w3_refused = poisoned(fh_offset(w3, layout_of(w3).pay + 4), fh.size());
    Row r{.what = "room 100,000 bytes", .progs = {Prog::Tc, Prog::Xdp}, .setup = tree_of(fh, 15, false)};
    r.setup.room = {{15, 100000}};
    Step s3 = call("100,001 > 100,000", w3, w3_refused);
    s3.then = Checks{.counters = {{NFSF_C_ROOM_REFUSED, 1}, {NFSF_C_WRITE_REFUSED_REWRITE, 1}},
                     .trees = {{.tree = 15, .write_bytes = 100000, .refused_bytes = 1}}};
    // the agent finds room again (a delete): a retransmission of the refused head is still
    // refused, a new WRITE passes
    Step s3again = call("the refused head retransmitted after the room grew", w3, w3_refused);
    s3again.before = Setup{.room = {{15, 200000}}};
    Step s5 = call("no bound", w5);
    s5.before = Setup{.room = {{15, 0}}};
    r.steps = {call("60,000 <= 100,000", w1), call("100,000 <= 100,000", w2), s3, s3again, call("a new WRITE", w4), s5};
    r.checks.counters = {{NFSF_C_WRITE_ALLOWED, 4}};
    return r;
  }));

  t.push_back(single("ReplyAcceptedByServerIsLeftAlone", [] {
    Bytes fh = fh_of(12);
    Row r{.what = "the server said NFS3_OK", .setup = tree_of(fh, 12, true)};
    Step ok = reply("NFS3_OK reply", build_reply(Flow{}, mark(write_reply_msg(77, 0))));
    ok.then = Checks{.counters = {{NFSF_C_REPLY_ACCEPTED, 1}}};
    // A reply to an XID never poisoned is not touched either.
    r.steps = {call("WRITE to the over-quota tree", build(Flow{}, mark(call_msg(fh, {.xid = 77}))), any_out()), ok,
               reply("a reply to another XID", build_reply(Flow{}, mark(write_reply_msg(78, 70))))};
    r.checks.counters = {{NFSF_C_REPLY_REWRITTEN, 0}};
    return r;
  }));

  t.push_back(single("EventsCarryHeadsNeverWriteData", [] {
    Bytes fh = fh_of(13);
    Bytes rec = mark(call_msg(fh, {.data_len = 1000}));
    size_t head = fh_offset(rec, 4) + fh.size() + 20;  // fh + offset + count + stable + len
    Row r{.what = "a WRITE with 1000 data bytes", .setup = tree_of(fh, 13, false)};
    r.steps = {call("the WRITE", build(Flow{}, rec), any_out())};
    r.events = {{.data = slice(rec, 0, head)}};
    return r;
  }));

  // The agent learns where connections start and end from the events: the first event after
  // a SYN says NFSF_EVF_NEW_CONN (later ones do not), a FIN or RST is an NFSF_EV_FLOW_END.
  t.push_back(single("EventsMarkConnectionStartAndEnd", [] {
    Flow fl;
    fl.seq = 0x90000000u;
    Row r{.what = "SYN, two calls, FIN, RST"};
    r.steps.push_back(call("SYN", build(fl, {}, kSyn), any_out()));
    Bytes r1 = mark(call_msg(fh_of(1), {.xid = 1})), r2 = mark(call_msg(fh_of(2), {.xid = 2}));
    fl.seq += 1;
    r.steps.push_back(call("first call", build(fl, r1), any_out()));
    fl.seq += uint32_t(r1.size());
    r.steps.push_back(call("second call", build(fl, r2), any_out()));
    fl.seq += uint32_t(r2.size());
    r.steps.push_back(call("FIN+ACK", build(fl, {}, kFin | kAck), any_out()));
    r.steps.push_back(call("RST", build(fl, {}, kRst), any_out()));
    const uint32_t eg = NFSF_EVF_EGRESS, head = NFSF_EVF_REC_HEAD | NFSF_EVF_TRUNC;
    r.events = {{.type = NFSF_EV_STREAM, .flags = eg | head | NFSF_EVF_NEW_CONN},
                {.type = NFSF_EV_STREAM, .flags = eg | head},
                {.type = NFSF_EV_FLOW_END, .flags = eg},
                {.type = NFSF_EV_FLOW_END, .flags = eg | NFSF_EVF_RST}};
    return r;
  }));

  // TC test_run builds a linear skb (PAGE_SIZE bound); big "GSO" skbs run through XDP frags.
  t.push_back({"GsoSizedSkbTailOfRecordThenWriteHead", [] {
                 Bytes fh = fh_of(14);
                 Bytes r1 = mark(call_msg(fh_of(99), {.data_len = 60000}));
                 Bytes tail = slice(r1, 1000);  // the record's head went in an earlier skb
                 Bytes r2 = mark(call_msg(fh));
                 Flow fl;
                 fl.seq = 0;  // SYN at seq 0 -> first record at 1, whose head (1000 bytes) went before
                 Bytes syn = build(fl, {}, kSyn);
                 fl.seq = 1;
                 Bytes h = build(fl, slice(r1, 0, 1000));
                 fl.seq = 1001;
                 Bytes in = build(fl, concat({tail, r2}));
                 size_t w2 = layout_of(in).pay + tail.size() + 4;
                 Row x{.what = "XDP multi-buffer frame", .progs = {Prog::Xdp}, .setup = tree_of(fh, 14, true)};
                 x.steps = {call("SYN", syn, any_out()), call("the first record's head", h, any_out()),
                            call("tail of record 1 + WRITE head", in, poisoned(fh_offset(in, w2), fh.size()))};
                 x.checks.counters = {{NFSF_C_WRITE_REFUSED_REWRITE, 1}};
                 // The same through TC when the kernel's test_run takes non-linear skbs.
                 Row t{.what = "TC non-linear skb", .setup = tree_of(fh, 14, true)};
                 Step s = call("tail of record 1 + WRITE head", in, any_out());
                 s.verdict = Verdict::Any;
                 s.skip_if_einval = true;  // linear skbs up to a page only: covered by XDP above
                 t.steps = {s};
                 return std::vector<Row>{x, t};
               }});

  t.push_back(
      {"XdpDropAndRewrite", [] {
         Bytes fh = fh_of(15, 28);
         std::vector<Row> rows;
         for (auto [action, udp] : {std::pair{NFSF_ACTION_DROP, false}, std::pair{NFSF_ACTION_DROP, true},
                                    std::pair{NFSF_ACTION_REWRITE, false}, std::pair{NFSF_ACTION_REWRITE, true}}) {
           bool drop = action == NFSF_ACTION_DROP;
           Row r{.what = std::string(drop ? "drop" : "rewrite") + (udp ? " udp" : " tcp"),
                 .progs = {drop ? Prog::XdpDrop : Prog::Xdp},
                 .setup = tree_of(fh, 15, true)};
           Flow fl;
           fl.udp = udp;
           fl.sport = udp ? 900 : 901;
           Bytes msg = call_msg(fh);
           Bytes in = build(fl, udp ? msg : mark(msg));
           Step s = call("WRITE to the over-quota tree", in,
                         drop ? any_out() : poisoned(fh_offset(in, layout_of(in).pay + (udp ? 0 : 4)), fh.size()));
           if (drop) s.verdict = Verdict::Drop;
           Bytes under = build(fl, udp ? call_msg(fh_of(16)) : mark(call_msg(fh_of(16))));
           r.steps = {s, call("WRITE to an unknown handle", under, any_out())};
           rows.push_back(r);
         }
         return rows;
       }});

  // Odd segment start: the handle lands at an odd offset from the TCP header.
  t.push_back(single("OddOffsetChecksum", [] {
    Bytes fh = fh_of(17, 33);
    Flow fl;
    fl.seq = 1;
    Bytes syn = build(fl, {}, kSyn);
    Bytes r0 = mark(Bytes(996, 0), true, 997);  // a record of 997 bytes + mark = 1001 bytes
    r0.push_back(0);
    Bytes r1 = mark(call_msg(fh));
    fl.seq = 2;
    Bytes in = build(fl, concat({r0, r1}));
    size_t at = fh_offset(in, layout_of(in).pay + r0.size() + 4);
    Row r{.what = "handle at an odd offset", .progs = {Prog::Tc, Prog::Xdp}, .setup = tree_of(fh, 17, true)};
    r.facts = {{"the handle lies at an odd offset from the TCP header", (at - layout_of(in).l4) % 2 == 1}};
    r.steps = {call("SYN", syn, any_out()), call("a 997-byte record + WRITE", in, poisoned(at, fh.size()))};
    return r;
  }));

  return t;
}

INSTANTIATE_TEST_SUITE_P(Stream, BpfTable, ::testing::ValuesIn(stream_tables()), table_name);

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

// A real WRITE is poisoned and the captured server's NFS3_OK reply left alone, counted.
Table capture(const char* name, const char* file, int write_frame, int reply_frame) {
  return single(name, [=] {
    std::string path = shared_pcaps() + "/" + file;
    Row r{.what = std::string(file) + " frame " + std::to_string(write_frame)};
    if (!std::filesystem::exists(path)) {
      r.skip = path + " absent (../shared not mounted)";
      return r;
    }
    Bytes in = frame_from_pcap(path, write_frame);
    r.facts = {{"the capture holds the WRITE frame", !in.empty()}};
    if (in.empty()) return r;
    fix_checksums(in);  // captured on the sender: offloaded checksums are not final
    Layout L = layout_of(in);
    size_t at = fh_offset(in, L.pay + (L.udp ? 0 : 4));
    Bytes fh = slice(in, at, at + get32(in, at - 4));
    r.setup = tree_of(fh, 21, true);
    Step w = call("the captured WRITE", in, poisoned(at, fh.size()));
    w.then = Checks{.counters = {{NFSF_C_RESYNC, L.udp ? 0u : 1u}}};
    r.steps = {w};
    if (reply_frame) {
      Bytes rin = frame_from_pcap(path, reply_frame);
      fix_checksums(rin);
      r.steps.push_back(reply("the captured NFS3_OK reply", rin));
      r.checks.counters = {{NFSF_C_REPLY_ACCEPTED, 1}};
    }
    return r;
  });
}

INSTANTIATE_TEST_SUITE_P(Pcaps, BpfTable,
                         ::testing::Values(capture("tcpdump_write_verf_cookie", "tcpdump/nfs-write-verf-cookie.pcapng",
                                                   1, 2),
                                           capture("zeek_nfs_write", "zeek/nfs_write.pcap", 133, 134)),
                         table_name);

}  // namespace
}  // namespace nfsfence::bpftest
