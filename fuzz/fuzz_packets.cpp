// Whole packets into the decoder: link layer selection, IP (fragments), TCP/UDP, RPC, NFS.
// Input: [linktype selector][u16 len][bytes]... each chunk one packet.
#include "nfs/decoder.h"

using namespace nfsfence;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int kLinks[] = {kLinkEthernet, kLinkRaw,  kLinkLinuxSll, kLinkLinuxSll2,
                               kLinkIpv4,     kLinkIpv6, kLinkNull,     12};
  if (size < 1) return 0;
  int link = kLinks[data[0] % (sizeof kLinks / sizeof kLinks[0])];
  size_t pos = 1;
  uint64_t frame = 0, sink = 0;
  Decoder dec([&](const RpcMessage& m) { sink += m.xid + m.fields.entries.size(); });
  while (pos + 2 <= size) {
    size_t len = (size_t(data[pos]) << 8) | data[pos + 1];
    pos += 2;
    len = std::min(len, size - pos);
    RawPacket p;
    p.frame = ++frame;
    p.data = data + pos;
    p.caplen = uint32_t(len);
    p.wire_len = uint32_t(len + (frame % 3 == 0 ? 100 : 0));  // sometimes snaplen-cut
    p.linktype = link;
    dec.feed(p);
    pos += len;
  }
  dec.finish();
  return sink == 42 ? 0 : 0;
}
