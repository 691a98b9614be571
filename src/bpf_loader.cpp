#include "src/bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>
#include <vector>

#include "nfsfence_tc.skel.h"
#include "nfsfence_xdp.skel.h"

namespace nfsfence::bpf {

std::string BpfError::message() const {
  return what + ": " + std::strerror(err) + " (" + where + ")";
}

namespace {

#define NFSF_ERR(e, what) \
  Fail{BpfError{(e) < 0 ? -(e) : (e), (what), std::string(__FILE__ ":") + std::to_string(__LINE__)}}

// libbpf 1.x returns -errno and also sets errno.
int err_of(int rc) { return rc < 0 ? -rc : (errno ? errno : EINVAL); }

template <typename Skel>
void fill_maps(MapSet& m, Skel* s) {
  m.handles_fd = bpf_map__fd(s->maps.handles);
  m.trees_fd = bpf_map__fd(s->maps.trees);
  m.tree_room_fd = bpf_map__fd(s->maps.tree_room);
  m.counters_fd = bpf_map__fd(s->maps.counters);
  m.flows_fd = bpf_map__fd(s->maps.flows);
  m.poisoned_fd = bpf_map__fd(s->maps.poisoned);
  m.want_xids_fd = bpf_map__fd(s->maps.want_xids);
  m.rpc_ports_fd = bpf_map__fd(s->maps.rpc_ports);
  m.pending_dirop_fd = bpf_map__fd(s->maps.pending_dirop);
  m.split_heads_fd = bpf_map__fd(s->maps.split_heads);
  m.split_tmpl_fd = bpf_map__fd(s->maps.split_tmpl);
  m.events_fd = bpf_map__fd(s->maps.events);
}

template <typename Skel>
Result<void> configure(Skel* s, const LoadOptions& opt) {
  s->rodata->nfsf_action = opt.action;
  s->rodata->nfsf_emit_events = opt.emit_events ? 1 : 0;
  s->rodata->nfsf_nfs_port = opt.nfs_port;
  if (int rc = bpf_map__set_max_entries(s->maps.events, opt.events_bytes); rc)
    return NFSF_ERR(rc, "bpf_map__set_max_entries(events)");
  if (int rc = bpf_map__set_max_entries(s->maps.handles, opt.max_handles); rc)
    return NFSF_ERR(rc, "bpf_map__set_max_entries(handles)");
  if (!opt.pin_dir.empty()) {
    // libbpf reuses a compatible map already pinned at this path (a restarted agent adopts
    // the state the programs kept enforcing), or pins the new one after load.
    bpf_map* m;
    bpf_object__for_each_map(m, s->obj) {
      const char* name = bpf_map__name(m);
      if (!name || name[0] == '.' || std::strchr(name, '.')) continue;  // .rodata and friends
      std::string path = opt.pin_dir + "/" + name;
      if (int rc = bpf_map__set_pin_path(m, path.c_str()); rc) return NFSF_ERR(-rc, "bpf_map__set_pin_path(" + path + ")");
    }
  }
  return {};
}

nfsf_fh_key make_key(std::span<const uint8_t> fh) {
  nfsf_fh_key k{};
  k.len = static_cast<uint32_t>(fh.size());
  std::memcpy(k.data, fh.data(), fh.size());
  return k;
}

}  // namespace

const char* counter_name(nfsf_counter c) {
#define NFSF_X_NAME(e, name) name,
  static const char* names[NFSF_C_MAX] = {NFSF_COUNTER_LIST(NFSF_X_NAME)};
#undef NFSF_X_NAME
  return c < NFSF_C_MAX ? names[c] : "?";
}

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

Result<void> MapSet::set_tree_room(uint32_t id, uint64_t full_at) const {
  if (id == 0 || id >= NFSF_MAX_TREES) return NFSF_ERR(EINVAL, "set_tree_room: tree id " + std::to_string(id));
  if (tree_room_fd < 0) return {};  // maps pinned by an older agent: no room bound
  if (int rc = bpf_map_update_elem(tree_room_fd, &id, &full_at, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(tree_room)");
  return {};
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

// ---- TC

Result<std::unique_ptr<TcProgram>> TcProgram::load(const LoadOptions& opt) {
  std::unique_ptr<TcProgram> p(new TcProgram());
  p->skel_ = nfsfence_tc__open();
  if (!p->skel_) return NFSF_ERR(errno ? errno : ENOMEM, "nfsfence_tc__open");
  if (auto r = configure(p->skel_, opt); !r) return Fail{r.error()};
  if (int rc = nfsfence_tc__load(p->skel_); rc) return NFSF_ERR(err_of(rc), "nfsfence_tc__load");
  fill_maps(p->maps_, p->skel_);
  return p;
}

TcProgram::~TcProgram() {
  detach();
  if (skel_) nfsfence_tc__destroy(skel_);
}

int TcProgram::egress_fd() const { return bpf_program__fd(skel_->progs.nfsf_egress); }
int TcProgram::ingress_fd() const { return bpf_program__fd(skel_->progs.nfsf_ingress); }

Result<void> TcProgram::attach(int ifindex) {
  detach();
  ifindex_ = ifindex;
  for (auto [where, fd, flag] : {std::tuple{BPF_TC_EGRESS, egress_fd(), &attached_egress_},
                                 std::tuple{BPF_TC_INGRESS, ingress_fd(), &attached_ingress_}}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
    int rc = bpf_tc_hook_create(&hook);
    if (rc && rc != -EEXIST) {
      detach();
      return NFSF_ERR(err_of(rc), "bpf_tc_hook_create(ifindex " + std::to_string(ifindex) + ")");
    }
    // REPLACE: a filter left by an agent that died is swapped for ours in one step, so
    // enforcement never has a gap.
    LIBBPF_OPTS(bpf_tc_opts, tco, .prog_fd = fd, .flags = BPF_TC_F_REPLACE);
    tco.handle = kTcHandle;
    tco.priority = kTcPriority;
    if (rc = bpf_tc_attach(&hook, &tco); rc) {
      detach();
      return NFSF_ERR(err_of(rc), "bpf_tc_attach");
    }
    *flag = true;
  }
  return {};
}

void TcProgram::detach() {
  for (auto [where, flag] : {std::pair{BPF_TC_EGRESS, &attached_egress_}, std::pair{BPF_TC_INGRESS, &attached_ingress_}}) {
    if (!*flag) continue;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = where);
    LIBBPF_OPTS(bpf_tc_opts, tco);
    tco.handle = kTcHandle;
    tco.priority = kTcPriority;
    bpf_tc_detach(&hook, &tco);  // the clsact qdisc is left: other filters may use it
    *flag = false;
  }
}

void TcProgram::keep_attached() { attached_egress_ = attached_ingress_ = false; }

Result<bool> TcProgram::detach_ifindex(int ifindex) {
  bool found = false;
  for (auto where : {BPF_TC_EGRESS, BPF_TC_INGRESS}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
    LIBBPF_OPTS(bpf_tc_opts, tco);
    tco.handle = kTcHandle;
    tco.priority = kTcPriority;
    int rc = bpf_tc_detach(&hook, &tco);
    if (rc == 0) found = true;
    else if (rc != -ENOENT && rc != -EINVAL) return NFSF_ERR(err_of(rc), "bpf_tc_detach");
  }
  return found;
}

Result<MapSet> MapSet::open_pinned(const std::string& dir) {
  MapSet m;
  for (auto [name, fd] : {std::pair{"handles", &m.handles_fd}, std::pair{"trees", &m.trees_fd},
                          std::pair{"counters", &m.counters_fd}, std::pair{"flows", &m.flows_fd},
                          std::pair{"poisoned", &m.poisoned_fd}, std::pair{"want_xids", &m.want_xids_fd},
                          std::pair{"rpc_ports", &m.rpc_ports_fd}, std::pair{"events", &m.events_fd}}) {
    std::string path = dir + "/" + name;
    *fd = bpf_obj_get(path.c_str());
    if (*fd < 0) return NFSF_ERR(errno, "bpf_obj_get(" + path + ")");
  }
  // Optional: maps pinned by an older agent do not have these.
  m.tree_room_fd = bpf_obj_get((dir + "/tree_room").c_str());
  m.pending_dirop_fd = bpf_obj_get((dir + "/pending_dirop").c_str());
  return m;
}

void MapSet::close_fds() {
  for (int* fd : {&handles_fd, &trees_fd, &counters_fd, &flows_fd, &poisoned_fd, &want_xids_fd, &rpc_ports_fd,
                  &events_fd, &pending_dirop_fd, &split_heads_fd, &split_tmpl_fd, &tree_room_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

// ---- XDP

Result<std::unique_ptr<XdpProgram>> XdpProgram::load(const LoadOptions& opt) {
  std::unique_ptr<XdpProgram> p(new XdpProgram());
  p->skel_ = nfsfence_xdp__open();
  if (!p->skel_) return NFSF_ERR(errno ? errno : ENOMEM, "nfsfence_xdp__open");
  if (auto r = configure(p->skel_, opt); !r) return Fail{r.error()};
  if (int rc = nfsfence_xdp__load(p->skel_); rc) return NFSF_ERR(err_of(rc), "nfsfence_xdp__load");
  fill_maps(p->maps_, p->skel_);
  return p;
}

XdpProgram::~XdpProgram() {
  detach();
  if (skel_) nfsfence_xdp__destroy(skel_);
}

int XdpProgram::prog_fd() const { return bpf_program__fd(skel_->progs.nfsf_xdp); }

Result<void> XdpProgram::attach(int ifindex, uint32_t xdp_flags) {
  detach();
  if (int rc = bpf_xdp_attach(ifindex, prog_fd(), xdp_flags, nullptr); rc)
    return NFSF_ERR(err_of(rc), "bpf_xdp_attach(ifindex " + std::to_string(ifindex) + ")");
  ifindex_ = ifindex;
  flags_ = xdp_flags;
  return {};
}

void XdpProgram::detach() {
  if (!ifindex_) return;
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd());
  bpf_xdp_detach(ifindex_, flags_ | XDP_FLAGS_REPLACE, &o);
  ifindex_ = 0;
}

}  // namespace nfsfence::bpf
