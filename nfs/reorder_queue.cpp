#include "nfs/reorder_queue.h"

#include <algorithm>

namespace nfsfence {
namespace {

inline int32_t sdiff(uint32_t a, uint32_t b) { return int32_t(a - b); }

}  // namespace

bool ReorderQueue::insert(uint32_t pos, uint32_t seq, ByteView payload, uint32_t wire, uint64_t frame, Timestamp ts) {
  int32_t rel = sdiff(seq, pos);
  auto it = std::lower_bound(q_.begin(), q_.end(), rel,
                             [&](const HeldSegment& s, int32_t r) { return sdiff(s.seq, pos) < r; });
  for (auto j = it; j != q_.end() && j->seq == seq; ++j)
    if (j->wire >= wire && j->data.size() >= payload.size()) return false;
  HeldSegment s;
  s.seq = seq;
  s.wire = wire;
  s.frame = frame;
  s.ts = ts;
  if (!spare_.empty()) {
    s.data = std::move(spare_.back());
    spare_.pop_back();
  }
  s.data.assign(payload.begin(), payload.end());
  bytes_ += payload.size();
  q_.insert(it, std::move(s));
  return true;
}

void ReorderQueue::drop_behind(uint32_t pos) {
  size_t i = 0;
  while (i < q_.size() && sdiff(q_[i].seq + q_[i].wire, pos) <= 0) ++i;
  for (size_t j = 0; j < i; ++j) {
    bytes_ -= q_[j].data.size();
    recycle(std::move(q_[j].data));
  }
  q_.erase(q_.begin(), q_.begin() + ptrdiff_t(i));
}

HeldSegment ReorderQueue::pop_front() {
  HeldSegment s = std::move(q_.front());
  q_.erase(q_.begin());
  bytes_ -= s.data.size();
  return s;
}

void ReorderQueue::recycle(Bytes&& buf) {
  buf.clear();
  if (spare_.size() < kMaxSpare && buf.capacity() <= kMaxSpareCapacity) spare_.push_back(std::move(buf));
}

void ReorderQueue::clear() {
  for (HeldSegment& s : q_) recycle(std::move(s.data));
  q_.clear();
  bytes_ = 0;
}

size_t ReorderQueue::memory_bytes() const {
  size_t b = q_.capacity() * sizeof(HeldSegment) + spare_.capacity() * sizeof(Bytes);
  for (const HeldSegment& s : q_) b += s.data.capacity();
  for (const Bytes& s : spare_) b += s.capacity();
  return b;
}

}  // namespace nfsfence
