#include "src/event_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "nfs/policy.h"
#include "src/agent_common.h"

namespace nfsfence::agent {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSuffix = ".events.jsonl";
// A "line" longer than this without a newline is not one the agent wrote: dropped.
constexpr size_t kMaxLine = 1 << 20;

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

std::string event_log_of(const std::string& state_dir, const std::string& iface) {
  return state_dir + "/" + iface + std::string(kSuffix);
}

std::vector<std::string> event_logs_in(const std::string& state_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(state_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() > 2 && name.ends_with(".1")) name.resize(name.size() - 2);
    if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) continue;
    out.push_back(name.substr(0, name.size() - kSuffix.size()));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string iso_time(int64_t ns) {
  time_t secs = time_t(ns / 1000000000LL);
  int ms = int((ns % 1000000000LL) / 1000000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, ms);
  return buf;
}

// ---- EventLog

EventLog::EventLog(std::string path, uint64_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) { open(); }

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool EventLog::open() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return false;
  struct stat st {};
  ::fstat(fd_, &st);
  size_ = uint64_t(st.st_size);
  // An earlier agent that died inside a write left a line without its end: end it, so that
  // our first line is not glued to it (readers skip the damaged one).
  char last = '\n';
  if (size_ > 0 && ::pread(fd_, &last, 1, off_t(size_ - 1)) == 1 && last != '\n' && ::write(fd_, "\n", 1) == 1) size_++;
  return true;
}

void EventLog::emit(std::string_view type, const json& fields) { emit_at(now_ns(), type, fields); }

void EventLog::emit_at(int64_t ns, std::string_view type, const json& fields) {
  nlohmann::ordered_json line;
  line["time"] = iso_time(ns);
  line["type"] = std::string(type);
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it)
      if (it.key() != "time" && it.key() != "type") line[it.key()] = it.value();
  append(line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

void EventLog::append(const std::string& line) {
  auto fail = [&](const std::string& what) {
    if (!failing_) log("warning: the event log for `nfsfence events` was not written: " + what);
    failing_ = true;
  };
  // Removed or replaced behind our back (`rm`, logrotate): write to what the path names now.
  struct stat st {
  }, fst{};
  if (fd_ < 0 || ::stat(path_.c_str(), &st) != 0 || ::fstat(fd_, &fst) != 0 || st.st_ino != fst.st_ino ||
      st.st_dev != fst.st_dev) {
    if (!open()) return fail("opening " + path_ + ": " + std::strerror(errno));
  }
  if (size_ > 0 && size_ + line.size() > max_bytes_) {
    // One rotation: readers that have the old file open read it to its end, then open the new one.
    std::string old = path_ + ".1";
    if (std::rename(path_.c_str(), old.c_str()) != 0)
      return fail("renaming " + path_ + " to " + old + ": " + std::strerror(errno));
    if (!open()) return fail("opening " + path_ + ": " + std::strerror(errno));
  }
  for (size_t done = 0; done < line.size();) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing " + path_ + ": " + std::strerror(n < 0 ? errno : EIO));
    done += size_t(n);
    size_ += uint64_t(n);
  }
  failing_ = false;
}

// ---- EventFollower

EventFollower::EventFollower(std::string path, LineFn on_line) : path_(std::move(path)), on_line_(std::move(on_line)) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    std::string dir = fs::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    if (::inotify_add_watch(inotify_fd_, dir.c_str(),
                            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE) < 0) {
      ::close(inotify_fd_);
      inotify_fd_ = -1;
    }
  }
}

EventFollower::~EventFollower() {
  if (fd_ >= 0) ::close(fd_);
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

size_t EventFollower::drain(int fd, uint64_t& offset) {
  size_t lines = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    offset += uint64_t(n);
    std::string_view chunk(buf, size_t(n));
    for (size_t nl; (nl = chunk.find('\n')) != std::string_view::npos; chunk.remove_prefix(nl + 1)) {
      partial_.append(chunk.substr(0, nl));
      if (!partial_.empty()) {
        on_line_(partial_);
        lines++;
      }
      partial_.clear();
    }
    partial_.append(chunk);
    if (partial_.size() > kMaxLine) partial_.clear();
  }
  return lines;
}

void EventFollower::read_existing() {
  // The current file first (opened, not read), then the rotated one: if a rotation comes in
  // between, the rotated file is the one already open and is not read twice.
  size_t lines = 0;
  reopen_if_replaced(lines);
  std::string old = path_ + ".1";
  int ofd = ::open(old.c_str(), O_RDONLY | O_CLOEXEC);
  if (ofd >= 0) {
    struct stat st {};
    ::fstat(ofd, &st);
    if (fd_ < 0 || uint64_t(st.st_ino) != ino_ || uint64_t(st.st_dev) != dev_) {
      uint64_t off = 0;
      drain(ofd, off);
      partial_.clear();  // a rotated file's unfinished last line will never be finished
    }
    ::close(ofd);
  }
  if (fd_ >= 0) drain(fd_, offset_);
}

// Opens the file the path names when it is another than the one open (or none is): the
// old one is read to its end first.
bool EventFollower::reopen_if_replaced(size_t& lines) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return false;
  if (fd_ >= 0 && uint64_t(st.st_ino) == ino_ && uint64_t(st.st_dev) == dev_) return false;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  if (fd_ >= 0) {
    lines += drain(fd_, offset_);
    ::close(fd_);
  }
  partial_.clear();
  ::fstat(fd, &st);
  fd_ = fd;
  dev_ = uint64_t(st.st_dev);
  ino_ = uint64_t(st.st_ino);
  offset_ = 0;
  return true;
}

size_t EventFollower::poll() {
  size_t lines = 0;
  if (reopen_if_replaced(lines)) {
    lines += drain(fd_, offset_);
    return lines;
  }
  if (fd_ < 0) return 0;
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && uint64_t(st.st_size) < offset_) {  // truncated: from its start again
    offset_ = 0;
    partial_.clear();
  }
  return lines + drain(fd_, offset_);
}

size_t EventFollower::wait_and_poll(int timeout_ms) {
  if (inotify_fd_ >= 0) {
    pollfd p{inotify_fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0) {
      alignas(inotify_event) char buf[4096];
      while (::read(inotify_fd_, buf, sizeof buf) > 0) {
      }
    }
  } else {
    ::usleep(useconds_t(timeout_ms) * 1000);
  }
  return poll();
}

// ---- text

std::string event_text(const nlohmann::ordered_json& e) {
  auto str = [](const nlohmann::ordered_json& v) { return v.is_string() ? printable(v.get<std::string>()) : v.dump(); };
  std::string out =
      str(e.value("time", nlohmann::ordered_json("?"))) + " " + str(e.value("type", nlohmann::ordered_json("?")));
  if (e.contains("tree")) out += " " + str(e["tree"]);
  for (auto it = e.begin(); it != e.end(); ++it) {
    const std::string& k = it.key();
    if (k == "time" || k == "type" || k == "tree" || k == "iface") continue;
    if ((k == "bytes" || k.ends_with("_bytes")) && it->is_number_unsigned())
      out += " " + (k == "bytes" ? k : k.substr(0, k.size() - 6)) + "=" + format_size(it->get<uint64_t>());
    else
      out += " " + k + "=" + str(*it);
  }
  return out;
}

}  // namespace nfsfence::agent
