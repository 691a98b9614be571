// ONC-RPC v2 call and reply headers (RFC 5531 section 9).
#include "nfs/rpc.h"

#include "nfs/xdr_reader.h"

namespace nfsfence {
namespace {

constexpr uint32_t kRpcVersion = 2;
constexpr uint32_t kMaxAuthBody = 400;  // opaque_auth body<400>

// opaque_auth { auth_flavor flavor; opaque body<400>; }
RpcParse read_auth(XdrReader& r, uint32_t* flavor_out) {
  uint32_t flavor = 0, len = 0;
  if (!r.u32(flavor)) return RpcParse::Truncated;
  if (!r.u32(len)) return RpcParse::Truncated;
  if (len > kMaxAuthBody) return RpcParse::Malformed;
  if (!r.skip_opaque(len)) return RpcParse::Truncated;
  if (flavor_out) *flavor_out = flavor;
  return RpcParse::Ok;
}

}  // namespace

RpcParse parse_rpc_header(ByteView msg, RpcHeader& out) {
  out = RpcHeader{};
  XdrReader r(msg);
  uint32_t mtype = 0;
  if (!r.u32(out.xid)) return RpcParse::Truncated;
  if (!r.u32(mtype)) return RpcParse::Truncated;

  if (mtype == uint32_t(MsgType::Call)) {
    out.type = MsgType::Call;
    if (!r.u32(out.rpcvers)) return RpcParse::Truncated;
    if (out.rpcvers != kRpcVersion) return RpcParse::Malformed;
    if (!r.u32(out.prog) || !r.u32(out.vers) || !r.u32(out.proc)) return RpcParse::Truncated;
    if (auto st = read_auth(r, &out.cred_flavor); st != RpcParse::Ok) return st;  // cred
    if (auto st = read_auth(r, nullptr); st != RpcParse::Ok) return st;           // verf
    out.body_offset = r.pos();
    return RpcParse::Ok;
  }
  if (mtype != uint32_t(MsgType::Reply)) return RpcParse::Malformed;

  out.type = MsgType::Reply;
  if (!r.u32(out.reply_stat)) return RpcParse::Truncated;
  uint32_t lo = 0, hi = 0;
  switch (out.reply_stat) {
    case 0: {  // MSG_ACCEPTED: verf, accept_stat, arm
      if (auto st = read_auth(r, nullptr); st != RpcParse::Ok) return st;
      if (!r.u32(out.accept_stat)) return RpcParse::Truncated;
      switch (out.accept_stat) {
        case 0:  // SUCCESS: results follow
        case 1:  // PROG_UNAVAIL
        case 3:  // PROC_UNAVAIL
        case 4:  // GARBAGE_ARGS
        case 5:  // SYSTEM_ERR
          break;
        case 2:  // PROG_MISMATCH { low; high; }
          if (!r.u32(lo) || !r.u32(hi)) return RpcParse::Truncated;
          break;
        default:
          return RpcParse::Malformed;
      }
      break;
    }
    case 1: {  // MSG_DENIED: reject_stat, arm
      if (!r.u32(out.reject_stat)) return RpcParse::Truncated;
      switch (out.reject_stat) {
        case 0:  // RPC_MISMATCH { low; high; }
          if (!r.u32(lo) || !r.u32(hi)) return RpcParse::Truncated;
          break;
        case 1: {  // AUTH_ERROR: auth_stat
          uint32_t auth_stat = 0;
          if (!r.u32(auth_stat)) return RpcParse::Truncated;
          break;
        }
        default:
          return RpcParse::Malformed;
      }
      break;
    }
    default:
      return RpcParse::Malformed;
  }
  out.body_offset = r.pos();
  return RpcParse::Ok;
}

}  // namespace nfsfence
