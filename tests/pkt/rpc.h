// ONC RPC records, calls and replies, and the NFSv3 arguments and results the tests and
// benchmarks send (tests/pkt), on nfs/xdr_writer.h.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

#include "nfs/common.h"
#include "nfs/rpc.h"
#include "nfs/xdr_writer.h"

namespace nfsfence::pkt {

// --- record marking (RFC 5531 section 11)
// Record mark + data (one fragment).
Bytes record(ByteView msg, bool last = true);
// The mark claims `len` bytes whatever msg holds: the head of a longer record, or a forged one.
Bytes record_claiming(ByteView msg, uint32_t len, bool last = true);

// --- RPC headers
constexpr uint32_t kAuthNone = 0, kAuthUnix = 1;
// xid, CALL, rpcvers 2, prog, vers, proc, the credential (flavor + opaque body), verifier AUTH_NONE.
XdrWriter& call_head(XdrWriter& x, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                     uint32_t cred_flavor = kAuthNone, ByteView cred_body = {});
// An AUTH_UNIX (AUTH_SYS) credential body: stamp, machine name, uid, gid, gids.
Bytes auth_unix(uint32_t stamp, std::string_view machine, uint32_t uid, uint32_t gid,
                std::initializer_list<uint32_t> gids = {});
// A call header (AUTH_NONE cred and verf) followed by `body` (not padded).
Bytes rpc_call(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, ByteView body = {});
// An accepted SUCCESS reply (AUTH_NONE verf) followed by `body` (not padded).
Bytes rpc_reply(uint32_t xid, ByteView body = {});

// --- NFSv3 (RFC 1813)
// WRITE3args up to and including the data length word (the data follows).
XdrWriter& write3_head(XdrWriter& x, ByteView fh, uint64_t offset, uint32_t count, uint32_t stable, uint32_t data_len);
XdrWriter& read3_args(XdrWriter& x, ByteView fh, uint64_t offset, uint32_t count);
// sattr3 with nothing set (6 discriminants).
XdrWriter& sattr3_none(XdrWriter& x);

struct NfsTime {
  uint32_t sec = 0, nsec = 0;
};
struct Fattr3 {
  uint32_t type = 1, mode = 0644, nlink = 1, uid = 0, gid = 0;
  uint64_t size = 0, used = 0;
  uint32_t rdev1 = 0, rdev2 = 0;
  uint64_t fsid = 0, fileid = 0;
  NfsTime atime, mtime, ctime;
};
struct WccAttr {
  uint64_t size = 0;
  NfsTime mtime, ctime;
};
XdrWriter& fattr3(XdrWriter& x, const Fattr3& a);
XdrWriter& post_op_attr(XdrWriter& x, const std::optional<Fattr3>& a);
XdrWriter& pre_op_attr(XdrWriter& x, const std::optional<WccAttr>& a);
// WRITE3res: status, wcc_data, and for NFS3_OK count, committed, verf.
XdrWriter& write3res(XdrWriter& x, uint32_t status, const std::optional<WccAttr>& pre,
                     const std::optional<Fattr3>& post, uint32_t count, uint32_t committed, uint64_t verf);
// LOOKUP3res (proc 3: the object handle) or CREATE3res-style (MKDIR, SYMLINK, MKNOD:
// post_op_fh3 with `follows`), all attributes absent; on failure the attributes only.
XdrWriter& dirop3res(XdrWriter& x, uint32_t proc, uint32_t status, bool follows, ByteView obj);
// FSSTAT3res: status, post_op_attr, and for NFS3_OK tbytes, fbytes, abytes, tfiles, ffiles,
// afiles, invarsec.
struct FsStat {
  uint64_t tbytes = 0, fbytes = 0, abytes = 0, tfiles = 0, ffiles = 0, afiles = 0;
  uint32_t invarsec = 0;
};
XdrWriter& fsstat3res(XdrWriter& x, uint32_t status, const std::optional<Fattr3>& attrs, const FsStat& st);

}  // namespace nfsfence::pkt
