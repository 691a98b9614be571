// nfsf_map_memory [N]: loads the TC object, fills the handle map with N handles, and
// prints each map's kernel memory as the kernel accounts it (memlock in
// /proc/self/fdinfo, what `bpftool map show` prints). Root.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "src/bpf_loader.h"

using namespace nfsfence;

static long long memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string k;
  long long v = -1;
  while (in >> k)
    if (k == "memlock:") in >> v;
  return v;
}

static long long slab_unreclaimable_kib() {
  std::ifstream in("/proc/meminfo");
  std::string k;
  long long v = 0;
  while (in >> k)
    if (k == "SUnreclaim:") {
      in >> v;
      return v;
    }
  return 0;
}

int main(int argc, char** argv) {
  uint32_t n = argc > 1 ? uint32_t(std::stoul(argv[1])) : 1000000;
  auto prog = bpf::TcProgram::load({});
  if (!prog) {
    std::fprintf(stderr, "load: %s\n", prog.error().message().c_str());
    return 1;
  }
  const bpf::MapSet& m = (*prog)->maps();
  struct Row {
    const char* name;
    int fd;
  } rows[] = {{"handles", m.handles_fd},
              {"trees", m.trees_fd},
              {"counters", m.counters_fd},
              {"flows", m.flows_fd},
              {"poisoned", m.poisoned_fd},
              {"want_xids", m.want_xids_fd},
              {"rpc_ports", m.rpc_ports_fd},
              {"events", m.events_fd},
              {"pending_dirop", m.pending_dirop_fd},
              {"split_heads", m.split_heads_fd},
              {"split_tmpl", m.split_tmpl_fd}};
  auto print = [&](const char* when) {
    long long total = 0;
    std::printf("%s:\n", when);
    for (auto& r : rows) {
      long long b = memlock(r.fd);
      total += b;
      std::printf("  %-13s %12lld bytes\n", r.name, b);
    }
    std::printf("  %-13s %12lld bytes (%.1f MB)\n", "total", total, double(total) / 1e6);
  };
  print("at load");
  long long slab0 = slab_unreclaimable_kib();
  uint8_t fh[32] = {};
  for (uint32_t i = 0; i < n; i++) {
    std::memcpy(fh, &i, sizeof i);
    if (auto r = m.set_handle_tree(std::span<const uint8_t>(fh, sizeof fh), 1); !r) {
      std::fprintf(stderr, "after %u handles: %s\n", i, r.error().message().c_str());
      return 1;
    }
  }
  char when[64];
  std::snprintf(when, sizeof when, "with %u handles", n);
  print(when);
  std::printf("kernel unreclaimable slab grew by %lld KiB while filling\n", slab_unreclaimable_kib() - slab0);
  return 0;
}
