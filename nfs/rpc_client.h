// A blocking ONC-RPC client over TCP for the agent's own questions to the server (MNT,
// LOOKUP, READDIRPLUS). Replies go through the same decode_reply as captured traffic, and
// come back as RpcMessage so that Accounting learns from them exactly as from the wire.
#pragma once

#include <chrono>
#include <string>

#include "nfs/rpc_message.h"
#include "nfs/xdr_writer.h"

namespace nfsfence {

class RpcClient {
 public:
  // Connects from a reserved port (servers may insist), with a timeout for every call.
  static Expected<std::unique_ptr<RpcClient>> connect(const std::string& host, uint16_t port,
                                                      std::chrono::milliseconds timeout);
  ~RpcClient();
  // Sends a call whose arguments are `args` (XDR, after the header) and waits for the
  // matching reply. Errors: connection, timeout, RPC-level rejection.
  Expected<RpcMessage> call(uint32_t prog, uint32_t vers, uint32_t proc, const Bytes& args);
  // portmapper GETPORT (prog 100000 v2 proc 3) for TCP; 0 if not registered.
  static Expected<uint16_t> getport(const std::string& host, uint32_t prog, uint32_t vers,
                                    std::chrono::milliseconds timeout);

 private:
  RpcClient(int fd, std::string peer, std::chrono::milliseconds timeout);
  Expected<Bytes> read_record();
  int fd_;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  uint32_t next_xid_;
};

}  // namespace nfsfence
