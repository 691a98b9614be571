#include "nfs/decoder.h"

#include <deque>
#include <list>
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
  uint64_t seqno;   // insertion number, to detect stale FIFO entries
  size_t cost = 0;  // bytes charged to the memory budget
};

// A reply whose call is probably still behind a hole in the other direction's stream, or
// a later reply of the same flow held behind it so that replies keep their capture order
// (accounting applies post-op attributes in the order it gets them).
struct HeldReply {
  uint32_t xid = 0;
  uint64_t frame = 0;
  Timestamp ts;
  Bytes data;
  uint64_t msg_len = 0;
  uint64_t seqno = 0;  // hold order over all flows, for the budget's oldest-first release
  size_t cost = 0;
};

struct Flow {
  std::unique_ptr<RecordAssembler> ra;
  std::list<FlowKey>::iterator lru;  // position in the activity order (front: most recent)
  Timestamp last;                    // capture time of its last segment
  size_t charged = 0;                // bytes charged to the memory budget
};
using FlowEntry = std::pair<const FlowKey, Flow>;

constexpr size_t kMaxPending = 32768;
constexpr size_t kMaxHeld = 1024;
constexpr uint64_t kMaxWholeMessage = 4u << 20;
// Heap around each entry beyond what memory_bytes()/fields_bytes() see: hash nodes, list
// and deque nodes, std::function captures, shared_ptr control blocks (measured with a
// SYN flood: ~1 KB of RSS per flow before the budget).
constexpr size_t kFlowOverhead = 512;
constexpr size_t kEntryOverhead = 160;

size_t fields_bytes(const NfsFields& f) {
  size_t b = sizeof(NfsFields);
  auto bytes = [&](const std::optional<Bytes>& v) { b += v ? v->capacity() : 0; };
  auto str = [&](const std::string& v) { b += v.capacity() > 15 ? v.capacity() + 1 : 0; };
  bytes(f.fh), bytes(f.dir_fh), bytes(f.to_dir_fh), bytes(f.obj_fh), bytes(f.cookieverf);
  for (auto* v : {&f.name, &f.to_name, &f.path})
    if (*v) str(**v);
  b += f.entries.capacity() * sizeof(DirEntryPlus);
  for (auto& e : f.entries) {
    str(e.name);
    bytes(e.fh);
  }
  return b;
}

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
  DecoderLimits limits;
  NetParser net;
  DecodeStats stats;
  std::unordered_map<FlowKey, Flow, FlowKeyHash> tcp;
  std::list<FlowKey> lru;
  std::unordered_map<PendingKey, PendingCall, PendingKeyHash> pending;
  std::deque<std::pair<PendingKey, uint64_t>> pending_order;
  uint64_t pending_seq = 0;
  std::unordered_map<FlowKey, std::deque<HeldReply>, FlowKeyHash> held;  // reply flow -> in capture order
  size_t held_count = 0;
  size_t flow_bytes = 0, pending_bytes = 0, held_bytes = 0;
  bool enforcing = false;
  int64_t next_sweep = INT64_MIN;
  RecordStats finished_records{};  // stats of flows already closed
  FlowEntry* last_flow = nullptr;

  Impl(Sink s, DecoderLimits l) : sink(std::move(s)), limits(l), net([this](const L4Packet& p) { on_l4(p); }) {}

  size_t memory() const { return flow_bytes + pending_bytes + held_bytes; }

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
    // Unmatched: only the header is decoded, unless the reply may be held for its call.
    if (!c) return std::min<uint64_t>(record_len, reorder_pending(flow) || held.count(flow) ? kMaxWholeMessage : 4096);
    return needed_prefix(c->prog, c->vers, c->proc, false, h.body_offset, std::min(record_len, kMaxWholeMessage));
  }

  // The call direction of this reply flow has segments waiting behind a hole.
  bool reorder_pending(const FlowKey& reply_flow) const {
    auto it = tcp.find(reply_flow.reversed());
    return it != tcp.end() && it->second.ra->has_out_of_order();
  }

  void on_l4(const L4Packet& p) {
    if (p.flow.transport == Transport::Udp) {
      message(p.flow, p.first_frame, p.ts, p.payload, p.wire_payload_len);
      after_packet(p.ts);
      return;
    }
    FlowEntry* e = last_flow;
    // Consecutive segments nearly always belong to the same flow: skip the hash lookup.
    if (!e || e->first != p.flow) {
      auto it = tcp.find(p.flow);
      if (it == tcp.end()) {
        if (p.payload.empty() && !(p.tcp_flags & 0x02)) return;  // bare ACK of an unknown flow
        it = open_flow(p.flow);
      }
      e = &*it;
    }
    Flow& f = e->second;
    if (f.lru != lru.begin()) lru.splice(lru.begin(), lru, f.lru);
    f.last = p.ts;
    last_flow = e;
    f.ra->segment(p.seq, p.payload, p.wire_payload_len, (p.tcp_flags & 0x02) != 0, p.frame, p.ts);
    if (p.tcp_flags & 0x05) {  // FIN or RST: the flow is over
      close(e->first, false);
    } else {
      recharge(f);
      // The hole that held the other direction's replies may be gone.
      if (!held.empty() && !f.ra->has_out_of_order()) drain(e->first.reversed(), Drain::IfNoHole);
    }
    after_packet(p.ts);
  }

  // After each packet (so the packet's own flow is never the idle one), within the bounds.
  void after_packet(const Timestamp& ts) {
    idle_sweep(ts);
    enforce();
  }

  std::unordered_map<FlowKey, Flow, FlowKeyHash>::iterator open_flow(const FlowKey& key) {
    FlowKey flow = key;
    Flow f;
    f.ra = std::make_unique<RecordAssembler>(
        [this, flow](ByteView head, uint64_t len) { return prefix_for(flow, head, len); },
        [this, flow](const RecordHead& r) { message(flow, r.frame, r.ts, r.data, r.record_len); });
    lru.push_front(key);
    f.lru = lru.begin();
    auto it = tcp.emplace(key, std::move(f)).first;
    recharge(it->second);
    return it;
  }

  void recharge(Flow& f) {
    size_t now = kFlowOverhead + f.ra->memory_bytes();
    flow_bytes = flow_bytes - f.charged + now;
    f.charged = now;
  }

  // Ends a flow as a FIN would: what it holds is delivered, its state freed. `key` may
  // refer into the map entry: copied first.
  void close(FlowKey key, bool idle) {
    auto it = tcp.find(key);
    if (it == tcp.end()) return;
    // Replies of this flow may be held for calls behind a hole of the reverse direction:
    // deliver those calls first, or the replies would go out unmatched (and before them).
    if (holding(key))
      if (auto rev = tcp.find(key.reversed()); rev != tcp.end() && rev->second.ra->has_out_of_order()) {
        rev->second.ra->flush_out_of_order();
        recharge(rev->second);
        it = tcp.find(key);
      }
    if (last_flow == &*it) last_flow = nullptr;
    it->second.ra->finish();
    add(finished_records, it->second.ra->stats());
    flow_bytes -= it->second.charged;
    lru.erase(it->second.lru);
    tcp.erase(it);
    if (idle) stats.flows_idle_closed++;
    // Its replies, and the replies its calls were awaited by, wait for nothing any more.
    drain(key, Drain::Force);
    drain(key.reversed(), Drain::Force);
  }

  // A flow is closed when it and its reverse direction have both been silent for
  // idle_seconds of capture time (a reply direction silent while calls flow is not idle).
  void idle_sweep(const Timestamp& ts) {
    if (limits.idle_seconds <= 0 || ts.sec < next_sweep) return;
    next_sweep = ts.sec < INT64_MAX ? ts.sec + 1 : ts.sec;  // at most once per second of capture time
    auto idle = [&](const Flow& f) {
      // 128-bit: crafted timestamps may lie anywhere in int64.
      return __int128(ts.sec) - __int128(f.last.sec) > __int128(limits.idle_seconds);
    };
    // From the least recently active end; a flow kept for its busy reverse stays where it
    // is (the order stays the activity order the budget's eviction relies on).
    for (auto it = lru.end(); it != lru.begin();) {
      auto prev = std::prev(it);
      FlowKey key = *prev;
      if (!idle(tcp.find(key)->second)) break;  // the rest are more recent
      auto rev = tcp.find(key.reversed());
      if (rev != tcp.end() && !idle(rev->second)) {
        it = prev;
        continue;
      }
      close(key, true);  // erases `prev` only: `it` stays valid
    }
  }

  // Within the budget again: the largest of the three consumers gives up its oldest entry.
  void enforce() {
    if (enforcing || memory() <= limits.memory_bytes) return;
    enforcing = true;
    while (memory() > limits.memory_bytes) {
      if (held_bytes && held_bytes >= pending_bytes && held_bytes >= flow_bytes) {
        release_oldest_held();
      } else if (pending_bytes && (pending_bytes >= flow_bytes || lru.size() <= 1)) {
        evict_oldest_call();
      } else if (lru.size() > 1) {
        stats.flows_evicted++;
        close(lru.back(), false);
      } else {
        break;  // one flow alone over the budget: its own bounds hold it
      }
    }
    enforcing = false;
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

  void evict_oldest_call() {
    while (!pending_order.empty()) {
      auto [k, seq] = pending_order.front();
      pending_order.pop_front();
      auto old = pending.find(k);
      if (old == pending.end() || old->second.seqno != seq) continue;  // stale entry
      if (!old->second.answered) stats.calls_evicted++;
      pending_bytes -= old->second.cost;
      pending.erase(old);
      return;
    }
  }
  void remember_call(const FlowKey& flow, uint32_t xid, const RpcMessage& m) {
    PendingKey key{flow, xid};
    auto [it, inserted] = pending.try_emplace(key);
    if (!inserted) {
      stats.duplicate_calls++;
      pending_bytes -= it->second.cost;
    }
    auto fields = std::make_shared<NfsFields>(m.fields);
    size_t cost = kEntryOverhead + fields_bytes(*fields);
    it->second = PendingCall{m.prog, m.vers, *m.proc, m.ts, std::move(fields), false, ++pending_seq, cost};
    pending_bytes += cost;
    pending_order.emplace_back(key, pending_seq);
    while (pending.size() > kMaxPending && !pending_order.empty()) {
      auto [k, seq] = pending_order.front();
      pending_order.pop_front();
      auto old = pending.find(k);
      if (old != pending.end() && old->second.seqno == seq) {
        if (!old->second.answered) stats.pending_evicted++;
        pending_bytes -= old->second.cost;
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

  // Holds a reply: its call may still come out of the other direction's reorder queue
  // (a call behind a hole is delivered after its reply otherwise), or an earlier reply of
  // its flow is held and it must not overtake it.
  void hold(const FlowKey& reply_flow, uint64_t frame, Timestamp ts, ByteView data, uint64_t msg_len, uint32_t xid) {
    if (held_count >= kMaxHeld) release_oldest_held();
    HeldReply r{xid, frame, ts, Bytes(data.begin(), data.end()), msg_len, ++pending_seq, 0};
    r.cost = kEntryOverhead + r.data.capacity();
    held_bytes += r.cost;
    held_count++;
    held[reply_flow].push_back(std::move(r));
  }

  bool holding(const FlowKey& reply_flow) const { return !held.empty() && held.count(reply_flow); }

  // Decodes the front of a reply flow's held queue now, with its call if that came.
  void release_front(const FlowKey& reply_flow) {
    auto it = held.find(reply_flow);
    if (it == held.end()) return;
    HeldReply r = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) held.erase(it);
    held_bytes -= r.cost;
    held_count--;
    bool matched = pending.count(PendingKey{reply_flow.reversed(), r.xid}) != 0;
    (matched ? stats.replies_reordered : stats.replies_held_unmatched)++;
    message(reply_flow, r.frame, r.ts, ByteView(r.data.data(), r.data.size()), r.msg_len, false);
  }

  // Releases a reply flow's held replies in order while the front one can go: its call
  // came; or (IfNoHole) no hole is left in the call direction that could still hold it;
  // or (Force) the flow ended. MatchedOnly runs while the call direction is delivering
  // (inside its segment), when the queue's state is not final yet.
  enum class Drain { MatchedOnly, IfNoHole, Force };
  void drain(const FlowKey& reply_flow, Drain how) {
    while (holding(reply_flow)) {
      const HeldReply& r = held.find(reply_flow)->second.front();
      bool matched = pending.count(PendingKey{reply_flow.reversed(), r.xid}) != 0;
      if (!matched && (how == Drain::MatchedOnly || (how == Drain::IfNoHole && reorder_pending(reply_flow)))) return;
      release_front(reply_flow);
    }
  }

  void release_oldest_held() {
    const FlowKey* oldest = nullptr;
    uint64_t seq = UINT64_MAX;
    for (auto& [flow, q] : held)
      if (q.front().seqno < seq) seq = q.front().seqno, oldest = &flow;
    if (!oldest) return;
    FlowKey flow = *oldest;
    release_front(flow);
    drain(flow, Drain::MatchedOnly);  // replies behind it whose calls came can go too
  }

  void release_all_held() {
    while (!held.empty()) drain(FlowKey(held.begin()->first), Drain::Force);
  }

  void message(const FlowKey& flow, uint64_t frame, Timestamp ts, ByteView data, uint64_t msg_len,
               bool may_hold = true) {
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
    if (h.type == MsgType::Reply && may_hold && flow.transport == Transport::Tcp &&
        (holding(flow) || (!pending.count(PendingKey{flow.reversed(), h.xid}) && reorder_pending(flow)))) {
      hold(flow, frame, ts, data, msg_len, h.xid);
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
      if (!held.empty()) drain(flow.reversed(), Drain::MatchedOnly);
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
      pending_bytes -= c.cost - kEntryOverhead;
      c.cost = kEntryOverhead;
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

Decoder::Decoder(Sink sink, DecoderLimits limits) : impl_(std::make_unique<Impl>(std::move(sink), limits)) {}
Decoder::~Decoder() = default;
void Decoder::feed(const RawPacket& pkt) { impl_->net.feed(pkt); }
void Decoder::feed_l4(const L4Packet& l4) { impl_->on_l4(l4); }
void Decoder::finish() {
  // Every flow delivers what it buffered first (calls behind holes included), then the
  // flows are closed: held replies then find the calls that were waiting with them.
  for (auto& [key, f] : impl_->tcp) f.ra->finish();
  while (!impl_->lru.empty()) impl_->close(impl_->lru.back(), false);
  impl_->release_all_held();
}
void Decoder::close_flow(const FlowKey& flow) { impl_->close(flow, false); }
const NetStats& Decoder::net_stats() const { return impl_->net.stats(); }
const DecodeStats& Decoder::stats() const { return impl_->stats; }
RecordStats Decoder::record_stats() const {
  RecordStats s = impl_->finished_records;
  for (auto& [flow, f] : impl_->tcp) Impl::add(s, f.ra->stats());
  return s;
}
size_t Decoder::flows() const { return impl_->tcp.size(); }
size_t Decoder::memory_bytes() const { return impl_->memory(); }

}  // namespace nfsfence
