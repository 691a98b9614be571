// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nfsf_vmtool: guest-side helper for the QEMU tests. It writes files on a kernel NFSv3 mount
 * in several ways to show at which call a quota refusal (EDQUOT) surfaces, times overwrites
 * and reads a handshake line from the host. Results are single lines with a marker word.
 * TAG is $NFSF_TAG ("-" when unset); sizes take k/K (1024) and m/M (1048576) suffixes.
 *
 * nfsf_vmtool write FILE SIZE CHUNK MODE [WRITERS]
 *	Writes SIZE bytes in CHUNK pieces of the pattern byte(i) = (i * 7 + i / 4096) & 0xff.
 *	MODE: fsync (write, fsync, close), close (write, close), osync (O_SYNC), odirect
 *	(O_DIRECT; CHUNK a multiple of 4096), mmap (ftruncate, mmap, memcpy, msync, munmap,
 *	close), append (O_APPEND, no O_TRUNC, pattern continues from the old size; as fsync).
 *	WRITERS > 1 children write FILE.0, FILE.1, ... all starting at once. Per writer:
 *	  NFSF_W tag=TAG id=K mode=MODE written=BYTES calls=N err=ERRNAME at=CALL close_err=ERRNAME
 *	(close_err: what close() said after an earlier error; none otherwise)
 *	(err=none at=none on success; mmap counts memcpy stores as calls and reports
 *	err=SIGBUS at=store when a store faults), then NFSF_WDONE tag=TAG writers=N.
 *	Filesystem errors are results: the exit status is 1 only when the tool failed.
 * nfsf_vmtool bench FILE BYTES ITERS
 *	Writes BYTES at offset 0, then times 5 runs of ITERS pwrite()s of BYTES at offset 0:
 *	  NFSF_BENCH tag=TAG file=FILE bytes=BYTES iters=ITERS ns_per_op_median=X ns_per_op_min=Y
 *	or, if open, pwrite or close fails: NFSF_BENCH tag=TAG file=FILE bytes=BYTES err=ERRNAME
 * nfsf_vmtool grow SRC DST
 *	copy_file_range() of all of SRC onto a new DST, then fallocate() DST 1 MiB past SRC's
 *	size: one NFSF_W line each (mode=copy_file_range / mode=fallocate).
 * nfsf_vmtool ways DIR SRC
 *	Makes DIR/<way> 64 KiB, one file per way a file grows: write, pwrite, writev, sendfile,
 *	copy_file_range (both from SRC, a 64 KiB file the tool writes first: on the same mount
 *	for copy_file_range, which 6.1 refuses across filesystems), fallocate, ftruncate, mmap (a
 *	64 KiB file of size set by ftruncate before the tool's stores, then msync); each
 *	fsync()ed: one NFSF_W line per way (mode=WAY, err/at: the first call that failed).
 * nfsf_vmtool wait-line DEVICE
 *	Prints one line read from DEVICE (a tty is set raw first); exit 1 on EOF or error.
 * Usage errors exit 2.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define ERR_ZERO (-1)   /* write() returned 0 */
#define ERR_SIGBUS (-2) /* a store into the mapping raised SIGBUS */
#define ERR_SHORT (-3)  /* bench: short pwrite() */
#define MAX_WRITERS 256
#define BENCH_REPS 5
#define WR_FLAGS (O_WRONLY | O_CREAT | O_TRUNC)

enum mode { M_FSYNC, M_CLOSE, M_OSYNC, M_ODIRECT, M_MMAP, M_APPEND, M_COUNT };
static const struct {
  const char* name;
  int flags;
} modes[M_COUNT] = {
    {"fsync", WR_FLAGS},
    {"close", WR_FLAGS},
    {"osync", WR_FLAGS | O_SYNC},
    {"odirect", WR_FLAGS | O_DIRECT},
    {"mmap", O_RDWR | O_CREAT | O_TRUNC},
    {"append", O_WRONLY | O_CREAT | O_APPEND},
};

struct result {
  unsigned long long written, calls;
  int err;
  const char* at; /* NULL: no failure */
};

static const char* tag = "-";
static unsigned long long g_size, g_chunk;
static enum mode g_mode;
static sigjmp_buf bus_env;
static volatile unsigned long long g_stored, g_stores;

static _Noreturn void usage(void) {
  fprintf(stderr,
          "usage: nfsf_vmtool write FILE SIZE CHUNK MODE [WRITERS]\n"
          "         MODE: fsync close osync odirect mmap append; SIZE, CHUNK: N[kKmM]\n"
          "       nfsf_vmtool bench FILE BYTES ITERS\n"
          "       nfsf_vmtool grow SRC DST\n"
          "       nfsf_vmtool ways DIR SRC\n"
          "       nfsf_vmtool wait-line DEVICE\n"
          "environment: NFSF_TAG labels the output lines\n");
  exit(2);
}

static const char* errname(int e) {
#define E(x) \
  { x, #x }
  static const struct {
    int e;
    const char* name;
  } tab[] = {
      E(EDQUOT),
      E(ENOSPC),
      E(EIO),
      E(EINTR),
      E(EAGAIN),
      E(EPERM),
      E(EACCES),
      E(EFBIG),
      E(EBADF),
      E(EINVAL),
      E(ETIMEDOUT),
      E(ENOENT),
      E(EROFS),
      E(EXDEV),
      E(ENOTSUP),
      {ERR_ZERO, "ZEROWRITE"},
      {ERR_SIGBUS, "SIGBUS"},
      {ERR_SHORT, "SHORT"},
  };
#undef E
  static char buf[24];

  for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
    if (tab[i].e == e) return tab[i].name;
  snprintf(buf, sizeof(buf), "E%d", e);
  return buf;
}

/* N, Nk/NK (x1024) or Nm/NM (x1048576); anything else is refused. */
static int parse_size(const char* s, unsigned long long* out) {
  unsigned long long v, mul = 1;
  char* end;

  if (!isdigit((unsigned char)*s)) return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (*end == 'k' || *end == 'K')
    mul = 1024, end++;
  else if (*end == 'm' || *end == 'M')
    mul = 1048576, end++;
  if (errno || *end || v > (1ULL << 62) / mul) return -1;
  *out = v * mul;
  return 0;
}

static void fill(unsigned char* b, unsigned long long off, size_t n) {
  for (size_t j = 0; j < n; j++) b[j] = (unsigned char)(((off + j) * 7 + (off + j) / 4096) & 0xff);
}

static void fail(struct result* r, const char* at, int err) {
  r->at = at;
  r->err = err;
}

static void on_sigbus(int sig) {
  (void)sig;
  siglongjmp(bus_env, 1);
}

static void write_loop(int fd, unsigned char* buf, unsigned long long base, struct result* r) {
  unsigned long long off = 0;

  while (off < g_size) {
    size_t n = g_size - off < g_chunk ? g_size - off : g_chunk, done = 0;

    fill(buf, base + off, n);
    while (done < n) {
      ssize_t w = write(fd, buf + done, n - done);

      if (w <= 0) {
        fail(r, "write", w < 0 ? errno : ERR_ZERO);
        return;
      }
      done += w;
      r->written += w;
      r->calls++;
    }
    off += n;
  }
}

static void mmap_fill(int fd, unsigned char* buf, struct result* r) {
  unsigned char* map;

  if (ftruncate(fd, (off_t)g_size)) {
    fail(r, "ftruncate", errno);
    return;
  }
  if (!g_size) return;
  map = mmap(NULL, g_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    fail(r, "mmap", errno);
    return;
  }
  g_stored = g_stores = 0;
  signal(SIGBUS, on_sigbus); /* glibc: BSD semantics; siglongjmp restores the mask */
  if (sigsetjmp(bus_env, 1)) {
    fail(r, "store", ERR_SIGBUS);
  } else {
    for (unsigned long long off = 0; off < g_size; off += g_chunk) {
      size_t n = g_size - off < g_chunk ? g_size - off : g_chunk;

      fill(buf, off, n);
      memcpy(map + off, buf, n);
      g_stored += n;
      g_stores++;
    }
  }
  signal(SIGBUS, SIG_DFL);
  r->written = g_stored;
  r->calls = g_stores;
  if (!r->at && msync(map, g_size, MS_SYNC)) fail(r, "msync", errno);
  if (munmap(map, g_size) && !r->at) fail(r, "munmap", errno);
}

static int writer(const char* path, int id) {
  struct result r = {0, 0, 0, NULL};
  unsigned long long base = 0;
  int close_err = 0;
  size_t blen = g_chunk < g_size ? g_chunk : g_size;
  unsigned char* buf;
  struct stat st;
  void* p;
  int fd;

  if (posix_memalign(&p, 4096, blen < 4096 ? 4096 : blen)) {
    fprintf(stderr, "nfsf_vmtool: out of memory\n");
    return 1;
  }
  buf = p;
  fd = open(path, modes[g_mode].flags, 0644);
  if (fd < 0) {
    fail(&r, "open", errno);
    goto out;
  }
  if (g_mode == M_APPEND && !fstat(fd, &st)) base = st.st_size; /* the pattern continues after the old bytes */
  if (g_mode == M_MMAP)
    mmap_fill(fd, buf, &r);
  else
    write_loop(fd, buf, base, &r);
  if (!r.at && (g_mode == M_FSYNC || g_mode == M_APPEND) && fsync(fd)) fail(&r, "fsync", errno);
  if (r.at) {
    /* already failed: err/at keep the first error; close_err says whether the
		 * bytes written before it reached the file (NFS reports write-back errors here) */
    close_err = close(fd) ? errno : 0;
  } else if (close(fd)) {
    fail(&r, "close", errno);
  }
out:
  printf("NFSF_W tag=%s id=%d mode=%s written=%llu calls=%llu err=%s at=%s close_err=%s\n", tag, id, modes[g_mode].name,
         r.written, r.calls, r.at ? errname(r.err) : "none", r.at ? r.at : "none",
         close_err ? errname(close_err) : "none");
  fflush(stdout);
  free(buf);
  return 0;
}

static int cmd_write(int argc, char** argv) {
  unsigned long long writers = 1;
  int gate[2], rc = 0, m, st;

  if (argc < 6 || argc > 7 || parse_size(argv[3], &g_size) || parse_size(argv[4], &g_chunk) || !g_chunk) usage();
  for (m = 0; m < M_COUNT && strcmp(argv[5], modes[m].name); m++)
    ;
  if (m == M_COUNT) usage();
  g_mode = m;
  if (g_mode == M_ODIRECT && g_chunk % 4096) usage();
  if (argc == 7 && (parse_size(argv[6], &writers) || !writers || writers > MAX_WRITERS)) usage();
  if (writers == 1) {
    rc = writer(argv[2], 0);
    goto done;
  }
  if (pipe(gate)) {
    perror("nfsf_vmtool: pipe");
    return 1;
  }
  fflush(NULL);
  for (unsigned long long k = 0; k < writers; k++) {
    pid_t pid = fork();

    if (pid < 0) {
      perror("nfsf_vmtool: fork");
      rc = 1;
      break;
    }
    if (pid == 0) {
      char path[4096], c;

      close(gate[1]);
      while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ; /* blocks until the parent closes the pipe */
      close(gate[0]);
      snprintf(path, sizeof(path), "%s.%llu", argv[2], k);
      exit(writer(path, (int)k));
    }
  }
  close(gate[1]); /* EOF on the pipe: every child starts now */
  close(gate[0]);
  while (wait(&st) > 0)
    if (!WIFEXITED(st) || WEXITSTATUS(st)) rc = 1;
done:
  printf("NFSF_WDONE tag=%s writers=%llu\n", tag, writers);
  fflush(stdout);
  return rc;
}

static int full_pwrite(int fd, const void* buf, size_t n) {
  ssize_t w = pwrite(fd, buf, n, 0);

  if (w < 0) return errno;
  return (size_t)w == n ? 0 : ERR_SHORT;
}

static long long now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmd_bench(int argc, char** argv) {
  unsigned long long bytes, iters;
  double ns[BENCH_REPS];
  unsigned char* buf;
  int fd, err = 0;

  if (argc != 5 || parse_size(argv[3], &bytes) || parse_size(argv[4], &iters) || !bytes || !iters) usage();
  buf = malloc(bytes);
  if (!buf) return 1;
  fill(buf, 0, bytes);
  fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
  err = fd < 0 ? errno : full_pwrite(fd, buf, bytes);
  for (int rep = 0; rep < BENCH_REPS && !err; rep++) {
    long long t0 = now_ns();

    for (unsigned long long i = 0; i < iters && !err; i++) err = full_pwrite(fd, buf, bytes);
    ns[rep] = (double)(now_ns() - t0) / (double)iters;
  }
  if (fd >= 0 && close(fd) && !err) err = errno; /* NFS reports deferred write errors here */
  for (int i = 1; i < BENCH_REPS && !err; i++)   /* sort the runs */
    for (int j = i; j > 0 && ns[j - 1] > ns[j]; j--) {
      double t = ns[j];

      ns[j] = ns[j - 1];
      ns[j - 1] = t;
    }
  if (err)
    printf("NFSF_BENCH tag=%s file=%s bytes=%llu err=%s\n", tag, argv[2], bytes, errname(err));
  else
    printf("NFSF_BENCH tag=%s file=%s bytes=%llu iters=%llu ns_per_op_median=%.1f ns_per_op_min=%.1f\n", tag, argv[2],
           bytes, iters, ns[BENCH_REPS / 2], ns[0]);
  fflush(stdout);
  free(buf);
  return !!err;
}

static int cmd_wait_line(int argc, char** argv) {
  struct termios t;
  char line[4096];
  size_t len = 0;
  int fd;

  if (argc != 3) usage();
  fd = open(argv[2], O_RDONLY | O_NOCTTY);
  if (fd < 0) {
    perror("nfsf_vmtool: open");
    return 1;
  }
  if (isatty(fd) && !tcgetattr(fd, &t)) {
    cfmakeraw(&t); /* no echo, no CR/LF mapping, VMIN 1, VTIME 0 */
    if (tcsetattr(fd, TCSANOW, &t)) perror("nfsf_vmtool: tcsetattr");
  }
  for (;;) {
    char c;
    ssize_t n = read(fd, &c, 1);

    if (n <= 0) {
      fprintf(stderr, "nfsf_vmtool: %s: %s\n", argv[2], n ? strerror(errno) : "end of file before newline");
      return 1;
    }
    if (c == '\n') break;
    if (len < sizeof(line)) line[len++] = c; /* longer lines are cut */
  }
  close(fd);
  if (len && line[len - 1] == '\r') len--;
  fwrite(line, 1, len, stdout);
  putchar('\n');
  fflush(stdout);
  return 0;
}

/* grow SRC DST: copy_file_range(2) of all of SRC onto a new DST, then fallocate(2) past
 * it: the growth paths besides write() that an LSM must see; one NFSF_W line per call. */
static void report_call(const char* mode, unsigned long long done, int err) {
  printf("NFSF_W tag=%s id=0 mode=%s written=%llu calls=1 err=%s at=%s\n", tag, mode, done, err ? errname(err) : "none",
         err ? mode : "none");
  fflush(stdout);
}

static int cmd_grow(int argc, char** argv) {
  unsigned long long done = 0;
  int in, out, err = 0;
  struct stat st;

  if (argc != 4) usage();
  in = open(argv[2], O_RDONLY);
  out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0 || fstat(in, &st)) {
    report_call("copy_file_range", 0, errno);
    return 0;
  }
  while (done < (unsigned long long)st.st_size) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, st.st_size - done, 0);

    if (n <= 0) {
      err = n < 0 ? errno : ERR_ZERO;
      break;
    }
    done += n;
  }
  report_call("copy_file_range", done, err);
  err = fallocate(out, 0, 0, st.st_size + (1 << 20)) ? errno : 0;
  report_call("fallocate", err ? 0 : (1 << 20), err);
  close(in);
  close(out);
  return 0;
}

/* ways DIR: one file per way of growing a file (see the header). */
#define WAY_BYTES 65536
static int way(const char* dir, const char* name, int src) {
  static char buf[WAY_BYTES];
  char path[4096];
  const char* at = name;
  unsigned long long done = 0;
  int fd, err = 0;

  memset(buf, 0x5a, sizeof buf);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    err = errno;
    at = "open";
  } else if (!strcmp(name, "write") || !strcmp(name, "pwrite") || !strcmp(name, "writev")) {
    struct iovec iov[2] = {{buf, WAY_BYTES / 2}, {buf + WAY_BYTES / 2, WAY_BYTES / 2}};
    ssize_t n = name[0] == 'p'   ? pwrite(fd, buf, WAY_BYTES, 0)
                : name[5] == 'v' ? writev(fd, iov, 2)
                                 : write(fd, buf, WAY_BYTES);
    err = n < 0 ? errno : 0;
    done = n > 0 ? (unsigned long long)n : 0;
  } else if (!strcmp(name, "sendfile") || !strcmp(name, "copy_file_range")) {
    off_t o = 0;
    ssize_t n = name[0] == 's' ? sendfile(fd, src, &o, WAY_BYTES) : copy_file_range(src, &o, fd, NULL, WAY_BYTES, 0);
    err = n < 0 ? errno : 0;
    done = n > 0 ? (unsigned long long)n : 0;
  } else if (!strcmp(name, "fallocate")) {
    err = fallocate(fd, 0, 0, WAY_BYTES) ? errno : 0;
    done = err ? 0 : WAY_BYTES;
  } else if (!strcmp(name, "ftruncate")) {
    err = ftruncate(fd, WAY_BYTES) ? errno : 0;
    done = err ? 0 : WAY_BYTES;
  } else { /* mmap */
    char* m = MAP_FAILED;
    if (ftruncate(fd, WAY_BYTES)) {
      err = errno;
      at = "ftruncate";
    } else if ((m = mmap(NULL, WAY_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
      err = errno;
      at = "mmap";
    } else {
      memcpy(m, buf, WAY_BYTES);
      if (msync(m, WAY_BYTES, MS_SYNC)) {
        err = errno;
        at = "msync";
      } else {
        done = WAY_BYTES;
      }
      munmap(m, WAY_BYTES);
    }
  }
  if (fd >= 0 && !err && fsync(fd)) {
    err = errno;
    at = "fsync";
  }
  if (fd >= 0 && close(fd) && !err) {
    err = errno;
    at = "close";
  }
  printf("NFSF_W tag=%s id=0 mode=%s written=%llu calls=1 err=%s at=%s\n", tag, name, done, err ? errname(err) : "none",
         err ? at : "none");
  fflush(stdout);
  return 0;
}

static int cmd_ways(int argc, char** argv) {
  static const char* ways[] = {"write",           "pwrite",    "writev",    "sendfile",
                               "copy_file_range", "fallocate", "ftruncate", "mmap"};
  static char buf[WAY_BYTES];
  int src;

  if (argc != 4) usage();
  memset(buf, 0xa5, sizeof buf);
  src = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (src < 0 || write(src, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(src)) {
    fprintf(stderr, "nfsf_vmtool ways: %s: %s\n", argv[3], strerror(errno));
    return 1;
  }
  for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) way(argv[2], ways[i], src);
  close(src);
  return 0;
}

int main(int argc, char** argv) {
  const char* t = getenv("NFSF_TAG");

  if (t && *t) tag = t;
  if (argc < 2) usage();
  if (!strcmp(argv[1], "write")) return cmd_write(argc, argv);
  if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
  if (!strcmp(argv[1], "grow")) return cmd_grow(argc, argv);
  if (!strcmp(argv[1], "ways")) return cmd_ways(argc, argv);
  if (!strcmp(argv[1], "wait-line")) return cmd_wait_line(argc, argv);
  usage();
  return 2;
}
