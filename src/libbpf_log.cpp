#include "src/libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace nfsfence::agent {

namespace {

std::string g_libbpf_last;
bool g_libbpf_live = false;

// Called from libbpf's C code: nothing may throw out of it (a failed string copy loses
// the note, nothing else).
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) noexcept try {
  bool debug = std::getenv("NFSF_DEBUG") != nullptr;
  if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !debug)) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (std::strstr(buf, "Exclusivity flag on")) return 0;
  while (n > 0 && n <= int(sizeof buf) && (buf[n - 1] == '\n')) buf[--n] = 0;
  const char* msg = std::strncmp(buf, "libbpf: ", 8) == 0 ? buf + 8 : buf;
  if (g_libbpf_live || debug)
    std::fprintf(stderr, "nfsfence: libbpf: %s\n", msg);
  else
    g_libbpf_last = msg;
  return 0;
} catch (...) {
  return 0;
}

}  // namespace

void libbpf_log_install() { libbpf_set_print(libbpf_print); }

void libbpf_log_live() { g_libbpf_live = true; }

std::string libbpf_note() {
  std::string note = g_libbpf_last.empty() ? "" : " (libbpf: " + g_libbpf_last + ")";
  g_libbpf_last.clear();
  return note;
}

}  // namespace nfsfence::agent
