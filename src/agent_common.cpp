#include "src/agent_common.h"

#include <linux/magic.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nfs/common.h"

namespace nfsfence::agent {

namespace fs = std::filesystem;
using nlohmann::json;

void log(const std::string& msg) { std::fprintf(stderr, "nfsfence: %s\n", printable(msg).c_str()); }

std::string pin_dir_of(const std::string& root, const std::string& iface) { return root + "/" + iface; }
std::string state_file_of(const std::string& dir, const std::string& iface) { return dir + "/" + iface + ".json"; }

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
    return base.string() + " is not a BPF filesystem in this mount namespace (ip netns exec remounts /sys): "
           "mount one that every process sees (mount -t bpf bpf /run/nfsfence-bpf) and give --pin-dir "
           "/run/nfsfence-bpf/nfsfence to attach, status and detach";
  if (::mount("bpf", base.c_str(), "bpf", 0, nullptr) != 0)
    return base.string() + " is not a BPF filesystem and mounting one failed: " + std::strerror(errno);
  return "";
}

bool process_alive(int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name == "nfsfence";
}

std::optional<json> read_state(const std::string& file, std::string* why) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  auto bad = [&](const std::string& what) -> std::optional<json> {
    if (why) *why = file + " is damaged (" + what + ")";
    return std::nullopt;
  };
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return bad("not JSON");
  }
  // What readers use must have its type: a damaged file is "no state", never an exception.
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer()) return bad("no integer pid");
  if (j.contains("trees")) {
    if (!j["trees"].is_array()) return bad("trees is not a list");
    for (const json& t : j["trees"])
      if (!t.is_object() || !t.value("id", json()).is_number_unsigned() || !t.value("name", json()).is_string() ||
          !t.value("path", json()).is_string() || !t.value("limit_bytes", json()).is_number_unsigned() ||
          !t.value("usage_bytes", json()).is_number_unsigned() || !t.value("over", json()).is_boolean())
        return bad("a tree without id, name, path, limit_bytes, usage_bytes or over");
  }
  return j;
}


void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace nfsfence::agent
