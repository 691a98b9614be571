// NFSv3 (RFC 1813 section 3) and MOUNT v3 (RFC 1813 section 5) argument and result
// decoding with libtirpc XDR and the rpcgen types from nfs/nfs3_prot.x.
//
// Each message is decoded piece by piece (handle, then name, then ...) with the rpcgen
// functions of its parts, so that a body that stops early keeps what came before the cut.
// Linked lists (READDIR entries, MOUNT DUMP/EXPORT) are walked in a loop rather than with
// the generated recursive xdr_pointer chain, so a long list cannot exhaust the stack.
//
// Truncated vs Malformed: the XDR stream reads through an XdrReader (nfs/xdr_reader.h)
// and notes when a get ran out of bytes. A failed decode that ran out of bytes is
// Truncated; any other failure (length above its bound, undefined union arm, boolean
// other than 0/1) is Malformed, as are enumeration values RFC 1813 does not define.
#include "nfs/nfs3.h"
#include "nfs/rpc.h"
#include "nfs/xdr_reader.h"

#include <cstring>
#include <type_traits>

#include "nfs3_prot.h"

namespace nfsfence {

// nfs3_prot.x names the program numbers too (for rpcgen); they are nfs/rpc.h's.
static_assert(kProgNfs == NFS_PROGRAM && kProgMount == MOUNT_PROGRAM);

namespace {

// ---------------------------------------------------------------- XDR stream

// The XDR stream the rpcgen functions decode from: every get goes through one XdrReader
// over `body`, which fails only when the bytes run out; the stream remembers that it did.
// Gets behave as libtirpc's xdrmem stream's (a word is zero-extended into the long);
// XDR_INLINE always answers "not buffered", so the generated code reads field by field,
// as it does from an unaligned xdrmem buffer. Encoding is refused.
class XdrIn {
 public:
  explicit XdrIn(ByteView body) : r_(body) {
    x_.x_op = XDR_DECODE;
    x_.x_ops = &kOps;
    x_.x_private = this;
  }
  XdrIn(const XdrIn&) = delete;
  XdrIn& operator=(const XdrIn&) = delete;

  XDR* x() { return &x_; }
  // The next 4 bytes as a big-endian number without consuming them (0 if there are none).
  uint32_t peek_u32() const {
    uint32_t v = 0;
    return r_.peek_u32(v) ? v : 0;
  }
  // The result for a decode step that just failed.
  DecodeResult failure() const { return underflow_ ? DecodeResult::Truncated : DecodeResult::Malformed; }

 private:
  using Ops = std::remove_cv_t<std::remove_pointer_t<decltype(XDR::x_ops)>>;
  static XdrIn& self(XDR* x) { return *static_cast<XdrIn*>(x->x_private); }
  bool_t ran_out() {
    underflow_ = true;
    return FALSE;
  }
  static bool_t getlong(XDR* x, long* lp) {
    uint32_t v = 0;
    if (!self(x).r_.u32(v)) return self(x).ran_out();
    *lp = long(v);
    return TRUE;
  }
  static bool_t getbytes(XDR* x, char* p, u_int n) {
    ByteView b;
    if (!self(x).r_.bytes(n, b)) return self(x).ran_out();
    if (n) std::memcpy(p, b.data(), n);
    return TRUE;
  }
  static u_int getpostn(XDR* x) { return u_int(self(x).r_.pos()); }
  static bool_t setpostn(XDR* x, u_int pos) { return self(x).r_.seek(pos) ? TRUE : FALSE; }
  static int32_t* no_inline(XDR*, u_int) { return nullptr; }
  static bool_t putlong(XDR*, const long*) { return FALSE; }
  static bool_t putbytes(XDR*, const char*, u_int) { return FALSE; }
  static void destroy(XDR*) {}
  static bool_t control(XDR*, int, void*) { return FALSE; }
  static constexpr Ops kOps{
      .x_getlong = getlong,
      .x_putlong = putlong,
      .x_getbytes = getbytes,
      .x_putbytes = putbytes,
      .x_getpostn = getpostn,
      .x_setpostn = setpostn,
      .x_inline = no_inline,
      .x_destroy = destroy,
      .x_control = control,
  };

  XdrReader r_;
  XDR x_{};
  bool underflow_ = false;
};

// A value of an rpcgen type, zeroed before decoding and released with xdr_free after.
template <class T>
class Owned {
 public:
  using Fn = bool_t (*)(XDR*, T*);
  explicit Owned(Fn fn) : fn_(fn) { std::memset(static_cast<void*>(&v_), 0, sizeof v_); }
  ~Owned() { xdr_free(reinterpret_cast<xdrproc_t>(fn_), static_cast<void*>(&v_)); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  bool decode(XdrIn& in) { return fn_(in.x(), &v_) != 0; }
  T& operator*() { return v_; }
  T* operator->() { return &v_; }

 private:
  T v_;
  Fn fn_;
};

#define NFSF_TRY(expr)                                               \
  do {                                                               \
    if (DecodeResult r_ = (expr); r_ != DecodeResult::Ok) return r_; \
  } while (0)

// ---------------------------------------------------------------- enumerations

}  // namespace

// nfsstat3 values defined by RFC 1813.
bool valid_nfsstat3(uint32_t s) {
  switch (s) {
    case 0:
    case 1:
    case 2:
    case 5:
    case 6:
    case 13:
    case 17:
    case 18:
    case 19:
    case 20:
    case 21:
    case 22:
    case 27:
    case 28:
    case 30:
    case 31:
    case 63:
    case 66:
    case 69:
    case 70:
    case 71:
      return true;
    default:
      return s >= 10001 && s <= 10008;
  }
}

namespace {

bool valid_mountstat3(uint32_t s) {
  switch (s) {
    case 0:
    case 1:
    case 2:
    case 5:
    case 13:
    case 20:
    case 22:
    case 63:
    case 10004:
    case 10006:
      return true;
    default:
      return false;
  }
}

bool valid_ftype3(uint32_t t) { return t >= 1 && t <= 7; }
bool valid_stable_how(uint32_t s) { return s <= 2; }

// ---------------------------------------------------------------- conversions

Bytes to_bytes(const char* p, u_int n) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return n ? Bytes(b, b + n) : Bytes{};
}

// The raw word XDR stored in an enum field. An undefined value is not a valid value of the
// C++ enum type, so it is read as the integer that xdr_enum wrote.
template <class E>
uint32_t raw_enum(const E& e) {
  static_assert(sizeof(E) == sizeof(uint32_t));
  uint32_t v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

Attr to_attr(const fattr3& a) {
  Attr r;
  r.type = raw_enum(a.type);
  r.size = a.size;
  r.used = a.used;
  r.fileid = a.fileid;
  r.nlink = a.nlink;
  r.ctime_ns = uint64_t(a.ctime.seconds) * 1000000000ull + a.ctime.nseconds;
  return r;
}

// post_op_attr -> optional Attr; false when the attributes carry an undefined file type.
bool from_post_op(const post_op_attr& p, std::optional<Attr>& dst) {
  if (!p.attributes_follow) return true;
  const fattr3& a = p.post_op_attr_u.attributes;
  if (!valid_ftype3(raw_enum(a.type))) return false;
  dst = to_attr(a);
  return true;
}

// ---------------------------------------------------------------- pieces

DecodeResult get_u32(XdrIn& in, uint32_t& v) {
  u_int t = 0;
  if (!xdr_u_int(in.x(), &t)) return in.failure();
  v = t;
  return DecodeResult::Ok;
}

DecodeResult get_u64(XdrIn& in, uint64_t& v) {
  u_quad_t t = 0;
  if (!xdr_u_quad_t(in.x(), &t)) return in.failure();
  v = t;
  return DecodeResult::Ok;
}

DecodeResult get_bool(XdrIn& in, bool& v) {
  bool_t t = FALSE;
  if (!xdr_bool(in.x(), &t)) return in.failure();
  v = t != FALSE;
  return DecodeResult::Ok;
}

DecodeResult get_fh(XdrIn& in, std::optional<Bytes>& dst) {
  Owned<nfs_fh3> fh(xdr_nfs_fh3);
  if (!fh.decode(in)) return in.failure();
  dst = to_bytes(fh->data.data_val, fh->data.data_len);
  return DecodeResult::Ok;
}

DecodeResult get_string(XdrIn& in, bool_t (*fn)(XDR*, char**), std::optional<std::string>& dst) {
  // xdr_string NUL-terminates what it decoded; the length comes from the XDR itself so
  // that a name holding a NUL byte is kept whole (a server can be sent one).
  uint32_t len = in.peek_u32();
  Owned<char*> s(fn);
  if (!s.decode(in)) return in.failure();
  dst = *s ? std::string(*s, len) : std::string();
  return DecodeResult::Ok;
}

DecodeResult get_diropargs(XdrIn& in, std::optional<Bytes>& fh, std::optional<std::string>& name) {
  NFSF_TRY(get_fh(in, fh));
  return get_string(in, xdr_filename3, name);
}

DecodeResult get_post_op(XdrIn& in, std::optional<Attr>& dst) {
  Owned<post_op_attr> p(xdr_post_op_attr);
  if (!p.decode(in)) return in.failure();
  return from_post_op(*p, dst) ? DecodeResult::Ok : DecodeResult::Malformed;
}

// wcc_data; `after` gets the post-operation attributes when present.
DecodeResult get_wcc(XdrIn& in, std::optional<Attr>& after) {
  Owned<wcc_data> w(xdr_wcc_data);
  if (!w.decode(in)) return in.failure();
  return from_post_op(w->after, after) ? DecodeResult::Ok : DecodeResult::Malformed;
}

DecodeResult get_post_op_fh(XdrIn& in, std::optional<Bytes>& dst) {
  Owned<post_op_fh3> p(xdr_post_op_fh3);
  if (!p.decode(in)) return in.failure();
  if (p->handle_follows) {
    const nfs_fh3& h = p->post_op_fh3_u.handle;
    dst = to_bytes(h.data.data_val, h.data.data_len);
  }
  return DecodeResult::Ok;
}

// Decodes and discards one value of an rpcgen type.
template <class T>
DecodeResult skip(XdrIn& in, bool_t (*fn)(XDR*, T*)) {
  Owned<T> v(fn);
  return v.decode(in) ? DecodeResult::Ok : in.failure();
}

DecodeResult get_nfsstat(XdrIn& in, NfsFields& out) {
  uint32_t s = 0;
  NFSF_TRY(get_u32(in, s));
  if (!valid_nfsstat3(s)) return DecodeResult::Malformed;
  out.status = s;
  return DecodeResult::Ok;
}

// ---------------------------------------------------------------- NFSv3 calls

DecodeResult nfs3_call(uint32_t proc, XdrIn& in, NfsFields& out) {
  switch (proc) {
    case NFS3_NULL:
      return DecodeResult::Ok;
    case NFS3_GETATTR:
    case NFS3_READLINK:
    case NFS3_FSSTAT:
    case NFS3_FSINFO:
    case NFS3_PATHCONF:
      return get_fh(in, out.fh);
    case NFS3_SETATTR:
      NFSF_TRY(get_fh(in, out.fh));
      NFSF_TRY(skip(in, xdr_sattr3));
      return skip(in, xdr_sattrguard3);
    case NFS3_ACCESS: {
      NFSF_TRY(get_fh(in, out.fh));
      uint32_t access = 0;
      return get_u32(in, access);
    }
    case NFS3_LOOKUP:
    case NFS3_REMOVE:
    case NFS3_RMDIR:
      return get_diropargs(in, out.dir_fh, out.name);
    case NFS3_CREATE:
      NFSF_TRY(get_diropargs(in, out.dir_fh, out.name));
      return skip(in, xdr_createhow3);
    case NFS3_MKDIR:
      NFSF_TRY(get_diropargs(in, out.dir_fh, out.name));
      return skip(in, xdr_sattr3);
    case NFS3_SYMLINK:
      NFSF_TRY(get_diropargs(in, out.dir_fh, out.name));
      NFSF_TRY(skip(in, xdr_sattr3));
      return get_string(in, xdr_nfspath3, out.path);
    case NFS3_MKNOD:
      NFSF_TRY(get_diropargs(in, out.dir_fh, out.name));
      return skip(in, xdr_mknoddata3);
    case NFS3_RENAME:
      NFSF_TRY(get_diropargs(in, out.dir_fh, out.name));
      return get_diropargs(in, out.to_dir_fh, out.to_name);
    case NFS3_LINK:
      NFSF_TRY(get_fh(in, out.fh));
      return get_diropargs(in, out.to_dir_fh, out.to_name);
    case NFS3_READ:
    case NFS3_COMMIT: {
      NFSF_TRY(get_fh(in, out.fh));
      uint64_t off = 0;
      NFSF_TRY(get_u64(in, off));
      out.offset = off;
      uint32_t cnt = 0;
      NFSF_TRY(get_u32(in, cnt));
      out.count = cnt;
      return DecodeResult::Ok;
    }
    case NFS3_WRITE: {
      // file, offset, count, stable; the data (and its length word) are not needed.
      NFSF_TRY(get_fh(in, out.fh));
      uint64_t off = 0;
      NFSF_TRY(get_u64(in, off));
      out.offset = off;
      uint32_t cnt = 0;
      NFSF_TRY(get_u32(in, cnt));
      out.count = cnt;
      uint32_t stable = 0;
      NFSF_TRY(get_u32(in, stable));
      if (!valid_stable_how(stable)) return DecodeResult::Malformed;
      out.stable = stable;
      return DecodeResult::Ok;
    }
    case NFS3_READDIR:
    case NFS3_READDIRPLUS: {
      NFSF_TRY(get_fh(in, out.fh));
      uint64_t cookie = 0;
      NFSF_TRY(get_u64(in, cookie));
      NFSF_TRY(skip(in, xdr_cookieverf3));
      uint32_t cnt = 0;
      NFSF_TRY(get_u32(in, cnt));  // READDIR count, READDIRPLUS dircount
      out.count = cnt;
      if (proc == NFS3_READDIRPLUS) {
        uint32_t maxcount = 0;
        NFSF_TRY(get_u32(in, maxcount));
      }
      return DecodeResult::Ok;
    }
    default:
      return DecodeResult::Unsupported;
  }
}

// ---------------------------------------------------------------- NFSv3 replies

DecodeResult readdir_entries(XdrIn& in, bool plus, NfsFields& out) {
  for (;;) {
    bool more = false;
    NFSF_TRY(get_bool(in, more));
    if (!more) break;
    DirEntryPlus e;
    NFSF_TRY(get_u64(in, e.fileid));
    std::optional<std::string> name;
    NFSF_TRY(get_string(in, xdr_filename3, name));
    e.name = std::move(*name);
    NFSF_TRY(get_u64(in, e.cookie));
    if (plus) {
      NFSF_TRY(get_post_op(in, e.attr));
      NFSF_TRY(get_post_op_fh(in, e.fh));
      out.entries.push_back(std::move(e));
    }
  }
  bool eof = false;
  NFSF_TRY(get_bool(in, eof));
  out.eof = eof;
  return DecodeResult::Ok;
}

DecodeResult nfs3_reply(uint32_t proc, XdrIn& in, NfsFields& out) {
  if (proc == NFS3_NULL) return DecodeResult::Ok;
  if (proc > NFS3_COMMIT) return DecodeResult::Unsupported;
  NFSF_TRY(get_nfsstat(in, out));
  const bool ok = *out.status == 0;

  switch (proc) {
    case NFS3_GETATTR: {
      if (!ok) return DecodeResult::Ok;
      Owned<fattr3> a(xdr_fattr3);
      if (!a.decode(in)) return in.failure();
      if (!valid_ftype3(raw_enum(a->type))) return DecodeResult::Malformed;
      out.attr = to_attr(*a);
      return DecodeResult::Ok;
    }
    case NFS3_SETATTR:  // obj_wcc in both arms
      return get_wcc(in, out.attr);
    case NFS3_LOOKUP:
      if (ok) {
        NFSF_TRY(get_fh(in, out.obj_fh));
        NFSF_TRY(get_post_op(in, out.attr));
      }
      return get_post_op(in, out.dir_attr);
    case NFS3_ACCESS: {
      NFSF_TRY(get_post_op(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      uint32_t access = 0;
      return get_u32(in, access);
    }
    case NFS3_READLINK:
      NFSF_TRY(get_post_op(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      return get_string(in, xdr_nfspath3, out.path);
    case NFS3_READ: {
      // file_attributes, count, eof; the data (and its length word) are not needed.
      NFSF_TRY(get_post_op(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      uint32_t cnt = 0;
      NFSF_TRY(get_u32(in, cnt));
      out.res_count = cnt;
      bool eof = false;
      NFSF_TRY(get_bool(in, eof));
      out.eof = eof;
      return DecodeResult::Ok;
    }
    case NFS3_WRITE: {
      NFSF_TRY(get_wcc(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      uint32_t cnt = 0;
      NFSF_TRY(get_u32(in, cnt));
      out.res_count = cnt;
      uint32_t committed = 0;
      NFSF_TRY(get_u32(in, committed));
      if (!valid_stable_how(committed)) return DecodeResult::Malformed;
      return skip(in, xdr_writeverf3);
    }
    case NFS3_CREATE:
    case NFS3_MKDIR:
    case NFS3_SYMLINK:
    case NFS3_MKNOD:
      if (ok) {
        NFSF_TRY(get_post_op_fh(in, out.obj_fh));
        NFSF_TRY(get_post_op(in, out.attr));
      }
      return get_wcc(in, out.dir_attr);
    case NFS3_REMOVE:
    case NFS3_RMDIR:
      return get_wcc(in, out.dir_attr);
    case NFS3_RENAME: {
      NFSF_TRY(get_wcc(in, out.dir_attr));  // fromdir_wcc
      std::optional<Attr> todir;
      return get_wcc(in, todir);
    }
    case NFS3_LINK:
      NFSF_TRY(get_post_op(in, out.attr));
      return get_wcc(in, out.dir_attr);
    case NFS3_READDIR:
    case NFS3_READDIRPLUS:
      NFSF_TRY(get_post_op(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      {
        char verf[NFS3_COOKIEVERFSIZE];
        if (!xdr_opaque(in.x(), verf, NFS3_COOKIEVERFSIZE)) return in.failure();
        out.cookieverf = Bytes(verf, verf + NFS3_COOKIEVERFSIZE);
      }
      return readdir_entries(in, proc == NFS3_READDIRPLUS, out);
    case NFS3_FSSTAT: {
      if (!ok) return get_post_op(in, out.attr);
      Owned<FSSTAT3resok> r(xdr_FSSTAT3resok);
      if (!r.decode(in)) return in.failure();
      out.fsstat = FsStatRes{r->tbytes, r->fbytes, r->abytes, r->tfiles, r->ffiles, r->afiles};
      return from_post_op(r->obj_attributes, out.attr) ? DecodeResult::Ok : DecodeResult::Malformed;
    }
    case NFS3_FSINFO: {
      if (!ok) return get_post_op(in, out.attr);
      Owned<FSINFO3resok> r(xdr_FSINFO3resok);
      if (!r.decode(in)) return in.failure();
      return from_post_op(r->obj_attributes, out.attr) ? DecodeResult::Ok : DecodeResult::Malformed;
    }
    case NFS3_PATHCONF: {
      if (!ok) return get_post_op(in, out.attr);
      Owned<PATHCONF3resok> r(xdr_PATHCONF3resok);
      if (!r.decode(in)) return in.failure();
      return from_post_op(r->obj_attributes, out.attr) ? DecodeResult::Ok : DecodeResult::Malformed;
    }
    case NFS3_COMMIT:
      NFSF_TRY(get_wcc(in, out.attr));
      if (!ok) return DecodeResult::Ok;
      return skip(in, xdr_writeverf3);
    default:
      return DecodeResult::Unsupported;
  }
}

// ---------------------------------------------------------------- MOUNT v3

DecodeResult mount3_call(uint32_t proc, XdrIn& in, NfsFields& out) {
  switch (proc) {
    case MOUNT3_NULL:
    case MOUNT3_DUMP:
    case MOUNT3_UMNTALL:
    case MOUNT3_EXPORT:
      return DecodeResult::Ok;
    case MOUNT3_MNT:
    case MOUNT3_UMNT:
      return get_string(in, xdr_mnt3_dirpath, out.path);
    default:
      return DecodeResult::Unsupported;
  }
}

DecodeResult mount3_reply(uint32_t proc, XdrIn& in, NfsFields& out) {
  switch (proc) {
    case MOUNT3_NULL:
    case MOUNT3_UMNT:
    case MOUNT3_UMNTALL:
      return DecodeResult::Ok;
    case MOUNT3_MNT: {
      uint32_t s = 0;
      NFSF_TRY(get_u32(in, s));
      if (!valid_mountstat3(s)) return DecodeResult::Malformed;
      out.status = s;
      if (s != 0) return DecodeResult::Ok;
      Owned<mnt3_mountres_ok> r(xdr_mnt3_mountres_ok);
      if (!r.decode(in)) return in.failure();
      out.obj_fh = to_bytes(r->fhandle.mnt3_fhandle_val, r->fhandle.mnt3_fhandle_len);
      return DecodeResult::Ok;
    }
    case MOUNT3_DUMP:  // mountlist: { hostname, directory }*
      for (;;) {
        bool more = false;
        NFSF_TRY(get_bool(in, more));
        if (!more) return DecodeResult::Ok;
        std::optional<std::string> host, dir;
        NFSF_TRY(get_string(in, xdr_mnt3_name, host));
        NFSF_TRY(get_string(in, xdr_mnt3_dirpath, dir));
      }
    case MOUNT3_EXPORT:  // exports: { dir, groups: { name }* }*
      for (;;) {
        bool more = false;
        NFSF_TRY(get_bool(in, more));
        if (!more) return DecodeResult::Ok;
        std::optional<std::string> dir;
        NFSF_TRY(get_string(in, xdr_mnt3_dirpath, dir));
        for (;;) {
          bool group = false;
          NFSF_TRY(get_bool(in, group));
          if (!group) break;
          std::optional<std::string> name;
          NFSF_TRY(get_string(in, xdr_mnt3_name, name));
        }
      }
    default:
      return DecodeResult::Unsupported;
  }
}

bool is_nfs3(uint32_t prog, uint32_t vers) { return prog == kProgNfs && vers == 3; }
bool is_mount3(uint32_t prog, uint32_t vers) { return prog == kProgMount && vers == 3; }

}  // namespace

// ---------------------------------------------------------------- public

const char* nfs3_proc_name(uint32_t proc) {
  static constexpr const char* kNames[] = {"NULL",   "GETATTR", "SETATTR",  "LOOKUP", "ACCESS",  "READLINK",
                                           "READ",   "WRITE",   "CREATE",   "MKDIR",  "SYMLINK", "MKNOD",
                                           "REMOVE", "RMDIR",   "RENAME",   "LINK",   "READDIR", "READDIRPLUS",
                                           "FSSTAT", "FSINFO",  "PATHCONF", "COMMIT"};
  return proc < std::size(kNames) ? kNames[proc] : nullptr;
}

const char* mount3_proc_name(uint32_t proc) {
  static constexpr const char* kNames[] = {"NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"};
  return proc < std::size(kNames) ? kNames[proc] : nullptr;
}

DecodeResult decode_call(uint32_t prog, uint32_t vers, uint32_t proc, ByteView body, NfsFields& out) {
  if (is_nfs3(prog, vers)) {
    if (proc > NFS3_COMMIT) return DecodeResult::Unsupported;
    XdrIn in(body);
    return nfs3_call(proc, in, out);
  }
  if (is_mount3(prog, vers)) {
    if (proc > MOUNT3_EXPORT) return DecodeResult::Unsupported;
    XdrIn in(body);
    return mount3_call(proc, in, out);
  }
  return DecodeResult::Unsupported;
}

DecodeResult decode_reply(uint32_t prog, uint32_t vers, uint32_t proc, ByteView body, NfsFields& out) {
  if (is_nfs3(prog, vers)) {
    if (proc > NFS3_COMMIT) return DecodeResult::Unsupported;
    XdrIn in(body);
    return nfs3_reply(proc, in, out);
  }
  if (is_mount3(prog, vers)) {
    if (proc > MOUNT3_EXPORT) return DecodeResult::Unsupported;
    XdrIn in(body);
    return mount3_reply(proc, in, out);
  }
  return DecodeResult::Unsupported;
}

size_t needed_prefix(uint32_t prog, uint32_t vers, uint32_t proc, bool is_call, size_t body_offset,
                     uint64_t record_len) {
  constexpr uint64_t kMaxMetadata = 4u << 20;  // 4 MiB
  uint64_t need = std::min<uint64_t>(record_len, kMaxMetadata);
  if (is_nfs3(prog, vers)) {
    if (is_call && proc == NFS3_WRITE) {
      need = body_offset + kWriteHeadMax;
    } else if (!is_call && proc == NFS3_READ) {
      need = body_offset + kReadHeadMax;
    }
  }
  return static_cast<size_t>(std::min<uint64_t>(need, record_len));
}

}  // namespace nfsfence
