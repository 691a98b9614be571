#include "src/lsm_loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/bpf_loader_detail.h"
#include "nfsfence_lsm.skel.h"
#include "nfsfence_null_lsm.skel.h"

namespace nfsfence::bpf {

namespace fs = std::filesystem;

using detail::err_of;

namespace {

// LsmMaps' maps by name. lsm_cache (inode storage) is only used by a running agent.
std::array<detail::MapSlot, 6> slots_of(LsmMaps& m) {
  return {{{"lsm_devs", &m.devs_fd},
           {"lsm_roots", &m.roots_fd},
           {"lsm_trees", &m.trees_fd},
           {"lsm_gen", &m.gen_fd},
           {"lsm_counters", &m.counters_fd},
           {"lsm_cache", &m.cache_fd, true}}};
}

// 1 when the running kernel's inode_setattr hook takes (idmap, dentry, attr): from the
// BTF of its bpf_lsm_inode_setattr stub. 0 for (dentry, attr) and when the BTF says nothing.
uint32_t setattr_has_idmap() {
  btf* vm = btf__load_vmlinux_btf();
  if (!vm) return 0;
  uint32_t idmap = 0;
  int id = btf__find_by_name_kind(vm, "bpf_lsm_inode_setattr", BTF_KIND_FUNC);
  if (id > 0) {
    const btf_type* fn = btf__type_by_id(vm, uint32_t(id));
    const btf_type* proto = fn ? btf__type_by_id(vm, fn->type) : nullptr;
    if (proto && btf_vlen(proto) == 3) idmap = 1;
  }
  btf__free(vm);
  return idmap;
}
}  // namespace

std::optional<std::string> lsm_unavailable() {
  // A probe: libbpf's own account of the refusal would be five lines; the answer is one.
  libbpf_print_fn_t prev = libbpf_set_print(nullptr);
  struct Restore {
    libbpf_print_fn_t fn;
    ~Restore() { libbpf_set_print(fn); }
  } restore{prev};
  nfsfence_null_lsm* s = nfsfence_null_lsm__open();
  if (!s) return "opening the probe program failed: " + std::string(std::strerror(errno));
  std::optional<std::string> why;
  if (int rc = nfsfence_null_lsm__load(s); rc) {
    int e = err_of(rc);
    why = "the kernel refuses BPF LSM programs (loading a trivial file_permission program: " +
          std::string(std::strerror(e)) + ")";
  } else if (int rc = nfsfence_null_lsm__attach(s); rc) {
    why = "the kernel refuses to attach BPF LSM programs (" + std::string(std::strerror(err_of(rc))) + ")";
  } else {
    std::ifstream in("/sys/kernel/security/lsm");
    std::string list;
    std::getline(in, list);
    bool has_bpf = false;
    for (size_t p = 0; p <= list.size();) {
      size_t c = list.find(',', p);
      if (c == std::string::npos) c = list.size();
      if (list.compare(p, c - p, "bpf") == 0) has_bpf = true;
      p = c + 1;
    }
    if (!in && list.empty())
      why = "cannot read the active LSM list (/sys/kernel/security/lsm; is securityfs mounted?)";
    else if (!has_bpf)
      why = "`bpf` is not in the kernel's active LSM list (" + list + "): boot with lsm=...,bpf";
  }
  nfsfence_null_lsm__destroy(s);
  return why;
}

// ---- maps

Result<nfsf_lsm_tree> LsmMaps::tree(uint32_t id) const {
  nfsf_lsm_tree t{};
  if (int rc = bpf_map_lookup_elem(trees_fd, &id, &t); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(lsm_trees)");
  return t;
}

Result<void> LsmMaps::set_tree(uint32_t id, const nfsf_lsm_tree& t) const {
  if (int rc = bpf_map_update_elem(trees_fd, &id, &t, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(lsm_trees)");
  return {};
}

Result<void> LsmMaps::set_root(const nfsf_lsm_ino& root, uint32_t tree) const {
  if (int rc = bpf_map_update_elem(roots_fd, &root, &tree, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(lsm_roots)");
  return {};
}

Result<void> LsmMaps::clear_roots() const {
  nfsf_lsm_ino key{}, next{};
  std::vector<nfsf_lsm_ino> keys;
  for (const void* k = nullptr; bpf_map_get_next_key(roots_fd, k, &next) == 0; k = &key) {
    keys.push_back(next);
    key = next;
  }
  for (auto& k : keys) bpf_map_delete_elem(roots_fd, &k);
  return {};
}

Result<void> LsmMaps::add_dev(uint32_t dev) const {
  uint32_t one = 1;
  if (int rc = bpf_map_update_elem(devs_fd, &dev, &one, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(lsm_devs)");
  return {};
}

Result<void> LsmMaps::set_charged(int file_fd, int64_t size) const {
  nfsf_lsm_inode v{};
  v.charged = size;
  v.flags = NFSF_LSM_CHARGED;
  if (int rc = bpf_map_update_elem(cache_fd, &file_fd, &v, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(lsm_cache)");
  return {};
}

Result<void> LsmMaps::bump_gen() const {
  uint32_t zero = 0;
  uint64_t g = 0;
  if (int rc = bpf_map_lookup_elem(gen_fd, &zero, &g); rc) return NFSF_ERR(err_of(rc), "bpf_map_lookup_elem(lsm_gen)");
  g++;
  if (int rc = bpf_map_update_elem(gen_fd, &zero, &g, BPF_ANY); rc)
    return NFSF_ERR(err_of(rc), "bpf_map_update_elem(lsm_gen)");
  return {};
}

Result<LsmCounters> LsmMaps::counters() const { return sum_percpu<NFSF_L_MAX>(counters_fd, "lsm_counters"); }

Result<Pinned<LsmMaps>> LsmMaps::open_pinned(const std::string& dir) { return detail::open_pinned(dir, slots_of); }

// ---- program

Result<std::unique_ptr<LsmProgram>> LsmProgram::load(const std::string& pin_dir) {
  std::unique_ptr<LsmProgram> p(new LsmProgram());
  p->pin_dir_ = pin_dir;
  p->skel_ = nfsfence_lsm__open();
  if (!p->skel_) return NFSF_ERR(errno ? errno : ENOMEM, "nfsfence_lsm__open");
  p->skel_->rodata->nfsf_setattr_idmap = setattr_has_idmap();
  if (!pin_dir.empty())
    if (auto r = detail::set_pin_paths(p->skel_->obj, pin_dir); !r) return Fail{r.error()};
  if (int rc = nfsfence_lsm__load(p->skel_); rc) return NFSF_ERR(err_of(rc), "nfsfence_lsm__load");
  if (auto r = detail::fds_of_object(p->skel_->obj, slots_of(p->maps_)); !r) return Fail{r.error()};
  return p;
}

std::vector<std::string> LsmProgram::hooks() const {
  std::vector<std::string> out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    std::string sec = bpf_program__section_name(prog);
    out.push_back(sec.substr(sec.find('/') + 1));
  }
  return out;
}

Result<void> LsmProgram::attach() {
  std::error_code ec;
  if (!pin_dir_.empty()) fs::create_directories(pin_dir_ + "/links", ec);
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    bpf_link* l = bpf_program__attach_lsm(prog);
    if (!l) {
      int e = errno;
      return NFSF_ERR(e, std::string("bpf_program__attach_lsm(") + bpf_program__name(prog) + ")");
    }
    links_.push_back(l);
    if (pin_dir_.empty()) continue;
    // The new link is attached: replace the pin (an earlier agent's link detaches when its
    // last reference, the pin, goes away).
    std::string path = pin_dir_ + "/links/" + bpf_program__name(prog);
    ::unlink(path.c_str());
    if (int rc = bpf_link__pin(l, path.c_str()); rc) return NFSF_ERR(err_of(rc), "bpf_link__pin(" + path + ")");
  }
  // Links an older build pinned for hooks this one does not have: detach them too.
  if (!pin_dir_.empty()) {
    for (auto& e : fs::directory_iterator(pin_dir_ + "/links", ec)) {
      bool ours = false;
      bpf_object__for_each_program(prog, skel_->obj) ours |= e.path().filename() == bpf_program__name(prog);
      if (!ours) fs::remove(e.path(), ec);
    }
  }
  return {};
}

LsmProgram::~LsmProgram() {
  // Pinned links stay attached after the fds close; unpinned ones (tests) detach here.
  for (bpf_link* l : links_) {
    if (!pin_dir_.empty()) bpf_link__disconnect(l);
    bpf_link__destroy(l);
  }
  if (skel_) nfsfence_lsm__destroy(skel_);
}

bool LsmProgram::remove_pins(const std::string& pin_dir) {
  std::error_code ec;
  bool found = fs::exists(pin_dir, ec);
  fs::remove_all(pin_dir, ec);  // links first detach with their pins
  return found;
}

}  // namespace nfsfence::bpf
