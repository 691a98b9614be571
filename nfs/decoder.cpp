#include "nfs/decoder.h"

#include <deque>
#include <unordered_map>

namespace nfsfence {
namespace {

// Calls waiting for (or recently matched to) a reply. Replies are matched by XID within
// the reversed flow. Entries are kept after the first reply so that a retransmitted reply
// (UDP) still finds its call; the table is bounded and evicts the oldest first.
struct PendingKey {
  FlowKey flow;  // call direction
  uint32_t xid;
  bool operator==(const PendingKey&) const = default;
};
struct PendingKeyHash {
  size_t operator()(const PendingKey& k) const noexcept { return FlowKeyHash{}(k.flow) * 31 + k.xid; }
};
struct PendingCall {
  uint32_t prog, vers, proc;
  Timestamp ts;
  std::shared_ptr<const NfsFields> fields;
  bool answered = false;
  uint64_t seqno;  // insertion number, to detect stale FIFO entries
};

constexpr size_t kMaxPending = 32768;
constexpr uint64_t kMaxWholeMessage = 4u << 20;

const char* proc_name_of(uint32_t prog, uint32_t vers, uint32_t proc) {
  if (prog == kProgNfs && vers == 3) return nfs3_proc_name(proc);
  if (prog == kProgMount && vers == 3) return mount3_proc_name(proc);
  return nullptr;
}

bool decodable(uint32_t prog, uint32_t vers) {
  return (prog == kProgNfs && vers == 3) || (prog == kProgMount && vers == 3);
}

}  // namespace

struct Decoder::Impl {
  Sink sink;
  NetParser net;
  DecodeStats stats;
  std::unordered_map<FlowKey, std::unique_ptr<RecordAssembler>, FlowKeyHash> tcp;
  std::unordered_map<PendingKey, PendingCall, PendingKeyHash> pending;
  std::deque<std::pair<PendingKey, uint64_t>> pending_order;
  uint64_t pending_seq = 0;
  RecordStats finished_records{};  // stats of flows already closed
  std::pair<const FlowKey, std::unique_ptr<RecordAssembler>>* last_flow = nullptr;

  explicit Impl(Sink s) : sink(std::move(s)), net([this](const L4Packet& p) { on_l4(p); }) {}

  const PendingCall* find_call(const FlowKey& reply_flow, uint32_t xid) {
    auto it = pending.find(PendingKey{reply_flow.reversed(), xid});
    return it == pending.end() ? nullptr : &it->second;
  }

  // How much of a TCP record the decoder needs: the whole of metadata messages, only the
  // head of WRITE calls and READ replies.
  size_t prefix_for(const FlowKey& flow, ByteView head, uint64_t record_len) {
    RpcHeader h;
    if (parse_rpc_header(head, h) != RpcParse::Ok) return std::min<uint64_t>(record_len, RecordAssembler::kPeek);
    if (h.type == MsgType::Call)
      return needed_prefix(h.prog, h.vers, h.proc, true, h.body_offset, std::min(record_len, kMaxWholeMessage));
    const PendingCall* c = find_call(flow, h.xid);
    if (!c) return std::min<uint64_t>(record_len, 4096);  // unmatched: not decoded beyond the header
    return needed_prefix(c->prog, c->vers, c->proc, false, h.body_offset, std::min(record_len, kMaxWholeMessage));
  }

  void on_l4(const L4Packet& p) {
    if (p.flow.transport == Transport::Udp) {
      message(p.flow, p.first_frame, p.ts, p.payload, p.wire_payload_len);
      return;
    }
    // Consecutive segments nearly always belong to the same flow: skip the hash lookup.
    if (last_flow && last_flow->first == p.flow) {
      last_flow->second->segment(p.seq, p.payload, p.wire_payload_len, (p.tcp_flags & 0x02) != 0, p.frame, p.ts);
      if (!(p.tcp_flags & 0x05)) return;
    }
    auto it = tcp.find(p.flow);
    if (last_flow && last_flow->first == p.flow) {  // FIN/RST on the cached flow: close it below
      last_flow = nullptr;
      it->second->finish();
      add(finished_records, it->second->stats());
      tcp.erase(it);
      return;
    }
    if (it == tcp.end()) {
      if (p.payload.empty() && !(p.tcp_flags & 0x02)) return;  // bare ACK of an unknown flow
      FlowKey flow = p.flow;
      auto ra = std::make_unique<RecordAssembler>(
          [this, flow](ByteView head, uint64_t len) { return prefix_for(flow, head, len); },
          [this, flow](const RecordHead& r) { message(flow, r.frame, r.ts, r.data, r.record_len); });
      it = tcp.emplace(p.flow, std::move(ra)).first;
    }
    it->second->segment(p.seq, p.payload, p.wire_payload_len, (p.tcp_flags & 0x02) != 0, p.frame, p.ts);
    last_flow = &*it;
    if (p.tcp_flags & 0x05) {  // FIN or RST: the flow is over
      last_flow = nullptr;
      it->second->finish();
      add(finished_records, it->second->stats());
      tcp.erase(it);
    }
  }

  static void add(RecordStats& a, const RecordStats& b) {
    a.segments += b.segments;
    a.records += b.records;
    a.retransmitted += b.retransmitted;
    a.out_of_order += b.out_of_order;
    a.gaps += b.gaps;
    a.resyncs += b.resyncs;
    a.bad_record_marks += b.bad_record_marks;
    a.truncated_records += b.truncated_records;
    a.overlapping += b.overlapping;
  }

  void remember_call(const FlowKey& flow, uint32_t xid, const RpcMessage& m) {
    PendingKey key{flow, xid};
    auto [it, inserted] = pending.try_emplace(key);
    if (!inserted) stats.duplicate_calls++;
    it->second = PendingCall{m.prog, m.vers, *m.proc, m.ts, std::make_shared<NfsFields>(m.fields), false, ++pending_seq};
    pending_order.emplace_back(key, pending_seq);
    while (pending.size() > kMaxPending && !pending_order.empty()) {
      auto [k, seq] = pending_order.front();
      pending_order.pop_front();
      auto old = pending.find(k);
      if (old != pending.end() && old->second.seqno == seq) {
        if (!old->second.answered) stats.pending_evicted++;
        pending.erase(old);
      }
    }
    // Stale order entries (replaced calls) are dropped lazily; keep the deque bounded too.
    if (pending_order.size() > 2 * kMaxPending) {
      std::deque<std::pair<PendingKey, uint64_t>> fresh;
      for (auto& e : pending_order) {
        auto f = pending.find(e.first);
        if (f != pending.end() && f->second.seqno == e.second) fresh.push_back(e);
      }
      pending_order.swap(fresh);
    }
  }

  void message(const FlowKey& flow, uint64_t frame, Timestamp ts, ByteView data, uint64_t msg_len) {
    RpcHeader h;
    RpcParse pr = parse_rpc_header(data, h);
    if (pr == RpcParse::Malformed) {
      stats.malformed_rpc++;
      return;
    }
    if (pr == RpcParse::Truncated) {
      stats.truncated_rpc++;
      return;
    }
    RpcMessage m;
    m.frame = frame;
    m.ts = ts;
    m.flow = flow;
    m.xid = h.xid;
    m.type = h.type;
    m.msg_len = msg_len;
    ByteView body = data.size() > h.body_offset ? data.subspan(h.body_offset) : ByteView{};
    stats.rpc_messages++;
    if (h.type == MsgType::Call) {
      stats.calls++;
      m.prog = h.prog;
      m.vers = h.vers;
      m.proc = h.proc;
      m.proc_name = proc_name_of(h.prog, h.vers, h.proc);
      if (decodable(h.prog, h.vers)) {
        m.decode = decode_call(h.prog, h.vers, h.proc, body, m.fields);
        count_decode(m.decode);
      } else {
        other_program(h.prog, h.vers);
      }
      remember_call(flow, h.xid, m);
      sink(m);
      return;
    }
    stats.replies++;
    m.reply_stat = h.reply_stat;
    m.accept_stat = h.accept_stat;
    auto it = pending.find(PendingKey{flow.reversed(), h.xid});
    if (it == pending.end()) {
      stats.unmatched_replies++;
      sink(m);
      return;
    }
    PendingCall& c = it->second;
    m.prog = c.prog;
    m.vers = c.vers;
    m.proc = c.proc;
    m.proc_name = proc_name_of(c.prog, c.vers, c.proc);
    m.call = c.fields;
    m.call_ts = c.ts;
    // Keep only the procedure for a retransmitted reply; the fields (handles, names) were
    // delivered with this reply and would otherwise grow memory up to the table bound.
    if (!c.answered) {
      c.answered = true;
      c.fields.reset();
    }
    if (decodable(c.prog, c.vers)) {
      if (h.reply_stat == 0 && h.accept_stat == 0) {
        m.decode = decode_reply(c.prog, c.vers, c.proc, body, m.fields);
        count_decode(m.decode);
      }
    } else {
      other_program(c.prog, c.vers);
    }
    sink(m);
  }

  void count_decode(DecodeResult r) {
    if (r == DecodeResult::Malformed) stats.malformed_nfs++;
    if (r == DecodeResult::Truncated) stats.truncated_rpc++;
  }

  void other_program(uint32_t prog, uint32_t vers) {
    stats.not_decoded++;
    stats.other_programs[std::to_string(prog) + "v" + std::to_string(vers)]++;
  }
};

Decoder::Decoder(Sink sink) : impl_(std::make_unique<Impl>(std::move(sink))) {}
Decoder::~Decoder() = default;
void Decoder::feed(const RawPacket& pkt) { impl_->net.feed(pkt); }
void Decoder::feed_l4(const L4Packet& l4) { impl_->on_l4(l4); }
void Decoder::finish() {
  for (auto& [flow, ra] : impl_->tcp) {
    ra->finish();
    Impl::add(impl_->finished_records, ra->stats());
  }
  impl_->tcp.clear();
  impl_->last_flow = nullptr;
}
void Decoder::close_flow(const FlowKey& flow) {
  auto it = impl_->tcp.find(flow);
  if (it == impl_->tcp.end()) return;
  if (impl_->last_flow == &*it) impl_->last_flow = nullptr;
  it->second->finish();
  Impl::add(impl_->finished_records, it->second->stats());
  impl_->tcp.erase(it);
}
const NetStats& Decoder::net_stats() const { return impl_->net.stats(); }
const DecodeStats& Decoder::stats() const { return impl_->stats; }
RecordStats Decoder::record_stats() const {
  RecordStats s = impl_->finished_records;
  for (auto& [flow, ra] : impl_->tcp) Impl::add(s, ra->stats());
  return s;
}
size_t Decoder::flows() const { return impl_->tcp.size(); }

}  // namespace nfsfence
