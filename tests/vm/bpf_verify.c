// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsf_bpf_verify OBJ...: load every program of each BPF object file into the running
 * kernel (the verifier runs; nothing is attached) and print, per program, one line
 *   NFSF_VERIFY obj=<file> prog=<name> ok=<0|1> <the verifier's "processed ..." stats>
 * then NFSF_VERIFY_DONE failures=<n>. Exit status: the number of objects that failed to load.
 * Used by tests/vm/verifier_vm.sh inside a QEMU guest running another kernel (Debian 12's
 * 6.1) and runnable on the host. On a failure the verifier log's last lines are printed.
 *
 * nfsf_bpf_verify --attach OBJ: load OBJ and attach every program (bpf_program__attach: the
 * section name says where), print NFSF_ATTACHED, and wait for SIGTERM/SIGINT (the benchmarks'
 * "trivial LSM program", bpf/lsm/null_lsm.bpf.c). Exit 1 if anything fails.
 *
 * nfsf_bpf_verify --prog-stats: for every BPF program in the kernel, its own run count and
 * run time (kernel.bpf_stats_enabled=1 must be set while they ran):
 *   NFSF_PROGSTAT name=<name> run_cnt=<n> run_time_ns=<ns>
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SIZE (1u << 24)

static int quiet(enum libbpf_print_level level, const char* fmt, va_list ap) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

static void on_signal(int sig) { (void)sig; }

static int attach_and_wait(const char* path) {
  struct bpf_object* obj = bpf_object__open(path);
  struct bpf_program* p;

  if (!obj || bpf_object__load(obj)) {
    printf("NFSF_ATTACHED obj=%s failed to load\n", path);
    return 1;
  }
  bpf_object__for_each_program(p, obj) {
    if (!bpf_program__attach(p)) {
      printf("NFSF_ATTACHED obj=%s prog=%s failed to attach\n", path, bpf_program__name(p));
      return 1;
    }
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("NFSF_ATTACHED obj=%s\n", path);
  fflush(stdout);
  pause();
  bpf_object__close(obj);
  return 0;
}

static int prog_stats(void) {
  __u32 id = 0;

  while (!bpf_prog_get_next_id(id, &id)) {
    struct bpf_prog_info info = {0};
    __u32 len = sizeof(info);
    int fd = bpf_prog_get_fd_by_id(id);

    if (fd < 0) continue;
    if (!bpf_obj_get_info_by_fd(fd, &info, &len))
      printf("NFSF_PROGSTAT name=%s run_cnt=%llu run_time_ns=%llu\n", info.name, (unsigned long long)info.run_cnt,
             (unsigned long long)info.run_time_ns);
    close(fd);
  }
  return 0;
}

int main(int argc, char** argv) {
  int failures = 0;

  libbpf_set_print(quiet);
  if (argc == 3 && strcmp(argv[1], "--attach") == 0) return attach_and_wait(argv[2]);
  if (argc == 2 && strcmp(argv[1], "--prog-stats") == 0) return prog_stats();
  for (int a = 1; a < argc; a++) {
    struct bpf_object* obj = bpf_object__open(argv[a]);
    struct bpf_program* p;
    char* logs[64] = {0};
    int n = 0, rc;

    if (!obj) {
      printf("NFSF_VERIFY obj=%s open failed\n", argv[a]);
      failures++;
      continue;
    }
    bpf_object__for_each_program(p, obj) {
      if (n == 64) break;
      logs[n] = calloc(1, LOG_SIZE);
      if (logs[n]) {
        bpf_program__set_log_buf(p, logs[n], LOG_SIZE);
        bpf_program__set_log_level(p, 1 | 4);
      }
      n++;
    }
    rc = bpf_object__load(obj);
    n = 0;
    bpf_object__for_each_program(p, obj) {
      const char* log = n < 64 && logs[n] ? logs[n] : "";
      const char* st = strstr(log, "processed ");
      char line[256] = "(no stats)";

      if (st) sscanf(st, "%255[^\n]", line);
      printf("NFSF_VERIFY obj=%s prog=%s ok=%d %s\n", argv[a], bpf_program__name(p), bpf_program__fd(p) >= 0, line);
      if (bpf_program__fd(p) < 0 && *log) {
        /* the verifier's reason is the line before its stats, when the log
				 * did not fill the buffer first (6.1 keeps the log's start) */
        size_t len = st ? (size_t)(st - log) : strlen(log);

        printf("---- verifier log tail (%s%s)\n%.*s\n----\n", bpf_program__name(p), st ? "" : ", log truncated",
               (int)(len > 3000 ? 3000 : len), log + (len > 3000 ? len - 3000 : 0));
      }
      free(n < 64 ? logs[n] : NULL);
      n++;
    }
    if (rc) {
      printf("NFSF_VERIFY obj=%s load failed: %s\n", argv[a], strerror(-rc));
      failures++;
    }
    bpf_object__close(obj);
  }
  printf("NFSF_VERIFY_DONE failures=%d\n", failures);
  return failures;
}
