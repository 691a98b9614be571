// The agent's start-up walk: ask the server itself for the export root (MNT), each tree
// root (LOOKUP, component by component) and everything below it (READDIRPLUS), and feed
// every reply to Accounting, so trees are enforced from the moment `attach` is ready even
// when the client mounted long before.
#pragma once

#include <chrono>

#include "nfs/accounting.h"

namespace nfsfence {

struct WalkOptions {
  std::string server;  // host or address
  uint16_t nfs_port = 2049;
  uint16_t mount_port = 0;  // 0: ask the portmapper
  std::chrono::milliseconds timeout{5000};
  uint32_t dircount = 8192, maxcount = 65536;  // READDIRPLUS sizes
  std::vector<int> only;                       // walk only these trees (policy indices); empty: all
};

struct WalkResult {
  Bytes root_fh;
  std::vector<Bytes> tree_fhs;  // per tree walked
  uint64_t handles = 0;         // entries learned
  uint64_t directories = 0;
  uint64_t rpcs = 0;
  double seconds = 0;
};

// Errors name what failed: "tree 'vol-a': path 'vol-a' does not exist on 10.99.0.2:/srv/nfs/export (NFS3ERR_NOENT)".
Expected<WalkResult> walk_trees(const WalkOptions& opt, Accounting& acct);

// Whether each tree's path is a directory on the server (MNT, then LOOKUP by component),
// learning nothing: what a policy reload checks before it applies new trees. Errors as
// walk_trees's.
Expected<void> check_tree_paths(const WalkOptions& opt, const std::string& export_path,
                                const std::vector<TreePolicy>& trees);

}  // namespace nfsfence
