// External oracle: `nfsfence decode --format jsonl` against tshark, on every capture.
//
// For every capture in ../shared/pcaps (recursively: *.pcap, *.pcapng, *.pcap.bz2,
// *.pcapng.bz2) and in the repository's pcaps/ (*.pcap, *.pcapng), this test
//   1. runs tshark (PDML output, so that several RPC messages in one frame and nested
//      structures such as READDIRPLUS entries stay apart) and builds one record per
//      NFSv3 (prog 100003 vers 3) and MOUNTv3 (prog 100005 vers 3) RPC message;
//   2. runs `$NFSF_BIN decode CAPTURE --format jsonl` and builds the same records;
//   3. matches the two multisets on (transport, src, dst, xid, call/reply) -- not on the
//      frame: tshark attributes a reassembled TCP PDU / IP-fragmented datagram to the frame
//      where it ENDS, nfsfence to the frame where it STARTS -- and compares procedure,
//      file handles (fh, dir_fh, to_dir_fh, obj_fh, READDIRPLUS entry handles), offset,
//      count, names (name, to_name, MNT/SYMLINK path, READDIRPLUS entry names and fileids),
//      stable, status and res_count; size/used of the object's post-op attributes are
//      checked when nfsfence reports them.
// Every difference is printed with frame numbers. A capture passes only when each kind of
// difference is listed in kKnownDiffs below with its exact count and the reason (tshark
// is wrong / cannot see the message / ...); a changed count fails the test, so the
// explanation cannot silently cover a new decoder bug.
//
// tshark runs as `tshark -n -r F [kTsharkOpts] -Y rpc -T pdml -J "rpc nfs mount _ws.malformed"`
// (only the protocol line of ip/ipv6/tcp/udp is kept: addresses and ports are read from
// it). tshark 4.0 cannot read bzip2: .bz2 captures are decompressed into
// $NFSF_BUILD_DIR/oracle/pcaps; nfsfence is also run on the .bz2 itself and must report
// the same number of messages.
//
// Set NFSF_ORACLE_DUMP=1 to write both record sets to $NFSF_BUILD_DIR/oracle/*.txt.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

// RFC 1813's program numbers, written here rather than taken from nfs/rpc.h: the oracle
// shares no code with what it checks (a wrong kProgNfs would filter both sides alike).
constexpr uint32_t kNfsProgram = 100003, kMountProgram = 100005;

// ---------------------------------------------------------------------------------------
// Per-capture tshark options. Captures are named by their path relative to the shared
// pcaps directory ("shared/<rel>") or to the repository's pcaps/ ("repo/<rel>").

struct TsharkOpts {
  const char* capture;
  std::vector<std::string> args;
  const char* why;
};

const std::vector<TsharkOpts> kTsharkOpts = {
    {"shared/tcpdump/nfs-write-verf-cookie.pcapng",
     {"-d", "tcp.port==993,rpc"},
     "NFS server on TCP port 993: tshark dissects it as TLS (imaps) unless told it is RPC"},
    {"shared/nfstrace/eth-ipv4-udp-nfsv3-dup-retransm.pcap.bz2",
     {"-d", "udp.port==2049,rpc"},
     "the 12-fragment WRITE calls are not recognised as RPC by tshark's UDP heuristics"},
    {"shared/nfstrace/eth-ipv6-tcp-nfsv3-bad_alloc.pcap.bz2",
     {"-o", "tcp.analyze_sequence_numbers:FALSE"},
     "frames 36825 (SYN|PSH) and 56362 (RST|URG|ECE|CWR...) are byte-edited retransmissions of "
     "the segment before them; with sequence analysis on, tshark takes them for a new/reset "
     "connection, calls the next in-sequence segments (36826-36827, 56363-56364: an ACCESS "
     "call and reply each) retransmissions and does not dissect them"},
    {"shared/tcpdump/nfs-seg-fault-1.pcapng",
     {"-o", "rpc.desegment_rpc_over_tcp:FALSE"},
     "the single segment holds the first 7960 bytes of a 32908-byte RPC record (a WRITE call); "
     "with desegmentation on tshark waits for the rest, which never comes, and shows no RPC"},
};

// ---------------------------------------------------------------------------------------
// Explained differences. kind is one of
//   only_ours        an NFSv3/MOUNTv3 message nfsfence reports and tshark does not
//   only_tshark      an NFSv3/MOUNTv3 message tshark reports and nfsfence does not
//   field:<name>     the field differs in a matched message (missing on one side counts)
//   frame_order      nfsfence's start frame is after tshark's end frame
// count must equal the observed number exactly.

struct KnownDiff {
  const char* capture;
  const char* kind;
  uint64_t count;
  const char* reason;
};

const std::vector<KnownDiff> kKnownDiffs = {
    {"shared/zeek/mount-unmount-bad-status.pcap", "field:status", 1,
     "frame 6: the MNT reply's status word was byte-edited to 0x42424242, not a mountstat3 value. "
     "tshark prints the raw word; nfsfence rejects the reply as decode=malformed and reports no "
     "result fields, by design (nfs/nfs3_prot.x: an undefined union discriminant fails to decode)"},
    {"shared/zeek/nfs_fsinfo_bad_status.pcap", "field:status", 1,
     "frame 25: the FSINFO reply's status word was byte-edited to 0x41414141, not an nfsstat3 value. "
     "tshark prints the raw word; nfsfence rejects the reply as decode=malformed and reports no "
     "result fields, by design (nfs/nfs3_prot.x: undefined enum values fail to decode)"},
};

// ---------------------------------------------------------------------------------------
// Small helpers

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// The source tree, from this file's path (CMake compiles it by absolute path), so that
// test discovery (which runs without the test environment) sees the same captures.
fs::path source_dir() {
  fs::path here = fs::path(__FILE__);
  if (here.is_absolute()) return env_or("NFSF_SOURCE_DIR", here.parent_path().parent_path().string());
  return env_or("NFSF_SOURCE_DIR", ".");
}
fs::path shared_dir() { return env_or("NFSF_SHARED_PCAPS", (source_dir() / ".." / "shared" / "pcaps").string()); }
fs::path repo_pcaps_dir() { return source_dir() / "pcaps"; }
// The build tree: $NFSF_BUILD_DIR, else the parent of the directory holding this test
// binary (BUILD/tests/unit_tests). The fallbacks matter: ctest may not pass every variable
// of the test environment (see the report on tests/CMakeLists.txt).
fs::path build_dir() {
  if (const char* v = std::getenv("NFSF_BUILD_DIR"); v && *v) return v;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return exe.parent_path().parent_path();
  return fs::temp_directory_path() / "nfsf-oracle";
}
fs::path work_dir() { return build_dir() / "oracle"; }
fs::path nfsfence_bin() {
  if (const char* v = std::getenv("NFSF_BIN"); v && *v) return v;
  return build_dir() / "nfsfence";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

bool have_program(const std::string& prog) {
  return std::system(("command -v " + prog + " >/dev/null 2>&1").c_str()) == 0;
}

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}
bool starts_with(std::string_view s, std::string_view pre) {
  return s.size() >= pre.size() && s.substr(0, pre.size()) == pre;
}

std::string bytes_of_hex(std::string_view hex) {
  std::string out;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += char(nib(hex[i]) << 4 | nib(hex[i + 1]));
  return out;
}
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
// Printable form of a byte string for messages.
std::string printable(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

// "a.b.c.d" / "fe80::1" + port -> canonical "a.b.c.d:p" / "[fe80::1]:p".
std::string canon_endpoint(std::string addr, const std::string& port) {
  if (!addr.empty() && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    inet_ntop(AF_INET, buf, out, sizeof out);
    return std::string(out) + ":" + port;
  }
  if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    inet_ntop(AF_INET6, buf, out, sizeof out);
    return "[" + std::string(out) + "]:" + port;
  }
  return addr + ":" + port;
}
// "10.0.0.1:2049" / "[::1]:2049" -> canonical
std::string canon_endpoint(const std::string& ep) {
  auto colon = ep.rfind(':');
  if (colon == std::string::npos) return ep;
  return canon_endpoint(ep.substr(0, colon), ep.substr(colon + 1));
}

// ---------------------------------------------------------------------------------------
// The record both sides are reduced to.

struct Rec {
  uint64_t frame = 0;  // tshark: frame where the message ends; nfsfence: where it starts
  std::string transport, src, dst;
  uint32_t xid = 0;
  bool reply = false;
  uint32_t prog = 0, vers = 0;
  std::optional<uint32_t> proc;
  // Compared both ways. Byte strings (handles, names) are kept raw.
  std::map<std::string, std::string> f;
  // Compared only when nfsfence reports them (size/used of post-op attributes).
  std::map<std::string, std::string> oneway;
  std::string note;  // tshark: "malformed"; ours: decode != ok

  std::string key() const {
    return transport + " " + src + " > " + dst + " xid=" + std::to_string(xid) + (reply ? " reply" : " call");
  }
  std::string what() const {
    std::string p = prog == kMountProgram ? "MOUNT" : "NFS";
    return p + " proc=" + (proc ? std::to_string(*proc) : std::string("?")) + (reply ? " reply" : " call");
  }
};

const std::set<std::string> kByteFields = {"fh", "dir_fh", "to_dir_fh", "obj_fh", "name", "to_name", "path"};

std::string show_field(const std::string& name, const std::string& v) {
  if (name == "name" || name == "to_name" || name == "path") return printable(v);
  if (name == "entries") return v;  // already printable
  if (kByteFields.count(name)) return v.empty() ? "<empty>" : v;
  return v;
}

// READDIRPLUS entries as one comparable, printable string.
struct Entry {
  std::string name;  // raw bytes
  std::string fileid;
  std::optional<std::string> fh;  // hex
};
std::string entries_string(const std::vector<Entry>& es) {
  std::string out = "[" + std::to_string(es.size()) + "]";
  for (const auto& e : es) {
    out += " {" + printable(e.name) + " fileid=" + e.fileid + " fh=" + (e.fh ? *e.fh : std::string("-")) + "}";
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// tshark side: streaming PDML parser.

struct PNode {
  std::string name, show, value, showname;
  bool proto = false;
  bool has_value = false;
  int parent = -1;
  std::vector<int> kids;
};

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "quot")
      out += '"';
    else if (ent == "amp")
      out += '&';
    else if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "apos")
      out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::strtoul(std::string(ent.substr(2)).c_str(), nullptr, 16)
                             : std::strtoul(std::string(ent.substr(1)).c_str(), nullptr, 10);
      if (cp < 0x80) {
        out += char(cp);
      } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
      } else {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

// Value of attribute `attr` in a PDML tag line; nullopt when absent.
std::optional<std::string_view> attr_of(std::string_view line, std::string_view attr) {
  std::string pat = " " + std::string(attr) + "=\"";
  size_t p = line.find(pat);
  if (p == std::string_view::npos) return std::nullopt;
  p += pat.size();
  size_t e = line.find('"', p);
  if (e == std::string_view::npos) return std::nullopt;
  return line.substr(p, e - p);
}

struct TsharkResult {
  std::vector<Rec> recs;
  uint64_t packets = 0;
  int exit_status = 0;
  std::string cmdline;
};

class PdmlPacket {
 public:
  std::vector<PNode> nodes;
  std::vector<int> roots;

  void clear() {
    nodes.clear();
    roots.clear();
  }

  // First descendant (document order) of `n` named `name`, optionally not entering nodes
  // named `stop`.
  int find(int n, std::string_view name, std::string_view stop = {}) const {
    for (int k : nodes[n].kids) {
      if (nodes[k].name == name) return k;
      if (!stop.empty() && nodes[k].name == stop) continue;
      int r = find(k, name, stop);
      if (r >= 0) return r;
    }
    return -1;
  }
  void find_all(int n, std::string_view name, std::string_view stop, std::vector<int>& out) const {
    for (int k : nodes[n].kids) {
      if (nodes[k].name == name) out.push_back(k);
      if (!stop.empty() && nodes[k].name == stop) continue;
      find_all(k, name, stop, out);
    }
  }
  std::optional<std::string> show_of(int n, std::string_view name, std::string_view stop = {}) const {
    int k = find(n, name, stop);
    if (k < 0) return std::nullopt;
    return nodes[k].show;
  }
};

// The text of `s` between `from` and `to` (to the end when `to` is empty or not found).
std::optional<std::string> between(const std::string& s, std::string_view from, std::string_view to) {
  size_t b = s.find(from);
  if (b == std::string::npos) return std::nullopt;
  b += from.size();
  size_t e = to.empty() ? std::string::npos : s.find(to, b);
  return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

uint64_t parse_num(const std::string& s) {
  if (starts_with(s, "0x") || starts_with(s, "0X")) return std::strtoull(s.c_str() + 2, nullptr, 16);
  return std::strtoull(s.c_str(), nullptr, 10);
}

// The handle carried by the wrapper around an nfs.fh.length node: hex of nfs.fhandle, ""
// for a zero-length handle, nullopt when the bytes are not in the capture.
std::optional<std::string> fh_at(const PdmlPacket& p, int fh_length_node) {
  int parent = p.nodes[fh_length_node].parent;
  if (parent < 0) return std::nullopt;
  for (int k : p.nodes[parent].kids) {
    if (p.nodes[k].name == "nfs.fhandle") return lower(std::string(p.nodes[k].value));
  }
  if (parse_num(p.nodes[fh_length_node].show) == 0) return std::string();
  return std::nullopt;
}

// Fill `r` (prog/vers/proc set) from the nfs/mount protocol node `pn`.
void extract_program_fields(const PdmlPacket& p, int pn, Rec& r) {
  constexpr std::string_view kEntry = "nfs.readdir.entry";
  std::vector<int> fhl, names;
  p.find_all(pn, "nfs.fh.length", kEntry, fhl);
  p.find_all(pn, "nfs.name", kEntry, names);
  std::vector<std::optional<std::string>> fhs;
  for (int n : fhl) fhs.push_back(fh_at(p, n));
  std::vector<std::string> nm;
  for (int n : names) nm.push_back(bytes_of_hex(p.nodes[n].value));

  auto set_fh = [&](const char* field, size_t i) {
    if (i < fhs.size() && fhs[i]) r.f[field] = *fhs[i];
  };
  auto set_name = [&](const char* field, size_t i) {
    if (i < nm.size()) r.f[field] = nm[i];
  };
  auto set_num = [&](const char* field, std::string_view tname) {
    auto v = p.show_of(pn, tname, kEntry);
    if (v) r.f[field] = std::to_string(parse_num(*v));
  };
  auto set_bytes = [&](const char* field, std::string_view tname) {
    int k = p.find(pn, tname, kEntry);
    if (k >= 0) r.f[field] = bytes_of_hex(p.nodes[k].value);
  };
  if (!r.proc) return;
  const uint32_t proc = *r.proc;

  if (r.prog == kMountProgram) {  // MOUNT v3
    if (!r.reply) {
      if (proc == 1 || proc == 3) set_bytes("path", "mount.path");
    } else if (proc == 1) {
      set_num("status", "mount.status");
      set_fh("obj_fh", 0);
    }
    return;
  }

  // NFSv3
  if (!r.reply) {
    switch (proc) {
      case 1:
      case 2:
      case 4:
      case 5:
      case 6:
      case 7:
      case 16:
      case 17:
      case 18:
      case 19:
      case 20:
      case 21:
        set_fh("fh", 0);
        break;
      case 3:
      case 8:
      case 9:
      case 10:
      case 11:
      case 12:
      case 13:
        set_fh("dir_fh", 0);
        set_name("name", 0);
        break;
      case 14:
        set_fh("dir_fh", 0);
        set_name("name", 0);
        set_fh("to_dir_fh", 1);
        set_name("to_name", 1);
        break;
      case 15:  // LINK: file -> fh; link.dir/link.name -> to_dir_fh/to_name (decode schema)
        set_fh("fh", 0);
        set_fh("to_dir_fh", 1);
        set_name("to_name", 0);
        break;
      default:
        break;
    }
    if (proc == 6 || proc == 7 || proc == 21) {
      set_num("offset", "nfs.offset3");
      set_num("count", "nfs.count3");
    }
    if (proc == 16) set_num("count", "nfs.count3");
    if (proc == 17) set_num("count", "nfs.count3_dircount");
    if (proc == 7) set_num("stable", "nfs.write.stable");
    if (proc == 10) set_bytes("path", "nfs.symlink.to");
    return;
  }

  // NFSv3 reply
  if (proc != 0) set_num("status", "nfs.status3");
  const bool ok = r.f.count("status") && r.f["status"] == "0";
  if (ok && (proc == 3 || proc == 8 || proc == 9 || proc == 10 || proc == 11)) set_fh("obj_fh", 0);
  if (ok && (proc == 6 || proc == 7)) set_num("res_count", "nfs.count3");
  if (ok && proc == 5) set_bytes("path", "nfs.readlink.data");  // READLINK target
  if (ok && proc == 17) {
    std::vector<int> ents;
    p.find_all(pn, kEntry, {}, ents);
    std::vector<Entry> es;
    for (int e : ents) {
      Entry en;
      int k = p.find(e, "nfs.readdirplus.entry.name");
      if (k >= 0) en.name = bytes_of_hex(p.nodes[k].value);
      k = p.find(e, "nfs.readdirplus.entry.fileid");
      if (k >= 0) en.fileid = std::to_string(parse_num(p.nodes[k].show));
      k = p.find(e, "nfs.fh.length");
      if (k >= 0) en.fh = fh_at(p, k);
      es.push_back(std::move(en));
    }
    r.f["entries"] = entries_string(es);
  }
  // Post-op attributes of the object: obj_attributes (GETATTR, LOOKUP, ACCESS, CREATE...),
  // file_attributes (READ, LINK), symlink_attributes (READLINK), file_wcc/obj_wcc after.
  for (int k : p.nodes[pn].kids) {
    const PNode& w = p.nodes[k];
    if (!w.name.empty()) continue;
    int attrs = -1;
    if (starts_with(w.show, "obj_attributes") || starts_with(w.show, "file_attributes") ||
        starts_with(w.show, "symlink_attributes") ||
        ((proc == 16 || proc == 17) && starts_with(w.show, "dir_attributes"))) {
      attrs = k;
    } else if (starts_with(w.show, "file_wcc") || starts_with(w.show, "obj_wcc")) {
      for (int a : w.kids)
        if (p.nodes[a].name.empty() && starts_with(p.nodes[a].show, "after")) attrs = a;
    }
    if (attrs < 0) continue;
    auto sz = p.show_of(attrs, "nfs.fattr3.size");
    auto used = p.show_of(attrs, "nfs.fattr3.used");
    if (sz) r.oneway["size"] = std::to_string(parse_num(*sz));
    if (used) r.oneway["used"] = std::to_string(parse_num(*used));
    break;
  }
}

// Turn one PDML packet into records.
void process_packet(const PdmlPacket& p, std::vector<Rec>& out) {
  uint64_t frame = 0;
  std::string src_addr, dst_addr, src_port, dst_port, transport;
  Rec* cur = nullptr;      // last RPC message of this packet
  bool cur_valid = false;  // cur is NFSv3/MOUNTv3 and waiting for its program proto
  size_t first_of_packet = out.size();
  std::vector<bool> keep;  // parallel to out[first_of_packet..]
  for (int root : p.roots) {
    const PNode& n = p.nodes[root];
    if (!n.proto) continue;
    if (n.name == "geninfo") {
      auto v = p.show_of(root, "num");
      if (v) frame = parse_num(*v);
    } else if (n.name == "frame") {
      auto v = p.show_of(root, "frame.number");
      if (v) frame = parse_num(*v);
    } else if (n.name == "ip" || n.name == "ipv6") {
      // Only the protocol line is in the output (-J keeps the children of rpc/nfs/mount
      // only): "Internet Protocol Version 4, Src: 10.0.0.1, Dst: 10.0.0.2".
      if (auto v = between(n.showname, "Src: ", ", Dst: ")) src_addr = *v;
      if (auto v = between(n.showname, ", Dst: ", "")) dst_addr = *v;
    } else if (n.name == "tcp" || n.name == "udp") {
      // "Transmission Control Protocol, Src Port: 679, Dst Port: 2049, Seq: ..."
      transport = n.name;
      if (auto v = between(n.showname, "Src Port: ", ",")) src_port = *v;
      if (auto v = between(n.showname, "Dst Port: ", ",")) dst_port = *v;
    } else if (n.name == "rpc") {
      Rec r;
      r.frame = frame;
      r.transport = transport;
      r.src = canon_endpoint(src_addr, src_port);
      r.dst = canon_endpoint(dst_addr, dst_port);
      auto xid = p.show_of(root, "rpc.xid");
      auto typ = p.show_of(root, "rpc.msgtyp");
      auto prog = p.show_of(root, "rpc.program");
      auto vers = p.show_of(root, "rpc.programversion");
      auto proc = p.show_of(root, "rpc.procedure");
      if (xid) r.xid = uint32_t(parse_num(*xid));
      r.reply = typ && *typ == "1";
      if (prog) r.prog = uint32_t(parse_num(*prog));
      if (vers) r.vers = uint32_t(parse_num(*vers));
      if (proc) r.proc = uint32_t(parse_num(*proc));
      // "Procedure: LOOKUP (3)" -> proc_name "LOOKUP"
      if (int k = p.find(root, "rpc.procedure"); k >= 0) {
        if (auto v = between(p.nodes[k].showname, "Procedure: ", " (")) r.f["proc_name"] = *v;
      }
      bool want = xid && typ && prog && vers &&
                  ((r.prog == kNfsProgram && r.vers == 3) || (r.prog == kMountProgram && r.vers == 3));
      out.push_back(std::move(r));
      keep.push_back(want);
      cur = &out.back();
      cur_valid = want;
    } else if (n.name == "nfs" || n.name == "mount") {
      if (cur && cur_valid) {
        extract_program_fields(p, root, *cur);
        cur_valid = false;
      }
    } else if (n.name == "_ws.malformed") {
      if (cur) cur->note = "tshark: malformed";
    }
  }
  // Drop records that are not NFSv3/MOUNTv3.
  size_t w = first_of_packet;
  for (size_t i = first_of_packet; i < out.size(); ++i) {
    if (keep[i - first_of_packet]) {
      if (w != i) out[w] = std::move(out[i]);
      ++w;
    }
  }
  out.resize(w);
}

TsharkResult run_tshark(const fs::path& file, const std::vector<std::string>& extra) {
  TsharkResult res;
  std::string cmd = "tshark -n -r " + shell_quote(file.string());
  for (const auto& a : extra) cmd += " " + shell_quote(a);
  cmd += " -Y rpc -T pdml -J " + shell_quote("rpc nfs mount _ws.malformed");
  res.cmdline = cmd;
  cmd += " 2>/dev/null";
  FILE* fp = popen(cmd.c_str(), "r");
  if (!fp) {
    res.exit_status = -1;
    return res;
  }
  char* line = nullptr;
  size_t cap = 0;
  ssize_t len;
  PdmlPacket pkt;
  std::vector<int> stack;
  while ((len = getline(&line, &cap, fp)) > 0) {
    std::string_view s(line, size_t(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    size_t b = s.find_first_not_of(' ');
    if (b == std::string_view::npos) continue;
    s.remove_prefix(b);
    if (starts_with(s, "<packet>")) {
      pkt.clear();
      stack.clear();
      continue;
    }
    if (starts_with(s, "</packet>")) {
      ++res.packets;
      process_packet(pkt, res.recs);
      continue;
    }
    if (starts_with(s, "</field>") || starts_with(s, "</proto>")) {
      if (!stack.empty()) stack.pop_back();
      continue;
    }
    bool is_field = starts_with(s, "<field");
    bool is_proto = starts_with(s, "<proto");
    if (!is_field && !is_proto) continue;
    bool self_closing = ends_with(s, "/>");
    PNode n;
    n.proto = is_proto;
    if (auto v = attr_of(s, "name")) n.name = std::string(*v);
    if (is_proto || n.name == "rpc.procedure")
      if (auto v = attr_of(s, "showname")) n.showname = xml_unescape(*v);
    // The data of a WRITE call / READ reply is never needed: do not copy it.
    if (n.name != "nfs.data") {
      if (auto v = attr_of(s, "show")) n.show = xml_unescape(*v);
      if (auto v = attr_of(s, "value")) {
        n.value = std::string(*v);
        n.has_value = true;
      }
    }
    int idx = int(pkt.nodes.size());
    n.parent = stack.empty() ? -1 : stack.back();
    pkt.nodes.push_back(std::move(n));
    if (pkt.nodes[idx].parent >= 0)
      pkt.nodes[pkt.nodes[idx].parent].kids.push_back(idx);
    else
      pkt.roots.push_back(idx);
    if (!self_closing) stack.push_back(idx);
  }
  free(line);
  int st = pclose(fp);
  res.exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return res;
}

// ---------------------------------------------------------------------------------------
// nfsfence side

struct OursResult {
  std::vector<Rec> recs;
  uint64_t lines = 0;
  int exit_status = 0;
  std::string cmdline, stderr_text;
  std::vector<std::string> parse_errors;
};

std::optional<std::string> json_hex(const nlohmann::json& j, const char* k) {
  if (!j.contains(k) || !j[k].is_string()) return std::nullopt;
  return lower(j[k].get<std::string>());
}
std::optional<std::string> json_str(const nlohmann::json& j, const char* k) {
  if (!j.contains(k) || !j[k].is_string()) return std::nullopt;
  return j[k].get<std::string>();
}
std::optional<std::string> json_num(const nlohmann::json& j, const char* k) {
  if (!j.contains(k) || !j[k].is_number_integer()) return std::nullopt;
  if (j[k].is_number_unsigned()) return std::to_string(j[k].get<uint64_t>());
  return std::to_string(j[k].get<int64_t>());
}

OursResult run_ours(const fs::path& bin, const fs::path& file, const fs::path& errfile) {
  OursResult res;
  std::string cmd = shell_quote(bin.string()) + " decode " + shell_quote(file.string()) + " --format jsonl";
  res.cmdline = cmd;
  cmd += " 2>" + shell_quote(errfile.string());
  FILE* fp = popen(cmd.c_str(), "r");
  if (!fp) {
    res.exit_status = -1;
    return res;
  }
  char* line = nullptr;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, fp)) > 0) {
    std::string_view s(line, size_t(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    if (s.empty()) continue;
    ++res.lines;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(s);
    } catch (const std::exception& e) {
      if (res.parse_errors.size() < 5)
        res.parse_errors.push_back(std::string(e.what()) + ": " + std::string(s.substr(0, 200)));
      continue;
    }
    if (!j.is_object()) continue;
    auto prog = json_num(j, "prog"), vers = json_num(j, "vers");
    if (!prog || !vers) continue;
    Rec r;
    r.prog = uint32_t(std::stoull(*prog));
    r.vers = uint32_t(std::stoull(*vers));
    if (!((r.prog == kNfsProgram && r.vers == 3) || (r.prog == kMountProgram && r.vers == 3))) continue;
    if (auto v = json_num(j, "frame")) r.frame = std::stoull(*v);
    r.transport = json_str(j, "transport").value_or("?");
    r.src = canon_endpoint(json_str(j, "src").value_or("?"));
    r.dst = canon_endpoint(json_str(j, "dst").value_or("?"));
    if (auto v = json_num(j, "xid")) r.xid = uint32_t(std::stoull(*v));
    r.reply = json_str(j, "type").value_or("") == "reply";
    if (auto v = json_num(j, "proc")) r.proc = uint32_t(std::stoull(*v));
    if (auto v = json_str(j, "proc_name")) r.f["proc_name"] = *v;
    for (const char* k : {"fh", "dir_fh", "to_dir_fh", "obj_fh"})
      if (auto v = json_hex(j, k)) r.f[k] = *v;
    for (const char* k : {"name", "to_name", "path"})
      if (auto v = json_str(j, k)) r.f[k] = *v;
    for (const char* k : {"offset", "count", "stable", "status", "res_count"})
      if (auto v = json_num(j, k)) r.f[k] = *v;
    for (const char* k : {"size", "used"})
      if (auto v = json_num(j, k)) r.oneway[k] = *v;
    if (j.contains("entries") && j["entries"].is_array()) {
      std::vector<Entry> es;
      for (const auto& e : j["entries"]) {
        Entry en;
        en.name = json_str(e, "name").value_or("");
        en.fileid = json_num(e, "fileid").value_or("");
        en.fh = json_hex(e, "fh");
        es.push_back(std::move(en));
      }
      r.f["entries"] = entries_string(es);
    }
    auto dec = json_str(j, "decode").value_or("?");
    if (dec != "ok") r.note = "ours: decode=" + dec;
    res.recs.push_back(std::move(r));
  }
  free(line);
  int st = pclose(fp);
  res.exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : (WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1);
  std::ifstream ef(errfile);
  std::stringstream ss;
  ss << ef.rdbuf();
  res.stderr_text = ss.str();
  return res;
}

// ---------------------------------------------------------------------------------------
// Comparison

struct Diff {
  std::string kind;
  std::string text;
};

const std::vector<std::string> kFields = {"proc",      "proc_name", "fh",     "dir_fh",    "name",
                                          "to_dir_fh", "to_name",   "offset", "count",     "stable",
                                          "path",      "status",    "obj_fh", "res_count", "entries"};

std::optional<std::string> get_field(const Rec& r, const std::string& name) {
  if (name == "proc") return r.proc ? std::optional<std::string>(std::to_string(*r.proc)) : std::nullopt;
  auto it = r.f.find(name);
  if (it == r.f.end()) return std::nullopt;
  return it->second;
}

std::string frames(const Rec& t, const Rec& o) {
  return "tshark frame " + std::to_string(t.frame) + ", nfsfence frame " + std::to_string(o.frame);
}

// Field differences of a matched pair.
std::vector<Diff> compare_pair(const Rec& t, const Rec& o) {
  std::vector<Diff> d;
  for (const auto& name : kFields) {
    auto tv = get_field(t, name), ov = get_field(o, name);
    if (tv == ov) continue;
    std::string text = frames(t, o) + ": " + t.key() + " " + t.what() + ": " + name +
                       " tshark=" + (tv ? show_field(name, *tv) : "<absent>") +
                       " nfsfence=" + (ov ? show_field(name, *ov) : "<absent>");
    if (!t.note.empty()) text += " [" + t.note + "]";
    if (!o.note.empty()) text += " [" + o.note + "]";
    d.push_back({"field:" + name, text});
  }
  for (const auto& [name, ov] : o.oneway) {
    auto it = t.oneway.find(name);
    if (it != t.oneway.end() && it->second == ov) continue;
    d.push_back({"field:" + name, frames(t, o) + ": " + t.key() + " " + t.what() + ": " + name + " tshark=" +
                                      (it == t.oneway.end() ? "<absent>" : it->second) + " nfsfence=" + ov});
  }
  if (o.frame > t.frame)
    d.push_back(
        {"frame_order", frames(t, o) + ": " + t.key() + ": nfsfence's start frame is after tshark's end frame"});
  return d;
}

struct Comparison {
  std::vector<Diff> diffs;
  uint64_t matched = 0;
  uint64_t t_calls = 0, t_replies = 0, o_calls = 0, o_replies = 0;
};

Comparison compare(const std::vector<Rec>& ts, const std::vector<Rec>& ours) {
  Comparison c;
  for (const auto& r : ts) (r.reply ? c.t_replies : c.t_calls)++;
  for (const auto& r : ours) (r.reply ? c.o_replies : c.o_calls)++;
  std::map<std::string, std::vector<size_t>> tk, ok;
  for (size_t i = 0; i < ts.size(); ++i) tk[ts[i].key()].push_back(i);
  for (size_t i = 0; i < ours.size(); ++i) ok[ours[i].key()].push_back(i);
  std::set<std::string> keys;
  for (auto& [k, v] : tk) keys.insert(k);
  for (auto& [k, v] : ok) keys.insert(k);
  std::vector<std::pair<uint64_t, Diff>> ordered;  // by tshark frame for readable output
  for (const auto& k : keys) {
    std::vector<size_t> a = tk.count(k) ? tk[k] : std::vector<size_t>{};
    std::vector<size_t> b = ok.count(k) ? ok[k] : std::vector<size_t>{};
    // Same key several times (retransmissions): pair identical records first, then in
    // capture order.
    std::vector<bool> ua(a.size()), ub(b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      for (size_t j = 0; j < b.size(); ++j) {
        if (ub[j]) continue;
        if (compare_pair(ts[a[i]], ours[b[j]]).empty()) {
          ua[i] = ub[j] = true;
          ++c.matched;
          break;
        }
      }
    }
    size_t j = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (ua[i]) continue;
      while (j < b.size() && ub[j]) ++j;
      if (j < b.size()) {
        ub[j] = true;
        ++c.matched;
        for (auto& d : compare_pair(ts[a[i]], ours[b[j]])) ordered.push_back({ts[a[i]].frame, std::move(d)});
      } else {
        const Rec& t = ts[a[i]];
        ordered.push_back(
            {t.frame,
             {"only_tshark", "tshark frame " + std::to_string(t.frame) + ": " + t.key() + " " + t.what() +
                                 (t.note.empty() ? "" : " [" + t.note + "]") + ": not reported by nfsfence"}});
      }
    }
    for (size_t jj = 0; jj < b.size(); ++jj) {
      if (ub[jj]) continue;
      const Rec& o = ours[b[jj]];
      ordered.push_back({o.frame,
                         {"only_ours", "nfsfence frame " + std::to_string(o.frame) + ": " + o.key() + " " + o.what() +
                                           (o.note.empty() ? "" : " [" + o.note + "]") + ": not reported by tshark"}});
    }
  }
  std::stable_sort(ordered.begin(), ordered.end(), [](auto& x, auto& y) { return x.first < y.first; });
  for (auto& [f, d] : ordered) c.diffs.push_back(std::move(d));
  return c;
}

void dump_recs(const fs::path& path, const std::vector<Rec>& recs) {
  std::ofstream o(path);
  for (const auto& r : recs) {
    o << "frame=" << r.frame << " " << r.key() << " " << r.what();
    for (const auto& [k, v] : r.f) o << " " << k << "=" << show_field(k, v);
    for (const auto& [k, v] : r.oneway) o << " (" << k << "=" << v << ")";
    if (!r.note.empty()) o << " [" << r.note << "]";
    o << "\n";
  }
}

// ---------------------------------------------------------------------------------------
// Captures

struct Capture {
  std::string id;    // "shared/nfstrace/x.pcap.bz2" or "repo/x.pcap"
  fs::path path;     // the file as stored
  std::string name;  // gtest parameter name
};

void PrintTo(const Capture& c, std::ostream* os) { *os << (c.id.empty() ? c.name : c.id); }

std::string param_name(const std::string& id) {
  std::string out;
  for (char c : id) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

bool is_capture_name(const std::string& f, bool allow_bz2) {
  if (ends_with(f, ".pcap") || ends_with(f, ".pcapng")) return true;
  return allow_bz2 && (ends_with(f, ".pcap.bz2") || ends_with(f, ".pcapng.bz2"));
}

std::vector<Capture> list_captures(const fs::path& root, const std::string& prefix, bool allow_bz2) {
  std::vector<Capture> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string fn = it->path().filename().string();
    if (!is_capture_name(fn, allow_bz2)) continue;
    std::string rel = fs::relative(it->path(), root, ec).generic_string();
    Capture c{prefix + rel, it->path(), ""};
    c.name = param_name(c.id);
    out.push_back(c);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return out;
}

std::vector<Capture> shared_captures() {
  auto v = list_captures(shared_dir(), "shared/", true);
  if (v.empty()) v.push_back({"", {}, "shared_pcaps_absent"});
  return v;
}
std::vector<Capture> repo_captures() {
  auto v = list_captures(repo_pcaps_dir(), "repo/", false);
  if (v.empty()) v.push_back({"", {}, "no_repo_pcaps"});
  return v;
}

// Decompress a .bz2 capture into the build tree (tshark 4.0 cannot read bzip2).
fs::path materialize(const Capture& c) {
  if (!ends_with(c.path.string(), ".bz2")) return c.path;
  fs::path out = work_dir() / "pcaps" / c.id.substr(0, c.id.size() - 4);
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  if (fs::exists(out, ec) && fs::file_size(out, ec) > 0 &&
      fs::last_write_time(out, ec) >= fs::last_write_time(c.path, ec))
    return out;
  fs::path tmp = out;
  tmp += ".tmp";
  std::string cmd = "bunzip2 -kc " + shell_quote(c.path.string()) + " > " + shell_quote(tmp.string());
  if (std::system(cmd.c_str()) != 0) return {};
  fs::rename(tmp, out, ec);
  return ec ? fs::path{} : out;
}

void run_oracle(const Capture& c, const char* absent_msg, const fs::path& absent_dir) {
  if (c.id.empty()) GTEST_SKIP() << absent_msg << " (" << absent_dir.string() << ")";
  if (!have_program("tshark")) GTEST_SKIP() << "tshark is not installed (Debian package `tshark`): oracle skipped";
  const fs::path bin = nfsfence_bin();
  ASSERT_TRUE(fs::exists(bin)) << "nfsfence binary not found: " << bin << " (set NFSF_BIN)";

  fs::path file = materialize(c);
  ASSERT_FALSE(file.empty()) << "cannot decompress " << c.path << " (bunzip2 missing?)";

  std::vector<std::string> opts;
  for (const auto& o : kTsharkOpts)
    if (c.id == o.capture) opts = o.args;

  TsharkResult ts = run_tshark(file, opts);
  ASSERT_EQ(ts.exit_status, 0) << "tshark failed: " << ts.cmdline;

  fs::path wd = work_dir();
  std::error_code ec;
  fs::create_directories(wd, ec);
  fs::path errfile = wd / (c.name + ".stderr");
  OursResult ours = run_ours(bin, file, errfile);
  EXPECT_EQ(ours.exit_status, 0) << ours.cmdline << " exited " << ours.exit_status << "; stderr:\n"
                                 << ours.stderr_text.substr(0, 2000);
  EXPECT_TRUE(ours.parse_errors.empty()) << "nfsfence printed lines that are not JSON, e.g.\n"
                                         << (ours.parse_errors.empty() ? "" : ours.parse_errors.front());

  if (file != c.path) {
    // The decoder reads .bz2 itself: the output must be the same as for the decompressed file.
    OursResult bz = run_ours(bin, c.path, wd / (c.name + ".bz2.stderr"));
    EXPECT_EQ(bz.exit_status, 0) << bz.cmdline << " exited " << bz.exit_status << "; stderr:\n"
                                 << bz.stderr_text.substr(0, 2000);
    EXPECT_EQ(bz.recs.size(), ours.recs.size())
        << "decoding " << c.path << " directly gives a different number of NFSv3/MOUNT messages than decoding "
        << "the decompressed copy " << file;
  }

  if (std::getenv("NFSF_ORACLE_DUMP")) {
    dump_recs(wd / (c.name + ".tshark.txt"), ts.recs);
    dump_recs(wd / (c.name + ".nfsfence.txt"), ours.recs);
  }

  Comparison cmp = compare(ts.recs, ours.recs);
  std::map<std::string, std::vector<std::string>> by_kind;
  for (const auto& d : cmp.diffs) by_kind[d.kind].push_back(d.text);

  static const std::string tshark_version = [] {
    std::string v;
    if (FILE* f = popen("tshark --version 2>/dev/null", "r")) {
      char buf[256];
      if (fgets(buf, sizeof buf, f)) v = buf;
      pclose(f);
    }
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    return v;
  }();
  std::ostringstream summary;
  summary << c.id << "\n  " << tshark_version << "\n  tshark: " << ts.cmdline << "\n  nfsfence: " << ours.cmdline
          << "\n  NFSv3+MOUNTv3 calls/replies: tshark " << cmp.t_calls << "/" << cmp.t_replies << ", nfsfence "
          << cmp.o_calls << "/" << cmp.o_replies << "; matched " << cmp.matched << "\n";
  std::cout << summary.str();

  // Known differences for this capture.
  std::map<std::string, const KnownDiff*> known;
  for (const auto& k : kKnownDiffs)
    if (c.id == k.capture) known[k.kind] = &k;

  std::set<std::string> kinds;
  for (auto& [k, v] : by_kind) kinds.insert(k);
  for (auto& [k, v] : known) kinds.insert(k);
  for (const auto& kind : kinds) {
    const auto& list = by_kind[kind];
    auto kit = known.find(kind);
    std::ostringstream msg;
    size_t shown = 0;
    for (const auto& t : list) {
      if (++shown > 25) {
        msg << "    ... and " << (list.size() - 25) << " more\n";
        break;
      }
      msg << "    " << t << "\n";
    }
    if (kit != known.end() && kit->second->count == list.size()) {
      std::cout << "  explained: " << kind << " x" << list.size() << ": " << kit->second->reason << "\n" << msg.str();
      continue;
    }
    if (kit != known.end()) {
      ADD_FAILURE() << c.id << ": " << kind << ": " << list.size() << " difference(s), but the explanation table "
                    << "expects " << kit->second->count << " (" << kit->second->reason << ")\n"
                    << msg.str();
    } else {
      ADD_FAILURE() << c.id << ": " << list.size() << " unexplained " << kind << " difference(s):\n" << msg.str();
    }
  }
  // The per-capture counts of calls and replies agree unless an explained only_* covers it.
  if (!known.count("only_ours") && !known.count("only_tshark")) {
    EXPECT_EQ(cmp.t_calls, cmp.o_calls) << c.id << ": NFSv3+MOUNTv3 call count";
    EXPECT_EQ(cmp.t_replies, cmp.o_replies) << c.id << ": NFSv3+MOUNTv3 reply count";
  }
}

class OracleShared : public ::testing::TestWithParam<Capture> {};
class OracleRepo : public ::testing::TestWithParam<Capture> {};

TEST_P(OracleShared, DecodeAgreesWithTshark) {
  run_oracle(GetParam(), "shared captures directory is absent; the tshark oracle over ../shared/pcaps is skipped",
             shared_dir());
}
TEST_P(OracleRepo, DecodeAgreesWithTshark) {
  run_oracle(GetParam(), "no *.pcap / *.pcapng in the repository's pcaps/ yet", repo_pcaps_dir());
}

INSTANTIATE_TEST_SUITE_P(Captures, OracleShared, ::testing::ValuesIn(shared_captures()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Captures, OracleRepo, ::testing::ValuesIn(repo_captures()),
                         [](const auto& info) { return info.param.name; });

// The tables name only captures that exist (a renamed capture must not leave a stale
// explanation behind), and every explanation has a reason.
TEST(OracleTables, NameExistingCaptures) {
  if (!fs::is_directory(shared_dir())) GTEST_SKIP() << "shared captures directory is absent: " << shared_dir();
  std::set<std::string> ids;
  for (const auto& c : list_captures(shared_dir(), "shared/", true)) ids.insert(c.id);
  for (const auto& c : list_captures(repo_pcaps_dir(), "repo/", false)) ids.insert(c.id);
  for (const auto& o : kTsharkOpts)
    EXPECT_TRUE(ids.count(o.capture)) << "tshark options for missing capture " << o.capture;
  for (const auto& k : kKnownDiffs) {
    EXPECT_TRUE(ids.count(k.capture)) << "explained difference for missing capture " << k.capture;
    EXPECT_GT(std::strlen(k.reason), 20u) << k.capture << " " << k.kind << ": give the reason";
    EXPECT_GT(k.count, 0u) << k.capture << " " << k.kind;
  }
}

}  // namespace
