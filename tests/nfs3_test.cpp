// NFSv3 / MOUNT v3 decoding. Fixtures are encoded with libtirpc (XDR_ENCODE) and the
// rpcgen types (whole unions and structs), while the decoder reads them piece by piece;
// garbage is written word by word with a raw encoder.
#include <gtest/gtest.h>

#include <random>

#include "nfs/nfs3.h"
#include "nfs/rpc.h"
#include "nfs3_prot.h"

namespace nfsfence {
namespace {

// ---------------------------------------------------------------- encoders

class Enc {
 public:
  explicit Enc(size_t cap = 1 << 20) : buf_(cap) {
    xdrmem_create(&x_, reinterpret_cast<char*>(buf_.data()), u_int(buf_.size()), XDR_ENCODE);
  }
  ~Enc() { xdr_destroy(&x_); }
  template <class T>
  Enc& put(bool_t (*fn)(XDR*, T*), const T& v) {
    EXPECT_TRUE(fn(&x_, const_cast<T*>(&v)));
    return *this;
  }
  Enc& u32(uint32_t v) {
    u_int t = v;
    EXPECT_TRUE(xdr_u_int(&x_, &t));
    return *this;
  }
  Enc& u64(uint64_t v) {
    u_quad_t t = v;
    EXPECT_TRUE(xdr_u_quad_t(&x_, &t));
    return *this;
  }
  Enc& opaque(const Bytes& d) {
    u32(uint32_t(d.size()));
    char* p = const_cast<char*>(reinterpret_cast<const char*>(d.data()));
    EXPECT_TRUE(xdr_opaque(&x_, p, u_int(d.size())));
    return *this;
  }
  Enc& str(const std::string& s) { return opaque(Bytes(s.begin(), s.end())); }
  Bytes bytes() { return Bytes(buf_.begin(), buf_.begin() + xdr_getpos(&x_)); }

 private:
  Bytes buf_;
  XDR x_;
};

template <class T>
Bytes enc(bool_t (*fn)(XDR*, T*), const T& v) {
  return Enc().put(fn, v).bytes();
}

// ---------------------------------------------------------------- fixture values

const Bytes kFh1 = {0x01, 0x00, 0x07, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0x10, 0x20, 0x30, 0x40, 0x55};
const Bytes kFh2 = Bytes(32, 0x42);
const Bytes kFh3 = Bytes(64, 0x7e);

nfs_fh3 fh3(const Bytes& b) {
  nfs_fh3 f{};
  f.data.data_len = u_int(b.size());
  f.data.data_val = const_cast<char*>(reinterpret_cast<const char*>(b.data()));
  return f;
}

char* cstr(const char* s) { return const_cast<char*>(s); }

// Stores any word in an rpcgen enum field (undefined values included) without forming an
// out-of-range C++ enum value.
template <class E>
void set_enum(E& e, uint32_t v) {
  static_assert(sizeof(E) == sizeof(uint32_t));
  std::memcpy(&e, &v, sizeof v);
}

fattr3 fattr(uint32_t type, uint64_t size, uint64_t fileid, uint32_t nlink = 1) {
  fattr3 a{};
  set_enum(a.type, type);
  a.mode = 0644;
  a.nlink = nlink;
  a.uid = 1000;
  a.gid = 100;
  a.size = size;
  a.used = (size + 4095) & ~uint64_t(4095);
  a.fsid = 0x1234;
  a.fileid = fileid;
  a.atime = {1700000000, 1};
  a.mtime = {1700000001, 2};
  a.ctime = {1700000002, 3};
  return a;
}

const fattr3 kFileAttr = fattr(1, 123456789, 777, 1);
const fattr3 kDirAttr = fattr(2, 4096, 2, 5);
const fattr3 kDir2Attr = fattr(2, 8192, 3, 3);

post_op_attr pattr(const fattr3& a) {
  post_op_attr p{};
  p.attributes_follow = TRUE;
  p.post_op_attr_u.attributes = a;
  return p;
}
post_op_attr no_attr() { return post_op_attr{}; }

wcc_data wcc(const fattr3* after) {
  wcc_data w{};
  w.before.attributes_follow = TRUE;
  w.before.pre_op_attr_u.attributes.size = 1;
  w.before.pre_op_attr_u.attributes.mtime = {5, 6};
  w.before.pre_op_attr_u.attributes.ctime = {7, 8};
  if (after) w.after = pattr(*after);
  return w;
}

sattr3 sattr_mode(uint32_t mode) {
  sattr3 s{};
  s.mode.set_it = TRUE;
  s.mode.set_mode3_u.mode = mode;
  s.atime.set_it = SET_TO_SERVER_TIME;
  s.mtime.set_it = SET_TO_CLIENT_TIME;
  s.mtime.set_mtime_u.mtime = {99, 1};
  return s;
}

diropargs3 dirop(const Bytes& dir, const char* name) {
  diropargs3 d{};
  d.dir = fh3(dir);
  d.name = cstr(name);
  return d;
}

post_op_fh3 pfh(const Bytes& b) {
  post_op_fh3 p{};
  p.handle_follows = TRUE;
  p.post_op_fh3_u.handle = fh3(b);
  return p;
}

void expect_attr(const std::optional<Attr>& got, const fattr3& want) {
  ASSERT_TRUE(got.has_value());
  uint32_t want_type;
  std::memcpy(&want_type, &want.type, sizeof want_type);
  EXPECT_EQ(got->type, want_type);
  EXPECT_EQ(got->size, want.size);
  EXPECT_EQ(got->used, want.used);
  EXPECT_EQ(got->fileid, want.fileid);
  EXPECT_EQ(got->nlink, want.nlink);
}

constexpr uint32_t kNfs = kProgNfs, kMount = kProgMount;

NfsFields call(uint32_t proc, const Bytes& body, DecodeResult want = DecodeResult::Ok) {
  NfsFields f;
  EXPECT_EQ(decode_call(kNfs, 3, proc, body, f), want) << nfs3_proc_name(proc);
  return f;
}
NfsFields reply(uint32_t proc, const Bytes& body, DecodeResult want = DecodeResult::Ok) {
  NfsFields f;
  EXPECT_EQ(decode_reply(kNfs, 3, proc, body, f), want) << nfs3_proc_name(proc);
  return f;
}

// Every strict prefix of a complete message must report Truncated (never crash, never Ok).
void expect_truncated_prefixes(uint32_t prog, uint32_t proc, bool is_call, const Bytes& body) {
  for (size_t n = 0; n < body.size(); ++n) {
    NfsFields f;
    ByteView v(body.data(), n);
    DecodeResult r = is_call ? decode_call(prog, 3, proc, v, f) : decode_reply(prog, 3, proc, v, f);
    EXPECT_EQ(r, DecodeResult::Truncated) << "proc " << proc << " call " << is_call << " prefix " << n;
  }
}

// ---------------------------------------------------------------- names, dispatch

TEST(Nfs3, ProcNames) {
  EXPECT_STREQ(nfs3_proc_name(0), "NULL");
  EXPECT_STREQ(nfs3_proc_name(7), "WRITE");
  EXPECT_STREQ(nfs3_proc_name(17), "READDIRPLUS");
  EXPECT_STREQ(nfs3_proc_name(21), "COMMIT");
  EXPECT_EQ(nfs3_proc_name(22), nullptr);
  EXPECT_STREQ(mount3_proc_name(1), "MNT");
  EXPECT_STREQ(mount3_proc_name(5), "EXPORT");
  EXPECT_EQ(mount3_proc_name(6), nullptr);
}

TEST(Nfs3, Unsupported) {
  NfsFields f;
  Bytes b(16, 0);
  EXPECT_EQ(decode_call(kNfs, 3, 22, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_reply(kNfs, 3, 22, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_call(kNfs, 4, 1, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_call(kNfs, 2, 1, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_call(kMount, 1, 1, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_call(kMount, 3, 6, b, f), DecodeResult::Unsupported);
  EXPECT_EQ(decode_call(kProgNlm, 4, 1, b, f), DecodeResult::Unsupported);
}

TEST(Nfs3, Null) {
  NfsFields f = call(NFS3_NULL, {});
  EXPECT_FALSE(f.fh);
  f = reply(NFS3_NULL, {});
  EXPECT_FALSE(f.status);
}

// ---------------------------------------------------------------- calls

TEST(Nfs3Call, FhOnlyProcedures) {
  GETATTR3args g{fh3(kFh1)};
  EXPECT_EQ(call(NFS3_GETATTR, enc(xdr_GETATTR3args, g)).fh, kFh1);
  READLINK3args rl{fh3(kFh2)};
  EXPECT_EQ(call(NFS3_READLINK, enc(xdr_READLINK3args, rl)).fh, kFh2);
  FSSTAT3args fs{fh3(kFh3)};
  EXPECT_EQ(call(NFS3_FSSTAT, enc(xdr_FSSTAT3args, fs)).fh, kFh3);
  FSINFO3args fi{fh3(kFh1)};
  EXPECT_EQ(call(NFS3_FSINFO, enc(xdr_FSINFO3args, fi)).fh, kFh1);
  PATHCONF3args pc{fh3(Bytes{})};
  EXPECT_EQ(call(NFS3_PATHCONF, enc(xdr_PATHCONF3args, pc)).fh, Bytes{});
  ACCESS3args ac{fh3(kFh2), ACCESS3_READ | ACCESS3_MODIFY};
  NfsFields f = call(NFS3_ACCESS, enc(xdr_ACCESS3args, ac));
  EXPECT_EQ(f.fh, kFh2);
  EXPECT_FALSE(f.name);
}

TEST(Nfs3Call, Setattr) {
  SETATTR3args a{};
  a.object = fh3(kFh1);
  a.new_attributes = sattr_mode(0600);
  a.new_attributes.size.set_it = TRUE;
  a.new_attributes.size.set_size3_u.size = 0;
  a.guard.check = TRUE;
  a.guard.sattrguard3_u.obj_ctime = {1, 2};
  Bytes b = enc(xdr_SETATTR3args, a);
  EXPECT_EQ(call(NFS3_SETATTR, b).fh, kFh1);
  expect_truncated_prefixes(kNfs, NFS3_SETATTR, true, b);
}

TEST(Nfs3Call, DirOps) {
  LOOKUP3args l{dirop(kFh1, "hello.txt")};
  NfsFields f = call(NFS3_LOOKUP, enc(xdr_LOOKUP3args, l));
  EXPECT_EQ(f.dir_fh, kFh1);
  EXPECT_EQ(f.name, "hello.txt");
  EXPECT_FALSE(f.fh);

  REMOVE3args r{dirop(kFh2, "gone")};
  f = call(NFS3_REMOVE, enc(xdr_REMOVE3args, r));
  EXPECT_EQ(f.dir_fh, kFh2);
  EXPECT_EQ(f.name, "gone");

  RMDIR3args rd{dirop(kFh3, "subdir")};
  f = call(NFS3_RMDIR, enc(xdr_RMDIR3args, rd));
  EXPECT_EQ(f.dir_fh, kFh3);
  EXPECT_EQ(f.name, "subdir");
}

TEST(Nfs3Call, CreateAllModes) {
  for (createmode3 m : {UNCHECKED, GUARDED, EXCLUSIVE}) {
    CREATE3args c{};
    c.where = dirop(kFh1, "new");
    c.how.mode = m;
    if (m == EXCLUSIVE)
      std::memcpy(c.how.createhow3_u.verf, "12345678", 8);
    else
      c.how.createhow3_u.obj_attributes = sattr_mode(0640);
    Bytes b = enc(xdr_CREATE3args, c);
    NfsFields f = call(NFS3_CREATE, b);
    EXPECT_EQ(f.dir_fh, kFh1);
    EXPECT_EQ(f.name, "new");
    if (m == GUARDED) expect_truncated_prefixes(kNfs, NFS3_CREATE, true, b);
  }
}

TEST(Nfs3Call, MkdirSymlinkMknod) {
  MKDIR3args md{dirop(kFh2, "d"), sattr_mode(0755)};
  NfsFields f = call(NFS3_MKDIR, enc(xdr_MKDIR3args, md));
  EXPECT_EQ(f.dir_fh, kFh2);
  EXPECT_EQ(f.name, "d");

  SYMLINK3args s{};
  s.where = dirop(kFh1, "link");
  s.symlink.symlink_attributes = sattr_mode(0777);
  s.symlink.symlink_data = cstr("../target/file");
  Bytes sb = enc(xdr_SYMLINK3args, s);
  f = call(NFS3_SYMLINK, sb);
  EXPECT_EQ(f.dir_fh, kFh1);
  EXPECT_EQ(f.name, "link");
  EXPECT_EQ(f.path, "../target/file");
  expect_truncated_prefixes(kNfs, NFS3_SYMLINK, true, sb);

  for (uint32_t t = 1; t <= 7; ++t) {
    MKNOD3args m{};
    m.where = dirop(kFh3, "node");
    set_enum(m.what.type, t);
    if (t == ::NF3CHR || t == ::NF3BLK) {
      m.what.mknoddata3_u.device.dev_attributes = sattr_mode(0600);
      m.what.mknoddata3_u.device.spec = {8, 1};
    } else if (t == ::NF3SOCK || t == ::NF3FIFO) {
      m.what.mknoddata3_u.pipe_attributes = sattr_mode(0600);
    }
    f = call(NFS3_MKNOD, enc(xdr_MKNOD3args, m));
    EXPECT_EQ(f.dir_fh, kFh3);
    EXPECT_EQ(f.name, "node");
  }
}

TEST(Nfs3Call, RenameAndLink) {
  RENAME3args r{dirop(kFh1, "a"), dirop(kFh2, "bb")};
  Bytes b = enc(xdr_RENAME3args, r);
  NfsFields f = call(NFS3_RENAME, b);
  EXPECT_EQ(f.dir_fh, kFh1);
  EXPECT_EQ(f.name, "a");
  EXPECT_EQ(f.to_dir_fh, kFh2);
  EXPECT_EQ(f.to_name, "bb");
  expect_truncated_prefixes(kNfs, NFS3_RENAME, true, b);
  // Cut inside the second name: the first half is kept.
  NfsFields part;
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_RENAME, ByteView(b.data(), b.size() - 2), part), DecodeResult::Truncated);
  EXPECT_EQ(part.dir_fh, kFh1);
  EXPECT_EQ(part.name, "a");
  EXPECT_EQ(part.to_dir_fh, kFh2);
  EXPECT_FALSE(part.to_name);

  LINK3args l{fh3(kFh3), dirop(kFh1, "hard")};
  f = call(NFS3_LINK, enc(xdr_LINK3args, l));
  EXPECT_EQ(f.fh, kFh3);
  EXPECT_EQ(f.to_dir_fh, kFh1);
  EXPECT_EQ(f.to_name, "hard");
  EXPECT_FALSE(f.dir_fh);
}

TEST(Nfs3Call, ReadWriteCommit) {
  READ3args r{fh3(kFh1), 1ull << 40, 131072};
  NfsFields f = call(NFS3_READ, enc(xdr_READ3args, r));
  EXPECT_EQ(f.fh, kFh1);
  EXPECT_EQ(f.offset, 1ull << 40);
  EXPECT_EQ(f.count, 131072u);

  COMMIT3args c{fh3(kFh2), 4096, 0};
  f = call(NFS3_COMMIT, enc(xdr_COMMIT3args, c));
  EXPECT_EQ(f.fh, kFh2);
  EXPECT_EQ(f.offset, 4096u);
  EXPECT_EQ(f.count, 0u);

  Bytes data(1000, 0x5a);
  WRITE3args w{};
  w.file = fh3(kFh3);
  w.offset = 8192;
  w.count = 1000;
  w.stable = FILE_SYNC;
  w.data.data_len = 1000;
  w.data.data_val = reinterpret_cast<char*>(data.data());
  Bytes b = enc(xdr_WRITE3args, w);
  f = call(NFS3_WRITE, b);
  EXPECT_EQ(f.fh, kFh3);
  EXPECT_EQ(f.offset, 8192u);
  EXPECT_EQ(f.count, 1000u);
  EXPECT_EQ(f.stable, 2u);
  // Only the head is needed: fh(4+64) offset count stable.
  size_t head = 4 + 64 + 8 + 4 + 4;
  for (size_t n = 0; n <= b.size(); ++n) {
    NfsFields p;
    DecodeResult res = decode_call(kNfs, 3, NFS3_WRITE, ByteView(b.data(), n), p);
    EXPECT_EQ(res, n >= head ? DecodeResult::Ok : DecodeResult::Truncated) << n;
    if (n >= 68) {
      EXPECT_EQ(p.fh, kFh3);
    }
  }
}

TEST(Nfs3Call, Readdir) {
  READDIR3args r{};
  r.dir = fh3(kFh1);
  r.cookie = 77;
  r.count = 4096;
  NfsFields f = call(NFS3_READDIR, enc(xdr_READDIR3args, r));
  EXPECT_EQ(f.fh, kFh1);
  EXPECT_EQ(f.count, 4096u);
  EXPECT_FALSE(f.offset);

  READDIRPLUS3args p{};
  p.dir = fh3(kFh2);
  p.cookie = 0;
  p.dircount = 8192;
  p.maxcount = 32768;
  Bytes b = enc(xdr_READDIRPLUS3args, p);
  f = call(NFS3_READDIRPLUS, b);
  EXPECT_EQ(f.fh, kFh2);
  EXPECT_EQ(f.count, 8192u);
  expect_truncated_prefixes(kNfs, NFS3_READDIRPLUS, true, b);
}

// ---------------------------------------------------------------- replies

TEST(Nfs3Reply, Getattr) {
  GETATTR3res ok{};
  ok.status = NFS3_OK;
  ok.GETATTR3res_u.resok.obj_attributes = kFileAttr;
  Bytes b = enc(xdr_GETATTR3res, ok);
  NfsFields f = reply(NFS3_GETATTR, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  expect_truncated_prefixes(kNfs, NFS3_GETATTR, false, b);

  GETATTR3res bad{};
  bad.status = NFS3ERR_STALE;
  f = reply(NFS3_GETATTR, enc(xdr_GETATTR3res, bad));
  EXPECT_EQ(f.status, 70u);
  EXPECT_FALSE(f.attr);
}

TEST(Nfs3Reply, Setattr) {
  SETATTR3res ok{};
  ok.status = NFS3_OK;
  ok.SETATTR3res_u.resok.obj_wcc = wcc(&kFileAttr);
  NfsFields f = reply(NFS3_SETATTR, enc(xdr_SETATTR3res, ok));
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);

  SETATTR3res bad{};
  bad.status = NFS3ERR_PERM;
  bad.SETATTR3res_u.resfail.obj_wcc = wcc(&kDirAttr);
  f = reply(NFS3_SETATTR, enc(xdr_SETATTR3res, bad));
  EXPECT_EQ(f.status, 1u);
  expect_attr(f.attr, kDirAttr);

  bad.SETATTR3res_u.resfail.obj_wcc = wcc(nullptr);
  f = reply(NFS3_SETATTR, enc(xdr_SETATTR3res, bad));
  EXPECT_FALSE(f.attr);
}

TEST(Nfs3Reply, Lookup) {
  LOOKUP3res ok{};
  ok.status = NFS3_OK;
  ok.LOOKUP3res_u.resok.object = fh3(kFh2);
  ok.LOOKUP3res_u.resok.obj_attributes = pattr(kFileAttr);
  ok.LOOKUP3res_u.resok.dir_attributes = pattr(kDirAttr);
  Bytes b = enc(xdr_LOOKUP3res, ok);
  NfsFields f = reply(NFS3_LOOKUP, b);
  EXPECT_EQ(f.status, 0u);
  EXPECT_EQ(f.obj_fh, kFh2);
  expect_attr(f.attr, kFileAttr);
  expect_attr(f.dir_attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_LOOKUP, false, b);
  // A cut after the object attributes keeps handle and attributes.
  NfsFields part;
  EXPECT_EQ(decode_reply(kNfs, 3, NFS3_LOOKUP, ByteView(b.data(), b.size() - 10), part), DecodeResult::Truncated);
  EXPECT_EQ(part.status, 0u);
  EXPECT_EQ(part.obj_fh, kFh2);
  expect_attr(part.attr, kFileAttr);
  EXPECT_FALSE(part.dir_attr);

  LOOKUP3res bad{};
  bad.status = NFS3ERR_NOENT;
  bad.LOOKUP3res_u.resfail.dir_attributes = pattr(kDirAttr);
  b = enc(xdr_LOOKUP3res, bad);
  f = reply(NFS3_LOOKUP, b);
  EXPECT_EQ(f.status, 2u);
  EXPECT_FALSE(f.obj_fh);
  EXPECT_FALSE(f.attr);
  expect_attr(f.dir_attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_LOOKUP, false, b);
}

TEST(Nfs3Reply, AccessReadlink) {
  ACCESS3res a{};
  a.status = NFS3_OK;
  a.ACCESS3res_u.resok.obj_attributes = pattr(kFileAttr);
  a.ACCESS3res_u.resok.access = 0x1f;
  NfsFields f = reply(NFS3_ACCESS, enc(xdr_ACCESS3res, a));
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  a.status = NFS3ERR_ACCES;
  a.ACCESS3res_u.resfail.obj_attributes = no_attr();
  f = reply(NFS3_ACCESS, enc(xdr_ACCESS3res, a));
  EXPECT_EQ(f.status, 13u);
  EXPECT_FALSE(f.attr);

  READLINK3res r{};
  r.status = NFS3_OK;
  r.READLINK3res_u.resok.symlink_attributes = pattr(fattr(5, 14, 900));
  r.READLINK3res_u.resok.data = cstr("/some/where/else");
  Bytes b = enc(xdr_READLINK3res, r);
  f = reply(NFS3_READLINK, b);
  EXPECT_EQ(f.status, 0u);
  EXPECT_EQ(f.path, "/some/where/else");
  ASSERT_TRUE(f.attr);
  EXPECT_EQ(f.attr->type, 5u);
  expect_truncated_prefixes(kNfs, NFS3_READLINK, false, b);
  READLINK3res rf{};
  rf.status = NFS3ERR_INVAL;
  rf.READLINK3res_u.resfail.symlink_attributes = pattr(kFileAttr);
  f = reply(NFS3_READLINK, enc(xdr_READLINK3res, rf));
  EXPECT_EQ(f.status, 22u);
  expect_attr(f.attr, kFileAttr);
  EXPECT_FALSE(f.path);
}

TEST(Nfs3Reply, ReadPrefixIsEnough) {
  Bytes data(5000, 0x33);
  READ3res r{};
  r.status = NFS3_OK;
  r.READ3res_u.resok.file_attributes = pattr(kFileAttr);
  r.READ3res_u.resok.count = 5000;
  r.READ3res_u.resok.eof = TRUE;
  r.READ3res_u.resok.data.data_len = 5000;
  r.READ3res_u.resok.data.data_val = reinterpret_cast<char*>(data.data());
  Bytes b = enc(xdr_READ3res, r);
  NfsFields f = reply(NFS3_READ, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  EXPECT_EQ(f.res_count, 5000u);
  EXPECT_EQ(f.eof, true);
  const size_t fixed = 4 + 4 + 84 + 4 + 4;
  for (size_t n = 0; n < 200; ++n) {
    NfsFields p;
    EXPECT_EQ(decode_reply(kNfs, 3, NFS3_READ, ByteView(b.data(), n), p),
              n >= fixed ? DecodeResult::Ok : DecodeResult::Truncated)
        << n;
    if (n >= fixed) {
      EXPECT_EQ(p.res_count, 5000u);
    }
  }
  READ3res bad{};
  bad.status = NFS3ERR_IO;
  bad.READ3res_u.resfail.file_attributes = pattr(kFileAttr);
  b = enc(xdr_READ3res, bad);
  f = reply(NFS3_READ, b);
  EXPECT_EQ(f.status, 5u);
  expect_attr(f.attr, kFileAttr);
  EXPECT_FALSE(f.res_count);
  expect_truncated_prefixes(kNfs, NFS3_READ, false, b);
}

TEST(Nfs3Reply, WriteCommit) {
  WRITE3res w{};
  w.status = NFS3_OK;
  w.WRITE3res_u.resok.file_wcc = wcc(&kFileAttr);
  w.WRITE3res_u.resok.count = 65536;
  w.WRITE3res_u.resok.committed = DATA_SYNC;
  std::memcpy(w.WRITE3res_u.resok.verf, "verf0001", 8);
  Bytes b = enc(xdr_WRITE3res, w);
  NfsFields f = reply(NFS3_WRITE, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  EXPECT_EQ(f.res_count, 65536u);
  expect_truncated_prefixes(kNfs, NFS3_WRITE, false, b);
  WRITE3res wf{};
  wf.status = ::NFS3ERR_DQUOT;
  wf.WRITE3res_u.resfail.file_wcc = wcc(&kFileAttr);
  b = enc(xdr_WRITE3res, wf);
  f = reply(NFS3_WRITE, b);
  EXPECT_EQ(f.status, NFS3ERR_DQUOT);
  expect_attr(f.attr, kFileAttr);
  EXPECT_FALSE(f.res_count);
  expect_truncated_prefixes(kNfs, NFS3_WRITE, false, b);

  COMMIT3res c{};
  c.status = NFS3_OK;
  c.COMMIT3res_u.resok.file_wcc = wcc(&kFileAttr);
  f = reply(NFS3_COMMIT, enc(xdr_COMMIT3res, c));
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  c.status = NFS3ERR_IO;
  c.COMMIT3res_u.resfail.file_wcc = wcc(nullptr);
  f = reply(NFS3_COMMIT, enc(xdr_COMMIT3res, c));
  EXPECT_EQ(f.status, 5u);
  EXPECT_FALSE(f.attr);
}

// CREATE, MKDIR, SYMLINK and MKNOD share the result shape.
TEST(Nfs3Reply, CreateLike) {
  auto check = [](uint32_t proc, const Bytes& ok_bytes, const Bytes& nofh_bytes, const Bytes& fail_bytes) {
    NfsFields f = reply(proc, ok_bytes);
    EXPECT_EQ(f.status, 0u);
    EXPECT_EQ(f.obj_fh, kFh2);
    expect_attr(f.attr, kFileAttr);
    expect_attr(f.dir_attr, kDirAttr);
    expect_truncated_prefixes(kNfs, proc, false, ok_bytes);
    f = reply(proc, nofh_bytes);
    EXPECT_EQ(f.status, 0u);
    EXPECT_FALSE(f.obj_fh);
    EXPECT_FALSE(f.attr);
    expect_attr(f.dir_attr, kDirAttr);
    f = reply(proc, fail_bytes);
    EXPECT_EQ(f.status, 17u);
    EXPECT_FALSE(f.obj_fh);
    EXPECT_FALSE(f.attr);
    expect_attr(f.dir_attr, kDirAttr);
    expect_truncated_prefixes(kNfs, proc, false, fail_bytes);
  };
#define NFSF_CREATE_LIKE(PROC, RES, U, FN)                  \
  {                                                         \
    RES ok{}, nofh{}, fail{};                               \
    ok.status = NFS3_OK;                                    \
    ok.U.resok.obj = pfh(kFh2);                             \
    ok.U.resok.obj_attributes = pattr(kFileAttr);           \
    ok.U.resok.dir_wcc = wcc(&kDirAttr);                    \
    nofh.status = NFS3_OK;                                  \
    nofh.U.resok.dir_wcc = wcc(&kDirAttr);                  \
    fail.status = NFS3ERR_EXIST;                            \
    fail.U.resfail.dir_wcc = wcc(&kDirAttr);                \
    check(PROC, enc(FN, ok), enc(FN, nofh), enc(FN, fail)); \
  }
  NFSF_CREATE_LIKE(NFS3_CREATE, CREATE3res, CREATE3res_u, xdr_CREATE3res)
  NFSF_CREATE_LIKE(NFS3_MKDIR, MKDIR3res, MKDIR3res_u, xdr_MKDIR3res)
  NFSF_CREATE_LIKE(NFS3_SYMLINK, SYMLINK3res, SYMLINK3res_u, xdr_SYMLINK3res)
  NFSF_CREATE_LIKE(NFS3_MKNOD, MKNOD3res, MKNOD3res_u, xdr_MKNOD3res)
#undef NFSF_CREATE_LIKE
}

TEST(Nfs3Reply, RemoveRmdirRename) {
  REMOVE3res r{};
  r.status = NFS3_OK;
  r.REMOVE3res_u.resok.dir_wcc = wcc(&kDirAttr);
  NfsFields f = reply(NFS3_REMOVE, enc(xdr_REMOVE3res, r));
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.dir_attr, kDirAttr);
  r.status = NFS3ERR_NOENT;
  r.REMOVE3res_u.resfail.dir_wcc = wcc(&kDir2Attr);
  f = reply(NFS3_REMOVE, enc(xdr_REMOVE3res, r));
  EXPECT_EQ(f.status, 2u);
  expect_attr(f.dir_attr, kDir2Attr);

  RMDIR3res d{};
  d.status = NFS3ERR_NOTEMPTY;
  d.RMDIR3res_u.resfail.dir_wcc = wcc(&kDirAttr);
  f = reply(NFS3_RMDIR, enc(xdr_RMDIR3res, d));
  EXPECT_EQ(f.status, 66u);
  expect_attr(f.dir_attr, kDirAttr);
  d.status = NFS3_OK;
  d.RMDIR3res_u.resok.dir_wcc = wcc(&kDir2Attr);
  f = reply(NFS3_RMDIR, enc(xdr_RMDIR3res, d));
  expect_attr(f.dir_attr, kDir2Attr);

  RENAME3res n{};
  n.status = NFS3_OK;
  n.RENAME3res_u.resok.fromdir_wcc = wcc(&kDirAttr);
  n.RENAME3res_u.resok.todir_wcc = wcc(&kDir2Attr);
  Bytes b = enc(xdr_RENAME3res, n);
  f = reply(NFS3_RENAME, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.dir_attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_RENAME, false, b);
  n.status = NFS3ERR_XDEV;
  n.RENAME3res_u.resfail.fromdir_wcc = wcc(&kDir2Attr);
  n.RENAME3res_u.resfail.todir_wcc = wcc(nullptr);
  f = reply(NFS3_RENAME, enc(xdr_RENAME3res, n));
  EXPECT_EQ(f.status, 18u);
  expect_attr(f.dir_attr, kDir2Attr);
}

TEST(Nfs3Reply, Link) {
  LINK3res l{};
  l.status = NFS3_OK;
  l.LINK3res_u.resok.file_attributes = pattr(kFileAttr);
  l.LINK3res_u.resok.linkdir_wcc = wcc(&kDirAttr);
  Bytes b = enc(xdr_LINK3res, l);
  NfsFields f = reply(NFS3_LINK, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kFileAttr);
  expect_attr(f.dir_attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_LINK, false, b);
  l.status = NFS3ERR_MLINK;
  l.LINK3res_u.resfail.file_attributes = pattr(kFileAttr);
  l.LINK3res_u.resfail.linkdir_wcc = wcc(&kDir2Attr);
  f = reply(NFS3_LINK, enc(xdr_LINK3res, l));
  EXPECT_EQ(f.status, 31u);
  expect_attr(f.attr, kFileAttr);
  expect_attr(f.dir_attr, kDir2Attr);
}

TEST(Nfs3Reply, Readdir) {
  entry3 e2{};
  e2.fileid = 11;
  e2.name = cstr("b");
  e2.cookie = 2;
  entry3 e1{};
  e1.fileid = 10;
  e1.name = cstr("a");
  e1.cookie = 1;
  e1.nextentry = &e2;
  READDIR3res r{};
  r.status = NFS3_OK;
  r.READDIR3res_u.resok.dir_attributes = pattr(kDirAttr);
  r.READDIR3res_u.resok.reply.entries = &e1;
  r.READDIR3res_u.resok.reply.eof = TRUE;
  Bytes b = enc(xdr_READDIR3res, r);
  NfsFields f = reply(NFS3_READDIR, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kDirAttr);
  EXPECT_EQ(f.eof, true);
  expect_truncated_prefixes(kNfs, NFS3_READDIR, false, b);
  READDIR3res bad{};
  bad.status = NFS3ERR_BAD_COOKIE;
  bad.READDIR3res_u.resfail.dir_attributes = pattr(kDirAttr);
  f = reply(NFS3_READDIR, enc(xdr_READDIR3res, bad));
  EXPECT_EQ(f.status, 10003u);
  expect_attr(f.attr, kDirAttr);
  EXPECT_FALSE(f.eof);
}

TEST(Nfs3Reply, Readdirplus) {
  entryplus3 e3{};
  e3.fileid = 30;
  e3.name = cstr("no-attrs-no-fh");
  e3.cookie = 3;
  entryplus3 e2{};
  e2.fileid = 20;
  e2.name = cstr("..");
  e2.cookie = 2;
  e2.name_attributes = pattr(kDir2Attr);
  e2.nextentry = &e3;
  entryplus3 e1{};
  e1.fileid = 777;
  e1.name = cstr("file.bin");
  e1.cookie = 1;
  e1.name_attributes = pattr(kFileAttr);
  e1.name_handle = pfh(kFh3);
  e1.nextentry = &e2;
  READDIRPLUS3res r{};
  r.status = NFS3_OK;
  r.READDIRPLUS3res_u.resok.dir_attributes = pattr(kDirAttr);
  r.READDIRPLUS3res_u.resok.reply.entries = &e1;
  r.READDIRPLUS3res_u.resok.reply.eof = FALSE;
  Bytes b = enc(xdr_READDIRPLUS3res, r);
  NfsFields f = reply(NFS3_READDIRPLUS, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kDirAttr);
  EXPECT_EQ(f.eof, false);
  ASSERT_EQ(f.entries.size(), 3u);
  EXPECT_EQ(f.entries[0].name, "file.bin");
  EXPECT_EQ(f.entries[0].fileid, 777u);
  EXPECT_EQ(f.entries[0].fh, kFh3);
  expect_attr(f.entries[0].attr, kFileAttr);
  EXPECT_EQ(f.entries[1].name, "..");
  EXPECT_FALSE(f.entries[1].fh);
  expect_attr(f.entries[1].attr, kDir2Attr);
  EXPECT_EQ(f.entries[2].name, "no-attrs-no-fh");
  EXPECT_EQ(f.entries[2].fileid, 30u);
  EXPECT_FALSE(f.entries[2].fh);
  EXPECT_FALSE(f.entries[2].attr);
  expect_truncated_prefixes(kNfs, NFS3_READDIRPLUS, false, b);
  // Cut in the last entry: the first two are kept.
  NfsFields part;
  EXPECT_EQ(decode_reply(kNfs, 3, NFS3_READDIRPLUS, ByteView(b.data(), b.size() - 20), part), DecodeResult::Truncated);
  EXPECT_EQ(part.entries.size(), 2u);

  READDIRPLUS3res bad{};
  bad.status = NFS3ERR_NOTSUPP;
  bad.READDIRPLUS3res_u.resfail.dir_attributes = no_attr();
  f = reply(NFS3_READDIRPLUS, enc(xdr_READDIRPLUS3res, bad));
  EXPECT_EQ(f.status, 10004u);
  EXPECT_TRUE(f.entries.empty());
}

TEST(Nfs3Reply, ReaddirplusManyEntriesNoRecursion) {
  // 200k minimal entries: walked in a loop, not recursively.
  Enc e(16 << 20);
  e.u32(0).u32(0).u64(0);  // NFS3_OK, no dir attrs, cookieverf
  const int n = 200000;
  for (int i = 0; i < n; ++i) e.u32(1).u64(uint64_t(i)).str("x").u64(uint64_t(i)).u32(0).u32(0);
  e.u32(0).u32(1);
  NfsFields f = reply(NFS3_READDIRPLUS, e.bytes());
  EXPECT_EQ(f.entries.size(), size_t(n));
  EXPECT_EQ(f.eof, true);
}

TEST(Nfs3Reply, FsstatFsinfoPathconf) {
  FSSTAT3res s{};
  s.status = NFS3_OK;
  s.FSSTAT3res_u.resok.obj_attributes = pattr(kDirAttr);
  s.FSSTAT3res_u.resok.tbytes = 1ull << 40;
  Bytes b = enc(xdr_FSSTAT3res, s);
  NfsFields f = reply(NFS3_FSSTAT, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_FSSTAT, false, b);
  s.status = NFS3ERR_SERVERFAULT;
  s.FSSTAT3res_u.resfail.obj_attributes = pattr(kDirAttr);
  f = reply(NFS3_FSSTAT, enc(xdr_FSSTAT3res, s));
  EXPECT_EQ(f.status, 10006u);
  expect_attr(f.attr, kDirAttr);

  FSINFO3res i{};
  i.status = NFS3_OK;
  i.FSINFO3res_u.resok.obj_attributes = pattr(kDirAttr);
  i.FSINFO3res_u.resok.rtmax = 1048576;
  i.FSINFO3res_u.resok.properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
  b = enc(xdr_FSINFO3res, i);
  f = reply(NFS3_FSINFO, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_FSINFO, false, b);
  i.status = NFS3ERR_STALE;
  i.FSINFO3res_u.resfail.obj_attributes = no_attr();
  f = reply(NFS3_FSINFO, enc(xdr_FSINFO3res, i));
  EXPECT_EQ(f.status, 70u);
  EXPECT_FALSE(f.attr);

  PATHCONF3res p{};
  p.status = NFS3_OK;
  p.PATHCONF3res_u.resok.obj_attributes = pattr(kDirAttr);
  p.PATHCONF3res_u.resok.linkmax = 32000;
  p.PATHCONF3res_u.resok.name_max = 255;
  p.PATHCONF3res_u.resok.no_trunc = TRUE;
  p.PATHCONF3res_u.resok.case_preserving = TRUE;
  b = enc(xdr_PATHCONF3res, p);
  f = reply(NFS3_PATHCONF, b);
  EXPECT_EQ(f.status, 0u);
  expect_attr(f.attr, kDirAttr);
  expect_truncated_prefixes(kNfs, NFS3_PATHCONF, false, b);
  p.status = NFS3ERR_BADHANDLE;
  p.PATHCONF3res_u.resfail.obj_attributes = no_attr();
  f = reply(NFS3_PATHCONF, enc(xdr_PATHCONF3res, p));
  EXPECT_EQ(f.status, 10001u);
}

// ---------------------------------------------------------------- MOUNT v3

TEST(Mount3, CallsAndReplies) {
  mnt3_dirpath path = cstr("/export/home");
  Bytes b = enc(xdr_mnt3_dirpath, path);
  NfsFields f;
  EXPECT_EQ(decode_call(kMount, 3, MOUNT3_MNT, b, f), DecodeResult::Ok);
  EXPECT_EQ(f.path, "/export/home");
  expect_truncated_prefixes(kMount, MOUNT3_MNT, true, b);
  f = {};
  EXPECT_EQ(decode_call(kMount, 3, MOUNT3_UMNT, b, f), DecodeResult::Ok);
  EXPECT_EQ(f.path, "/export/home");
  for (uint32_t p : {MOUNT3_NULL, MOUNT3_DUMP, MOUNT3_UMNTALL, MOUNT3_EXPORT}) {
    f = {};
    EXPECT_EQ(decode_call(kMount, 3, p, {}, f), DecodeResult::Ok) << p;
  }
  for (uint32_t p : {MOUNT3_NULL, MOUNT3_UMNT, MOUNT3_UMNTALL}) {
    f = {};
    EXPECT_EQ(decode_reply(kMount, 3, p, {}, f), DecodeResult::Ok) << p;
  }
  // Empty DUMP and EXPORT lists.
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_DUMP, Enc().u32(0).bytes(), f), DecodeResult::Ok);
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_EXPORT, Enc().u32(0).bytes(), f), DecodeResult::Ok);
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_EXPORT, Bytes{}, f), DecodeResult::Truncated);

  int flavors[] = {1, 6};
  mnt3_mountres ok{};
  ok.fhs_status = MNT3_OK;
  ok.mnt3_mountres_u.mountinfo.fhandle.mnt3_fhandle_len = u_int(kFh2.size());
  ok.mnt3_mountres_u.mountinfo.fhandle.mnt3_fhandle_val = const_cast<char*>(reinterpret_cast<const char*>(kFh2.data()));
  ok.mnt3_mountres_u.mountinfo.auth_flavors.auth_flavors_len = 2;
  ok.mnt3_mountres_u.mountinfo.auth_flavors.auth_flavors_val = flavors;
  b = enc(xdr_mnt3_mountres, ok);
  f = {};
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_MNT, b, f), DecodeResult::Ok);
  EXPECT_EQ(f.status, 0u);
  EXPECT_EQ(f.obj_fh, kFh2);
  expect_truncated_prefixes(kMount, MOUNT3_MNT, false, b);

  mnt3_mountres denied{};
  denied.fhs_status = MNT3ERR_ACCES;
  f = {};
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_MNT, enc(xdr_mnt3_mountres, denied), f), DecodeResult::Ok);
  EXPECT_EQ(f.status, 13u);
  EXPECT_FALSE(f.obj_fh);
}

TEST(Mount3, DumpAndExport) {
  mnt3_mountbody m2{cstr("client2"), cstr("/b"), nullptr};
  mnt3_mountbody m1{cstr("client1"), cstr("/a"), &m2};
  mnt3_mountlist ml = &m1;
  Bytes b = enc(xdr_mnt3_mountlist, ml);
  NfsFields f;
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_DUMP, b, f), DecodeResult::Ok);
  expect_truncated_prefixes(kMount, MOUNT3_DUMP, false, b);

  mnt3_groupnode g2{cstr("10.0.0.0/8"), nullptr};
  mnt3_groupnode g1{cstr("host1"), &g2};
  mnt3_exportnode x2{cstr("/srv/b"), nullptr, nullptr};
  mnt3_exportnode x1{cstr("/srv/a"), &g1, &x2};
  mnt3_exports ex = &x1;
  b = enc(xdr_mnt3_exports, ex);
  f = {};
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_EXPORT, b, f), DecodeResult::Ok);
  expect_truncated_prefixes(kMount, MOUNT3_EXPORT, false, b);
}

// ---------------------------------------------------------------- garbage

TEST(Nfs3Garbage, FhLength65) {
  Bytes fh65(65, 1);
  NfsFields f;
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_GETATTR, Enc().opaque(fh65).bytes(), f), DecodeResult::Malformed);
  Bytes lookup = Enc().opaque(fh65).str("x").bytes();
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_LOOKUP, lookup, f), DecodeResult::Malformed);
  Bytes write = Enc().opaque(fh65).u64(0).u32(4).u32(0).opaque({1, 2, 3, 4}).bytes();
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_WRITE, write, f), DecodeResult::Malformed);
  // Malformed even when the body stops right after the length word.
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_GETATTR, Enc().u32(65).bytes(), f), DecodeResult::Malformed);
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_WRITE, Enc().u32(65).bytes(), f), DecodeResult::Malformed);
  // A 64-byte handle is fine.
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_GETATTR, Enc().opaque(Bytes(64, 1)).bytes(), f), DecodeResult::Ok);
  // LOOKUP reply handle, MNT reply handle.
  EXPECT_EQ(decode_reply(kNfs, 3, NFS3_LOOKUP, Enc().u32(0).opaque(fh65).u32(0).u32(0).bytes(), f),
            DecodeResult::Malformed);
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_MNT, Enc().u32(0).opaque(fh65).u32(0).bytes(), f), DecodeResult::Malformed);
  // post_op_fh3 handle in CREATE.
  EXPECT_EQ(decode_reply(kNfs, 3, NFS3_CREATE, Enc().u32(0).u32(1).opaque(fh65).bytes(), f), DecodeResult::Malformed);
}

TEST(Nfs3Garbage, BadDiscriminantsAndEnums) {
  NfsFields f;
  auto R = [&](uint32_t proc, const Bytes& b) {
    f = {};
    return decode_reply(kNfs, 3, proc, b, f);
  };
  auto C = [&](uint32_t proc, const Bytes& b) {
    f = {};
    return decode_call(kNfs, 3, proc, b, f);
  };
  // Undefined nfsstat3.
  EXPECT_EQ(R(NFS3_GETATTR, Enc().u32(12345).bytes()), DecodeResult::Malformed);
  EXPECT_EQ(R(NFS3_REMOVE, Enc().u32(3).u32(0).u32(0).bytes()), DecodeResult::Malformed);
  // post_op_attr attributes_follow = 2.
  EXPECT_EQ(R(NFS3_LOOKUP, Enc().u32(2).u32(2).bytes()), DecodeResult::Malformed);
  // pre_op_attr attributes_follow = 0xffffffff.
  EXPECT_EQ(R(NFS3_REMOVE, Enc().u32(0).u32(0xffffffff).bytes()), DecodeResult::Malformed);
  // fattr3 with file type 0 and 8.
  for (uint32_t t : {0u, 8u}) {
    fattr3 a = fattr(1, 1, 1);
    set_enum(a.type, t);
    Bytes b = Enc().u32(0).put(xdr_fattr3, a).bytes();
    EXPECT_EQ(R(NFS3_GETATTR, b), DecodeResult::Malformed) << t;
    Bytes lk = Enc().u32(2).u32(1).put(xdr_fattr3, a).bytes();
    EXPECT_EQ(R(NFS3_LOOKUP, lk), DecodeResult::Malformed) << t;
  }
  // READ eof = 7, attributes_follow = 3, status undefined.
  for (const Bytes& b :
       {Enc().u32(0).u32(0).u32(10).u32(7).u32(10).bytes(), Enc().u32(0).u32(3).bytes(), Enc().u32(4).u32(0).bytes()})
    EXPECT_EQ(R(NFS3_READ, b), DecodeResult::Malformed);
  // WRITE reply committed = 3.
  EXPECT_EQ(R(NFS3_WRITE, Enc().u32(0).u32(0).u32(0).u32(10).u32(3).u64(0).bytes()), DecodeResult::Malformed);
  // READDIRPLUS entry "follows" = 2.
  EXPECT_EQ(R(NFS3_READDIRPLUS, Enc().u32(0).u32(0).u64(0).u32(2).bytes()), DecodeResult::Malformed);
  // WRITE stable_how = 3.
  Bytes w = Enc().opaque(kFh1).u64(0).u32(1).u32(3).opaque({9}).bytes();
  EXPECT_EQ(C(NFS3_WRITE, w), DecodeResult::Malformed);
  // CREATE createmode3 = 3.
  EXPECT_EQ(C(NFS3_CREATE, Enc().opaque(kFh1).str("n").u32(3).bytes()), DecodeResult::Malformed);
  // sattr3 set_atime time_how = 3; set_mode3 set_it = 5.
  EXPECT_EQ(C(NFS3_MKDIR, Enc().opaque(kFh1).str("d").u32(0).u32(0).u32(0).u32(0).u32(3).bytes()),
            DecodeResult::Malformed);
  EXPECT_EQ(C(NFS3_MKDIR, Enc().opaque(kFh1).str("d").u32(5).bytes()), DecodeResult::Malformed);
  // MKNOD ftype3 = 0 and 9.
  EXPECT_EQ(C(NFS3_MKNOD, Enc().opaque(kFh1).str("n").u32(0).bytes()), DecodeResult::Malformed);
  EXPECT_EQ(C(NFS3_MKNOD, Enc().opaque(kFh1).str("n").u32(9).bytes()), DecodeResult::Malformed);
  // SETATTR guard check = 2.
  EXPECT_EQ(C(NFS3_SETATTR, Enc().opaque(kFh1).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(2).bytes()),
            DecodeResult::Malformed);
  // Name longer than the bound (4096) and MOUNT path longer than MNTPATHLEN.
  EXPECT_EQ(C(NFS3_LOOKUP, Enc().opaque(kFh1).u32(5000).bytes()), DecodeResult::Malformed);
  EXPECT_EQ(C(NFS3_LOOKUP, Enc().opaque(kFh1).u32(0xffffffff).bytes()), DecodeResult::Malformed);
  f = {};
  EXPECT_EQ(decode_call(kMount, 3, MOUNT3_MNT, Enc().u32(1025).bytes(), f), DecodeResult::Malformed);
  // mountstat3 = 3.
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_MNT, Enc().u32(3).bytes(), f), DecodeResult::Malformed);
  // MNT auth_flavors count huge.
  EXPECT_EQ(decode_reply(kMount, 3, MOUNT3_MNT, Enc().u32(0).opaque(kFh1).u32(0x40000000).bytes(), f),
            DecodeResult::Malformed);
  // A name length within bounds but beyond the body is Truncated, not Malformed.
  EXPECT_EQ(C(NFS3_LOOKUP, Enc().opaque(kFh1).u32(100).bytes()), DecodeResult::Truncated);
}

TEST(Nfs3Garbage, RandomBytesNeverCrash) {
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 30000; ++i) {
    Bytes b(rng() % 300);
    for (auto& c : b) c = uint8_t(rng());
    // Bias towards small words so that deeper arms are reached.
    for (size_t k = 0; k + 4 <= b.size(); k += 4)
      if (rng() % 3) b[k] = b[k + 1] = b[k + 2] = 0, b[k + 3] = uint8_t(rng() % 4);
    uint32_t proc = uint32_t(rng() % 23);
    NfsFields f;
    (void)decode_call(kNfs, 3, proc, b, f);
    f = {};
    (void)decode_reply(kNfs, 3, proc, b, f);
    f = {};
    (void)decode_call(kMount, 3, proc % 7, b, f);
    f = {};
    (void)decode_reply(kMount, 3, proc % 7, b, f);
  }
}

// ---------------------------------------------------------------- WRITE and READ heads

TEST(Nfs3, WriteCallRandomised) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 3000; ++i) {
    Bytes fh(rng() % 65);
    for (auto& c : fh) c = uint8_t(rng());
    Bytes data(rng() % 300);
    for (auto& c : data) c = uint8_t(rng());
    WRITE3args w{};
    w.file = fh3(fh);
    w.offset = (i % 4 == 0) ? rng() : rng() % (1ull << 32);
    w.count = (i % 5 == 0) ? uint32_t(rng()) : uint32_t(data.size());
    w.stable = stable_how(rng() % 3);
    w.data.data_len = u_int(data.size());
    w.data.data_val = reinterpret_cast<char*>(data.data());
    Bytes b = enc(xdr_WRITE3args, w);
    uint32_t want_stable;
    std::memcpy(&want_stable, &w.stable, sizeof want_stable);

    NfsFields f;
    ASSERT_EQ(decode_call(kNfs, 3, NFS3_WRITE, b, f), DecodeResult::Ok);
    EXPECT_EQ(*f.fh, fh);
    EXPECT_EQ(*f.offset, w.offset);
    EXPECT_EQ(*f.count, w.count);
    EXPECT_EQ(*f.stable, want_stable);

    // Prefixes: Truncated before the end of stable_how, Ok from there on (the data length
    // word and the data are not needed), with the same fields.
    const size_t data_offset = b.size() - ((data.size() + 3) & ~size_t(3));
    const size_t head_end = data_offset - 4;  // end of stable_how
    size_t cut = rng() % (b.size() + 1);
    NfsFields pf;
    DecodeResult xr = decode_call(kNfs, 3, NFS3_WRITE, ByteView(b.data(), cut), pf);
    if (cut >= head_end) {
      EXPECT_EQ(xr, DecodeResult::Ok) << cut;
      EXPECT_EQ(pf.fh, f.fh);
      EXPECT_EQ(pf.offset, f.offset);
      EXPECT_EQ(pf.count, f.count);
      EXPECT_EQ(pf.stable, f.stable);
    } else {
      EXPECT_EQ(xr, DecodeResult::Truncated) << cut;
    }
  }
}

TEST(Nfs3, ReadReplyRandomised) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    Bytes data(rng() % 200);
    READ3res r{};
    bool ok = rng() % 4 != 0;
    bool attrs = rng() % 3 != 0;
    bool eof = false;
    fattr3 a = fattr(uint32_t(1 + rng() % 7), rng(), rng(), uint32_t(rng()));
    if (ok) {
      r.status = NFS3_OK;
      if (attrs) r.READ3res_u.resok.file_attributes = pattr(a);
      r.READ3res_u.resok.count = u_int(data.size());
      eof = rng() % 2;
      r.READ3res_u.resok.eof = eof ? TRUE : FALSE;
      r.READ3res_u.resok.data.data_len = u_int(data.size());
      r.READ3res_u.resok.data.data_val = reinterpret_cast<char*>(data.data());
    } else {
      r.status = NFS3ERR_IO;
      if (attrs) r.READ3res_u.resfail.file_attributes = pattr(a);
    }
    Bytes b = enc(xdr_READ3res, r);
    NfsFields f;
    ASSERT_EQ(decode_reply(kNfs, 3, NFS3_READ, b, f), DecodeResult::Ok);
    EXPECT_EQ(*f.status, ok ? 0u : uint32_t(NFS3ERR_IO));
    EXPECT_EQ(f.attr.has_value(), attrs);
    if (attrs) expect_attr(f.attr, a);
    if (ok) {
      EXPECT_EQ(*f.res_count, data.size());
      EXPECT_EQ(*f.eof, eof);
    } else {
      EXPECT_FALSE(f.res_count.has_value());
      EXPECT_FALSE(f.eof.has_value());
    }
  }
}

// ---------------------------------------------------------------- needed_prefix

TEST(Nfs3, NeededPrefix) {
  // WRITE call: header + fh(4+64) + offset + count + stable + data length.
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_WRITE, true, 120, 1 << 20), 120u + 88);
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_WRITE, true, 120, 150), 150u);
  // READ reply: header + status + post_op_attr(4+84) + count + eof + data length.
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_READ, false, 24, 1 << 20), 24u + 104);
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_READ, false, 24, 60), 60u);
  // Everything else: the whole record, capped at 4 MiB.
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_WRITE, false, 24, 5000), 5000u);
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_READ, true, 100, 5000), 5000u);
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_LOOKUP, true, 100, 300), 300u);
  EXPECT_EQ(needed_prefix(kNfs, 3, NFS3_READDIRPLUS, false, 24, 100ull << 20), 4u << 20);
  EXPECT_EQ(needed_prefix(kMount, 3, MOUNT3_MNT, true, 40, 80), 80u);
  EXPECT_EQ(needed_prefix(kNfs, 4, NFS3_WRITE, true, 40, 1 << 20), 1u << 20);

  // The WRITE head with the largest handle decodes from exactly the needed prefix.
  Bytes data(4096, 1);
  WRITE3args w{};
  w.file = fh3(kFh3);
  w.count = 4096;
  w.data.data_len = 4096;
  w.data.data_val = reinterpret_cast<char*>(data.data());
  Bytes b = enc(xdr_WRITE3args, w);
  size_t need = needed_prefix(kNfs, 3, NFS3_WRITE, true, 0, b.size());
  EXPECT_EQ(need, b.size() - data.size());  // exactly the head: the data starts there
  NfsFields f;
  EXPECT_EQ(decode_call(kNfs, 3, NFS3_WRITE, ByteView(b.data(), need), f), DecodeResult::Ok);
  // And the READ head with attributes.
  READ3res r{};
  r.status = NFS3_OK;
  r.READ3res_u.resok.file_attributes = pattr(kFileAttr);
  r.READ3res_u.resok.count = 4096;
  r.READ3res_u.resok.data.data_len = 4096;
  r.READ3res_u.resok.data.data_val = reinterpret_cast<char*>(data.data());
  b = enc(xdr_READ3res, r);
  need = needed_prefix(kNfs, 3, NFS3_READ, false, 0, b.size());
  EXPECT_EQ(need, b.size() - data.size());
  f = {};
  EXPECT_EQ(decode_reply(kNfs, 3, NFS3_READ, ByteView(b.data(), need), f), DecodeResult::Ok);
}

}  // namespace
}  // namespace nfsfence
