// ONC-RPC message headers (RFC 5531).
#pragma once

#include <optional>

#include "nfs/common.h"

namespace nfsfence {

constexpr uint32_t kProgPortmap = 100000;
constexpr uint32_t kProgNfs = 100003;
constexpr uint32_t kProgMount = 100005;
constexpr uint32_t kProgNlm = 100021;
constexpr uint32_t kProgNsm = 100024;
constexpr uint32_t kProgNfsAcl = 100227;

enum class MsgType : uint32_t { Call = 0, Reply = 1 };

struct RpcHeader {
  uint32_t xid = 0;
  MsgType type = MsgType::Call;
  // Call fields
  uint32_t rpcvers = 0, prog = 0, vers = 0, proc = 0;
  uint32_t cred_flavor = 0;
  // Reply fields
  uint32_t reply_stat = 0;   // 0 MSG_ACCEPTED, 1 MSG_DENIED
  uint32_t accept_stat = 0;  // 0 SUCCESS, ... (when accepted)
  uint32_t reject_stat = 0;  // when denied
  // Offset of the procedure arguments (call) or results (accepted SUCCESS reply).
  size_t body_offset = 0;
};

enum class RpcParse { Ok, Truncated, Malformed };

// Parses the RPC header at the start of `msg` (record marks already removed).
RpcParse parse_rpc_header(ByteView msg, RpcHeader& out);

}  // namespace nfsfence
