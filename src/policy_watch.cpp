#include "src/policy_watch.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace nfsfence::agent {

std::atomic<bool>& reload_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

Expected<PolicyWatch> PolicyWatch::open(const PolicySource& src) {
  namespace fs = std::filesystem;
  PolicyWatch w;
  std::string dir = src.dir;
  if (dir.empty()) {
    fs::path p(src.file);
    dir = p.has_parent_path() ? p.parent_path().string() : ".";
    w.file_name_ = p.filename().string();
  }
  w.fd_dir_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (w.fd_dir_.get() < 0) return make_error(dir + ": cannot watch for policy changes: " + std::strerror(errno));
  w.fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (w.fd_.get() < 0) return make_error(std::string("inotify_init1: ") + std::strerror(errno));
  // Not IN_MODIFY: a file being written is looked at once it is closed (or renamed in).
  uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
  if (::inotify_add_watch(w.fd_.get(), dir.c_str(), mask) < 0)
    return make_error(dir + ": cannot watch for policy changes: " + std::strerror(errno));
  return w;
}

bool PolicyWatch::changed() {
  alignas(inotify_event) char buf[8192];
  bool any = false;
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: drained
    for (ssize_t off = 0; off + ssize_t(sizeof(inotify_event)) <= n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      std::string name = ev->len ? std::string(ev->name) : std::string();
      bool relevant = file_name_.empty() || name.empty() || name == file_name_;
      // A new plain file is looked at when it is closed (IN_CLOSE_WRITE), not while it is
      // still empty; a new symbolic link (`ln -s`) has no close.
      struct stat st;
      if (relevant && (ev->mask & IN_CREATE) &&
          !(::fstatat(fd_dir_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)))
        relevant = false;
      any = any || relevant;
      off += ssize_t(sizeof(inotify_event)) + ev->len;
    }
  }
  return any;
}

}  // namespace nfsfence::agent
