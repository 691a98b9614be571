// What the two loaders (src/bpf_loader.cpp: TC/XDP, src/lsm_loader.cpp: LSM) share and
// nothing else uses: the error macro, pin paths, and a map table that fills a maps struct
// from a loaded object or from the pins under a directory.
#pragma once

#include <cerrno>
#include <span>
#include <string>
#include <vector>

#include "src/bpf_loader.h"

struct bpf_object;

namespace nfsfence::bpf::detail {

#define NFSF_ERR(e, what)                                                                                            \
  ::nfsfence::bpf::Fail {                                                                                            \
    ::nfsfence::bpf::BpfError { (e) < 0 ? -(e) : (e), (what), std::string(__FILE__ ":") + std::to_string(__LINE__) } \
  }

// libbpf 1.x returns -errno and also sets errno.
inline int err_of(int rc) { return rc < 0 ? -rc : (errno ? errno : EINVAL); }

// Every map of the object (not .rodata and friends) is pinned at DIR/NAME at load; libbpf
// reuses a compatible map already pinned there (a restarted agent adopts the state the
// programs kept enforcing).
Result<void> set_pin_paths(bpf_object* obj, const std::string& dir);

// One map of an object: its name, where its fd goes, and whether a pin may lack it (maps
// pinned by an older agent).
struct MapSlot {
  const char* name;
  int* fd;
  bool optional = false;
};
// The fds of the loaded object's maps (owned by the object); every slot must be there.
Result<void> fds_of_object(const bpf_object* obj, std::span<const MapSlot> slots);
// The pins under `dir`, opened: the fds go into the slots and the returned owners. A
// missing required pin fails (the ones already opened are closed).
Result<std::vector<UniqueFd>> open_pins(const std::string& dir, std::span<const MapSlot> slots);

// Maps::open_pinned: a Maps filled from the pins of slots_of(maps) under `dir`, owning them.
template <typename Maps, typename Slots>
Result<Pinned<Maps>> open_pinned(const std::string& dir, Slots (*slots_of)(Maps&)) {
  Maps m;
  auto fds = open_pins(dir, slots_of(m));
  if (!fds) return Fail{fds.error()};
  return Pinned<Maps>(m, std::move(*fds));
}

}  // namespace nfsfence::bpf::detail
