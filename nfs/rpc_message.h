// One decoded ONC-RPC message of NFSv3 or MOUNT v3 (or of another program, undecoded):
// what the decoder hands to its sink, what the agent's own RPC client returns, and what
// Accounting and the replay learn from. A plain value: no capture, stream or XID-table
// state, so that its consumers need not depend on the capture pipeline.
#pragma once

#include <memory>
#include <optional>

#include "nfs/common.h"
#include "nfs/nfs3.h"
#include "nfs/rpc.h"

namespace nfsfence {

struct RpcMessage {
  uint64_t frame = 0;  // 1-based frame where the message starts
  Timestamp ts;
  FlowKey flow;
  uint32_t xid = 0;
  MsgType type = MsgType::Call;
  uint32_t prog = 0, vers = 0;
  std::optional<uint32_t> proc;  // replies: from the matched call, empty if unmatched
  const char* proc_name = nullptr;
  uint32_t reply_stat = 0, accept_stat = 0;  // replies
  uint64_t msg_len = 0;                      // RPC message length (record length / datagram length)
  DecodeResult decode = DecodeResult::Ok;
  NfsFields fields;
  // Replies: the matched call's fields (LOOKUP's dir_fh and name, ...), empty if unmatched.
  std::shared_ptr<const NfsFields> call;
  std::optional<Timestamp> call_ts;
  bool is_nfs3_or_mount3() const { return (prog == kProgNfs && vers == 3) || (prog == kProgMount && vers == 3); }
};

}  // namespace nfsfence
