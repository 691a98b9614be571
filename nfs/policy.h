// The quota policy file (YAML): which export, which trees, what limits.
//
//   export: /srv/nfs/export      # the export path as mounted (MOUNT MNT dirpath)
//   server: 10.99.0.2            # optional: only traffic to/from this server (address or host name, no port)
//   accounting: used             # used (fattr3.used, what quotas count) or size
//   root_fh: "0100...ab"         # optional: export root handle, for captures without MNT
//   fsstat: rewrite              # rewrite (default): FSSTAT of a tree says its limit and room; pass
//   trees:
//     - name: vol-a
//       path: vol-a              # relative to the export root
//       limit: 50Gi              # K M G T P (x1000), Ki Mi Gi Ti Pi (x1024), or bytes
//       soft_limit: 40Gi         # optional: a warning, never a refusal
//   cluster:                     # optional: several nodes share the trees' usage through etcd
//     etcd: [https://10.0.0.5:2379]   # endpoints, tried in order
//     prefix: /nfsfence/export-1      # the keys of this export (every node the same)
//     ca: ca.pem  cert: node.pem  key: node-key.pem   # TLS (optional; relative: to the policy file)
//     room_chunk: 64Mi   flush_ms: 100   lease_ttl: 3  # docs/policy.md
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence {

enum class AccountingMode { Used, Size };
// FSSTAT replies for handles in a tree: Rewrite (tbytes = limit, fbytes/abytes = what is
// left, so `df` on a mount of the tree shows the quota) or Pass (the server's numbers).
enum class FsstatMode { Rewrite, Pass };

struct TreePolicy {
  std::string name;
  std::string path;                     // normalised, relative, no leading/trailing '/'
  std::vector<std::string> components;  // path split on '/'
  uint64_t limit = 0;
  std::optional<uint64_t> soft_limit;
  std::string origin;  // the file it came from (a policy directory has one per tree)
};

// `cluster:` (src/cluster.h): where the shared usage lives and how it is batched.
struct ClusterPolicy {
  std::vector<std::string> etcd;      // http:// or https:// URLs
  std::string prefix;                 // no trailing '/'
  std::string ca, cert, key;          // PEM files (absolute once parsed); empty: none
  uint64_t room_chunk = 64ull << 20;  // the most room one node holds at a time
  unsigned flush_ms = 100;            // local reports are published at most this often
  unsigned lease_ttl_s = 3;           // a node's lease: how long a dead node keeps its share
  bool operator==(const ClusterPolicy&) const = default;
};

struct Policy {
  std::string export_path;
  std::optional<std::string> server;
  AccountingMode accounting = AccountingMode::Used;
  FsstatMode fsstat = FsstatMode::Rewrite;
  std::optional<Bytes> root_fh;
  std::vector<TreePolicy> trees;
  std::optional<ClusterPolicy> cluster;
};

// Errors name the file, the line and the key: "p.yaml:7: trees[1].limit: ..."; every
// input, however hostile, gives a policy or a one-line error (docs/policy.md lists them).
Expected<Policy> load_policy(const std::string& path);
Expected<Policy> parse_policy(const std::string& text, const std::string& origin);

// A policy directory (`--policy-dir`): one YAML file per tree, what a CSI driver writes when
// it creates a volume and removes when it deletes one, plus an optional `_defaults.yaml`:
//
//   _defaults.yaml:  export: /srv/nfs/export   server: 10.99.0.2   accounting: used   root_fh: ...
//   vol-a.yaml:      path: vol-a   limit: 50Gi   soft_limit: 40Gi   # name: the file name without .yaml
//
// A tree file may also give `export` and `server` (csi-driver-nfs's server#share#subdir
// names all three); every file that gives them must agree. Files whose names start with
// '.' or '_' or do not end in ".yaml" are not trees: write a file under such a name and
// rename it into place, so that no reader ever sees half of it. The directory may hold no
// tree (a node without volumes yet). Errors name the file: "DIR/vol-b.yaml:2: path: 'a' is
// claimed by DIR/vol-a.yaml too".
Expected<Policy> load_policy_dir(const std::string& dir);

// "50Gi" -> 53687091200, exactly (no floating point; "1.5Ti" rounds down to a byte).
// Error text says what is accepted.
Expected<uint64_t> parse_size(std::string_view s);
std::string format_size(uint64_t bytes);  // 53687091200 -> "50Gi", 1500000 -> "1.43Mi"

}  // namespace nfsfence
