/*
 * nfsf_client: a small NFSv3 test client for the nfsfence lab, on libnfs's raw RPC API.
 *
 * The raw API (rpc_nfs3_*_async) is used instead of the nfs_* file API because tests
 * assert the exact nfsstat3 a server (or nfsfence) returned: the file API folds every
 * status into an errno, and it cannot speak UDP. One invocation = one MOUNT + one NFS
 * connection (one TCP connection or one UDP socket), on which all ops run in order.
 *
 *   nfsf_client [options] nfs://SERVER/EXPORT[/SUBDIR][?version=3&proto=udp&nfsport=N&mountport=N] OP...
 *
 * Every op prints one line per NFS call that carries data (WRITE, READ) or one line per
 * op otherwise, e.g.
 *   op=write path=vol-a/f1 offset=0 count=65536 status=OK
 *   op=write path=vol-a/f1 offset=65536 count=65536 status=NFS3ERR_DQUOT errno=EDQUOT proc=WRITE
 * Exit status: 0 all ops OK; 1 an op failed (stops at the first one unless --keep-going);
 * 2 usage, connection or MOUNT failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

/* Exported by libnfs (used for its portmapper broadcast discovery) but not declared in the
 * public headers of libnfs 4.0. They give a UDP rpc_context: no record marking, one
 * datagram per call. */
extern struct rpc_context* rpc_init_udp_context(void);
extern int rpc_bind_udp(struct rpc_context* rpc, char* addr, int port);
extern int rpc_set_udp_destination(struct rpc_context* rpc, char* addr, int port, int is_broadcast);

#define MAX_TOKENS 65536

static const char* usage_text =
    "usage: nfsf_client [--keep-going] [--udp] [--timeout MS] [--inflight N]\n"
    "                   [--stable unstable|datasync|filesync] [--uid N --gid N] [--quiet-mount]\n"
    "                   [--script FILE] URL [OP ARGS]...\n"
    "URL: nfs://SERVER/EXPORT[/SUBDIR]?version=3[&proto=tcp|udp][&nfsport=2049][&mountport=20048]\n"
    "OPs (paths are relative to EXPORT[/SUBDIR]; sizes accept K,M,G (1000) and Ki,Mi,Gi (1024)):\n"
    "  write FILE BYTES [CHUNK]        CREATE (UNCHECKED, size 0) then WRITE BYTES in CHUNKs (64Ki)\n"
    "  append FILE BYTES [CHUNK]       WRITE at the current end (CREATE if missing)\n"
    "  pwrite FILE OFFSET BYTES [CHUNK] WRITE into an existing file\n"
    "  create FILE | mkdir DIR | rm FILE | rmdir DIR | rename OLD NEW | truncate FILE SIZE\n"
    "  read FILE [CHUNK]               READ to EOF, CHUNK bytes per READ (64Ki)\n"
    "  stat PATH | lookup PATH         GETATTR / LOOKUP\n"
    "  fsstat PATH                     FSSTAT (what df asks; PATH . is the mounted directory)\n"
    "  ls DIR                          READDIRPLUS until EOF\n"
    "  commit FILE | null | sleep MS\n"
    "With unstable writes (default) a write op ends with a COMMIT.\n";

/* ---------- options and state ---------- */

static struct {
  bool keep_going;
  bool udp;
  bool quiet_mount;
  int timeout_ms;
  int inflight;
  int stable;
  int uid, gid;
} opt = {.timeout_ms = 10000, .inflight = 1, .stable = UNSTABLE, .uid = -1, .gid = -1};

struct fh {
  uint32_t len;
  char data[128];
};

struct cache_ent {
  char* path;
  struct fh fh;
};

static struct {
  struct rpc_context* rpc;
  char server[256];
  char export_path[1024];
  int nfsport, mountport;
  struct fh root; /* EXPORT[/SUBDIR] */
  struct cache_ent* cache;
  size_t ncache, capcache;
} g;

/* ---------- status names ---------- */

static const char* nfsstat_name(int s) {
  switch (s) {
    case NFS3_OK:
      return "OK";
    case NFS3ERR_PERM:
      return "NFS3ERR_PERM";
    case NFS3ERR_NOENT:
      return "NFS3ERR_NOENT";
    case NFS3ERR_IO:
      return "NFS3ERR_IO";
    case NFS3ERR_NXIO:
      return "NFS3ERR_NXIO";
    case NFS3ERR_ACCES:
      return "NFS3ERR_ACCES";
    case NFS3ERR_EXIST:
      return "NFS3ERR_EXIST";
    case NFS3ERR_XDEV:
      return "NFS3ERR_XDEV";
    case NFS3ERR_NODEV:
      return "NFS3ERR_NODEV";
    case NFS3ERR_NOTDIR:
      return "NFS3ERR_NOTDIR";
    case NFS3ERR_ISDIR:
      return "NFS3ERR_ISDIR";
    case NFS3ERR_INVAL:
      return "NFS3ERR_INVAL";
    case NFS3ERR_FBIG:
      return "NFS3ERR_FBIG";
    case NFS3ERR_NOSPC:
      return "NFS3ERR_NOSPC";
    case NFS3ERR_ROFS:
      return "NFS3ERR_ROFS";
    case NFS3ERR_MLINK:
      return "NFS3ERR_MLINK";
    case NFS3ERR_NAMETOOLONG:
      return "NFS3ERR_NAMETOOLONG";
    case NFS3ERR_NOTEMPTY:
      return "NFS3ERR_NOTEMPTY";
    case NFS3ERR_DQUOT:
      return "NFS3ERR_DQUOT";
    case NFS3ERR_STALE:
      return "NFS3ERR_STALE";
    case NFS3ERR_REMOTE:
      return "NFS3ERR_REMOTE";
    case NFS3ERR_BADHANDLE:
      return "NFS3ERR_BADHANDLE";
    case NFS3ERR_NOT_SYNC:
      return "NFS3ERR_NOT_SYNC";
    case NFS3ERR_BAD_COOKIE:
      return "NFS3ERR_BAD_COOKIE";
    case NFS3ERR_NOTSUPP:
      return "NFS3ERR_NOTSUPP";
    case NFS3ERR_TOOSMALL:
      return "NFS3ERR_TOOSMALL";
    case NFS3ERR_SERVERFAULT:
      return "NFS3ERR_SERVERFAULT";
    case NFS3ERR_BADTYPE:
      return "NFS3ERR_BADTYPE";
    case NFS3ERR_JUKEBOX:
      return "NFS3ERR_JUKEBOX";
  }
  return NULL;
}

/* The errno a Linux client would surface for each status (what applications see). */
static const char* nfsstat_errno(int s) {
  switch (s) {
    case NFS3ERR_PERM:
      return "EPERM";
    case NFS3ERR_NOENT:
      return "ENOENT";
    case NFS3ERR_IO:
      return "EIO";
    case NFS3ERR_NXIO:
      return "ENXIO";
    case NFS3ERR_ACCES:
      return "EACCES";
    case NFS3ERR_EXIST:
      return "EEXIST";
    case NFS3ERR_XDEV:
      return "EXDEV";
    case NFS3ERR_NODEV:
      return "ENODEV";
    case NFS3ERR_NOTDIR:
      return "ENOTDIR";
    case NFS3ERR_ISDIR:
      return "EISDIR";
    case NFS3ERR_INVAL:
      return "EINVAL";
    case NFS3ERR_FBIG:
      return "EFBIG";
    case NFS3ERR_NOSPC:
      return "ENOSPC";
    case NFS3ERR_ROFS:
      return "EROFS";
    case NFS3ERR_MLINK:
      return "EMLINK";
    case NFS3ERR_NAMETOOLONG:
      return "ENAMETOOLONG";
    case NFS3ERR_NOTEMPTY:
      return "ENOTEMPTY";
    case NFS3ERR_DQUOT:
      return "EDQUOT";
    case NFS3ERR_STALE:
      return "ESTALE";
    case NFS3ERR_REMOTE:
      return "EREMOTE";
    case NFS3ERR_BADHANDLE:
      return "EBADHANDLE";
    case NFS3ERR_NOTSUPP:
      return "ENOTSUPP";
    case NFS3ERR_TOOSMALL:
      return "ETOOSMALL";
    case NFS3ERR_SERVERFAULT:
      return "EREMOTEIO";
    case NFS3ERR_BADTYPE:
      return "EBADTYPE";
    case NFS3ERR_JUKEBOX:
      return "EJUKEBOX";
  }
  return "EIO";
}

/* Result of one NFS step. status >= 0 is an nfsstat3; negative values are transport
 * failures with err set. */
enum { ST_RPC_ERROR = -1, ST_TIMEOUT = -2, ST_CANCEL = -3, ST_LOCAL = -4 };

struct result {
  int status;
  const char* proc; /* the NFS procedure that produced status */
  char err[256];
};

/* Formats " status=... [errno=...] [proc=...]" for a result. */
static void fmt_status(char* buf, size_t n, const struct result* r) {
  if (r->status == NFS3_OK) {
    snprintf(buf, n, "status=OK");
  } else if (r->status > 0) {
    const char* name = nfsstat_name(r->status);
    char tmp[32];
    if (!name) {
      snprintf(tmp, sizeof tmp, "NFS3ERR_%d", r->status);
      name = tmp;
    }
    snprintf(buf, n, "status=%s errno=%s proc=%s", name, nfsstat_errno(r->status), r->proc);
  } else {
    const char* name = r->status == ST_TIMEOUT  ? "TIMEOUT"
                       : r->status == ST_CANCEL ? "RPC_CANCEL"
                       : r->status == ST_LOCAL  ? "LOCAL_ERROR"
                                                : "RPC_ERROR";
    snprintf(buf, n, "status=%s proc=%s error=\"%s\"", name, r->proc ? r->proc : "-", r->err);
  }
}

/* ---------- synchronous calls over the async raw API ---------- */

struct call;
typedef void (*handler_fn)(struct call* c, void* data);

struct call {
  bool done;
  int rpc_status;
  int nfs_status;
  char err[256];
  handler_fn handler;
  void* out;
  /* used by pipelined writes */
  uint64_t offset;
  uint32_t asked; /* count sent */
  uint32_t count; /* count in the reply */
  char* buf;
  int committed;
};

static void rpc_done_cb(struct rpc_context* rpc, int status, void* data, void* priv) {
  struct call* c = priv;
  c->done = true;
  c->rpc_status = status;
  if (status == RPC_STATUS_SUCCESS) {
    c->nfs_status = data ? *(int*)data : 0; /* every *3res starts with its status */
    if (c->handler) c->handler(c, data);
  } else if (status == RPC_STATUS_ERROR && data) {
    snprintf(c->err, sizeof c->err, "%s", (const char*)data);
  } else {
    snprintf(c->err, sizeof c->err, "%s", rpc_get_error(rpc));
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the event loop until pred(arg) holds or the deadline passes. Returns 0, or
 * ST_TIMEOUT / ST_RPC_ERROR. */
static int service_until(bool (*pred)(void*), void* arg, char* err, size_t errn) {
  int64_t deadline = now_ms() + opt.timeout_ms;
  while (!pred(arg)) {
    struct pollfd pfd = {.fd = rpc_get_fd(g.rpc), .events = rpc_which_events(g.rpc)};
    int left = (int)(deadline - now_ms());
    if (left <= 0) {
      snprintf(err, errn, "no reply within %d ms", opt.timeout_ms);
      return ST_TIMEOUT;
    }
    int r = poll(&pfd, 1, left < 100 ? left : 100);
    if (r < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errn, "poll: %s", strerror(errno));
      return ST_RPC_ERROR;
    }
    if (rpc_service(g.rpc, r > 0 ? pfd.revents : 0) < 0) {
      snprintf(err, errn, "%s", rpc_get_error(g.rpc));
      return ST_RPC_ERROR;
    }
  }
  return 0;
}

static bool call_done(void* arg) { return ((struct call*)arg)->done; }

/* Calls are heap-allocated: after a timeout the PDU still points at them, so they leak. */
static struct call* call_new(handler_fn h, void* out) {
  struct call* c = calloc(1, sizeof *c);
  if (!c) {
    perror("calloc");
    exit(2);
  }
  c->handler = h;
  c->out = out;
  return c;
}

/* Waits for c and fills r; frees c unless it is still pending. */
static void call_finish(struct call* c, int queued, const char* proc, struct result* r) {
  r->proc = proc;
  r->err[0] = 0;
  if (queued != 0) {
    r->status = ST_RPC_ERROR;
    snprintf(r->err, sizeof r->err, "queue %s: %s", proc, rpc_get_error(g.rpc));
    free(c);
    return;
  }
  int w = service_until(call_done, c, r->err, sizeof r->err);
  if (w != 0) {
    r->status = w;
    return; /* leaked on purpose */
  }
  if (c->rpc_status == RPC_STATUS_SUCCESS) {
    r->status = c->nfs_status;
  } else {
    r->status = c->rpc_status == RPC_STATUS_TIMEOUT  ? ST_TIMEOUT
                : c->rpc_status == RPC_STATUS_CANCEL ? ST_CANCEL
                                                     : ST_RPC_ERROR;
    snprintf(r->err, sizeof r->err, "%s", c->err);
  }
  free(c);
}

static void fh_set(struct fh* dst, const char* data, u_int len) {
  if (len > sizeof dst->data) len = sizeof dst->data;
  dst->len = len;
  memcpy(dst->data, data, len);
}

static nfs_fh3 fh3(struct fh* f) {
  nfs_fh3 x;
  x.data.data_len = f->len;
  x.data.data_val = f->data;
  return x;
}

/* ---------- handle cache (path relative to the root handle -> handle) ---------- */

static struct fh* cache_get(const char* path) {
  for (size_t i = 0; i < g.ncache; i++)
    if (strcmp(g.cache[i].path, path) == 0) return &g.cache[i].fh;
  return NULL;
}

static void cache_put(const char* path, const struct fh* f) {
  struct fh* old = cache_get(path);
  if (old) {
    *old = *f;
    return;
  }
  if (g.ncache == g.capcache) {
    g.capcache = g.capcache ? g.capcache * 2 : 64;
    g.cache = realloc(g.cache, g.capcache * sizeof *g.cache);
    if (!g.cache) {
      perror("realloc");
      exit(2);
    }
  }
  g.cache[g.ncache].path = strdup(path);
  g.cache[g.ncache].fh = *f;
  g.ncache++;
}

/* Drops path and everything below it. */
static void cache_drop(const char* path) {
  size_t n = strlen(path);
  for (size_t i = 0; i < g.ncache;) {
    const char* p = g.cache[i].path;
    if (strncmp(p, path, n) == 0 && (p[n] == 0 || p[n] == '/')) {
      free(g.cache[i].path);
      g.cache[i] = g.cache[--g.ncache];
    } else {
      i++;
    }
  }
}

/* ---------- NFS procedures ---------- */

struct attr_out {
  bool have;
  fattr3 a;
  struct fh fh;
  bool have_fh;
};

static void h_lookup(struct call* c, void* data) {
  LOOKUP3res* res = data;
  struct attr_out* o = c->out;
  if (res->status != NFS3_OK) return;
  fh_set(&o->fh, res->LOOKUP3res_u.resok.object.data.data_val, res->LOOKUP3res_u.resok.object.data.data_len);
  o->have_fh = true;
  if (res->LOOKUP3res_u.resok.obj_attributes.attributes_follow) {
    o->a = res->LOOKUP3res_u.resok.obj_attributes.post_op_attr_u.attributes;
    o->have = true;
  }
}

static void cl_lookup1(struct fh* dir, const char* name, struct attr_out* o, struct result* r) {
  struct call* c = call_new(h_lookup, o);
  LOOKUP3args a;
  memset(&a, 0, sizeof a);
  a.what.dir = fh3(dir);
  a.what.name = (char*)name;
  call_finish(c, rpc_nfs3_lookup_async(g.rpc, rpc_done_cb, &a, c), "LOOKUP", r);
}

/* Resolves a relative path ("" = root) to a handle, LOOKUP by component with the cache. */
static int resolve(const char* path, struct fh* out, struct result* r) {
  if (*path == 0) {
    *out = g.root;
    r->status = NFS3_OK;
    return 0;
  }
  struct fh* hit = cache_get(path);
  if (hit) {
    *out = *hit;
    r->status = NFS3_OK;
    return 0;
  }
  char* copy = strdup(path);
  char* slash = strrchr(copy, '/');
  struct fh dir;
  const char* name;
  if (slash) {
    *slash = 0;
    name = slash + 1;
    if (resolve(copy, &dir, r) != 0) {
      free(copy);
      return -1;
    }
  } else {
    dir = g.root;
    name = copy;
  }
  struct attr_out o = {0};
  cl_lookup1(&dir, name, &o, r);
  if (r->status != NFS3_OK) {
    free(copy);
    return -1;
  }
  *out = o.fh;
  cache_put(path, &o.fh);
  free(copy);
  return 0;
}

/* Splits "a/b/c" into the parent's handle and "c". */
static int resolve_parent(const char* path, struct fh* dir, const char** name, struct result* r) {
  const char* slash = strrchr(path, '/');
  if (!slash) {
    *dir = g.root;
    *name = path;
    r->status = NFS3_OK;
    return 0;
  }
  char* parent = strndup(path, (size_t)(slash - path));
  int rc = resolve(parent, dir, r);
  free(parent);
  *name = slash + 1;
  return rc;
}

static void h_getattr(struct call* c, void* data) {
  GETATTR3res* res = data;
  struct attr_out* o = c->out;
  if (res->status == NFS3_OK) {
    o->a = res->GETATTR3res_u.resok.obj_attributes;
    o->have = true;
  }
}

struct fsstat_out {
  bool have;
  uint64_t tbytes, fbytes, abytes, tfiles, ffiles, afiles;
};

static void h_fsstat(struct call* c, void* data) {
  FSSTAT3res* res = data;
  struct fsstat_out* o = c->out;
  if (res->status != NFS3_OK) return;
  FSSTAT3resok* ok = &res->FSSTAT3res_u.resok;
  o->have = true;
  o->tbytes = ok->tbytes;
  o->fbytes = ok->fbytes;
  o->abytes = ok->abytes;
  o->tfiles = ok->tfiles;
  o->ffiles = ok->ffiles;
  o->afiles = ok->afiles;
}

static void cl_getattr(struct fh* f, struct attr_out* o, struct result* r) {
  struct call* c = call_new(h_getattr, o);
  GETATTR3args a;
  a.object = fh3(f);
  call_finish(c, rpc_nfs3_getattr_async(g.rpc, rpc_done_cb, &a, c), "GETATTR", r);
}

static void h_create(struct call* c, void* data) {
  /* CREATE3res and MKDIR3res share the resok layout: post_op_fh3 first. */
  CREATE3res* res = data;
  struct attr_out* o = c->out;
  if (res->status == NFS3_OK && res->CREATE3res_u.resok.obj.handle_follows) {
    fh_set(&o->fh, res->CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_val,
           res->CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_len);
    o->have_fh = true;
  }
}

static void cl_create(const char* path, bool truncate, struct fh* out, struct result* r) {
  struct fh dir;
  const char* name;
  if (resolve_parent(path, &dir, &name, r) != 0) return;
  struct attr_out o = {0};
  struct call* c = call_new(h_create, &o);
  CREATE3args a;
  memset(&a, 0, sizeof a);
  a.where.dir = fh3(&dir);
  a.where.name = (char*)name;
  a.how.mode = UNCHECKED;
  a.how.createhow3_u.obj_attributes.mode.set_it = 1;
  a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
  if (truncate) {
    a.how.createhow3_u.obj_attributes.size.set_it = 1;
    a.how.createhow3_u.obj_attributes.size.set_size3_u.size = 0;
  }
  call_finish(c, rpc_nfs3_create_async(g.rpc, rpc_done_cb, &a, c), "CREATE", r);
  if (r->status != NFS3_OK) return;
  if (!o.have_fh) { /* the server may omit it: ask */
    cache_drop(path);
    if (resolve(path, out, r) != 0) return;
  } else {
    *out = o.fh;
    cache_put(path, out);
  }
}

static void h_write(struct call* c, void* data) {
  WRITE3res* res = data;
  if (res->status == NFS3_OK) {
    c->count = res->WRITE3res_u.resok.count;
    c->committed = res->WRITE3res_u.resok.committed;
  }
}

static void out_line(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

/* Deterministic content: byte at file offset o is (o % 251), so reads can be checked. */
static char* make_data(uint64_t off, uint32_t n) {
  char* b = malloc(n ? n : 1);
  if (!b) {
    perror("malloc");
    exit(2);
  }
  for (uint32_t i = 0; i < n; i++) b[i] = (char)((off + i) % 251);
  return b;
}

struct wstate {
  struct call** slots;
  int n;
};

static bool any_done(void* arg) {
  struct wstate* w = arg;
  for (int i = 0; i < w->n; i++)
    if (w->slots[i] && w->slots[i]->done) return true;
  return false;
}

static bool none_pending(void* arg) {
  struct wstate* w = arg;
  for (int i = 0; i < w->n; i++)
    if (w->slots[i]) return false;
  return true;
}

static void cl_commit(const char* path, struct fh* f, struct result* r) {
  struct call* c = call_new(NULL, NULL);
  COMMIT3args a;
  memset(&a, 0, sizeof a);
  a.file = fh3(f);
  call_finish(c, rpc_nfs3_commit_async(g.rpc, rpc_done_cb, &a, c), "COMMIT", r);
  char st[400];
  fmt_status(st, sizeof st, r);
  out_line("op=commit path=%s %s\n", path, st);
}

/* WRITEs [off, off+len) in chunks with up to opt.inflight calls outstanding; prints one
 * line per WRITE in completion order. Stops issuing at the first failure. */
static void do_writes(const char* path, struct fh* f, uint64_t off, uint64_t len, uint32_t chunk, struct result* r) {
  struct wstate w = {.n = opt.inflight};
  w.slots = calloc((size_t)w.n, sizeof *w.slots);
  uint64_t next = off, end = off + len;
  bool failed = false, need_commit = false;
  r->status = NFS3_OK;
  r->proc = "WRITE";
  for (;;) {
    /* issue */
    for (int i = 0; i < w.n && !failed && next < end; i++) {
      if (w.slots[i]) continue;
      uint32_t n = (end - next) < chunk ? (uint32_t)(end - next) : chunk;
      struct call* c = call_new(h_write, NULL);
      c->offset = next;
      c->count = 0;
      c->buf = make_data(next, n);
      WRITE3args a;
      memset(&a, 0, sizeof a);
      a.file = fh3(f);
      a.offset = next;
      a.count = n;
      a.stable = (stable_how)opt.stable;
      a.data.data_len = n;
      a.data.data_val = c->buf;
      if (rpc_nfs3_write_async(g.rpc, rpc_done_cb, &a, c) != 0) {
        r->status = ST_RPC_ERROR;
        snprintf(r->err, sizeof r->err, "queue WRITE: %s", rpc_get_error(g.rpc));
        free(c->buf);
        free(c);
        failed = true;
        break;
      }
      c->asked = n;
      c->committed = -1;
      w.slots[i] = c;
      next += n;
    }
    if (none_pending(&w)) break;
    char err[256];
    int rc = service_until(any_done, &w, err, sizeof err);
    if (rc != 0) {
      for (int i = 0; i < w.n; i++) {
        if (!w.slots[i]) continue;
        struct result tr = {.status = rc, .proc = "WRITE"};
        snprintf(tr.err, sizeof tr.err, "%s", err);
        char st[400];
        fmt_status(st, sizeof st, &tr);
        out_line("op=write path=%s offset=%" PRIu64 " count=%u %s\n", path, w.slots[i]->offset, w.slots[i]->asked, st);
        w.slots[i] = NULL; /* leaked: the PDU may still complete */
      }
      *r = (struct result){.status = rc, .proc = "WRITE"};
      snprintf(r->err, sizeof r->err, "%s", err);
      failed = true;
      break;
    }
    for (int i = 0; i < w.n; i++) {
      struct call* c = w.slots[i];
      if (!c || !c->done) continue;
      struct result cr = {.proc = "WRITE"};
      if (c->rpc_status != RPC_STATUS_SUCCESS) {
        cr.status = c->rpc_status == RPC_STATUS_TIMEOUT ? ST_TIMEOUT : ST_RPC_ERROR;
        snprintf(cr.err, sizeof cr.err, "%s", c->err);
      } else {
        cr.status = c->nfs_status;
      }
      free(c->buf);
      c->buf = NULL;
      w.slots[i] = NULL;
      char st[400];
      fmt_status(st, sizeof st, &cr);
      if (cr.status == NFS3_OK) {
        out_line("op=write path=%s offset=%" PRIu64 " count=%u %s%s\n", path, c->offset, c->asked, st,
                 c->count != c->asked ? " short_write=1" : "");
        if (c->committed != FILE_SYNC) need_commit = true;
      } else {
        out_line("op=write path=%s offset=%" PRIu64 " count=%u %s\n", path, c->offset, c->asked, st);
        if (!failed) *r = cr;
        failed = true;
      }
      free(c);
    }
    if (!failed && next >= end && none_pending(&w)) break;
  }
  free(w.slots);
  if (!failed && need_commit) cl_commit(path, f, r);
}

static void h_read(struct call* c, void* data) {
  READ3res* res = data;
  if (res->status == NFS3_OK) {
    c->count = res->READ3res_u.resok.count;
    c->committed = res->READ3res_u.resok.eof; /* reused as eof */
    const unsigned char* p = (const unsigned char*)res->READ3res_u.resok.data.data_val;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < res->READ3res_u.resok.data.data_len; i++)
      if (p[i] != (c->offset + i) % 251) bad++;
    *(uint32_t*)c->out = bad;
  }
}

static void do_reads(const char* path, struct fh* f, uint32_t chunk, struct result* r) {
  uint64_t off = 0;
  for (;;) {
    uint32_t bad = 0;
    struct call* c = call_new(h_read, &bad);
    c->offset = off;
    READ3args a;
    memset(&a, 0, sizeof a);
    a.file = fh3(f);
    a.offset = off;
    a.count = chunk;
    int q = rpc_nfs3_read_async(g.rpc, rpc_done_cb, &a, c);
    /* call_finish frees c: copy out first by keeping the fields we need */
    struct call keep;
    memset(&keep, 0, sizeof keep);
    if (q == 0) {
      r->err[0] = 0;
      int w = service_until(call_done, c, r->err, sizeof r->err);
      r->proc = "READ";
      if (w != 0) {
        r->status = w;
      } else {
        keep = *c;
        r->status = c->rpc_status == RPC_STATUS_SUCCESS ? c->nfs_status : ST_RPC_ERROR;
        if (c->rpc_status != RPC_STATUS_SUCCESS) snprintf(r->err, sizeof r->err, "%s", c->err);
        free(c);
      }
    } else {
      call_finish(c, q, "READ", r);
    }
    char st[400];
    fmt_status(st, sizeof st, r);
    if (r->status != NFS3_OK) {
      out_line("op=read path=%s offset=%" PRIu64 " %s\n", path, off, st);
      return;
    }
    out_line("op=read path=%s offset=%" PRIu64 " count=%u eof=%d %s%s\n", path, off, keep.count, keep.committed, st,
             bad ? " content=MISMATCH" : "");
    off += keep.count;
    if (keep.committed || keep.count == 0) return;
  }
}

/* ---------- ops ---------- */

static int parse_size(const char* s, uint64_t* out) {
  char* end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  uint64_t m = 1;
  if (*end) {
    char u = *end++;
    bool bin = *end == 'i';
    if (bin) end++;
    if (*end) return -1;
    uint64_t base = bin ? 1024 : 1000;
    switch (u) {
      case 'K':
      case 'k':
        m = base;
        break;
      case 'M':
        m = base * base;
        break;
      case 'G':
        m = base * base * base;
        break;
      default:
        return -1;
    }
  }
  *out = (uint64_t)v * m;
  return 0;
}

static bool is_num(const char* s) { return s && s[0] >= '0' && s[0] <= '9'; }

static const char* ftype_name(int t) {
  static const char* n[] = {"?", "REG", "DIR", "BLK", "CHR", "LNK", "SOCK", "FIFO"};
  return t >= 1 && t <= 7 ? n[t] : "?";
}

static void print_simple(const char* op, const char* path, const struct result* r, const char* extra) {
  char st[400];
  fmt_status(st, sizeof st, r);
  out_line("op=%s path=%s %s%s\n", op, path, st, extra ? extra : "");
}

static void simple_dirop(const char* op, const char* path, struct result* r) {
  struct fh dir;
  const char* name;
  if (resolve_parent(path, &dir, &name, r) != 0) return;
  if (strcmp(op, "mkdir") == 0) {
    struct attr_out o = {0};
    struct call* c = call_new(h_create, &o);
    MKDIR3args a;
    memset(&a, 0, sizeof a);
    a.where.dir = fh3(&dir);
    a.where.name = (char*)name;
    a.attributes.mode.set_it = 1;
    a.attributes.mode.set_mode3_u.mode = 0755;
    call_finish(c, rpc_nfs3_mkdir_async(g.rpc, rpc_done_cb, &a, c), "MKDIR", r);
    if (r->status == NFS3_OK && o.have_fh) cache_put(path, &o.fh);
  } else {
    struct call* c = call_new(NULL, NULL);
    if (strcmp(op, "rm") == 0) {
      REMOVE3args a;
      a.object.dir = fh3(&dir);
      a.object.name = (char*)name;
      call_finish(c, rpc_nfs3_remove_async(g.rpc, rpc_done_cb, &a, c), "REMOVE", r);
    } else {
      RMDIR3args a;
      a.object.dir = fh3(&dir);
      a.object.name = (char*)name;
      call_finish(c, rpc_nfs3_rmdir_async(g.rpc, rpc_done_cb, &a, c), "RMDIR", r);
    }
    cache_drop(path);
  }
}

struct rdp_out {
  const char* dir; /* path of the listed directory, for caching entry handles */
  uint64_t cookie;
  char verf[NFS3_COOKIEVERFSIZE];
  bool eof;
  int entries;
  char names[4096];
};

static void h_readdirplus(struct call* c, void* data) {
  READDIRPLUS3res* res = data;
  struct rdp_out* o = c->out;
  if (res->status != NFS3_OK) return;
  memcpy(o->verf, res->READDIRPLUS3res_u.resok.cookieverf, NFS3_COOKIEVERFSIZE);
  o->eof = res->READDIRPLUS3res_u.resok.reply.eof;
  for (entryplus3* e = res->READDIRPLUS3res_u.resok.reply.entries; e; e = e->nextentry) {
    o->cookie = e->cookie;
    if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0) continue;
    o->entries++;
    /* like a kernel client priming its dcache: later ops on these names go straight
		 * to the handle READDIRPLUS returned, with no LOOKUP on the wire */
    if (e->name_handle.handle_follows) {
      char p[2048];
      bool top = !*o->dir || !strcmp(o->dir, ".");
      snprintf(p, sizeof p, "%s%s%s", top ? "" : o->dir, top ? "" : "/", e->name);
      struct fh f;
      fh_set(&f, e->name_handle.post_op_fh3_u.handle.data.data_val, e->name_handle.post_op_fh3_u.handle.data.data_len);
      cache_put(p, &f);
    }
    size_t l = strlen(o->names);
    if (l + strlen(e->name) + 2 < sizeof o->names)
      snprintf(o->names + l, sizeof o->names - l, "%s%s", l ? "," : "", e->name);
  }
}

static void do_ls(const char* path, struct result* r) {
  struct fh dir;
  if (resolve(path, &dir, r) != 0) {
    print_simple("ls", path, r, NULL);
    return;
  }
  struct rdp_out o;
  memset(&o, 0, sizeof o);
  o.dir = path;
  int calls = 0;
  while (!o.eof) {
    struct call* c = call_new(h_readdirplus, &o);
    READDIRPLUS3args a;
    memset(&a, 0, sizeof a);
    a.dir = fh3(&dir);
    a.cookie = o.cookie;
    memcpy(a.cookieverf, o.verf, NFS3_COOKIEVERFSIZE);
    a.dircount = 4096;
    a.maxcount = 16384;
    call_finish(c, rpc_nfs3_readdirplus_async(g.rpc, rpc_done_cb, &a, c), "READDIRPLUS", r);
    calls++;
    if (r->status != NFS3_OK) break;
  }
  char extra[4200];
  snprintf(extra, sizeof extra, " calls=%d entries=%d names=%s", calls, o.entries, o.names);
  print_simple("ls", path, r, r->status == NFS3_OK ? extra : NULL);
}

static void run_op(char** t, int nt, int* pos, struct result* r) {
  const char* op = t[*pos];
  int avail = nt - *pos - 1;
  char** a = t + *pos + 1;
  int used = 0;
  uint64_t v1 = 0, v2 = 0, chunk = 65536;
  memset(r, 0, sizeof *r);
  r->status = NFS3_OK;

#define NEED(n)                                                              \
  do {                                                                       \
    if (avail < (n)) {                                                       \
      fprintf(stderr, "nfsf_client: op %s needs %d argument(s)\n", op, (n)); \
      exit(2);                                                               \
    }                                                                        \
  } while (0)
#define SIZE_ARG(i, dst)                                                \
  do {                                                                  \
    if (parse_size(a[i], &(dst)) != 0) {                                \
      fprintf(stderr, "nfsf_client: bad size '%s' for %s\n", a[i], op); \
      exit(2);                                                          \
    }                                                                   \
  } while (0)

  if (!strcmp(op, "write") || !strcmp(op, "append")) {
    NEED(2);
    SIZE_ARG(1, v1);
    used = 2;
    if (avail > 2 && is_num(a[2])) {
      SIZE_ARG(2, chunk);
      used = 3;
    }
    struct fh f;
    uint64_t off = 0;
    if (!strcmp(op, "write")) {
      cl_create(a[0], true, &f, r);
    } else if (resolve(a[0], &f, r) != 0 && r->status == NFS3ERR_NOENT) {
      cl_create(a[0], false, &f, r);
    } else if (r->status == NFS3_OK) {
      struct attr_out o = {0};
      cl_getattr(&f, &o, r);
      off = o.have ? o.a.size : 0;
    }
    if (r->status != NFS3_OK)
      print_simple(op, a[0], r, NULL);
    else if (chunk == 0 || chunk > (1u << 24))
      fprintf(stderr, "nfsf_client: bad chunk\n"), exit(2);
    else
      do_writes(a[0], &f, off, v1, (uint32_t)chunk, r);
  } else if (!strcmp(op, "pwrite")) {
    NEED(3);
    SIZE_ARG(1, v1);
    SIZE_ARG(2, v2);
    used = 3;
    if (avail > 3 && is_num(a[3])) {
      SIZE_ARG(3, chunk);
      used = 4;
    }
    struct fh f;
    if (resolve(a[0], &f, r) != 0)
      print_simple(op, a[0], r, NULL);
    else
      do_writes(a[0], &f, v1, v2, (uint32_t)chunk, r);
  } else if (!strcmp(op, "create")) {
    NEED(1);
    used = 1;
    struct fh f;
    cl_create(a[0], false, &f, r);
    print_simple(op, a[0], r, NULL);
  } else if (!strcmp(op, "read")) {
    NEED(1);
    used = 1;
    if (avail > 1 && is_num(a[1])) {
      SIZE_ARG(1, chunk);
      used = 2;
    }
    struct fh f;
    if (resolve(a[0], &f, r) != 0)
      print_simple(op, a[0], r, NULL);
    else
      do_reads(a[0], &f, (uint32_t)chunk, r);
  } else if (!strcmp(op, "mkdir") || !strcmp(op, "rm") || !strcmp(op, "rmdir")) {
    NEED(1);
    used = 1;
    simple_dirop(op, a[0], r);
    print_simple(op, a[0], r, NULL);
  } else if (!strcmp(op, "rename")) {
    NEED(2);
    used = 2;
    struct fh fd, td;
    const char *fn, *tn;
    if (resolve_parent(a[0], &fd, &fn, r) == 0 && resolve_parent(a[1], &td, &tn, r) == 0) {
      struct call* c = call_new(NULL, NULL);
      RENAME3args ra;
      ra.from.dir = fh3(&fd);
      ra.from.name = (char*)fn;
      ra.to.dir = fh3(&td);
      ra.to.name = (char*)tn;
      call_finish(c, rpc_nfs3_rename_async(g.rpc, rpc_done_cb, &ra, c), "RENAME", r);
      cache_drop(a[0]);
      cache_drop(a[1]);
    }
    char st[400];
    fmt_status(st, sizeof st, r);
    out_line("op=rename path=%s to=%s %s\n", a[0], a[1], st);
  } else if (!strcmp(op, "stat") || !strcmp(op, "lookup")) {
    NEED(1);
    used = 1;
    struct fh f;
    struct attr_out o = {0};
    if (!strcmp(op, "lookup")) {
      cache_drop(a[0]);
      struct fh dir;
      const char* name;
      if (resolve_parent(a[0], &dir, &name, r) == 0) {
        cl_lookup1(&dir, name, &o, r);
        if (r->status == NFS3_OK) cache_put(a[0], &o.fh);
      }
    } else if (resolve(a[0], &f, r) == 0) {
      cl_getattr(&f, &o, r);
    }
    char extra[256] = "";
    if (r->status == NFS3_OK && o.have)
      snprintf(extra, sizeof extra, " type=%s size=%" PRIu64 " used=%" PRIu64 " fileid=%" PRIu64, ftype_name(o.a.type),
               (uint64_t)o.a.size, (uint64_t)o.a.used, (uint64_t)o.a.fileid);
    print_simple(op, a[0], r, extra);
  } else if (!strcmp(op, "fsstat")) {
    /* FSSTAT of PATH ("." or "": the mounted directory itself), what statvfs/df ask */
    NEED(1);
    used = 1;
    struct fh f;
    struct fsstat_out o = {0};
    const char* p = strcmp(a[0], ".") ? a[0] : "";
    if (resolve(p, &f, r) == 0) {
      struct call* c = call_new(h_fsstat, &o);
      FSSTAT3args fa;
      memset(&fa, 0, sizeof fa);
      fa.fsroot = fh3(&f);
      call_finish(c, rpc_nfs3_fsstat_async(g.rpc, rpc_done_cb, &fa, c), "FSSTAT", r);
    }
    char extra[256] = "";
    if (r->status == NFS3_OK && o.have)
      snprintf(extra, sizeof extra,
               " tbytes=%" PRIu64 " fbytes=%" PRIu64 " abytes=%" PRIu64 " tfiles=%" PRIu64 " ffiles=%" PRIu64
               " afiles=%" PRIu64,
               o.tbytes, o.fbytes, o.abytes, o.tfiles, o.ffiles, o.afiles);
    print_simple(op, a[0], r, extra);
  } else if (!strcmp(op, "truncate")) {
    NEED(2);
    SIZE_ARG(1, v1);
    used = 2;
    struct fh f;
    if (resolve(a[0], &f, r) == 0) {
      struct call* c = call_new(NULL, NULL);
      SETATTR3args sa;
      memset(&sa, 0, sizeof sa);
      sa.object = fh3(&f);
      sa.new_attributes.size.set_it = 1;
      sa.new_attributes.size.set_size3_u.size = v1;
      call_finish(c, rpc_nfs3_setattr_async(g.rpc, rpc_done_cb, &sa, c), "SETATTR", r);
    }
    char extra[64];
    snprintf(extra, sizeof extra, " size=%" PRIu64, v1);
    print_simple(op, a[0], r, extra);
  } else if (!strcmp(op, "commit")) {
    NEED(1);
    used = 1;
    struct fh f;
    if (resolve(a[0], &f, r) != 0)
      print_simple(op, a[0], r, NULL);
    else
      cl_commit(a[0], &f, r);
  } else if (!strcmp(op, "ls")) {
    NEED(1);
    used = 1;
    do_ls(a[0], r);
  } else if (!strcmp(op, "null")) {
    struct call* c = call_new(NULL, NULL);
    call_finish(c, rpc_nfs3_null_async(g.rpc, rpc_done_cb, c), "NULL", r);
    if (r->status > 0) r->status = NFS3_OK; /* NULL has no result body */
    print_simple(op, "-", r, NULL);
  } else if (!strcmp(op, "sleep")) {
    NEED(1);
    SIZE_ARG(0, v1);
    used = 1;
    usleep((useconds_t)(v1 * 1000));
  } else {
    fprintf(stderr, "nfsf_client: unknown op '%s'\n%s", op, usage_text);
    exit(2);
  }
  *pos += 1 + used;
}

/* ---------- connection and MOUNT ---------- */

struct conn_wait {
  bool done;
  int status;
};

static void connect_cb(struct rpc_context* rpc, int status, void* data, void* priv) {
  struct conn_wait* w = priv;
  w->done = true;
  w->status = status;
}

static bool conn_done(void* arg) { return ((struct conn_wait*)arg)->done; }

static struct rpc_context* open_rpc(int port, char* err, size_t errn) {
  struct rpc_context* rpc;
  if (opt.udp) {
    rpc = rpc_init_udp_context();
    if (!rpc || rpc_bind_udp(rpc, "0.0.0.0", 0) != 0 || rpc_set_udp_destination(rpc, g.server, port, 0) != 0) {
      snprintf(err, errn, "udp setup: %s", rpc ? rpc_get_error(rpc) : "no context");
      return NULL;
    }
  } else {
    rpc = rpc_init_context();
    struct conn_wait w = {0};
    if (!rpc || rpc_connect_async(rpc, g.server, port, connect_cb, &w) != 0) {
      snprintf(err, errn, "connect %.64s:%d: %.160s", g.server, port, rpc ? rpc_get_error(rpc) : "no context");
      return NULL;
    }
    g.rpc = rpc;
    int rc = service_until(conn_done, &w, err, errn);
    if (rc != 0 || w.status != RPC_STATUS_SUCCESS) {
      if (rc == 0) snprintf(err, errn, "connect %.64s:%d: %.160s", g.server, port, rpc_get_error(rpc));
      return NULL;
    }
  }
  if (opt.uid >= 0) rpc_set_uid(rpc, opt.uid);
  if (opt.gid >= 0) rpc_set_gid(rpc, opt.gid);
  return rpc;
}

static void h_exports(struct call* c, void* data) {
  /* data is exports (a pointer to the first node); pick the longest export that is a
	 * component-wise prefix of the wanted path */
  exports* ex = data;
  char* want = c->out;
  size_t best = 0;
  for (exportnode* e = ex ? *ex : NULL; e; e = e->ex_next) {
    size_t l = strlen(e->ex_dir);
    while (l > 1 && e->ex_dir[l - 1] == '/') l--;
    if (strncmp(want, e->ex_dir, l) == 0 && (want[l] == 0 || want[l] == '/') && l > best) {
      best = l;
      snprintf(g.export_path, sizeof g.export_path, "%.*s", (int)l, e->ex_dir);
    }
  }
  c->nfs_status = 0;
}

static void h_mnt(struct call* c, void* data) {
  mountres3* res = data;
  if (res->fhs_status == MNT3_OK)
    fh_set(&g.root, res->mountres3_u.mountinfo.fhandle.fhandle3_val, res->mountres3_u.mountinfo.fhandle.fhandle3_len);
}

static int do_mount(const char* urlpath) {
  char err[256];
  struct rpc_context* m = open_rpc(g.mountport, err, sizeof err);
  if (!m) {
    fprintf(stderr, "nfsf_client: MOUNT transport: %s\n", err);
    return -1;
  }
  g.rpc = m;
  struct result r;
  struct call* c = call_new(h_exports, (void*)urlpath);
  call_finish(c, rpc_mount3_export_async(m, rpc_done_cb, c), "MOUNT_EXPORT", &r);
  if (r.status != 0 || !g.export_path[0]) {
    /* no export list: mount the whole path */
    snprintf(g.export_path, sizeof g.export_path, "%s", urlpath);
  }
  c = call_new(h_mnt, NULL);
  call_finish(c, rpc_mount3_mnt_async(m, rpc_done_cb, g.export_path, c), "MOUNT_MNT", &r);
  if (!opt.quiet_mount || r.status != 0) {
    if (r.status >= 0)
      out_line("op=mount export=%s status=%s\n", g.export_path, r.status == 0 ? "OK" : "MNT3ERR");
    else {
      char st[400];
      fmt_status(st, sizeof st, &r);
      out_line("op=mount export=%s %s\n", g.export_path, st);
    }
  }
  if (r.status != 0) {
    if (r.status > 0) fprintf(stderr, "nfsf_client: MNT %s failed with mountstat3 %d\n", g.export_path, r.status);
    return -1;
  }
  if (!opt.udp) rpc_disconnect(m, "mount done");
  rpc_destroy_context(m);
  g.rpc = NULL;
  return 0;
}

/* Parses nfs://server/path?args. */
static int parse_url(const char* url, char* path, size_t pathn) {
  if (strncmp(url, "nfs://", 6) != 0) return -1;
  const char* s = url + 6;
  const char* slash = strchr(s, '/');
  if (!slash || (size_t)(slash - s) >= sizeof g.server) return -1;
  snprintf(g.server, sizeof g.server, "%.*s", (int)(slash - s), s);
  const char* q = strchr(slash, '?');
  size_t pl = q ? (size_t)(q - slash) : strlen(slash);
  if (pl >= pathn) return -1;
  snprintf(path, pathn, "%.*s", (int)pl, slash);
  while (pl > 1 && path[pl - 1] == '/') path[--pl] = 0;
  if (!q) return 0;
  char *args = strdup(q + 1), *save = NULL;
  for (char* kv = strtok_r(args, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
    char* eq = strchr(kv, '=');
    if (!eq) continue;
    *eq = 0;
    const char* v = eq + 1;
    if (!strcmp(kv, "version")) {
      if (strcmp(v, "3") != 0) {
        fprintf(stderr, "nfsf_client: only version=3 is supported\n");
        exit(2);
      }
    } else if (!strcmp(kv, "proto")) {
      if (!strcmp(v, "udp"))
        opt.udp = true;
      else if (strcmp(v, "tcp") != 0)
        return -1;
    } else if (!strcmp(kv, "nfsport")) {
      g.nfsport = atoi(v);
    } else if (!strcmp(kv, "mountport")) {
      g.mountport = atoi(v);
    } else if (!strcmp(kv, "uid")) {
      opt.uid = atoi(v);
    } else if (!strcmp(kv, "gid")) {
      opt.gid = atoi(v);
    }
  }
  free(args);
  return 0;
}

/* Reads whitespace-separated tokens from a script file (# starts a comment). */
static int read_script(const char* file, char** tok, int max) {
  FILE* f = strcmp(file, "-") ? fopen(file, "r") : stdin;
  if (!f) {
    perror(file);
    exit(2);
  }
  char line[8192];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    char* h = strchr(line, '#');
    if (h) *h = 0;
    char* save = NULL;
    for (char* w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
      if (n == max) {
        fprintf(stderr, "nfsf_client: script too long\n");
        exit(2);
      }
      tok[n++] = strdup(w);
    }
  }
  if (f != stdin) fclose(f);
  return n;
}

int main(int argc, char** argv) {
  const char* script = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    const char* o = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--keep-going")) {
      opt.keep_going = true;
    } else if (!strcmp(o, "--udp")) {
      opt.udp = true;
    } else if (!strcmp(o, "--quiet-mount")) {
      opt.quiet_mount = true;
    } else if (!strcmp(o, "--help")) {
      fputs(usage_text, stdout);
      return 0;
    } else if (val && !strcmp(o, "--timeout")) {
      opt.timeout_ms = atoi(val), i++;
    } else if (val && !strcmp(o, "--inflight")) {
      opt.inflight = atoi(val), i++;
    } else if (val && !strcmp(o, "--uid")) {
      opt.uid = atoi(val), i++;
    } else if (val && !strcmp(o, "--gid")) {
      opt.gid = atoi(val), i++;
    } else if (val && !strcmp(o, "--script")) {
      script = val, i++;
    } else if (val && !strcmp(o, "--stable")) {
      opt.stable = !strcmp(val, "filesync")   ? FILE_SYNC
                   : !strcmp(val, "datasync") ? DATA_SYNC
                   : !strcmp(val, "unstable") ? UNSTABLE
                                              : -1;
      i++;
      if (opt.stable < 0) {
        fprintf(stderr, "nfsf_client: bad --stable\n");
        return 2;
      }
    } else {
      fprintf(stderr, "nfsf_client: bad option %s\n%s", o, usage_text);
      return 2;
    }
  }
  if (i >= argc || opt.inflight < 1 || opt.inflight > 64 || opt.timeout_ms < 1) {
    fputs(usage_text, stderr);
    return 2;
  }
  char urlpath[1024];
  g.nfsport = 2049;
  g.mountport = 20048;
  if (parse_url(argv[i], urlpath, sizeof urlpath) != 0) {
    fprintf(stderr, "nfsf_client: bad URL '%s'\n", argv[i]);
    return 2;
  }
  i++;

  static char* tok[MAX_TOKENS];
  int nt = 0;
  if (script) nt = read_script(script, tok, MAX_TOKENS);
  for (; i < argc && nt < MAX_TOKENS; i++) tok[nt++] = argv[i];

  if (do_mount(urlpath) != 0) return 2;
  char err[256];
  g.rpc = open_rpc(g.nfsport, err, sizeof err);
  if (!g.rpc) {
    fprintf(stderr, "nfsf_client: NFS transport: %s\n", err);
    return 2;
  }
  /* URL path below the export: LOOKUP it and make it the root for the ops */
  const char* sub = urlpath + strlen(g.export_path);
  while (*sub == '/') sub++;
  if (*sub) {
    struct result r;
    struct fh f;
    if (resolve(sub, &f, &r) != 0) {
      print_simple("lookup", sub, &r, NULL);
      return 2;
    }
    g.root = f;
    g.ncache = 0;
  }

  int failed = 0;
  for (int pos = 0; pos < nt;) {
    struct result r;
    run_op(tok, nt, &pos, &r);
    if (r.status != NFS3_OK) {
      failed = 1;
      if (!opt.keep_going) break;
    }
  }
  if (!opt.udp) rpc_disconnect(g.rpc, "done");
  rpc_destroy_context(g.rpc);
  return failed;
}
