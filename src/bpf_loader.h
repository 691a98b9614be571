// RAII owner of the nfsfence BPF skeletons: open -> configure rodata -> load, then map
// helpers (handle -> tree, tree over/under, per-CPU counters summed) and TC/XDP attach.
// OS errors are values: BpfError carries errno, what failed, and file:line.
//
// Who closes which fd: a skeleton's map and program fds belong to libbpf (gone with the
// skeleton); the fds of pinned maps opened by path (Pinned<...>) are UniqueFds, closed when
// their owner goes away.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "nfs/common.h"
#include "nfsfence_abi.h"

struct nfsfence_tc;
struct nfsfence_xdp;

namespace nfsfence::bpf {

struct BpfError {
  int err = 0;                  // positive errno
  std::string what;             // "bpf_map_update_elem(handles)"
  std::string where;            // "src/bpf_loader.cpp:123"
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
  uint64_t wake_ns = NFSF_WAKE_NS;            // reply events wake the agent at most this often (0: every one)
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
// A counter's name from bpf/include/nfsfence_abi.h's X-macro lists ("?" out of range).
const char* counter_name(nfsf_counter c);
const char* counter_name(nfsf_lsm_counter c);

// A file descriptor this process opened: move-only, closed when it goes away.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1);  // closes the one held

 private:
  int fd_ = -1;
};

// Maps an agent pinned, opened by path (`status`, tests): a Maps (MapSet, LsmMaps) whose
// fds this object owns and closes when it goes away.
template <typename Maps>
class Pinned : public Maps {
 public:
  Pinned(const Maps& maps, std::vector<UniqueFd> fds) : Maps(maps), fds_(std::move(fds)) {}
  Pinned(Pinned&&) = default;
  Pinned& operator=(Pinned&&) = default;
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;

 private:
  std::vector<UniqueFd> fds_;
};

// Map fds and helpers common to both objects (maps have the same names and types). The
// fds are borrowed: from the skeleton (TcProgram, XdpProgram) or from Pinned<MapSet>.
class MapSet {
 public:
  Result<void> set_handle_tree(std::span<const uint8_t> fh, uint32_t tree) const;
  Result<void> remove_handle(std::span<const uint8_t> fh) const;
  Result<void> set_tree_over(uint32_t tree, bool over) const;  // keeps the counters
  // tree_room: refuse WRITEs once the tree's write_bytes passes full_at (0: no bound).
  Result<void> set_tree_room(uint32_t tree, uint64_t full_at) const;
  // tree_df: what FSSTAT replies for handles in the tree say (nfsf_fsstat.h).
  Result<void> set_tree_df(uint32_t tree, const nfsf_tree_df& df) const;
  Result<nfsf_tree_df> tree_df(uint32_t tree) const;
  Result<nfsf_tree> tree(uint32_t tree) const;
  // A tree id given up or given to a new tree: state, counters, room bound and df zeroed.
  Result<void> clear_tree(uint32_t tree) const;
  Result<Counters> counters() const;  // per-CPU values summed
  Result<void> reset_counters() const;
  Result<void> add_rpc_port(uint16_t port) const;  // e.g. MOUNT's dynamic port
  Result<std::optional<nfsf_poisoned>> poisoned(const nfsf_xid_key& key) const;
  Result<std::optional<uint32_t>> handle_tree(std::span<const uint8_t> fh) const;  // nullopt: unmapped
  Result<std::optional<nfsf_dirop>> pending_dirop(const nfsf_xid_key& key) const;
  // The maps an agent pinned under `dir` (for status, detach, tests); closed with the result.
  static Result<Pinned<MapSet>> open_pinned(const std::string& dir);

  int handles_fd = -1, trees_fd = -1, counters_fd = -1, flows_fd = -1, poisoned_fd = -1, want_xids_fd = -1,
      rpc_ports_fd = -1, events_fd = -1, pending_dirop_fd = -1, split_heads_fd = -1, split_tmpl_fd = -1,
      tree_room_fd = -1, tree_df_fd = -1;  // split_*: measured by nfsf_map_memory only
};

// One bpftool skeleton (nfsfence_tc, nfsfence_xdp), owned: load() opens it, configures it
// from LoadOptions (rodata, map sizes, pin paths), loads it and returns it as `Program`;
// it is destroyed with the object. Program says how it attaches (and detaches in its own
// destructor, which runs before this one destroys the skeleton).
template <typename Program, typename Skel>
class Skeleton {
 public:
  static Result<std::unique_ptr<Program>> load(const LoadOptions& opt = {});
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  const MapSet& maps() const { return maps_; }

 protected:
  Skeleton() = default;
  ~Skeleton();
  Skel* skel_ = nullptr;
  MapSet maps_;
};

// Which end of the NFS conversation the interface is on.
enum class Side { Client, Server };

// TC: nfsf_egress (calls) + nfsf_ingress (replies) on an NFS client's interface; on a
// server's, nfsf_srv_egress (replies) only, the calls being XdpProgram's.
class TcProgram : public Skeleton<TcProgram, nfsfence_tc> {
 public:
  ~TcProgram();

  int egress_fd() const;
  int ingress_fd() const;
  int srv_egress_fd() const;

  // clsact hook + direct-action filters (Client: egress + ingress; Server: egress with
  // nfsf_srv_egress); detach() (also run by the destructor) removes only the filters this
  // object attached.
  Result<void> attach(int ifindex, Side side = Side::Client);
  void detach();
  // Leave the filters attached when this object goes away (the agent's exit: the
  // programs keep enforcing the last state from the pinned maps).
  void keep_attached();
  // Removes nfsfence's filters from an interface; false if there were none.
  static Result<bool> detach_ifindex(int ifindex);

 private:
  friend Skeleton;
  TcProgram() = default;
  int ifindex_ = 0;
  bool attached_egress_ = false, attached_ingress_ = false;
};

// The XDP program an interface has (id 0: none), as the kernel reports it.
struct XdpAttached {
  uint32_t id = 0;
  uint8_t mode = 0;  // XDP_ATTACHED_DRV / _SKB / _HW / _MULTI
  std::string name;  // the program's name (15 characters at most)
  bool ours() const { return name.rfind("nfsf_xdp", 0) == 0; }
  const char* mode_name() const;  // "native", "generic", "offload", "several"
};

// XDP: nfsf_xdp (calls arriving at an NFS server) or nfsf_xdp_replies (replies arriving at
// a client).
class XdpProgram : public Skeleton<XdpProgram, nfsfence_xdp> {
 public:
  ~XdpProgram();

  int prog_fd(Side side = Side::Server) const;
  // xdp_flags: XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE. Never replaces another program:
  // with replace_id (an nfsfence program an earlier agent left) that one is swapped for
  // this one in one step, else the attach fails if the interface has any XDP program.
  Result<void> attach(int ifindex, Side side, uint32_t xdp_flags, uint32_t replace_id = 0);
  void detach();
  void keep_attached() { ifindex_ = 0; }  // stays attached when this object goes away
  static Result<XdpAttached> attached(int ifindex);
  // Removes nfsfence's XDP program from an interface (never another's); false if none.
  static Result<bool> detach_ifindex(int ifindex);

 private:
  friend Skeleton;
  XdpProgram() = default;
  int ifindex_ = 0;
  uint32_t flags_ = 0;
  Side side_ = Side::Server;
};

}  // namespace nfsfence::bpf
