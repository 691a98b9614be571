// Same counters on both paths for the same packet (issue 9). A WRITE head arrives whole in
// one skb (the packet path: head_call with carried = 0, nfsf_heads.h) or cut by the skb end
// and completed from the next skb (the carry path: nfsf_split.h, then head_call with
// carried = 1). A table of malformed WRITE
// heads (and two well-formed controls), each sent whole and cut after every byte, on TC
// egress and XDP: the counter deltas of every cut must equal those of the whole head.
//
// The one counter allowed to differ: head_carried, which counts the carry mechanism itself
// (a cut head completed from the next skb), not anything about the head; a cut may count it
// once, the whole head never. Everything else (rpc_calls, write_calls, every err_* reason,
// err_head_split included, events, mid_record, resync...) must be equal: the carry path must
// not turn a reason into err_head_split, nor leave out the calls the skb path counts.
//
// Each row is SYN, then the record (or its first k bytes), then the rest of it followed by
// a GETATTR call (the stream must stay in sync after the bad head on both paths). The
// handles are unknown: no WRITE is refused, every frame must pass unchanged.
#include <map>

#include "bpf/bpf_table.h"

namespace nfsfence::bpftest {
namespace {

using namespace pkt;

struct Head {
  const char* name;
  const char* what;
  std::function<Bytes()> record;  // the WRITE record, mark included
  Deltas whole;                   // what the whole head counts, at least
};

// The WRITE message the heads are made from (offsets without the mark): xid 0, msg type 4,
// rpcvers 8, prog 12, vers 16, proc 20, cred flavor 24, cred length 28, cred body 32..56,
// verf 56..64, fh length 64, fh 68..100, offset 100, count 108, stable 112, data length
// 116, data 120..184.
constexpr size_t kMsgType = 4, kRpcVers = 8, kCredLen = 28, kVerfLen = 60, kFhLen = 64, kOffset = 100, kCount = 108,
                 kDataLen = 116;
Bytes write_msg() {
  CallOpts o;
  o.xid = 0x5eed;
  o.data_len = 64;
  return call_msg(fh_of(0x31), o);  // a handle no tree holds
}
// The message with one word replaced.
std::function<Bytes()> patched(size_t at, uint32_t v) {
  return [=] {
    Bytes m = write_msg();
    set32(m, at, v);
    return mark(m);
  };
}
// The record ends after `len` bytes of the message (the mark says so).
std::function<Bytes()> ends_at(size_t len) {
  return [=] { return mark(slice(write_msg(), 0, len)); };
}

const Head kHeads[] = {
    {"well_formed",
     "a valid WRITE (control)",
     [] { return mark(write_msg()); },
     {{NFSF_C_WRITE_CALLS, 1}, {NFSF_C_WRITE_UNKNOWN_FH, 1}}},
    {"count_exceeds_data",
     "count 100000 with 64 data bytes (not a parse error: judged like a valid one)",
     patched(kCount, 100000),
     {{NFSF_C_WRITE_CALLS, 1}, {NFSF_C_WRITE_UNKNOWN_FH, 1}}},
    {"bad_rpc_version", "rpcvers 3", patched(kRpcVers, 3), {{NFSF_C_ERR_BAD_RPC, 1}}},
    {"reply_not_call", "msg type REPLY on the call side", patched(kMsgType, 1), {{NFSF_C_ERR_BAD_RPC, 1}}},
    {"cred_too_long", "credential length 401 (> 400)", patched(kCredLen, 401), {{NFSF_C_ERR_BAD_RPC, 1}}},
    {"verf_too_long", "verifier length 401 (> 400)", patched(kVerfLen, 401), {{NFSF_C_ERR_BAD_RPC, 1}}},
    {"fh_len_zero", "file handle length 0", patched(kFhLen, 0), {{NFSF_C_ERR_FH_LEN, 1}}},
    {"fh_len_oversized", "file handle length 65 (> NFSF_FH_MAX)", patched(kFhLen, 65), {{NFSF_C_ERR_FH_LEN, 1}}},
    {"record_ends_in_cred", "the record ends inside the credential", ends_at(40), {{NFSF_C_ERR_SHORT, 1}}},
    {"record_ends_in_fh",
     "the record ends inside the file handle (truncated handle)",
     ends_at(80),
     {{NFSF_C_ERR_SHORT, 1}}},
    {"record_ends_in_offset", "the record ends inside the offset", ends_at(kOffset + 4), {{NFSF_C_ERR_SHORT, 1}}},
    {"record_ends_in_data_len",
     "the record ends inside the data length word",
     ends_at(kDataLen + 2),
     {{NFSF_C_ERR_SHORT, 1}}},
};

struct Param {
  Head head;
  Prog prog;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.head.name << " on " << prog_name(p.prog); }

class SplitParity : public BpfRunner, public ::testing::WithParamInterface<Param> {};

// "3..17, 20, 40..41"
std::string ranges(const std::vector<size_t>& ks) {
  std::string s;
  for (size_t i = 0; i < ks.size();) {
    size_t j = i;
    while (j + 1 < ks.size() && ks[j + 1] == ks[j] + 1) j++;
    s += (s.empty() ? "" : ", ") + std::to_string(ks[i]) + (j > i ? ".." + std::to_string(ks[j]) : "");
    i = j + 1;
  }
  return s;
}

TEST_P(SplitParity, CutHeadCountsWhatTheWholeHeadCounts) {
  const Head& h = GetParam().head;
  const Prog p = GetParam().prog;
  const Bytes rec = h.record();
  CallOpts g;
  g.xid = 0x77;
  g.proc = 1;
  const Bytes getattr = mark(call_msg(fh_of(0x41), g));
  uint16_t port = 20000;
  // k = 0: the record whole in the first skb, the GETATTR in the second.
  auto row_for = [&](size_t k) {
    Flow fl;
    fl.sport = port++;
    fl.seq = 0x7ffffff0u;
    Row r{.what = std::string(h.name) + (k ? ", cut after byte " + std::to_string(k) : ", whole"), .progs = {p}};
    Bytes syn = build(fl, {}, kSyn);
    fl.seq += 1;
    Bytes s1 = build(fl, k ? slice(rec, 0, k) : rec);
    fl.seq += uint32_t(k ? k : rec.size());
    Bytes s2 = build(fl, k ? concat({slice(rec, k), getattr}) : getattr);
    r.steps = {call("SYN", syn, any_out()), call("first skb", s1), call("second skb", s2)};
    return r;
  };

  bpf::Counters whole{};
  run_row(row_for(0), p, &whole);
  if (HasFatalFailure() || IsSkipped()) return;
  for (auto [c, v] : h.whole) EXPECT_EQ(whole[c], v) << "the whole head (" << h.what << "): " << bpf::counter_name(c);
  EXPECT_EQ(whole[NFSF_C_HEAD_CARRIED], 0u) << "the whole head was carried";
  // the stream stayed in sync: the GETATTR after the head was parsed
  EXPECT_GE(whole[NFSF_C_RPC_CALLS], 1u) << "the GETATTR after the head was not counted";
  EXPECT_EQ(whole[NFSF_C_MID_RECORD] + whole[NFSF_C_ERR_BAD_RECORD] + whole[NFSF_C_RESYNC], 0u) << "lost sync";

  // Every cut; cuts with the same difference from the whole head are reported together.
  std::map<std::string, std::vector<size_t>> diffs;
  std::vector<std::string> order;
  for (size_t k = 1; k < rec.size(); k++) {
    bpf::Counters cut{};
    run_row(row_for(k), p, &cut);
    if (HasFatalFailure()) return;
    std::string d;
    for (int i = 0; i < NFSF_C_MAX; i++) {
      auto c = nfsf_counter(i);
      bool ok = c == NFSF_C_HEAD_CARRIED ? cut[i] <= 1 : cut[i] == whole[i];
      if (!ok)
        d += std::string(d.empty() ? "" : ", ") + bpf::counter_name(c) + " " + std::to_string(cut[i]) + " (whole " +
             std::to_string(whole[i]) + ")";
    }
    if (d.empty()) continue;
    if (!diffs.count(d)) order.push_back(d);
    diffs[d].push_back(k);
  }
  for (const std::string& d : order)
    ADD_FAILURE() << h.name << " (" << h.what << ") on " << prog_name(p) << ", record of " << rec.size()
                  << " bytes cut after byte " << ranges(diffs[d]) << ": " << d;
}

std::vector<Param> params() {
  std::vector<Param> v;
  for (const Head& h : kHeads)
    for (Prog p : {Prog::Tc, Prog::Xdp}) v.push_back({h, p});
  return v;
}

INSTANTIATE_TEST_SUITE_P(MalformedWriteHead, SplitParity, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return std::string(i.param.head.name) + (i.param.prog == Prog::Tc ? "_tc" : "_xdp");
                         });

}  // namespace
}  // namespace nfsfence::bpftest
