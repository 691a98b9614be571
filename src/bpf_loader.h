// RAII owner of the nfsfence BPF skeletons: open -> configure rodata -> load, then map
// helpers (handle -> tree, tree over/under, per-CPU counters summed) and TC/XDP attach.
// OS errors are values: BpfError carries errno, what failed, and file:line.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <variant>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "nfs/common.h"
#include "nfsfence_abi.h"

struct nfsfence_tc;
struct nfsfence_xdp;

namespace nfsfence::bpf {

struct BpfError {
  int err = 0;          // positive errno
  std::string what;     // "bpf_map_update_elem(handles)"
  std::string where;    // "src/bpf_loader.cpp:123"
  std::string message() const;  // "what: strerror (where)"
};
// Errors are values: Result<T> holds a T or a BpfError; `return Fail{err};` fails.
using Fail = Unexpected<BpfError>;
template <typename T>
using Result = Expected<T, BpfError>;

struct LoadOptions {
  nfsf_action action = NFSF_ACTION_REWRITE;
  bool emit_events = true;
  uint16_t nfs_port = NFSF_NFS_PORT;
  uint32_t events_bytes = NFSF_EVENTS_BYTES;  // ring buffer size, power of 2 >= page size
  uint32_t max_handles = NFSF_MAX_HANDLES;
  std::string pin_dir;  // pin (or adopt already pinned) maps here; empty: no pinning
};

// The TC filters' handle and priority on the clsact hooks (what detach looks for).
constexpr uint32_t kTcHandle = 0x4e46;  // "NF"
constexpr uint32_t kTcPriority = 0xc000;

using Counters = std::array<uint64_t, NFSF_C_MAX>;
// Entries 0..N-1 of a per-CPU array map, each summed over the CPUs (`name` for errors).
template <size_t N>
Result<std::array<uint64_t, N>> sum_percpu(int fd, const char* name);
extern template Result<std::array<uint64_t, NFSF_C_MAX>> sum_percpu<NFSF_C_MAX>(int, const char*);
extern template Result<std::array<uint64_t, NFSF_L_MAX>> sum_percpu<NFSF_L_MAX>(int, const char*);
const char* counter_name(nfsf_counter c);

// Map fds and helpers common to both objects (maps have the same names and types).
class MapSet {
 public:
  Result<void> set_handle_tree(std::span<const uint8_t> fh, uint32_t tree) const;
  Result<void> remove_handle(std::span<const uint8_t> fh) const;
  Result<void> set_tree_over(uint32_t tree, bool over) const;  // keeps the counters
  // tree_room: refuse WRITEs once the tree's write_bytes passes full_at (0: no bound).
  Result<void> set_tree_room(uint32_t tree, uint64_t full_at) const;
  Result<nfsf_tree> tree(uint32_t tree) const;
  Result<Counters> counters() const;  // per-CPU values summed
  Result<void> reset_counters() const;
  Result<void> add_rpc_port(uint16_t port) const;  // e.g. MOUNT's dynamic port
  Result<std::optional<nfsf_poisoned>> poisoned(const nfsf_xid_key& key) const;
  Result<std::optional<uint32_t>> handle_tree(std::span<const uint8_t> fh) const;  // nullopt: unmapped
  Result<std::optional<nfsf_dirop>> pending_dirop(const nfsf_xid_key& key) const;
  // The maps an agent pinned under `dir` (for status, detach, tests); close_fds() when done.
  static Result<MapSet> open_pinned(const std::string& dir);
  void close_fds();

  int handles_fd = -1, trees_fd = -1, counters_fd = -1, flows_fd = -1, poisoned_fd = -1,
      want_xids_fd = -1, rpc_ports_fd = -1, events_fd = -1, pending_dirop_fd = -1,
      split_heads_fd = -1, split_tmpl_fd = -1, tree_room_fd = -1;  // the last two: measured by nfsf_map_memory only
};

// TC: nfsf_egress (calls) + nfsf_ingress (replies) on an NFS client's interface.
class TcProgram {
 public:
  static Result<std::unique_ptr<TcProgram>> load(const LoadOptions& opt = {});
  ~TcProgram();
  TcProgram(const TcProgram&) = delete;
  TcProgram& operator=(const TcProgram&) = delete;

  int egress_fd() const;
  int ingress_fd() const;
  const MapSet& maps() const { return maps_; }

  // clsact hook + direct-action filters; detach() (also run by the destructor) removes
  // only the filters this object attached.
  Result<void> attach(int ifindex);
  void detach();
  // Leave the filters attached when this object goes away (the agent's exit: the
  // programs keep enforcing the last state from the pinned maps).
  void keep_attached();
  // Removes nfsfence's filters from an interface; false if there were none.
  static Result<bool> detach_ifindex(int ifindex);

 private:
  TcProgram() = default;
  nfsfence_tc* skel_ = nullptr;
  MapSet maps_;
  int ifindex_ = 0;
  bool attached_egress_ = false, attached_ingress_ = false;
};

// XDP: nfsf_xdp (calls arriving at an NFS server).
class XdpProgram {
 public:
  static Result<std::unique_ptr<XdpProgram>> load(const LoadOptions& opt = {});
  ~XdpProgram();
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  int prog_fd() const;
  const MapSet& maps() const { return maps_; }
  Result<void> attach(int ifindex, uint32_t xdp_flags = 0);
  void detach();

 private:
  XdpProgram() = default;
  nfsfence_xdp* skel_ = nullptr;
  MapSet maps_;
  int ifindex_ = 0;
  uint32_t flags_ = 0;
};

}  // namespace nfsfence::bpf
