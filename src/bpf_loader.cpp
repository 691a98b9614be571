#include "src/bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>
#include <vector>

#include "src/bpf_loader_detail.h"
#include "nfsfence_tc.skel.h"
#include "nfsfence_xdp.skel.h"

namespace nfsfence::bpf {

std::string BpfError::message() const { return what + ": " + std::strerror(err) + " (" + where + ")"; }

namespace detail {

Result<void> set_pin_paths(bpf_object* obj, const std::string& dir) {
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const char* name = bpf_map__name(m);
    if (!name || name[0] == '.' || std::strchr(name, '.')) continue;  // .rodata and friends
    // The tail-call array holds this object's programs (TC or XDP type): never shared
    // between the two objects that share the other maps on a server.
    if (bpf_map__type(m) == BPF_MAP_TYPE_PROG_ARRAY) continue;
    std::string path = dir + "/" + name;
    if (int rc = bpf_map__set_pin_path(m, path.c_str()); rc)
      return NFSF_ERR(-rc, "bpf_map__set_pin_path(" + path + ")");
  }
  return {};
}

Result<void> fds_of_object(const bpf_object* obj, std::span<const MapSlot> slots) {
  for (const MapSlot& s : slots) {
    *s.fd = bpf_object__find_map_fd_by_name(obj, s.name);
    if (*s.fd < 0) return NFSF_ERR(*s.fd, std::string("bpf_object__find_map_fd_by_name(") + s.name + ")");
  }
  return {};
}

Result<std::vector<UniqueFd>> open_pins(const std::string& dir, std::span<const MapSlot> slots) {
  std::vector<UniqueFd> owned;
  for (const MapSlot& s : slots) {
    std::string path = dir + "/" + s.name;
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (fd.get() < 0 && !s.optional) return NFSF_ERR(errno, "bpf_obj_get(" + path + ")");
    *s.fd = fd.get();
    if (fd.get() >= 0) owned.push_back(std::move(fd));
  }
  return owned;
}

}  // namespace detail

using detail::err_of;

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

// MapSet's maps by name (the same in the TC and the XDP object).
std::array<detail::MapSlot, 13> slots_of(MapSet& m) {
  return {{{"handles", &m.handles_fd},
           {"trees", &m.trees_fd},
           {"counters", &m.counters_fd},
           {"flows", &m.flows_fd},
           {"poisoned", &m.poisoned_fd},
           {"want_xids", &m.want_xids_fd},
           {"rpc_ports", &m.rpc_ports_fd},
           {"events", &m.events_fd},
           // Maps pinned by an older agent may lack these.
           {"tree_room", &m.tree_room_fd, true},
           {"pending_dirop", &m.pending_dirop_fd, true},
           {"split_heads", &m.split_heads_fd, true},
           {"split_tmpl", &m.split_tmpl_fd, true},
           {"tree_df", &m.tree_df_fd, true}}};
}

template <typename Skel>
Result<void> configure(Skel* s, const LoadOptions& opt) {
  s->rodata->nfsf_action = opt.action;
  s->rodata->nfsf_emit_events = opt.emit_events ? 1 : 0;
  s->rodata->nfsf_nfs_port = opt.nfs_port;
  s->rodata->nfsf_wake_ns = opt.wake_ns;
  if (int rc = bpf_map__set_max_entries(s->maps.events, opt.events_bytes); rc)
    return NFSF_ERR(rc, "bpf_map__set_max_entries(events)");
  if (int rc = bpf_map__set_max_entries(s->maps.handles, opt.max_handles); rc)
    return NFSF_ERR(rc, "bpf_map__set_max_entries(handles)");
  if (!opt.pin_dir.empty()) return detail::set_pin_paths(s->obj, opt.pin_dir);
  return {};
}

nfsf_fh_key make_key(std::span<const uint8_t> fh) {
  nfsf_fh_key k{};
  k.len = static_cast<uint32_t>(fh.size());
  std::memcpy(k.data, fh.data(), fh.size());
  return k;
}

#define NFSF_X_NAME(e, name) name,
constexpr const char* kCounterNames[] = {NFSF_COUNTER_LIST(NFSF_X_NAME)};
constexpr const char* kLsmCounterNames[] = {NFSF_LSM_COUNTER_LIST(NFSF_X_NAME)};
#undef NFSF_X_NAME
static_assert(std::size(kCounterNames) == NFSF_C_MAX && std::size(kLsmCounterNames) == NFSF_L_MAX);

template <size_t N>
const char* name_in(const char* const (&names)[N], unsigned i) {
  return i < N ? names[i] : "?";
}

}  // namespace

const char* counter_name(nfsf_counter c) { return name_in(kCounterNames, c); }
const char* counter_name(nfsf_lsm_counter c) { return name_in(kLsmCounterNames, c); }

Result<void> MapSet::set_handle_tree(std::span<const uint8_t> fh, uint32_t tree) const {
  if (fh.empty() || fh.size() > NFSF_FH_MAX) return NFSF_ERR(EINVAL, "set_handle_tree: handle length");
  nfsf_fh_key k = make_key(fh);
  if (int rc = bpf_map_update_elem(handles_fd, &k, &tree, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(handles)");
  return {};
}

Result<void> MapSet::remove_handle(std::span<const uint8_t> fh) const {
  if (fh.empty() || fh.size() > NFSF_FH_MAX) return NFSF_ERR(EINVAL, "remove_handle: handle length");
  nfsf_fh_key k = make_key(fh);
  if (int rc = bpf_map_delete_elem(handles_fd, &k); rc && err_of(rc) != ENOENT)
    return NFSF_ERR(err_of(rc), "bpf_map_delete_elem(handles)");
  return {};
}

Result<nfsf_tree> MapSet::tree(uint32_t id) const {
  nfsf_tree t{};
  if (int rc = bpf_map_lookup_elem(trees_fd, &id, &t); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(trees, " + std::to_string(id) + ")");
  return t;
}

Result<void> MapSet::set_tree_over(uint32_t id, bool over) const {
  if (id == 0 || id >= NFSF_MAX_TREES) return NFSF_ERR(EINVAL, "set_tree_over: tree id " + std::to_string(id));
  // NOTE: read-modify-write of the whole value races with the programs' atomic counter
  // adds (a concurrent add can be lost); `over` is the only field the agent owns, and the
  // counters are statistics. BPF_F_LOCK would need a bpf_spin_lock in the value.
  auto t = tree(id);
  if (!t) return Fail{t.error()};
  t->over = over ? 1 : 0;
  if (int rc = bpf_map_update_elem(trees_fd, &id, &*t, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(trees)");
  return {};
}

Result<void> MapSet::clear_tree(uint32_t id) const {
  if (id == 0 || id >= NFSF_MAX_TREES) return NFSF_ERR(EINVAL, "clear_tree: tree id " + std::to_string(id));
  nfsf_tree t{};
  if (int rc = bpf_map_update_elem(trees_fd, &id, &t, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(trees)");
  if (auto r = set_tree_df(id, nfsf_tree_df{}); !r) return r;  // FSSTAT of its handles passes
  return set_tree_room(id, 0);
}

Result<void> MapSet::set_tree_room(uint32_t id, uint64_t full_at) const {
  if (id == 0 || id >= NFSF_MAX_TREES) return NFSF_ERR(EINVAL, "set_tree_room: tree id " + std::to_string(id));
  if (tree_room_fd < 0) return {};  // maps pinned by an older agent: no room bound
  if (int rc = bpf_map_update_elem(tree_room_fd, &id, &full_at, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(tree_room)");
  return {};
}

Result<void> MapSet::set_tree_df(uint32_t id, const nfsf_tree_df& df) const {
  if (id == 0 || id >= NFSF_MAX_TREES) return NFSF_ERR(EINVAL, "set_tree_df: tree id " + std::to_string(id));
  if (tree_df_fd < 0) return {};  // maps pinned by an older agent: FSSTAT passes
  if (int rc = bpf_map_update_elem(tree_df_fd, &id, &df, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(tree_df)");
  return {};
}

Result<nfsf_tree_df> MapSet::tree_df(uint32_t id) const {
  nfsf_tree_df df{};
  if (tree_df_fd < 0) return df;
  if (int rc = bpf_map_lookup_elem(tree_df_fd, &id, &df); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(tree_df, " + std::to_string(id) + ")");
  return df;
}

template <size_t N>
Result<std::array<uint64_t, N>> sum_percpu(int fd, const char* name) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return NFSF_ERR(err_of(ncpu), "libbpf_num_possible_cpus");
  std::vector<uint64_t> per(static_cast<size_t>(ncpu));
  std::array<uint64_t, N> out{};
  for (uint32_t i = 0; i < N; i++) {
    if (int rc = bpf_map_lookup_elem(fd, &i, per.data()); rc)
      return NFSF_ERR(err_of(rc), std::string("bpf_map_lookup_elem(") + name + ")");
    for (uint64_t v : per) out[i] += v;
  }
  return out;
}
template Result<std::array<uint64_t, NFSF_C_MAX>> sum_percpu<NFSF_C_MAX>(int, const char*);
template Result<std::array<uint64_t, NFSF_L_MAX>> sum_percpu<NFSF_L_MAX>(int, const char*);

Result<Counters> MapSet::counters() const { return sum_percpu<NFSF_C_MAX>(counters_fd, "counters"); }

Result<void> MapSet::reset_counters() const {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return NFSF_ERR(err_of(ncpu), "libbpf_num_possible_cpus");
  std::vector<uint64_t> zero(static_cast<size_t>(ncpu), 0);
  for (uint32_t i = 0; i < NFSF_C_MAX; i++)
    if (int rc = bpf_map_update_elem(counters_fd, &i, zero.data(), BPF_ANY); rc)
      return NFSF_ERR(err_of(rc), "bpf_map_update_elem(counters)");
  return {};
}

Result<void> MapSet::add_rpc_port(uint16_t port) const {
  uint32_t word = port / 32, bits = 0;
  if (int rc = bpf_map_lookup_elem(rpc_ports_fd, &word, &bits); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(rpc_ports)");
  bits |= 1u << (port % 32);
  if (int rc = bpf_map_update_elem(rpc_ports_fd, &word, &bits, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(rpc_ports)");
  return {};
}

Result<std::optional<uint32_t>> MapSet::handle_tree(std::span<const uint8_t> fh) const {
  if (fh.empty() || fh.size() > NFSF_FH_MAX) return NFSF_ERR(EINVAL, "handle_tree: handle length");
  nfsf_fh_key k = make_key(fh);
  uint32_t v = 0;
  if (int rc = bpf_map_lookup_elem(handles_fd, &k, &v); rc) {
    if (err_of(rc) == ENOENT) return std::optional<uint32_t>{};
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(handles)");
  }
  return std::optional<uint32_t>{v};
}

Result<std::optional<nfsf_dirop>> MapSet::pending_dirop(const nfsf_xid_key& key) const {
  nfsf_dirop v{};
  if (pending_dirop_fd < 0) return std::optional<nfsf_dirop>{};
  if (int rc = bpf_map_lookup_elem(pending_dirop_fd, &key, &v); rc) {
    if (err_of(rc) == ENOENT) return std::optional<nfsf_dirop>{};
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(pending_dirop)");
  }
  return std::optional<nfsf_dirop>{v};
}

Result<std::optional<nfsf_poisoned>> MapSet::poisoned(const nfsf_xid_key& key) const {
  nfsf_poisoned v{};
  if (int rc = bpf_map_lookup_elem(poisoned_fd, &key, &v); rc) {
    if (err_of(rc) == ENOENT) return std::optional<nfsf_poisoned>{};
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(poisoned)");
  }
  return std::optional<nfsf_poisoned>{v};
}

Result<Pinned<MapSet>> MapSet::open_pinned(const std::string& dir) { return detail::open_pinned(dir, slots_of); }

// ---- the skeletons

namespace {

// bpftool names a skeleton's functions after its object.
template <typename Skel>
struct SkelApi;
#define NFSF_SKEL_API(S)                           \
  template <>                                      \
  struct SkelApi<S> {                              \
    static constexpr const char* name = #S;        \
    static S* open() { return S##__open(); }       \
    static int load(S* s) { return S##__load(s); } \
    static void destroy(S* s) { S##__destroy(s); } \
  };
NFSF_SKEL_API(nfsfence_tc)
NFSF_SKEL_API(nfsfence_xdp)
#undef NFSF_SKEL_API

}  // namespace

template <typename Program, typename Skel>
Result<std::unique_ptr<Program>> Skeleton<Program, Skel>::load(const LoadOptions& opt) {
  using Api = SkelApi<Skel>;
  std::unique_ptr<Program> p(new Program());
  p->skel_ = Api::open();
  if (!p->skel_) return NFSF_ERR(errno ? errno : ENOMEM, std::string(Api::name) + "__open");
  if (auto r = configure(p->skel_, opt); !r) return Fail{r.error()};
  if (int rc = Api::load(p->skel_); rc) return NFSF_ERR(err_of(rc), std::string(Api::name) + "__load");
  if (auto r = detail::fds_of_object(p->skel_->obj, slots_of(p->maps_)); !r) return Fail{r.error()};
  return p;
}

template <typename Program, typename Skel>
Skeleton<Program, Skel>::~Skeleton() {
  if (skel_) SkelApi<Skel>::destroy(skel_);
}

template class Skeleton<TcProgram, nfsfence_tc>;
template class Skeleton<XdpProgram, nfsfence_xdp>;

// ---- TC

namespace {

// Removes nfsfence's filter (kTcHandle, kTcPriority) from one clsact hook: 0 or -errno. The
// clsact qdisc is left: other filters may use it.
int detach_filter(int ifindex, bpf_tc_attach_point where) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
  LIBBPF_OPTS(bpf_tc_opts, tco, .handle = kTcHandle, .priority = kTcPriority);
  return bpf_tc_detach(&hook, &tco);
}

}  // namespace

TcProgram::~TcProgram() { detach(); }

int TcProgram::egress_fd() const { return bpf_program__fd(skel_->progs.nfsf_egress); }
int TcProgram::ingress_fd() const { return bpf_program__fd(skel_->progs.nfsf_ingress); }
int TcProgram::srv_egress_fd() const { return bpf_program__fd(skel_->progs.nfsf_srv_egress); }

Result<void> TcProgram::attach(int ifindex, Side side) {
  detach();
  ifindex_ = ifindex;
  const bool client = side == Side::Client;
  for (auto [where, fd, flag] : {std::tuple{BPF_TC_EGRESS, client ? egress_fd() : srv_egress_fd(), &attached_egress_},
                                 std::tuple{BPF_TC_INGRESS, client ? ingress_fd() : -1, &attached_ingress_}}) {
    if (fd < 0) continue;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
    int rc = bpf_tc_hook_create(&hook);
    if (rc && rc != -EEXIST) {
      detach();
      return NFSF_ERR(err_of(rc), "bpf_tc_hook_create(ifindex " + std::to_string(ifindex) + ")");
    }
    // REPLACE: a filter left by an agent that died is swapped for ours in one step, so
    // enforcement never has a gap.
    LIBBPF_OPTS(bpf_tc_opts, tco, .prog_fd = fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
                .priority = kTcPriority);
    if (rc = bpf_tc_attach(&hook, &tco); rc) {
      detach();
      return NFSF_ERR(err_of(rc), "bpf_tc_attach");
    }
    *flag = true;
  }
  return {};
}

void TcProgram::detach() {
  for (auto [where, flag] :
       {std::pair{BPF_TC_EGRESS, &attached_egress_}, std::pair{BPF_TC_INGRESS, &attached_ingress_}}) {
    if (!*flag) continue;
    detach_filter(ifindex_, where);
    *flag = false;
  }
}

void TcProgram::keep_attached() { attached_egress_ = attached_ingress_ = false; }

Result<bool> TcProgram::detach_ifindex(int ifindex) {
  bool found = false;
  for (auto where : {BPF_TC_EGRESS, BPF_TC_INGRESS}) {
    int rc = detach_filter(ifindex, where);
    if (rc == 0)
      found = true;
    else if (rc != -ENOENT && rc != -EINVAL)
      return NFSF_ERR(err_of(rc), "bpf_tc_detach");
  }
  return found;
}

// ---- XDP

const char* XdpAttached::mode_name() const {
  switch (mode) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offload";
    case XDP_ATTACHED_MULTI:
      return "several";
    default:
      return "none";
  }
}

XdpProgram::~XdpProgram() { detach(); }

int XdpProgram::prog_fd(Side side) const {
  return bpf_program__fd(side == Side::Server ? skel_->progs.nfsf_xdp : skel_->progs.nfsf_xdp_replies);
}

Result<XdpAttached> XdpProgram::attached(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (int rc = bpf_xdp_query(ifindex, 0, &q); rc)
    return NFSF_ERR(err_of(rc), "bpf_xdp_query(ifindex " + std::to_string(ifindex) + ")");
  XdpAttached a;
  a.mode = q.attach_mode;
  a.id = q.prog_id ? q.prog_id : q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
  if (!a.id) return a;
  UniqueFd fd(bpf_prog_get_fd_by_id(a.id));
  if (fd.get() < 0) return a;  // gone meanwhile, or no permission: nameless
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0)
    a.name.assign(info.name, strnlen(info.name, sizeof info.name));
  return a;
}

Result<void> XdpProgram::attach(int ifindex, Side side, uint32_t xdp_flags, uint32_t replace_id) {
  detach();
  UniqueFd old;
  if (replace_id) {
    old = UniqueFd(bpf_prog_get_fd_by_id(replace_id));
    if (old.get() < 0) return NFSF_ERR(errno, "bpf_prog_get_fd_by_id(" + std::to_string(replace_id) + ")");
  }
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = old.get());
  uint32_t flags = xdp_flags | (replace_id ? XDP_FLAGS_REPLACE : XDP_FLAGS_UPDATE_IF_NOEXIST);
  if (int rc = bpf_xdp_attach(ifindex, prog_fd(side), flags, replace_id ? &o : nullptr); rc)
    return NFSF_ERR(err_of(rc), "bpf_xdp_attach(ifindex " + std::to_string(ifindex) + ")");
  ifindex_ = ifindex;
  flags_ = xdp_flags;
  side_ = side;
  return {};
}

void XdpProgram::detach() {
  if (!ifindex_) return;
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd(side_));
  bpf_xdp_detach(ifindex_, flags_ | XDP_FLAGS_REPLACE, &o);
  ifindex_ = 0;
}

Result<bool> XdpProgram::detach_ifindex(int ifindex) {
  auto a = attached(ifindex);
  if (!a) return Fail{a.error()};
  if (!a->id || !a->ours()) return false;
  UniqueFd fd(bpf_prog_get_fd_by_id(a->id));
  if (fd.get() < 0) return NFSF_ERR(errno, "bpf_prog_get_fd_by_id(" + std::to_string(a->id) + ")");
  // REPLACE with our program's fd: detaches it only if it is still the one attached.
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fd.get());
  uint32_t mode = a->mode == XDP_ATTACHED_SKB   ? XDP_FLAGS_SKB_MODE
                  : a->mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE
                                                : 0;
  if (int rc = bpf_xdp_detach(ifindex, mode | XDP_FLAGS_REPLACE, &o); rc)
    return NFSF_ERR(err_of(rc), "bpf_xdp_detach(ifindex " + std::to_string(ifindex) + ")");
  return true;
}

}  // namespace nfsfence::bpf
