// NFSv3 (RFC 1813) and MOUNT v3 argument and result decoding.
//
// decode_call / decode_reply fill the fields a user and the handle cache need, with
// libtirpc XDR and the types rpcgen generates from nfs/nfs3_prot.x. WRITE data and READ
// data are never decoded; the reassembler keeps only the head of those messages
// (needed_prefix).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence {

enum Nfs3Proc : uint32_t {
  NFS3_NULL = 0,
  NFS3_GETATTR = 1,
  NFS3_SETATTR = 2,
  NFS3_LOOKUP = 3,
  NFS3_ACCESS = 4,
  NFS3_READLINK = 5,
  NFS3_READ = 6,
  NFS3_WRITE = 7,
  NFS3_CREATE = 8,
  NFS3_MKDIR = 9,
  NFS3_SYMLINK = 10,
  NFS3_MKNOD = 11,
  NFS3_REMOVE = 12,
  NFS3_RMDIR = 13,
  NFS3_RENAME = 14,
  NFS3_LINK = 15,
  NFS3_READDIR = 16,
  NFS3_READDIRPLUS = 17,
  NFS3_FSSTAT = 18,
  NFS3_FSINFO = 19,
  NFS3_PATHCONF = 20,
  NFS3_COMMIT = 21,
};
enum Mount3Proc : uint32_t {
  MOUNT3_NULL = 0,
  MOUNT3_MNT = 1,
  MOUNT3_DUMP = 2,
  MOUNT3_UMNT = 3,
  MOUNT3_UMNTALL = 4,
  MOUNT3_EXPORT = 5,
};

// "WRITE", "LOOKUP", "MNT"...; nullptr for an unknown procedure number.
const char* nfs3_proc_name(uint32_t proc);
const char* mount3_proc_name(uint32_t proc);

constexpr uint32_t NFS3ERR_DQUOT = 69;
// True for the nfsstat3 values RFC 1813 defines.
bool valid_nfsstat3(uint32_t s);

enum Ftype3 : uint32_t { NF3REG = 1, NF3DIR = 2, NF3BLK = 3, NF3CHR = 4, NF3LNK = 5, NF3SOCK = 6, NF3FIFO = 7 };

struct Attr {  // the parts of fattr3 we use
  uint32_t type = 0;
  uint64_t size = 0;
  uint64_t used = 0;
  uint64_t fileid = 0;
  uint32_t nlink = 0;
  // ctime as nanoseconds since the epoch: orders two attributes of the same file (a
  // server answering WRITEs in parallel can send the older post-op attributes last)
  uint64_t ctime_ns = 0;
};

struct FsStatRes {  // FSSTAT3resok's sizes (RFC 1813 3.3.18)
  uint64_t tbytes = 0, fbytes = 0, abytes = 0, tfiles = 0, ffiles = 0, afiles = 0;
};

struct DirEntryPlus {  // one READDIRPLUS entry
  std::string name;
  uint64_t fileid = 0;
  std::optional<Bytes> fh;
  std::optional<Attr> attr;
  uint64_t cookie = 0;  // where the next READDIRPLUS continues after this entry
};

// Everything we decode from one NFSv3 or MOUNT v3 call or reply. Fields that the
// procedure does not have stay empty.
struct NfsFields {
  // Call arguments
  std::optional<Bytes> fh;      // the object the call is about (GETATTR, READ, WRITE, ...)
  std::optional<Bytes> dir_fh;  // directory of a name (LOOKUP, CREATE, REMOVE, RENAME from)
  std::optional<std::string> name;
  std::optional<Bytes> to_dir_fh;  // RENAME to-dir, LINK: the directory of the new name
  std::optional<std::string> to_name;
  std::optional<uint64_t> offset;
  std::optional<uint32_t> count;    // READ/WRITE/COMMIT count, READDIR(PLUS) dircount
  std::optional<uint32_t> stable;   // WRITE stable_how
  std::optional<std::string> path;  // MOUNT MNT/UMNT dirpath, SYMLINK target
  // Reply results
  std::optional<uint32_t> status;     // nfsstat3 / mountstat3
  std::optional<Bytes> obj_fh;        // LOOKUP/CREATE/MKDIR/SYMLINK/MKNOD result handle, MNT root handle
  std::optional<Attr> attr;           // post-op attributes of the object (obj_attributes / file_wcc.after / GETATTR)
  std::optional<Attr> dir_attr;       // post-op attributes of the directory, when present
  std::optional<uint32_t> res_count;  // READ/WRITE reply count
  std::optional<bool> eof;            // READ/READDIR reply
  std::vector<DirEntryPlus> entries;  // READDIRPLUS
  std::optional<Bytes> cookieverf;    // READDIR(PLUS) reply: the verifier to continue with
  std::optional<FsStatRes> fsstat;    // FSSTAT reply (NFS3_OK)
};

enum class DecodeResult { Ok, Truncated, Malformed, Unsupported };

// `body` is the procedure's arguments (call) or results (reply); it may be only a prefix
// of the message (WRITE data and READ data are never needed). Truncated means the prefix
// ended before a needed field; fields decoded up to there are kept.
DecodeResult decode_call(uint32_t prog, uint32_t vers, uint32_t proc, ByteView body, NfsFields& out);
DecodeResult decode_reply(uint32_t prog, uint32_t vers, uint32_t proc, ByteView body, NfsFields& out);

// Largest head of a WRITE call body (fh<64>, offset, count, stable, data length) and of a
// READ reply body (status, post_op_attr with fattr3, count, eof, data length), in bytes:
// what needed_prefix keeps of those messages (the data length word is kept, not decoded).
constexpr size_t kWriteHeadMax = 4 + 64 + 8 + 4 + 4 + 4;
constexpr size_t kReadHeadMax = 4 + 4 + 84 + 4 + 4 + 4;

// Bytes of the message (starting at the RPC header) that decoding needs, given its head:
// the whole message for metadata, only the head of a WRITE call or READ reply.
// For a reply, prog/vers/proc come from the XID match. Never more than record_len;
// metadata is capped at 4 MiB (the decode then reports Truncated).
size_t needed_prefix(uint32_t prog, uint32_t vers, uint32_t proc, bool is_call, size_t body_offset,
                     uint64_t record_len);

}  // namespace nfsfence
