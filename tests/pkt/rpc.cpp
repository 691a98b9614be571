#include "pkt/rpc.h"

#include "pkt/bytes.h"

namespace nfsfence::pkt {

Bytes record(ByteView msg, bool last) { return record_claiming(msg, uint32_t(msg.size()), last); }

Bytes record_claiming(ByteView msg, uint32_t len, bool last) {
  Bytes b;
  put32(b, len | (last ? 0x80000000u : 0));
  put_bytes(b, msg);
  return b;
}

XdrWriter& call_head(XdrWriter& x, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, uint32_t cred_flavor,
                     ByteView cred_body) {
  x.u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc);
  x.u32(cred_flavor).opaque(cred_body);
  return x.u32(0).u32(0);  // verifier AUTH_NONE
}

Bytes auth_unix(uint32_t stamp, std::string_view machine, uint32_t uid, uint32_t gid,
                std::initializer_list<uint32_t> gids) {
  XdrWriter c;
  c.u32(stamp).str(machine).u32(uid).u32(gid).u32(uint32_t(gids.size()));
  for (uint32_t g : gids) c.u32(g);
  return c.bytes();
}

Bytes rpc_call(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, ByteView body) {
  XdrWriter x;
  Bytes b = call_head(x, xid, prog, vers, proc).bytes();
  put_bytes(b, body);
  return b;
}

Bytes rpc_reply(uint32_t xid, ByteView body) {
  Bytes b = XdrWriter().reply_header(xid).bytes();
  put_bytes(b, body);
  return b;
}

XdrWriter& write3_head(XdrWriter& x, ByteView fh, uint64_t offset, uint32_t count, uint32_t stable, uint32_t data_len) {
  return x.opaque(fh).u64(offset).u32(count).u32(stable).u32(data_len);
}

XdrWriter& read3_args(XdrWriter& x, ByteView fh, uint64_t offset, uint32_t count) {
  return x.opaque(fh).u64(offset).u32(count);
}

XdrWriter& sattr3_none(XdrWriter& x) {
  for (int i = 0; i < 6; i++) x.u32(0);
  return x;
}

XdrWriter& fattr3(XdrWriter& x, const Fattr3& a) {
  x.u32(a.type).u32(a.mode).u32(a.nlink).u32(a.uid).u32(a.gid).u64(a.size).u64(a.used).u32(a.rdev1).u32(a.rdev2);
  x.u64(a.fsid).u64(a.fileid);
  for (const NfsTime& t : {a.atime, a.mtime, a.ctime}) x.u32(t.sec).u32(t.nsec);
  return x;
}

XdrWriter& post_op_attr(XdrWriter& x, const std::optional<Fattr3>& a) {
  x.u32(a ? 1 : 0);
  return a ? fattr3(x, *a) : x;
}

XdrWriter& pre_op_attr(XdrWriter& x, const std::optional<WccAttr>& a) {
  x.u32(a ? 1 : 0);
  if (a) x.u64(a->size).u32(a->mtime.sec).u32(a->mtime.nsec).u32(a->ctime.sec).u32(a->ctime.nsec);
  return x;
}

XdrWriter& write3res(XdrWriter& x, uint32_t status, const std::optional<WccAttr>& pre,
                     const std::optional<Fattr3>& post, uint32_t count, uint32_t committed, uint64_t verf) {
  x.u32(status);
  post_op_attr(pre_op_attr(x, pre), post);
  if (status == 0) x.u32(count).u32(committed).u64(verf);
  return x;
}

XdrWriter& dirop3res(XdrWriter& x, uint32_t proc, uint32_t status, bool follows, ByteView obj) {
  x.u32(status);
  if (status == 0) {
    if (proc == 3) return x.opaque(obj).u32(0).u32(0);  // object; obj_attributes, dir_attributes
    x.u32(follows ? 1 : 0);
    if (follows) x.opaque(obj);
    return x.u32(0).u32(0).u32(0);  // obj_attributes; dir_wcc: no pre_op_attr, no post_op_attr
  }
  return proc == 3 ? x.u32(0) : x.u32(0).u32(0);  // dir_attributes / dir_wcc
}

XdrWriter& fsstat3res(XdrWriter& x, uint32_t status, const std::optional<Fattr3>& attrs, const FsStat& st) {
  x.u32(status);
  post_op_attr(x, attrs);
  if (status != 0) return x;
  return x.u64(st.tbytes).u64(st.fbytes).u64(st.abytes).u64(st.tfiles).u64(st.ffiles).u64(st.afiles).u32(st.invarsec);
}

}  // namespace nfsfence::pkt
