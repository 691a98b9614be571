// TCP segments straight into the record assembler and RPC/NFS decoding: arbitrary
// sequence numbers (retransmissions, overlaps, gaps, wrap-around) and payloads.
// Input: [u8 flags][u32 seq delta][u16 len][bytes]... each chunk one segment.
#include "nfs/decoder.h"

using namespace nfsfence;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t sink = 0;
  Decoder dec([&](const RpcMessage& m) { sink += m.xid; });
  L4Packet p;
  p.flow.transport = Transport::Tcp;
  p.flow.src.port = 800;
  p.flow.dst.port = 2049;
  uint32_t seq = 0xfffff000;  // start near the wrap
  size_t pos = 0;
  uint64_t frame = 0;
  while (pos + 7 <= size) {
    uint8_t flags = data[pos];
    uint32_t delta = load_be32(data + pos + 1);
    size_t len = std::min<size_t>(load_be16(data + pos + 5), size - pos - 7);
    pos += 7;
    // Mostly small moves around the stream position; sometimes a wild jump.
    seq += (flags & 0x80) ? delta : int32_t(int16_t(delta & 0xffff));
    p.seq = seq;
    p.tcp_flags = flags & 0x02;  // SYN only: FIN/RST would end the flow
    bool reply_dir = flags & 0x40;
    p.flow.src.port = reply_dir ? 2049 : 800;
    p.flow.dst.port = reply_dir ? 800 : 2049;
    p.payload = ByteView(data + pos, len);
    p.wire_payload_len = uint32_t(len + ((flags & 0x20) ? 1000 : 0));
    p.frame = p.first_frame = ++frame;
    dec.feed_l4(p);
    pos += len;
  }
  dec.finish();
  return sink == 42 ? 0 : 0;
}
