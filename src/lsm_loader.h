// The LSM fallback's BPF object (bpf/lsm/nfsfence_lsm.bpf.c): load (adopting pinned maps),
// attach every hook as a BPF link, pin the links so enforcement outlives the agent, and
// the map helpers the agent and `status` use. Errors are values (bpf_loader.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/bpf_loader.h"

struct nfsfence_lsm;
struct bpf_link;

namespace nfsfence::bpf {

using LsmCounters = std::array<uint64_t, NFSF_L_MAX>;

// What the kernel says about BPF LSM, found by trying: nullopt = usable, else why not.
// Loads a one-instruction LSM program and attaches it for an instant (it passes every call),
// and reads the active LSM list (a kernel can load LSM programs and never call them).
std::optional<std::string> lsm_unavailable();

// The LSM object's map fds, borrowed: from the skeleton (LsmProgram) or Pinned<LsmMaps>.
struct LsmMaps {
  int devs_fd = -1, roots_fd = -1, trees_fd = -1, gen_fd = -1, counters_fd = -1, cache_fd = -1;
  Result<nfsf_lsm_tree> tree(uint32_t id) const;
  Result<void> set_tree(uint32_t id, const nfsf_lsm_tree& t) const;
  Result<void> set_root(const nfsf_lsm_ino& root, uint32_t tree) const;
  Result<void> clear_roots() const;
  Result<void> add_dev(uint32_t dev) const;
  Result<void> bump_gen() const;
  // The size the hooks count a file's growth from (its inode storage, through an fd of
  // the file: O_PATH is enough); the tree is decided again at the next write.
  Result<void> set_charged(int file_fd, int64_t size) const;
  Result<LsmCounters> counters() const;
  // The maps an agent pinned under `dir` (status); closed with the result.
  static Result<Pinned<LsmMaps>> open_pinned(const std::string& dir);
};

class LsmProgram {
 public:
  // pin_dir empty: nothing pinned (tests); else maps under pin_dir, links under pin_dir/links.
  static Result<std::unique_ptr<LsmProgram>> load(const std::string& pin_dir);
  ~LsmProgram();
  LsmProgram(const LsmProgram&) = delete;
  LsmProgram& operator=(const LsmProgram&) = delete;

  // Attaches every hook; with a pin dir, each link replaces the one pinned there (the old
  // program runs until the new one is attached: no gap).
  Result<void> attach();
  const LsmMaps& maps() const { return maps_; }
  std::vector<std::string> hooks() const;

  // Removes the pinned links (the hooks detach) and maps; false if nothing was pinned.
  static bool remove_pins(const std::string& pin_dir);

 private:
  LsmProgram() = default;
  nfsfence_lsm* skel_ = nullptr;
  std::string pin_dir_;
  std::vector<bpf_link*> links_;
  LsmMaps maps_;
};

}  // namespace nfsfence::bpf
