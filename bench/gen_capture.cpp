// nfsf_gen_capture: writes a synthetic but protocol-faithful NFSv3-over-TCP capture (classic
// pcap, Ethernet/IPv4/TCP) of a chosen size, plus the matching quota policy and the expected
// per-tree totals, for the replay benchmark (bench/run.sh).
//
//   nfsf_gen_capture OUT.pcap --size-mb N [--seed S] [--clients C] [--no-gso]
//
// Writes OUT.pcap, OUT.policy.yaml and OUT.truth.json (OUT = the path without ".pcap").
//
// The traffic: C clients (default 4), each with one TCP connection from a privileged port to
// server:2049 (3-way handshake with MSS 1448 and timestamps; segments carry the 12-byte TS
// option so MSS-sized segments are 1514-byte frames), and a MOUNT v3 MNT of /export over UDP
// to mountd (20048) after a portmapper GETPORT. Client 0 creates the directory trees (LOOKUP
// NOENT + MKDIR); the others LOOKUP them. Then, until the file reaches N MiB, a random mix of
// file writes (LOOKUP NOENT, CREATE UNCHECKED, pipelined UNSTABLE WRITEs of 32 KiB..1 MiB
// whose records span many segments, replies with wcc_data whose post-op size/used grow,
// COMMIT, GETATTR), file reads (ACCESS, pipelined READs, replies with data), READDIRPLUS
// listings (paged by cookie), GETATTRs and REMOVEs. Up to 8 calls are in flight per client
// and replies come back in a shuffled order, interleaved with the remaining calls; the
// receiving side sends delayed ACKs. Clients with GSO (client 3 by default) send their data in
// 64 KiB "super segments" as tcpdump shows on a host with TSO.
//
// XDR is encoded by hand here from RFC 5531 (RPC) and RFC 1813 (NFSv3, MOUNTv3): 32-bit
// big-endian words, opaque data padded to a multiple of 4 (an oracle independent of the
// tests' XDR); the frames, their checksums and the pcap file come from tests/pkt.
//
// Memory: one RPC record (<= 1 MiB + headers) plus the namespace model (a few hundred bytes per
// file); the capture is streamed out.

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <functional>
#include <memory>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "pkt/net.h"
#include "pkt/pcap.h"

namespace {

// ---------------------------------------------------------------- XDR encoding
struct Xdr {
  std::vector<uint8_t>* out;
  explicit Xdr(std::vector<uint8_t>& buf) : out(&buf) {}
  void u32(uint32_t v) {
    uint8_t w[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    out->insert(out->end(), w, w + 4);
  }
  void u64(uint64_t v) {
    u32(uint32_t(v >> 32));
    u32(uint32_t(v));
  }
  void boolean(bool v) { u32(v ? 1 : 0); }
  void fixed(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    out->insert(out->end(), c, c + n);
    out->insert(out->end(), (4 - n % 4) % 4, 0);
  }
  void opaque(const void* p, size_t n) {
    u32(uint32_t(n));
    fixed(p, n);
  }
  void str(const std::string& s) { opaque(s.data(), s.size()); }
};

// ---------------------------------------------------------------- RPC / NFS constants
constexpr uint32_t kProgPortmap = 100000, kProgNfs = 100003, kProgMount = 100005;
enum NfsProc : uint32_t {
  GETATTR = 1,
  LOOKUP = 3,
  ACCESS = 4,
  READ = 6,
  WRITE = 7,
  CREATE = 8,
  MKDIR = 9,
  REMOVE = 12,
  READDIRPLUS = 17,
  FSINFO = 19,
  COMMIT = 21,
};
constexpr uint32_t NFS3_OK = 0, NFS3ERR_NOENT = 2;
constexpr uint32_t NF3REG = 1, NF3DIR = 2;

// ---------------------------------------------------------------- namespace model
struct Node {
  uint64_t fileid = 0;
  bool dir = false;
  bool alive = true;
  int parent = -1;
  int tree = -1;  // index into kTrees, -1 outside every tree
  std::string name;
  uint64_t size = 0;
  uint64_t ctime_ns = 0, mtime_ns = 0;
  std::vector<int> children;  // directories only
  uint32_t nlink_dirs = 0;
};

struct TreeDef {
  const char* name;
  const char* path;
  double weight;  // share of the new files
};
// "beta" is the tree that crosses its limit (the policy gets a limit at ~40% of its writes).
constexpr TreeDef kTrees[] = {
    {"alpha", "projects/alpha", 0.30},
    {"beta", "projects/beta", 0.30},
    {"scratch", "scratch", 0.25},
    {"home", "home", 0.15},
};
constexpr int kNumTrees = 4;
constexpr int kCrossingTree = 1;

uint64_t used_of(uint64_t size) { return (size + 4095) / 4096 * 4096; }

// ---------------------------------------------------------------- pcap + TCP/IP framing
// From the tests' packet library (tests/pkt): the frames, their checksums and the pcap file.
struct Pcap {
  nfsfence::pkt::PcapWriter w;
  uint64_t now_ns = 1700000000ull * 1000000000ull;  // 2023-11-14
  std::vector<uint8_t> frame;

  bool open(const std::string& path) { return w.open(path, 1 /* DLT_EN10MB */); }
  void put() {
    // 10 Gbit/s: 0.8 ns per byte on the wire, plus inter-frame gap.
    now_ns += uint64_t(frame.size()) * 8 / 10 + 20;
    w.put(frame, now_ns);
  }
  uint64_t bytes() const { return w.bytes(); }
  uint64_t packets() const { return w.packets(); }
};

void be16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

struct Endpoint {
  uint8_t mac[6];
  uint32_t ip;
};

// Builds Ethernet + IPv4 (DF, TTL 64, the next IP ID) + (TCP|UDP) frames into pcap.frame and
// writes them.
struct Net {
  Pcap& pc;
  uint16_t ip_id = 1;
  bool checksums = true;

  nfsfence::pkt::Seg seg(const Endpoint& s, uint16_t sport, const Endpoint& d, uint16_t dport) {
    nfsfence::pkt::Seg g;
    be32(g.src.addr.data(), s.ip);
    be32(g.dst.addr.data(), d.ip);
    g.src.port = sport;
    g.dst.port = dport;
    std::memcpy(g.src_mac.data(), s.mac, 6);
    std::memcpy(g.dst_mac.data(), d.mac, 6);
    g.ip_id = ip_id++;
    g.dont_fragment = true;
    g.l4_checksum = checksums;
    return g;
  }
  // TCP with the timestamp option (NOP NOP TS), or MSS+SACKOK+TS+WS on SYNs.
  void tcp(const Endpoint& s, uint16_t sport, const Endpoint& d, uint16_t dport, uint32_t seq, uint32_t ack,
           uint8_t flags, const uint8_t* payload, size_t n, uint32_t tsval, uint32_t tsecr) {
    bool syn = flags & 0x02;
    uint8_t o[20];
    if (syn) {
      o[0] = 2;
      o[1] = 4;
      be16(o + 2, 1460);  // MSS
      o[4] = 4;
      o[5] = 2;  // SACK permitted
      o[6] = 8;
      o[7] = 10;
      be32(o + 8, tsval);
      be32(o + 12, tsecr);
      o[16] = 1;  // NOP
      o[17] = 3;
      o[18] = 3;
      o[19] = 7;  // window scale 7
    } else {
      o[0] = 1;
      o[1] = 1;
      o[2] = 8;
      o[3] = 10;
      be32(o + 4, tsval);
      be32(o + 8, tsecr);
    }
    nfsfence::pkt::Seg g = seg(s, sport, d, dport);
    g.seq = seq;
    g.ack = ack;
    g.flags = flags;
    g.window = syn ? 64240 : 8192;  // (scaled by 2^7 after the handshake)
    g.tcp_options = nfsfence::ByteView(o, syn ? 20 : 12);
    nfsfence::pkt::frame_into(pc.frame, g, nfsfence::ByteView(payload, n));
    pc.put();
  }
  void udp(const Endpoint& s, uint16_t sport, const Endpoint& d, uint16_t dport, const uint8_t* payload, size_t n) {
    nfsfence::pkt::Seg g = seg(s, sport, d, dport);
    g.udp = true;
    nfsfence::pkt::frame_into(pc.frame, g, nfsfence::ByteView(payload, n));
    pc.put();
  }
};

// One TCP connection client <-> server:2049.
struct Conn {
  Endpoint cli, srv;
  uint16_t cport = 0, sport = 2049;
  uint32_t cseq = 0, sseq = 0;                 // next sequence number to send from each side
  uint32_t cts = 0, sts = 0;                   // TS values
  int unacked_to_srv = 0, unacked_to_cli = 0;  // segments not yet ACKed (delayed ACK every 2)
  bool gso = false;
};

struct Gen {
  Pcap pc;
  Net net{pc};
  std::mt19937_64 rng;
  std::vector<Node> nodes;
  std::vector<int> files_alive;  // indexes into nodes (regular files, possibly dead: lazily pruned)
  std::vector<std::vector<int>> tree_dirs{kNumTrees};  // directories inside each tree
  std::vector<Conn> conns;
  std::vector<uint8_t> rec;   // the RPC record being built
  std::vector<uint8_t> pool;  // random bytes for WRITE/READ data
  uint32_t next_xid = 0x5a000000;
  uint64_t next_fileid = 1000;
  uint64_t target = 0;
  uint64_t limit_beta = 0;
  uint32_t fsid = 0x6e667366;
  const uint8_t writeverf[8] = {0x63, 0x61, 0x66, 0xe9, 0x00, 0x00, 0x00, 0x01};

  // truth, per tree (same definitions as `nfsfence replay`)
  struct Truth {
    uint64_t writes = 0, write_bytes = 0, reads = 0, read_bytes = 0;
    uint64_t refused_writes = 0, refused_bytes = 0;
    int64_t usage = 0;
    uint64_t peak = 0;
    bool over = false;
    uint64_t limit = 0;
  } truth[kNumTrees];
  std::map<std::string, uint64_t> calls_by_proc;
  uint64_t rpc_calls = 0, rpc_replies = 0;

  uint64_t rnd(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); }
  double rndf() { return std::uniform_real_distribution<double>(0, 1)(rng); }

  // ---- handles: knfsd-like 28-byte handles (version/auth/fsid type, fsid, fileid, generation)
  void fh_of(const Node& n, Xdr& x) {
    uint8_t h[28] = {1, 0, 6, 0};
    be32(h + 4, fsid);
    be32(h + 8, 0x2f657870);  // "/exp"
    be32(h + 12, uint32_t(n.fileid >> 32));
    be32(h + 16, uint32_t(n.fileid));
    be32(h + 20, uint32_t(n.fileid * 2654435761u));  // generation
    be32(h + 24, n.parent >= 0 ? uint32_t(nodes[n.parent].fileid) : 0);
    x.opaque(h, sizeof h);
  }
  void time3(Xdr& x, uint64_t ns) {
    x.u32(uint32_t(ns / 1000000000ull));
    x.u32(uint32_t(ns % 1000000000ull));
  }
  void fattr(Xdr& x, const Node& n) {
    x.u32(n.dir ? NF3DIR : NF3REG);
    x.u32(n.dir ? 0755 : 0644);
    x.u32(n.dir ? 2 + n.nlink_dirs : 1);
    x.u32(1000);
    x.u32(1000);
    x.u64(n.dir ? 4096 : n.size);
    x.u64(n.dir ? 4096 : used_of(n.size));
    x.u32(0);
    x.u32(0);
    x.u64(fsid);
    x.u64(n.fileid);
    time3(x, n.mtime_ns);
    time3(x, n.mtime_ns);
    time3(x, n.ctime_ns);
  }
  void post_op_attr(Xdr& x, const Node& n) {
    x.boolean(true);
    fattr(x, n);
  }
  void pre_op_attr(Xdr& x, uint64_t size, uint64_t mtime, uint64_t ctime) {
    x.boolean(true);
    x.u64(size);
    time3(x, mtime);
    time3(x, ctime);
  }

  // ---- RPC headers
  Xdr begin_call(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, int client, bool record_mark = true) {
    rec.clear();
    Xdr x{rec};
    if (record_mark) x.u32(0);
    x.u32(xid);
    x.u32(0);  // CALL
    x.u32(2);
    x.u32(prog);
    x.u32(vers);
    x.u32(proc);
    // AUTH_UNIX (AUTH_SYS) credentials
    std::vector<uint8_t> cred;
    Xdr c{cred};
    c.u32(uint32_t(pc.now_ns / 1000000000ull));
    c.str("client" + std::to_string(client + 1) + ".lab");
    c.u32(1000);
    c.u32(1000);
    c.u32(2);
    c.u32(1000);
    c.u32(27);
    x.u32(1);
    x.opaque(cred.data(), cred.size());
    x.u32(0);  // verifier AUTH_NONE
    x.u32(0);
    rpc_calls++;
    return x;
  }
  Xdr begin_reply(uint32_t xid, bool record_mark = true) {
    rec.clear();
    Xdr x{rec};
    if (record_mark) x.u32(0);
    x.u32(xid);
    x.u32(1);  // REPLY
    x.u32(0);  // MSG_ACCEPTED
    x.u32(0);  // verifier AUTH_NONE
    x.u32(0);
    x.u32(0);  // SUCCESS
    rpc_replies++;
    return x;
  }
  void finish_record() {
    uint32_t len = uint32_t(rec.size() - 4);
    be32(rec.data(), 0x80000000u | len);
  }

  // ---- TCP transmission of the record in `rec`
  void deliver_ack(Conn& c, bool to_server) {
    // the receiver (server if to_server) acknowledges what it has received so far
    if (to_server)
      net.tcp(c.srv, c.sport, c.cli, c.cport, c.sseq, c.cseq, 0x10, nullptr, 0, ++c.sts, c.cts);
    else
      net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, c.sseq, 0x10, nullptr, 0, ++c.cts, c.sts);
  }
  void send_record(Conn& c, bool from_client) {
    finish_record();
    size_t mss = 1448;
    size_t seg_max = from_client && c.gso ? 45 * mss : mss;  // 65160: a TSO "super segment"
    size_t off = 0;
    while (off < rec.size()) {
      size_t n = std::min(seg_max, rec.size() - off);
      bool last = off + n == rec.size();
      uint8_t flags = 0x10 | (last ? 0x08 : 0);
      if (from_client) {
        net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, c.sseq, flags, rec.data() + off, n, ++c.cts, c.sts);
        c.cseq += uint32_t(n);
        c.unacked_to_srv += int((n + mss - 1) / mss);
        c.unacked_to_cli = 0;  // this segment carried an ACK for the server's data
        if (c.unacked_to_srv >= 2) {
          deliver_ack(c, true);
          c.unacked_to_srv = 0;
        }
      } else {
        net.tcp(c.srv, c.sport, c.cli, c.cport, c.sseq, c.cseq, flags, rec.data() + off, n, ++c.sts, c.cts);
        c.sseq += uint32_t(n);
        c.unacked_to_cli += int((n + mss - 1) / mss);
        c.unacked_to_srv = 0;
        if (c.unacked_to_cli >= 2) {
          deliver_ack(c, false);
          c.unacked_to_cli = 0;
        }
      }
      off += n;
    }
  }
  void handshake(Conn& c) {
    c.cseq = uint32_t(rnd(0, 0xffffffff));
    c.sseq = uint32_t(rnd(0, 0xffffffff));
    c.cts = uint32_t(rnd(1, 1u << 30));
    c.sts = uint32_t(rnd(1, 1u << 30));
    net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, 0, 0x02, nullptr, 0, c.cts, 0);
    c.cseq++;
    net.tcp(c.srv, c.sport, c.cli, c.cport, c.sseq, c.cseq, 0x12, nullptr, 0, c.sts, c.cts);
    c.sseq++;
    net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, c.sseq, 0x10, nullptr, 0, ++c.cts, c.sts);
  }
  void close_conn(Conn& c) {
    net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, c.sseq, 0x11, nullptr, 0, ++c.cts, c.sts);
    c.cseq++;
    net.tcp(c.srv, c.sport, c.cli, c.cport, c.sseq, c.cseq, 0x11, nullptr, 0, ++c.sts, c.cts);
    c.sseq++;
    net.tcp(c.cli, c.cport, c.srv, c.sport, c.cseq, c.sseq, 0x10, nullptr, 0, ++c.cts, c.sts);
  }

  // ---- a pipelined batch of calls on one connection: call builders and reply builders.
  // Calls go out in order; after each call (from the second on) one earlier reply comes back
  // (a random one of those outstanding), the rest in shuffled order at the end. Reply builders
  // run at reply time, so post-op attributes reflect the order the server answered in.
  struct Op {
    std::function<void(Xdr&)> call_args;
    std::function<void(Xdr&)> reply_body;
    uint32_t proc;
    const char* name;
  };
  void run_batch(int ci, std::vector<Op>& ops) {
    Conn& c = conns[ci];
    std::vector<std::pair<uint32_t, size_t>> outstanding;  // xid, op index
    auto reply_one = [&](size_t k) {
      auto [xid, oi] = outstanding[k];
      outstanding.erase(outstanding.begin() + long(k));
      pc.now_ns += rnd(20000, 200000);  // server time
      Xdr x = begin_reply(xid);
      ops[oi].reply_body(x);
      send_record(c, false);
    };
    for (size_t i = 0; i < ops.size(); i++) {
      uint32_t xid = next_xid++;
      Xdr x = begin_call(xid, kProgNfs, 3, ops[i].proc, ci);
      ops[i].call_args(x);
      calls_by_proc[ops[i].name]++;
      send_record(c, true);
      outstanding.push_back({xid, i});
      if (outstanding.size() > 1) reply_one(rnd(0, outstanding.size() - 2));
    }
    while (!outstanding.empty()) reply_one(rnd(0, outstanding.size() - 1));
    pc.now_ns += rnd(5000, 50000);  // client think time
  }
  void single(int ci, Op op) {
    std::vector<Op> v{std::move(op)};
    run_batch(ci, v);
  }

  // ---- tree accounting truth (mirrors replay: usage from post-op attrs, calls checked at call time)
  void set_size(Node& n, uint64_t new_size) {
    if (n.tree >= 0) {
      Truth& t = truth[n.tree];
      t.usage += int64_t(used_of(new_size)) - int64_t(used_of(n.size));
      t.peak = std::max<uint64_t>(t.peak, uint64_t(t.usage));
      t.over = uint64_t(t.usage) >= t.limit;
    }
    n.size = new_size;
  }

  // ---- operations
  std::string new_name(const char* prefix) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%06" PRIu64 ".dat", prefix, next_fileid);
    return buf;
  }
  int add_node(int parent, const std::string& name, bool dir) {
    Node n;
    n.fileid = next_fileid++;
    n.dir = dir;
    n.parent = parent;
    n.name = name;
    n.ctime_ns = n.mtime_ns = pc.now_ns;
    n.tree = parent >= 0 ? nodes[parent].tree : -1;
    nodes.push_back(std::move(n));
    int idx = int(nodes.size() - 1);
    if (parent >= 0) {
      nodes[parent].children.push_back(idx);
      if (dir) nodes[parent].nlink_dirs++;
      nodes[parent].mtime_ns = nodes[parent].ctime_ns = pc.now_ns;
    }
    return idx;
  }
  Op op_lookup(int dir, std::string name, int found /* -1: NOENT */) {
    return Op{[this, dir, name](Xdr& x) {
                fh_of(nodes[dir], x);
                x.str(name);
              },
              [this, dir, found](Xdr& x) {
                if (found < 0) {
                  x.u32(NFS3ERR_NOENT);
                  post_op_attr(x, nodes[dir]);
                } else {
                  x.u32(NFS3_OK);
                  fh_of(nodes[found], x);
                  post_op_attr(x, nodes[found]);
                  post_op_attr(x, nodes[dir]);
                }
              },
              LOOKUP, "LOOKUP"};
  }
  void dir_wcc(Xdr& x, int dir, uint64_t pre_mtime) {
    pre_op_attr(x, 4096, pre_mtime, pre_mtime);
    post_op_attr(x, nodes[dir]);
  }
  // MKDIR or CREATE (UNCHECKED, mode 0644) of `name` in `dir`; the node is made at reply time.
  int make(int ci, int dir, const std::string& name, bool is_dir) {
    int made = -1;
    single(ci, op_lookup(dir, name, -1));
    single(ci, Op{[this, dir, name, is_dir](Xdr& x) {
                    fh_of(nodes[dir], x);
                    x.str(name);
                    if (!is_dir) x.u32(0);  // UNCHECKED
                    // sattr3: mode set, uid/gid/size not set, times: server time
                    x.boolean(true);
                    x.u32(is_dir ? 0755 : 0644);
                    x.boolean(false);
                    x.boolean(false);
                    x.boolean(false);
                    x.u32(1);
                    x.u32(1);
                  },
                  [this, dir, name, is_dir, &made](Xdr& x) {
                    uint64_t pre = nodes[dir].mtime_ns;
                    made = add_node(dir, name, is_dir);
                    x.u32(NFS3_OK);
                    x.boolean(true);  // post_op_fh3
                    fh_of(nodes[made], x);
                    post_op_attr(x, nodes[made]);
                    dir_wcc(x, dir, pre);
                  },
                  is_dir ? MKDIR : CREATE, is_dir ? "MKDIR" : "CREATE"});
    return made;
  }
  int pick_tree() {
    double r = rndf(), acc = 0;
    for (int t = 0; t < kNumTrees; t++)
      if (r < (acc += kTrees[t].weight)) return t;
    return kNumTrees - 1;
  }
  uint32_t pick_iosize() {
    static const uint32_t sizes[] = {32768, 65536, 131072, 262144, 524288, 1048576, 1048576, 1048576};
    return sizes[rnd(0, 7)];
  }
  void write_file(int ci) {
    int t = pick_tree();
    auto& dirs = tree_dirs[t];
    int dir = dirs[rnd(0, dirs.size() - 1)];
    // sometimes a new subdirectory first
    if (rndf() < 0.05) {
      char nm[32];
      std::snprintf(nm, sizeof nm, "run%04" PRIu64, next_fileid);
      int d = make(ci, dir, nm, true);
      dirs.push_back(d);
      dir = d;
    }
    int f = make(ci, dir, new_name("f"), false);
    files_alive.push_back(f);
    // file size: log-uniform 4 KiB .. 32 MiB
    uint64_t size = uint64_t(std::exp(std::log(4096.0) + rndf() * (std::log(32.0 * 1048576) - std::log(4096.0))));
    if (rndf() < 0.3) size &= ~uint64_t(4095);
    uint32_t wsize = pick_iosize();
    uint64_t off = 0;
    while (off < size) {
      std::vector<Op> batch;
      for (int k = 0; k < 8 && off < size; k++) {
        uint32_t cnt = uint32_t(std::min<uint64_t>(wsize, size - off));
        uint64_t o = off;
        off += cnt;
        batch.push_back(Op{[this, f, o, cnt](Xdr& x) {
                             Node& n = nodes[f];
                             fh_of(n, x);
                             x.u64(o);
                             x.u32(cnt);
                             x.u32(0);  // UNSTABLE
                             size_t p = size_t((n.fileid * 7919 + o) % (pool.size() - cnt));
                             x.opaque(pool.data() + p, cnt);
                             if (n.tree >= 0) {
                               Truth& tr = truth[n.tree];
                               tr.writes++;
                               tr.write_bytes += cnt;
                               if (tr.over) {
                                 tr.refused_writes++;
                                 tr.refused_bytes += cnt;
                               }
                             }
                           },
                           [this, f, o, cnt](Xdr& x) {
                             Node& n = nodes[f];
                             uint64_t pre_size = n.size, pre_m = n.mtime_ns, pre_c = n.ctime_ns;
                             set_size(n, std::max(n.size, o + cnt));
                             n.mtime_ns = n.ctime_ns = pc.now_ns;
                             x.u32(NFS3_OK);
                             pre_op_attr(x, pre_size, pre_m, pre_c);
                             post_op_attr(x, n);
                             x.u32(cnt);
                             x.u32(0);  // UNSTABLE
                             x.fixed(writeverf, 8);
                           },
                           WRITE, "WRITE"});
      }
      run_batch(ci, batch);
    }
    single(ci, Op{[this, f](Xdr& x) {
                    fh_of(nodes[f], x);
                    x.u64(0);
                    x.u32(0);
                  },
                  [this, f](Xdr& x) {
                    Node& n = nodes[f];
                    x.u32(NFS3_OK);
                    pre_op_attr(x, n.size, n.mtime_ns, n.ctime_ns);
                    post_op_attr(x, n);
                    x.fixed(writeverf, 8);
                  },
                  COMMIT, "COMMIT"});
    if (rndf() < 0.5) single(ci, op_getattr(f));
  }
  Op op_getattr(int n) {
    return Op{[this, n](Xdr& x) { fh_of(nodes[n], x); },
              [this, n](Xdr& x) {
                x.u32(NFS3_OK);
                fattr(x, nodes[n]);
              },
              GETATTR, "GETATTR"};
  }
  int pick_file() {
    while (!files_alive.empty()) {
      size_t k = rnd(0, files_alive.size() - 1);
      int f = files_alive[k];
      if (nodes[f].alive) return f;
      files_alive[k] = files_alive.back();
      files_alive.pop_back();
    }
    return -1;
  }
  void read_file(int ci) {
    int f = pick_file();
    if (f < 0) return;
    single(ci, Op{[this, f](Xdr& x) {
                    fh_of(nodes[f], x);
                    x.u32(0x1f);
                  },
                  [this, f](Xdr& x) {
                    x.u32(NFS3_OK);
                    post_op_attr(x, nodes[f]);
                    x.u32(0x0d);
                  },
                  ACCESS, "ACCESS"});
    uint32_t rsize = pick_iosize();
    uint64_t size = nodes[f].size, off = 0;
    // read the whole file, or a part of a big one
    uint64_t end = size > (8u << 20) && rndf() < 0.5 ? rnd(1, size) : size;
    while (off < end) {
      std::vector<Op> batch;
      for (int k = 0; k < 8 && off < end; k++) {
        uint64_t o = off;
        off += rsize;
        batch.push_back(Op{[this, f, o, rsize](Xdr& x) {
                             Node& n = nodes[f];
                             fh_of(n, x);
                             x.u64(o);
                             x.u32(rsize);
                             if (n.tree >= 0) {
                               truth[n.tree].reads++;
                               truth[n.tree].read_bytes += rsize;
                             }
                           },
                           [this, f, o, rsize](Xdr& x) {
                             Node& n = nodes[f];
                             uint32_t cnt = uint32_t(o >= n.size ? 0 : std::min<uint64_t>(rsize, n.size - o));
                             x.u32(NFS3_OK);
                             post_op_attr(x, n);
                             x.u32(cnt);
                             x.boolean(o + cnt >= n.size);
                             size_t p = size_t((n.fileid * 7919 + o) % (pool.size() - rsize));
                             x.opaque(pool.data() + p, cnt);
                           },
                           READ, "READ"});
      }
      run_batch(ci, batch);
    }
  }
  void readdirplus(int ci) {
    int t = int(rnd(0, kNumTrees - 1));
    int dir = tree_dirs[t][rnd(0, tree_dirs[t].size() - 1)];
    std::vector<int> live;
    for (int ch : nodes[dir].children)
      if (nodes[ch].alive) live.push_back(ch);
    const uint8_t cv[8] = {0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44};
    size_t pos = 0;
    do {
      size_t from = pos, to = std::min(live.size(), pos + 64);
      pos = to;
      single(ci, Op{[this, dir, from, &cv](Xdr& x) {
                      fh_of(nodes[dir], x);
                      x.u64(from ? 2 + from : 0);  // cookie
                      uint8_t zero[8] = {};
                      x.fixed(from ? cv : zero, 8);
                      x.u32(32768);   // dircount
                      x.u32(131072);  // maxcount
                    },
                    [this, dir, from, to, &live, &cv](Xdr& x) {
                      x.u32(NFS3_OK);
                      post_op_attr(x, nodes[dir]);
                      x.fixed(cv, 8);
                      for (size_t i = from; i < to; i++) {
                        const Node& n = nodes[live[i]];
                        x.boolean(true);  // value follows
                        x.u64(n.fileid);
                        x.str(n.name);
                        x.u64(3 + i);  // cookie
                        post_op_attr(x, n);
                        x.boolean(true);
                        fh_of(n, x);
                      }
                      x.boolean(false);
                      x.boolean(to == live.size());  // eof
                    },
                    READDIRPLUS, "READDIRPLUS"});
    } while (pos < live.size());
  }
  void remove_file(int ci) {
    int f = pick_file();
    if (f < 0) return;
    int dir = nodes[f].parent;
    std::string name = nodes[f].name;
    single(ci, op_lookup(dir, name, f));
    single(ci, Op{[this, dir, name](Xdr& x) {
                    fh_of(nodes[dir], x);
                    x.str(name);
                  },
                  [this, dir, f](Xdr& x) {
                    uint64_t pre = nodes[dir].mtime_ns;
                    set_size(nodes[f], 0);
                    nodes[f].alive = false;
                    nodes[dir].mtime_ns = nodes[dir].ctime_ns = pc.now_ns;
                    x.u32(NFS3_OK);
                    dir_wcc(x, dir, pre);
                  },
                  REMOVE, "REMOVE"});
  }

  // `ls -l`/`stat` storms: 8..64 pipelined GETATTR / ACCESS / LOOKUP of live names
  void metadata_storm(int ci) {
    size_t n = rnd(8, 64);
    std::vector<Op> batch;
    for (size_t k = 0; k < n; k++) {
      int f = rndf() < 0.2 ? int(rnd(0, nodes.size() - 1)) : pick_file();
      if (f < 0 || !nodes[f].alive) continue;
      double r = rndf();
      if (r < 0.6 || nodes[f].parent < 0)
        batch.push_back(op_getattr(f));
      else if (r < 0.8)
        batch.push_back(Op{[this, f](Xdr& x) {
                             fh_of(nodes[f], x);
                             x.u32(0x1f);
                           },
                           [this, f](Xdr& x) {
                             x.u32(NFS3_OK);
                             post_op_attr(x, nodes[f]);
                             x.u32(0x1f);
                           },
                           ACCESS, "ACCESS"});
      else
        batch.push_back(op_lookup(nodes[f].parent, nodes[f].name, f));
      if (batch.size() == 8) {
        run_batch(ci, batch);
        batch.clear();
      }
    }
    if (!batch.empty()) run_batch(ci, batch);
  }

  // ---- MOUNT over UDP (after a portmapper GETPORT)
  void mount(int ci, int root) {
    Conn& c = conns[ci];
    uint16_t cport = uint16_t(c.cport - 100);
    // PMAPPROC_GETPORT(100005, 3, tcp... udp=17) to port 111
    uint32_t xid = next_xid++;
    Xdr x = begin_call(xid, kProgPortmap, 2, 3, ci, false);
    x.u32(kProgMount);
    x.u32(3);
    x.u32(17);
    x.u32(0);
    net.udp(c.cli, cport, c.srv, 111, rec.data(), rec.size());
    pc.now_ns += 30000;
    x = begin_reply(xid, false);
    x.u32(20048);
    net.udp(c.srv, 111, c.cli, cport, rec.data(), rec.size());
    xid = next_xid++;
    x = begin_call(xid, kProgMount, 3, 1, ci, false);
    x.str("/export");
    calls_by_proc["MNT"]++;
    net.udp(c.cli, cport, c.srv, 20048, rec.data(), rec.size());
    pc.now_ns += 80000;
    x = begin_reply(xid, false);
    x.u32(0);  // MNT3_OK
    fh_of(nodes[root], x);
    x.u32(1);  // auth_flavors<>: AUTH_UNIX
    x.u32(1);
    net.udp(c.srv, 20048, c.cli, cport, rec.data(), rec.size());
    // FSINFO and GETATTR of the root over the NFS connection
    single(ci, Op{[this, root](Xdr& x) { fh_of(nodes[root], x); },
                  [this, root](Xdr& x) {
                    x.u32(NFS3_OK);
                    post_op_attr(x, nodes[root]);
                    x.u32(1048576);
                    x.u32(1048576);
                    x.u32(4096);  // rtmax rtpref rtmult
                    x.u32(1048576);
                    x.u32(1048576);
                    x.u32(4096);   // wtmax wtpref wtmult
                    x.u32(4096);   // dtpref
                    x.u64(~0ull);  // maxfilesize
                    x.u32(0);
                    x.u32(1);     // time_delta
                    x.u32(0x1b);  // properties
                  },
                  FSINFO, "FSINFO"});
    single(ci, op_getattr(root));
  }

  bool run(const std::string& out, uint64_t size_mb, int nclients, bool gso) {
    if (!pc.open(out)) {
      std::fprintf(stderr, "nfsf_gen_capture: %s: %s\n", out.c_str(), std::strerror(errno));
      return false;
    }
    target = size_mb << 20;
    pool.resize(8u << 20);
    for (size_t i = 0; i < pool.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(pool.data() + i, &v, 8);
    }
    // The crossing tree's limit: ~40% of what it will be written (its share of the capture).
    double share = kTrees[kCrossingTree].weight * 0.85;  // ~85% of the bytes are WRITE payload... roughly
    limit_beta = uint64_t(double(target) * share * 0.6 * 0.4) & ~uint64_t(1048575);
    if (limit_beta < (1u << 20)) limit_beta = 1u << 20;
    for (int t = 0; t < kNumTrees; t++) truth[t].limit = t == kCrossingTree ? limit_beta : (uint64_t(1) << 50);

    Endpoint srv{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}, 0x0a000002};  // 10.0.0.2
    for (int i = 0; i < nclients; i++) {
      Conn c;
      c.cli = Endpoint{{0x52, 0x54, 0x00, 0x00, 0x01, uint8_t(10 + i)}, uint32_t(0x0a000100 + 10 + i)};  // 10.0.1.x
      c.srv = srv;
      c.cport = uint16_t(700 + 37 * i);
      c.gso = gso && i % 4 == 3;
      conns.push_back(c);
    }
    int root = add_node(-1, "", true);
    for (auto& c : conns) handshake(c);
    mount(0, root);
    // client 0 makes the directories
    int projects = make(0, root, "projects", true);
    std::map<std::string, int> top = {{"projects", projects}};
    std::vector<int> tree_root(kNumTrees);
    for (int t = 0; t < kNumTrees; t++) {
      std::string p = kTrees[t].path;
      int parent = root;
      std::string leaf = p;
      if (auto s = p.find('/'); s != std::string::npos) {
        parent = top[p.substr(0, s)];
        leaf = p.substr(s + 1);
      }
      int d = make(0, parent, leaf, true);
      nodes[d].tree = t;
      tree_root[t] = d;
      tree_dirs[t].push_back(d);
    }
    for (int u = 1; u <= 3; u++) {
      int d = make(0, tree_root[3], "user" + std::to_string(u), true);
      tree_dirs[3].push_back(d);
    }
    // the other clients mount and look the trees up
    for (int ci = 1; ci < nclients; ci++) {
      mount(ci, root);
      single(ci, op_lookup(root, "projects", projects));
      for (int t = 0; t < kNumTrees; t++) {
        int d = tree_root[t];
        single(ci, op_lookup(nodes[d].parent, nodes[d].name, d));
      }
      for (int d : tree_dirs[3])
        if (d != tree_root[3]) single(ci, op_lookup(tree_root[3], nodes[d].name, d));
    }
    // the workload
    while (pc.bytes() < target) {
      int ci = int(rnd(0, nclients - 1));
      double r = rndf();
      if (r < 0.35)
        write_file(ci);
      else if (r < 0.50)
        read_file(ci);
      else if (r < 0.58)
        readdirplus(ci);
      else if (r < 0.95)
        metadata_storm(ci);
      else
        remove_file(ci);
    }
    for (auto& c : conns) close_conn(c);
    return pc.w.close();
  }
};

std::string stem_of(const std::string& out) {
  if (out.size() > 5 && out.compare(out.size() - 5, 5, ".pcap") == 0) return out.substr(0, out.size() - 5);
  return out;
}

std::string size_str(uint64_t b) {
  if (b % (1ull << 30) == 0) return std::to_string(b >> 30) + "Gi";
  if (b % (1ull << 20) == 0) return std::to_string(b >> 20) + "Mi";
  return std::to_string(b);
}

int usage() {
  std::fprintf(stderr,
               "usage: nfsf_gen_capture OUT.pcap --size-mb N [--seed S] [--clients C] [--no-gso] [--no-checksums]\n"
               "  writes OUT.pcap (>= N MiB of NFSv3 over TCP), OUT.policy.yaml and OUT.truth.json\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  uint64_t size_mb = 0, seed = 1;
  int clients = 4;
  bool gso = true, checksums = true;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--size-mb") {
      const char* v = val();
      if (!v) return usage();
      size_mb = std::strtoull(v, nullptr, 10);
    } else if (a == "--seed") {
      const char* v = val();
      if (!v) return usage();
      seed = std::strtoull(v, nullptr, 10);
    } else if (a == "--clients") {
      const char* v = val();
      if (!v) return usage();
      clients = std::atoi(v);
    } else if (a == "--no-gso") {
      gso = false;
    } else if (a == "--no-checksums") {
      checksums = false;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] != '-' && out.empty()) {
      out = a;
    } else {
      return usage();
    }
  }
  if (out.empty() || size_mb == 0 || clients < 1 || clients > 64) return usage();

  auto g = std::make_unique<Gen>();
  g->rng.seed(seed);
  g->net.checksums = checksums;
  if (!g->run(out, size_mb, clients, gso)) return 1;

  std::string stem = stem_of(out);
  // the policy
  std::string pol = stem + ".policy.yaml";
  if (FILE* f = std::fopen(pol.c_str(), "w")) {
    std::fprintf(f,
                 "# Policy for %s (made by nfsf_gen_capture --size-mb %" PRIu64 " --seed %" PRIu64
                 ").\n"
                 "# Tree \"beta\" crosses its limit part-way through the capture.\n"
                 "export: /export\n"
                 "server: 10.0.0.2\n"
                 "accounting: used\n"
                 "trees:\n",
                 out.c_str(), size_mb, seed);
    for (int t = 0; t < kNumTrees; t++)
      std::fprintf(f, "  - name: %s\n    path: %s\n    limit: %s\n", kTrees[t].name, kTrees[t].path,
                   size_str(t == kCrossingTree ? g->limit_beta : (uint64_t(1) << 40)).c_str());
    std::fclose(f);
  }
  // what replay should report
  std::string tr = stem + ".truth.json";
  if (FILE* f = std::fopen(tr.c_str(), "w")) {
    std::fprintf(f, "{\n  \"capture_bytes\": %" PRIu64 ",\n  \"packets\": %" PRIu64 ",\n", g->pc.bytes(),
                 g->pc.packets());
    std::fprintf(f, "  \"rpc_calls\": %" PRIu64 ",\n  \"rpc_replies\": %" PRIu64 ",\n  \"calls\": {", g->rpc_calls,
                 g->rpc_replies);
    bool first = true;
    for (auto& [k, v] : g->calls_by_proc) {
      std::fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", k.c_str(), v);
      first = false;
    }
    std::fprintf(f, "},\n  \"trees\": [\n");
    for (int t = 0; t < kNumTrees; t++) {
      auto& x = g->truth[t];
      uint64_t files = 0;
      for (auto& n : g->nodes)
        if (!n.dir && n.alive && n.tree == t) files++;
      std::fprintf(f,
                   "    {\"name\": \"%s\", \"usage_bytes\": %" PRId64 ", \"peak_usage_bytes\": %" PRIu64
                   ", \"files\": %" PRIu64 ", \"over_limit\": %s, \"writes\": %" PRIu64 ", \"write_bytes\": %" PRIu64
                   ", \"refused_writes\": %" PRIu64 ", \"refused_bytes\": %" PRIu64 ", \"reads\": %" PRIu64
                   ", \"read_bytes\": %" PRIu64 "}%s\n",
                   kTrees[t].name, x.usage, x.peak, files, x.over ? "true" : "false", x.writes, x.write_bytes,
                   x.refused_writes, x.refused_bytes, x.reads, x.read_bytes, t + 1 < kNumTrees ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  std::fprintf(stderr, "nfsf_gen_capture: %s: %" PRIu64 " bytes, %" PRIu64 " packets, %" PRIu64 " RPC calls; %s, %s\n",
               out.c_str(), g->pc.bytes(), g->pc.packets(), g->rpc_calls, pol.c_str(), tr.c_str());
  return 0;
}
