// TCP stream reassembly following ONC-RPC record marking (RFC 5531 section 11).
//
// Design
// - The stream position `pos` is the sequence number of the next byte we expect. All
//   comparisons use 32-bit serial arithmetic (sdiff), so sequence wrap-around is free.
// - In-order bytes go through a small state machine: Mark (collecting the 4-byte record
//   mark, which may straddle segments) and Data (inside a fragment). Records that lie
//   wholly inside one segment are delivered straight from the segment bytes (no copy, no
//   policy call: the data holds the whole record, complete=true).
// - Otherwise the record's bytes are copied into `rec` until min(len, kPeek) are there;
//   then the PrefixPolicy says how many are needed; the rest of the record is skipped by
//   sequence arithmetic. Skipped bytes need not be captured: a snaplen cut or a hole that
//   lies inside the skipped part of the current fragment is not a gap.
// - Multi-fragment records: the total length is only known at the last fragment. Until
//   then we collect across fragments up to kPeek bytes (or until the record ends) and ask
//   the policy with the length known so far. If the policy asks for at least that much
//   while more fragments are to come, it is taken to want the whole record (capped at
//   kMaxNeeded). The record is delivered once the needed bytes are there AND the last
//   fragment's mark has been seen (so record_len is the true total), or when it ends.
// - Segments ahead of `pos` wait in the ReorderQueue (nfs/reorder_queue.h), bounded to
//   ReorderQueue::kMaxSegments / kMaxBytes. When the bound is hit (or at finish()), the
//   hole is given up: a gap. A hole inside the current fragment only truncates that record; a
//   hole that swallows a record mark loses sync and we resynchronise.
// - Resynchronisation (mid-connection start, bad mark, gap over a mark) scans for a
//   plausible record start. A candidate at the very start of a segment is trusted if it
//   passes plausible_record_start() and, when the fragment ends inside the segment, what
//   follows is consistent (another plausible record, or a plausible next mark). A
//   candidate inside a segment (where WRITE data could mimic a header) is only trusted if
//   its fragment is the last one and it ends exactly at the segment end or is followed
//   by another plausible record start inside the segment.
#include "nfs/record.h"

#include <algorithm>

#include "nfs/reorder_queue.h"

namespace nfsfence {
namespace {

inline int32_t sdiff(uint32_t a, uint32_t b) { return int32_t(a - b); }

constexpr size_t kMaxNeeded = 4u << 20;     // cap on what a policy can make us keep
constexpr size_t kShrinkAbove = 64u << 10;  // give back big record buffers after use
constexpr size_t kMinCheck = 16;            // bytes plausible_record_start needs
constexpr uint32_t kMaxAuthBytes = 400;     // RFC 5531 opaque_auth body limit
constexpr int32_t kSynNear = 1 << 20;

enum class State : uint8_t { Hunt, Mark, Data };

}  // namespace

bool plausible_record_start(const uint8_t* p, size_t n) {
  if (n < kMinCheck) return false;
  uint32_t mark = load_be32(p);
  uint32_t len = mark & 0x7fffffffu;
  bool last = mark >> 31;
  if (len < 12 || len > RecordAssembler::kMaxFragment) return false;
  uint32_t type = load_be32(p + 8);
  if (type == 0) {  // CALL: rpcvers, prog, vers, proc, cred, verf
    if (load_be32(p + 12) != 2) return false;
    if (last && len < 40) return false;  // a whole call is at least 40 bytes
    if (n >= 36 && load_be32(p + 32) > kMaxAuthBytes) return false;
    return true;
  }
  if (type == 1) {  // REPLY
    uint32_t stat = load_be32(p + 12);
    if (stat > 1) return false;
    if (n >= 20 && stat == 1 && load_be32(p + 16) > 1) return false;  // reject_stat
    if (stat == 0) {
      if (last && len < 24) return false;
      if (n >= 24) {
        uint32_t vlen = load_be32(p + 20);
        if (vlen > kMaxAuthBytes) return false;
        size_t at = 24 + ((size_t(vlen) + 3) & ~size_t(3));
        if (n >= at + 4 && load_be32(p + at) > 5) return false;  // accept_stat
      }
    }
    return true;
  }
  return false;
}

struct RecordAssembler::Impl {
  PrefixPolicy policy;
  Sink sink;
  RecordStats st;

  State state = State::Hunt;
  bool started = false;
  uint32_t pos = 0;

  uint8_t mark_buf[4] = {};
  uint32_t mark_have = 0;

  // The record being assembled.
  bool in_record = false;
  uint64_t rec_frame = 0;
  Timestamp rec_ts;
  uint64_t rec_len = 0;        // sum of fragment lengths seen so far
  bool rec_len_final = false;  // the last fragment's mark has been seen
  uint32_t frag_left = 0;
  bool frag_last = false;
  Bytes rec;
  bool asked = false;
  size_t need = 0;
  bool hole = false;  // bytes of the needed prefix are missing
  bool delivered = false;

  ReorderQueue ooo;  // segments ahead of pos

  Impl(PrefixPolicy p, Sink s) : policy(std::move(p)), sink(std::move(s)) { rec.reserve(kPeek); }

  bool collecting() const { return !delivered && !hole && rec.size() < collect_limit(); }
  size_t collect_limit() const {
    if (!asked) return rec_len_final ? std::min<uint64_t>(rec_len, kPeek) : kPeek;
    return need;
  }
  uint32_t skip_room() const { return (state == State::Data && !collecting()) ? frag_left : 0; }

  void reset_record() {
    in_record = false;
    rec_len = 0;
    rec_len_final = false;
    frag_left = 0;
    frag_last = false;
    asked = false;
    need = 0;
    hole = false;
    delivered = false;
    mark_have = 0;
    if (rec.capacity() > kShrinkAbove) {
      Bytes().swap(rec);
      rec.reserve(kPeek);
    } else {
      rec.clear();
    }
  }

  void deliver() {
    RecordHead h;
    h.frame = rec_frame;
    h.ts = rec_ts;
    h.data = ByteView(rec.data(), rec.size());
    h.record_len = rec_len;
    h.complete = rec_len_final && !hole && rec.size() == rec_len;
    if (hole) ++st.truncated_records;
    ++st.records;
    delivered = true;
    sink(h);
    // The needed bytes are handed over; nothing of this record is kept any longer.
    rec.clear();
  }

  void ask(bool record_ended) {
    if (asked || hole) return;
    if (!record_ended && rec.size() < collect_limit()) return;
    size_t want = policy(ByteView(rec.data(), rec.size()), rec_len);
    if (!rec_len_final && want >= rec_len) {
      need = kMaxNeeded;  // wants everything; the rest of the length is not known yet
    } else {
      need = std::min<uint64_t>({uint64_t(want), rec_len, uint64_t(kMaxNeeded)});
    }
    asked = true;
  }

  void maybe_deliver_early() {
    if (delivered || !rec_len_final) return;
    if (hole || (asked && rec.size() >= need)) deliver();
  }

  void end_record() {
    if (!delivered) {
      ask(true);
      deliver();
    }
    reset_record();
    state = State::Mark;
  }

  // Sync is lost: hand over what we have of the current record and start hunting.
  void lose_sync() {
    if (in_record && !delivered && !rec.empty()) {
      hole = true;
      deliver();
    }
    reset_record();
    state = State::Hunt;
    ++st.resyncs;
  }

  // `n` bytes at pos are missing (snaplen cut, or a hole given up). `gap_counted` says
  // whether the caller already counted this as a gap.
  void skip_missing(uint32_t n, bool gap_counted) {
    while (n > 0) {
      if (state == State::Hunt) return;
      if (state == State::Mark) {
        if (!gap_counted) ++st.gaps;
        lose_sync();
        return;
      }
      uint32_t c = std::min(frag_left, n);
      if (collecting()) {
        hole = true;
        maybe_deliver_early();
      }
      pos += c;
      n -= c;
      frag_left -= c;
      if (frag_left == 0) {
        if (frag_last) {
          end_record();
        } else {
          state = State::Mark;
        }
      }
    }
  }

  // Feeds captured bytes at pos. Returns how many were used; stops early when sync is
  // lost (state becomes Hunt).
  size_t consume(const uint8_t* d, size_t n, uint64_t frame, const Timestamp& ts) {
    const uint8_t* const start = d;
    while (n > 0) {
      if (state == State::Mark) {
        if (mark_have == 0 && !in_record) {
          // Fast path: whole single-fragment records inside this segment.
          while (n >= 4) {
            uint32_t m = load_be32(d);
            uint32_t len = m & 0x7fffffffu;
            if (!(m >> 31) || len == 0 || len > kMaxFragment || n - 4 < len) break;
            RecordHead h;
            h.frame = frame;
            h.ts = ts;
            h.data = ByteView(d + 4, len);
            h.record_len = len;
            h.complete = true;
            ++st.records;
            sink(h);
            d += 4 + size_t(len);
            n -= 4 + size_t(len);
            pos += 4 + len;
          }
          if (n == 0) break;
          rec_frame = frame;  // the record's first byte (its mark) is in this segment
          rec_ts = ts;
        }
        size_t take = std::min<size_t>(4 - mark_have, n);
        std::memcpy(mark_buf + mark_have, d, take);
        mark_have += uint32_t(take);
        d += take;
        n -= take;
        pos += uint32_t(take);
        if (mark_have < 4) break;
        mark_have = 0;
        uint32_t m = load_be32(mark_buf);
        uint32_t len = m & 0x7fffffffu;
        if (len == 0 || len > kMaxFragment) {
          ++st.bad_record_marks;
          // Step back so the hunt can look at these bytes again.
          size_t back = std::min<size_t>(4, size_t(d - start));
          pos -= uint32_t(back);
          lose_sync();
          return size_t(d - start) - back;
        }
        in_record = true;
        rec_len += len;
        frag_left = len;
        frag_last = m >> 31;
        rec_len_final = frag_last;
        state = State::Data;
        maybe_deliver_early();
        continue;
      }
      if (state != State::Data) break;
      if (collecting()) {
        size_t c = std::min<size_t>({collect_limit() - rec.size(), size_t(frag_left), n});
        rec.insert(rec.end(), d, d + c);
        d += c;
        n -= c;
        pos += uint32_t(c);
        frag_left -= uint32_t(c);
        if (frag_left == 0 && frag_last) {
          end_record();
          continue;
        }
        ask(false);
        maybe_deliver_early();
        if (frag_left == 0) state = State::Mark;
        continue;
      }
      uint32_t c = uint32_t(std::min<size_t>(frag_left, n));
      d += c;
      n -= c;
      pos += c;
      frag_left -= c;
      if (frag_left == 0) {
        if (frag_last) {
          end_record();
        } else {
          state = State::Mark;
        }
      }
    }
    return size_t(d - start);
  }

  // Consistency of a candidate record start at d (n bytes to the segment end).
  static bool candidate_ok(const uint8_t* d, size_t n, bool trusted_position) {
    if (!plausible_record_start(d, n)) return false;
    uint32_t m = load_be32(d);
    uint64_t end = 4 + uint64_t(m & 0x7fffffffu);
    bool last = m >> 31;
    if (end > n) return trusted_position;  // continues in later segments: cannot check
    if (end == n) return trusted_position || last;
    size_t rest = n - size_t(end);
    if (last) {
      if (rest >= kMinCheck) return plausible_record_start(d + end, rest);
      return trusted_position;
    }
    if (!trusted_position) return false;
    if (rest < 4) return true;
    uint32_t nl = load_be32(d + end) & 0x7fffffffu;
    return nl != 0 && nl <= kMaxFragment;
  }

  // Handles one segment's bytes at `seq` (d[0] is at seq). In Hunt state it searches for
  // a record start first.
  void process(uint32_t seq, const uint8_t* d, uint32_t cap, uint32_t wire, uint64_t frame, const Timestamp& ts,
               bool seg_start) {
    size_t off = 0;
    bool at_start = seg_start;
    for (;;) {
      if (state == State::Hunt) {
        size_t k = off;
        bool found = false;
        for (; k + kMinCheck <= cap; ++k) {
          if (candidate_ok(d + k, cap - k, at_start && k == 0)) {
            found = true;
            break;
          }
        }
        if (!found) return;  // nothing trustworthy here: these bytes are lost
        off = k;
        pos = seq + uint32_t(off);
        state = State::Mark;
        ooo.drop_behind(pos);
      }
      off += consume(d + off, cap - off, frame, ts);
      if (state != State::Hunt) break;
      at_start = false;
    }
    if (wire > cap) skip_missing(wire - cap, false);
  }

  // A segment at or behind pos (or one ahead whose hole we may skip).
  void apply(uint32_t seq, const uint8_t* d, uint32_t cap, uint32_t wire, uint64_t frame, const Timestamp& ts) {
    if (state == State::Hunt) {
      process(seq, d, cap, wire, frame, ts, true);
      return;
    }
    int32_t diff = sdiff(seq, pos);
    if (diff < 0) {
      uint32_t behind = pos - seq;
      if (behind >= wire) {
        ++st.retransmitted;
        return;
      }
      ++st.overlapping;
      if (behind < cap) {
        d += behind;
        cap -= behind;
      } else {
        cap = 0;
      }
      wire -= behind;
      seq = pos;
    } else if (diff > 0) {
      skip_missing(uint32_t(diff), false);  // caller checked it is within skip_room()
      if (state == State::Hunt) {
        process(seq, d, cap, wire, frame, ts, true);
        return;
      }
    }
    process(seq, d, cap, wire, frame, ts, false);
  }

  void drain() {
    while (!ooo.empty()) {
      if (state != State::Hunt) {
        int32_t diff = sdiff(ooo.front().seq, pos);
        if (diff > 0 && uint32_t(diff) > skip_room()) return;
      }
      HeldSegment s = ooo.pop_front();
      apply(s.seq, s.data.data(), uint32_t(s.data.size()), s.wire, s.frame, s.ts);
      ooo.recycle(std::move(s.data));
    }
  }

  void give_up_hole() {
    if (ooo.empty()) return;
    ++st.gaps;
    if (state != State::Hunt) {
      int32_t diff = sdiff(ooo.front().seq, pos);
      if (diff > 0) skip_missing(uint32_t(diff), true);
    }
    drain();
  }

  void segment(uint32_t seq, ByteView payload, uint32_t wire, bool syn, uint64_t frame, const Timestamp& ts) {
    ++st.segments;
    uint32_t cap = uint32_t(payload.size());
    if (wire < cap) wire = cap;
    // A SYN close to where the stream already is cannot start a new connection (a new
    // ISN lands within kSynNear of the old position with probability ~1/2000); it is a
    // corrupted or replayed header, handled as an ordinary segment.
    if (syn && started && state != State::Hunt && seq + 1 != pos) {
      int32_t d = sdiff(seq + 1, pos);
      if (d > -kSynNear && d < kSynNear) syn = false;
    }
    if (syn) {
      uint32_t data_seq = seq + 1;
      if (!started || state == State::Hunt || data_seq != pos) {
        // A new connection (or the first we see of this one): start clean at seq+1.
        if (started && state != State::Hunt && in_record && !delivered && !rec.empty()) {
          hole = true;
          deliver();
        }
        reset_record();
        ooo.clear();
        started = true;
        pos = data_seq;
        state = State::Mark;
      }
      seq = data_seq;
    }
    if (wire == 0) return;
    if (!started) {
      started = true;
      ++st.resyncs;  // mid-connection start: search for a record start
    }
    if (state == State::Hunt) {
      process(seq, payload.data(), cap, wire, frame, ts, true);
      drain();
      return;
    }
    int32_t diff = sdiff(seq, pos);
    if (diff > 0 && uint32_t(diff) > skip_room()) {
      if (ooo.insert(pos, seq, payload, wire, frame, ts)) {
        ++st.out_of_order;
      } else {
        ++st.retransmitted;  // same segment again while waiting for the hole
      }
      while (ooo.over_bounds()) give_up_hole();
      return;
    }
    apply(seq, payload.data(), cap, wire, frame, ts);
    drain();
  }

  void finish() {
    while (!ooo.empty()) give_up_hole();
    if (state == State::Hunt) return;
    if (state == State::Mark && !in_record && mark_have == 0) return;  // at a record boundary
    // The stream ends inside a record.
    if (in_record && !delivered && !rec.empty()) {
      hole = true;
      deliver();
    }
    reset_record();
    state = State::Hunt;
  }
};

RecordAssembler::RecordAssembler(PrefixPolicy policy, Sink sink)
    : impl_(std::make_unique<Impl>(std::move(policy), std::move(sink))) {}
RecordAssembler::~RecordAssembler() = default;

void RecordAssembler::segment(uint32_t seq, ByteView payload, uint32_t wire_len, bool syn, uint64_t frame,
                              Timestamp ts) {
  impl_->segment(seq, payload, wire_len, syn, frame, ts);
}
void RecordAssembler::finish() { impl_->finish(); }
void RecordAssembler::flush_out_of_order() {
  while (!impl_->ooo.empty()) impl_->give_up_hole();
}
const RecordStats& RecordAssembler::stats() const { return impl_->st; }
size_t RecordAssembler::buffered_bytes() const { return impl_->rec.size() + impl_->ooo.bytes() + impl_->mark_have; }
size_t RecordAssembler::memory_bytes() const {
  const Impl& i = *impl_;
  return sizeof(Impl) + i.rec.capacity() + i.ooo.memory_bytes();
}
bool RecordAssembler::has_out_of_order() const { return !impl_->ooo.empty(); }

}  // namespace nfsfence
