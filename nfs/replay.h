// Offline replay: a capture through the decoder, the handle cache and accounting, with
// simulated enforcement: once a tree's usage reaches its limit, every later WRITE call to
// a handle in that tree counts as refused, until usage falls below the limit again.
#pragma once

#include <map>
#include <optional>
#include <nlohmann/json_fwd.hpp>

#include "nfs/accounting.h"
#include "nfs/decoder_limits.h"

namespace nfsfence {

class Decoder;

// What `df` (statfs: f_blocks, f_bfree, f_bavail) shows from one FSSTAT reply, in bytes:
// size = tbytes, used = tbytes - fbytes, avail = abytes.
struct DfView {
  uint64_t size = 0, used = 0, avail = 0;
};
// The FSSTAT reply a client gets for a handle in a tree with `limit` and `used` (the TC
// ingress rewrite, bpf/include/nfsf_fsstat.h): tbytes = limit, fbytes and abytes =
// min(the server's, limit - used), 0 at or past the limit; with FsstatMode::Pass the
// server's own. The same arithmetic as the kernel's.
FsStatRes tree_fsstat(const FsStatRes& server, uint64_t limit, uint64_t used, FsstatMode mode);
DfView df_of(const FsStatRes& r);

struct TreeCounters {
  uint64_t writes = 0, write_bytes = 0;            // every WRITE call to the tree
  uint64_t refused_writes = 0, refused_bytes = 0;  // the subset enforcement refuses
  uint64_t reads = 0, read_bytes = 0;              // READ calls (never refused)
  uint64_t fsstat_calls = 0, fsstat_replies = 0;   // FSSTAT for handles in the tree (replies: NFS3_OK)
  std::optional<DfView> df, server_df;             // the last reply: as the client sees it, as the server sent it
};

struct ReplayOptions {
  size_t max_handles = 1u << 20;
  DecoderLimits limits;
};

// Messages the policy's `server:` filtered out, and a few of the servers they came from
// (so that a typo in `server:` is named in the report instead of silently emptying it).
struct ServerFilterStats {
  uint64_t matched = 0, skipped = 0;
  std::vector<std::string> other_servers;  // first kMaxListed distinct addresses
  static constexpr size_t kMaxListed = 8;
};

class Replayer {
 public:
  Replayer(const Policy& policy, const ReplayOptions& opt);
  void on_message(const RpcMessage& m);
  nlohmann::json report(const Decoder& d, uint64_t capture_bytes, double seconds) const;
  std::string text_report(const Decoder& d, uint64_t capture_bytes, double seconds) const;

  const Accounting& accounting() const { return acct_; }
  const std::vector<TreeCounters>& counters() const { return counters_; }
  uint64_t unknown_handle_writes() const { return unknown_writes_; }

 private:
  Accounting acct_;
  std::vector<TreeCounters> counters_;
  uint64_t unknown_writes_ = 0, unknown_write_bytes_ = 0;
  uint64_t poisoned_writes_ = 0, poisoned_write_bytes_ = 0;  // captured after a TC rewrite
  uint64_t outside_writes_ = 0, outside_write_bytes_ = 0;
  ServerFilterStats server_;
  size_t max_handles_;
  std::map<std::string, std::map<std::string, uint64_t>> by_procedure_;
};

// Runs a capture (a file, a pipe, or "-" for standard input) through a Replayer. Returns
// the JSON report, or a one-line error if the capture cannot be opened. A capture that is
// damaged or cut part-way still gives the report of what was read, with
// "capture_error" / "capture_truncation" (strings, or null) saying where it stopped.
Expected<nlohmann::json> replay_file(const std::string& capture, const Policy& policy, const ReplayOptions& opt,
                                     std::string* text_out = nullptr);

}  // namespace nfsfence
