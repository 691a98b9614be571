// NFSv3 / MOUNT v3 argument and result decoding (XDR) and the RPC header parser on
// arbitrary bodies, for every procedure.
#include "nfs/nfs3.h"
#include "nfs/rpc.h"

using namespace nfsfence;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint32_t prog = (data[0] & 0x80) ? kProgMount : kProgNfs;
  uint32_t proc = data[0] & 0x1f;
  bool call = data[1] & 1;
  ByteView body(data + 2, size - 2);
  NfsFields f;
  if (call)
    decode_call(prog, 3, proc, body, f);
  else
    decode_reply(prog, 3, proc, body, f);
  RpcHeader h;
  parse_rpc_header(body, h);
  return 0;
}
