#include "src/agent_common.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "nfs/common.h"

namespace nfsfence::agent {

namespace fs = std::filesystem;

void log(const std::string& msg) { std::fprintf(stderr, "nfsfence: %s\n", printable(msg).c_str()); }

std::string pin_dir_of(const std::string& root, const std::string& iface) { return root + "/" + iface; }

// The pins must live on a bpffs every process sees, or `status`, `detach` and a restarted
// agent cannot find them. Where the directory is not on a bpffs: mount one if we are in
// the host's mount namespace (as bpftool does); otherwise (e.g. under `ip netns exec`,
// which remounts /sys) a mount would be private to this process: refuse and say why.
std::string ensure_bpffs(const std::string& pin_root) {
  fs::path base = fs::path(pin_root).parent_path();
  struct statfs st {};
  if (statfs(base.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return "";
  std::error_code ec;
  auto self_ns = fs::read_symlink("/proc/self/ns/mnt", ec);
  auto init_ns = fs::read_symlink("/proc/1/ns/mnt", ec);
  if (ec || self_ns != init_ns)
    return base.string() +
           " is not a BPF filesystem in this mount namespace (ip netns exec remounts /sys): "
           "mount one that every process sees (mount -t bpf bpf /run/nfsfence-bpf) and give --pin-dir "
           "/run/nfsfence-bpf/nfsfence to attach, status and detach";
  if (::mount("bpf", base.c_str(), "bpf", 0, nullptr) != 0)
    return base.string() + " is not a BPF filesystem and mounting one failed: " + std::strerror(errno);
  return "";
}

}  // namespace nfsfence::agent
