// BPF_PROG_TEST_RUN tables: rows that carry their expectations, run against the real
// nfsfence TC and XDP programs (and, through cut frames, their carry programs).
//
// A Row names its programs, its map setup (handles, trees over, room), its input frames in
// order and, per frame, the verdict and the output (unchanged, a poisoned range, or
// rewritten bytes); after any frame and after the row: counter deltas, tree statistics
// (deltas), poisoned XIDs, mapped handles, pending dir-ops; after the row: the ring buffer
// events. A Table is one test case: its rows run in order on the same program loads, so
// rows of a table use flows, handles and trees of their own.
//
// Needs root (CAP_BPF + CAP_NET_ADMIN); every case skips with the reason when even a
// trivial program cannot be loaded.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "pkt/pkt.h"
#include "src/bpf_loader.h"

namespace nfsfence::bpftest {

// ---------------------------------------------------------------- the frames the tables send

// One direction of a connection as the tables build it: client 10.99.0.1 / fd00::1 port
// `sport` to server 10.99.0.2 / fd00::2 port `dport`.
struct Flow {
  bool v6 = false;
  bool udp = false;
  uint16_t sport = 811, dport = 2049;
  uint32_t seq = 1000;
};

// Ethernet/IP/TCP|UDP client -> server, checksums correct (TCP: ack 77, window 65535).
Bytes build(const Flow& fl, ByteView payload, uint8_t tcp_flags = pkt::kPsh | pkt::kAck);
// The same connection server -> client.
Bytes build_reply(const Flow& call_flow, ByteView payload, uint8_t tcp_flags = pkt::kPsh | pkt::kAck,
                  uint32_t seq = 5000);

Bytes fh_of(uint8_t tag, size_t len = 32);

struct CallOpts {
  uint32_t xid = 0x1234;
  uint32_t prog = 100003, vers = 3, proc = 7;
  size_t data_len = 64;  // WRITE payload bytes actually included
  uint32_t count = 0;    // WRITE count (0 = data_len)
  size_t cred_body = 24;
};
// An RPC call message (no record mark): AUTH_UNIX cred (cred_body bytes 0x5a), AUTH_NULL
// verf, the handle, then WRITE3args (proc 7: offset 4096, FILE_SYNC, data 0xab) or READ3args
// (proc 6: offset 0, count 8192).
Bytes call_msg(const Bytes& fh, const CallOpts& o = {});
// A dir-op call (LOOKUP 3, CREATE 8, MKDIR 9, ...): diropargs3 { dir; name; } then the rest.
Bytes dirop_call(const Bytes& dir, uint32_t proc, const std::string& name, uint32_t xid);
// WRITE3res: nfsstat, no wcc attributes; NFS3_OK adds count 13, FILE_SYNC, a verifier.
Bytes write_reply_msg(uint32_t xid, uint32_t nfsstat);
// LOOKUP3res (nfs_fh3 object) or CREATE3res-style (post_op_fh3 obj).
Bytes dirop_reply(uint32_t xid, uint32_t proc, uint32_t nfsstat, bool follows, const Bytes& obj);
// Record mark + message; len: what the mark claims (0: the message's size).
Bytes mark(ByteView msg, bool last = true, uint32_t len = 0);

// Offset of the WRITE handle bytes inside a frame whose RPC message starts at msg_at.
size_t fh_offset(ByteView frame, size_t msg_at);
// Key of `poisoned` / `pending_dirop` for the reply to the call `xid` in call_frame.
nfsf_xid_key xid_key_for_reply(ByteView call_frame, uint32_t xid);

// ---------------------------------------------------------------- rows

enum class Prog { Tc, TcDrop, Xdp, XdpDrop };  // program and action (rewrite / drop)
const char* prog_name(Prog p);
enum class Hook { Calls, Replies };  // TC egress or XDP / TC ingress
enum class Verdict { Pass, Drop, Any };

struct Out {
  enum Kind { Unchanged, Poisoned, Rewritten, Any } kind = Unchanged;
  size_t at = 0, len = 0;  // Poisoned: [at, at+len) all NFSF_FH_POISON, every other byte but the
                           // L4 checksum unchanged, checksums valid
  Bytes want;              // Rewritten: equal to `want` but for the L4 checksum, checksums valid
};
Out unchanged();
Out poisoned(size_t at, size_t len);
Out rewritten(Bytes want);
Out any_out();

struct Setup {
  std::vector<std::pair<Bytes, uint32_t>> handles;    // handle -> tree
  std::vector<std::pair<uint32_t, bool>> over;        // tree -> over
  std::vector<std::pair<uint32_t, uint64_t>> room;    // tree -> full_at (0: no bound)
  std::vector<std::pair<uint32_t, nfsf_tree_df>> df;  // tree -> what FSSTAT says (tree_df)
};
// The handle in `tree`, the tree over (or not).
Setup tree_of(const Bytes& fh, uint32_t tree, bool over);

using Deltas = std::vector<std::pair<nfsf_counter, uint64_t>>;
struct TreeWant {  // deltas of nfsf_tree's statistics since the row began
  uint32_t tree;
  std::optional<uint64_t> writes, write_bytes, refused_writes, refused_bytes;
  std::string why;
};
struct PoisonedWant {
  nfsf_xid_key key;
  std::optional<uint32_t> tree;  // nullopt: no entry
  std::string why;
};
struct HandleWant {
  Bytes fh;
  std::optional<uint32_t> tree;  // nullopt: unmapped
  std::string why;
};
struct DiropWant {
  nfsf_xid_key key;
  std::optional<nfsf_dirop> dirop;  // nullopt: no entry
  std::string why;
};
struct Checks {
  Deltas counters;  // since the row began
  std::vector<TreeWant> trees;
  std::vector<PoisonedWant> poisoned;
  std::vector<HandleWant> handles;
  std::vector<DiropWant> dirops;
};
struct EventWant {
  std::optional<uint32_t> type, flags;
  std::optional<Bytes> data;
};

struct Step {
  std::string what;
  Hook hook = Hook::Calls;
  Bytes in;
  Verdict verdict = Verdict::Pass;
  Out out;
  std::optional<size_t> same_out_as;  // the output equals that earlier step's
  std::optional<Setup> before;        // map changes made before this frame
  std::optional<Checks> then;         // checked after this frame
  bool skip_if_einval = false;        // the kernel's test_run refuses the frame: skip the row
};
// Shorthands: a frame whose verdict is Pass and output as given.
Step call(std::string what, Bytes in, Out out = unchanged());
Step reply(std::string what, Bytes in, Out out = unchanged());

struct Row {
  std::string what;  // description
  std::vector<Prog> progs = {Prog::Tc};
  Setup setup;
  std::vector<Step> steps;
  Checks checks;                                    // after the last step
  std::optional<std::vector<EventWant>> events;     // exactly these ring buffer events, in order
  std::vector<std::pair<std::string, bool>> facts;  // properties of the fixture the row relies on
  std::string skip;                                 // not empty: the row is skipped with this reason
};

struct Table {
  std::string name;
  std::function<std::vector<Row>()> rows;  // built when the case runs (captures are read then)
};
// A table of one row.
Table single(std::string name, std::function<Row()> row);
void PrintTo(const Table& t, std::ostream* os);
std::string table_name(const ::testing::TestParamInfo<Table>& info);

// ---------------------------------------------------------------- running

struct RunResult {
  int err = 0;
  uint32_t retval = 0;
  Bytes out;
};
RunResult test_run(int fd, const Bytes& in);

struct Event {
  uint32_t type, flags;
  Bytes data;
};

::testing::AssertionResult checksums_ok(ByteView f);
// Everything equal except [at, at+len) which must be all NFSF_FH_POISON, checksums valid.
::testing::AssertionResult poisoned_only(ByteView in, ByteView out, size_t at, size_t len);

class BpfRunner : public ::testing::Test {
 protected:
  void SetUp() override;
  const bpf::MapSet& maps(Prog p);
  int fd(Prog p, Hook h);
  std::vector<Event> drain_events(Prog p);
  // Runs the row on `p`; *delta: every counter's delta over the row (all zero if the row
  // failed fatally or was skipped).
  void run_row(const Row& row, Prog p, bpf::Counters* delta = nullptr);
  void run_table(const Table& t);

 private:
  void load(Prog p);
  void check(const Checks& c, Prog p, const bpf::Counters& base, const std::map<uint32_t, nfsf_tree>& trees0);
  std::map<Prog, std::unique_ptr<bpf::TcProgram>> tc_;
  std::map<Prog, std::unique_ptr<bpf::XdpProgram>> xdp_;
};

class BpfTable : public BpfRunner, public ::testing::WithParamInterface<Table> {};

}  // namespace nfsfence::bpftest
