// pcap / pcapng reading: classic pcap files from an mmap, everything else through
// libpcap, with transparent bzip2 decompression.
//
// Compressed captures (`BZh` magic) are read through a `bzip2 -dc` child process: the
// decompressed stream comes in on a pipe that libpcap reads with pcap_fopen_offline.
// No shell is involved (posix_spawnp with an argument vector), so any path works.
#include "nfs/capture.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace nfsfence {
namespace {

// libpcap gives DLT_* values; the rest of the core speaks LINKTYPE_* (the file values).
int to_linktype(int dlt) {
  switch (dlt) {
    case 12:  // DLT_RAW on most systems
    case 14:  // DLT_RAW on some BSDs
      return kLinkRaw;
    default:
      return dlt;
  }
}

class PcapReader final : public CaptureReader {
 public:
  PcapReader(pcap_t* p, pid_t child) : p_(p), child_(child), linktype_(to_linktype(pcap_datalink(p))) {}
  ~PcapReader() override {
    pcap_close(p_);  // also closes the pipe, so a still-running bzip2 gets SIGPIPE
    reap();
  }

  bool next(RawPacket& out) override {
    if (done_) return false;
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    int rc = pcap_next_ex(p_, &hdr, &data);
    if (rc == 1) {
      out.frame = ++frame_;
      out.ts.sec = hdr->ts.tv_sec;
      out.ts.nsec = hdr->ts.tv_usec;  // nanoseconds: opened with PCAP_TSTAMP_PRECISION_NANO
      out.data = data;
      out.caplen = hdr->caplen;
      out.wire_len = hdr->len;
      out.linktype = linktype_;
      return true;
    }
    done_ = true;
    if (rc == PCAP_ERROR) {
      std::string msg = pcap_geterr(p_);
      // libpcap reports a short final record as "truncated dump file; ..." (pcap) or
      // "truncated pcapng dump file..." / "...premature end of file" (pcapng).
      if (msg.find("truncated") != std::string::npos || msg.find("premature") != std::string::npos) {
        truncated_ = true;
      } else {
        error_ = msg;
      }
    }
    // A bzip2 child that failed (corrupt or cut .bz2) means the stream ended early.
    if (child_ > 0 && reap() != 0) truncated_ = true;
    return false;
  }

  bool truncated() const override { return truncated_; }
  const std::string& error() const override { return error_; }

 private:
  // Waits for the decompressor; returns its exit status (0 = clean).
  int reap() {
    if (child_ <= 0) return child_status_;
    int st = 0;
    while (waitpid(child_, &st, 0) < 0 && errno == EINTR) {
    }
    child_ = -1;
    child_status_ = (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : 1;
    return child_status_;
  }

  pcap_t* p_;
  pid_t child_;
  int child_status_ = 0;
  int linktype_;
  uint64_t frame_ = 0;
  bool done_ = false;
  bool truncated_ = false;
  std::string error_;
};

// Classic pcap read straight from an mmap of the file: no read(2) copies, no stdio buffer.
// Pages already consumed are dropped with MADV_DONTNEED every 8 MiB so that RSS stays
// flat however large the file (they are clean file pages: dropping loses nothing).
class MmapPcapReader final : public CaptureReader {
 public:
  static constexpr size_t kFileHeader = 24, kRecordHeader = 16;
  static constexpr uint32_t kMaxRecord = 256 * 1024;  // libpcap's MAXIMUM_SNAPLEN

  MmapPcapReader(const std::string& path, const uint8_t* base, size_t size, bool swapped, bool nanos, int linktype)
      : path_(path), base_(base), size_(size), swapped_(swapped), nanos_(nanos), linktype_(linktype) {}
  ~MmapPcapReader() override { munmap(const_cast<uint8_t*>(base_), size_); }

  bool next(RawPacket& out) override {
    if (pos_ >= size_) return false;
    if (size_ - pos_ < kRecordHeader) return stop_truncated();
    const uint8_t* h = base_ + pos_;
    uint32_t sec = u32(h), frac = u32(h + 4), incl = u32(h + 8), orig = u32(h + 12);
    if (incl > kMaxRecord) {
      error_ = path_ + ": packet " + std::to_string(frame_ + 1) + " claims " + std::to_string(incl) +
               " bytes (more than 262144): the file is damaged";
      pos_ = size_;
      return false;
    }
    if (size_ - pos_ - kRecordHeader < incl) return stop_truncated();
    out.frame = ++frame_;
    out.ts.sec = sec;
    out.ts.nsec = nanos_ ? frac : int64_t(frac) * 1000;
    out.data = h + kRecordHeader;
    out.caplen = incl;
    out.wire_len = orig;
    out.linktype = linktype_;
    pos_ += kRecordHeader + incl;
    if (pos_ - released_ > (8u << 20)) {
      size_t upto = (pos_ - (1u << 20)) & ~size_t(4095);  // keep the current packet mapped
      madvise(const_cast<uint8_t*>(base_) + released_, upto - released_, MADV_DONTNEED);
      released_ = upto;
    }
    return true;
  }
  bool truncated() const override { return truncated_; }
  const std::string& error() const override { return error_; }

 private:
  bool stop_truncated() {
    truncated_ = true;
    pos_ = size_;
    return false;
  }
  uint32_t u32(const uint8_t* p) const {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return swapped_ ? __builtin_bswap32(v) : v;
  }
  std::string path_;
  const uint8_t* base_;
  size_t size_;
  bool swapped_, nanos_;
  int linktype_;
  size_t pos_ = kFileHeader, released_ = 0;
  uint64_t frame_ = 0;
  bool truncated_ = false;
  std::string error_;
};

// A regular classic-pcap file: map it. Anything else (pcapng, compressed, pipes): nullptr.
std::unique_ptr<CaptureReader> try_mmap_pcap(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || size_t(st.st_size) < MmapPcapReader::kFileHeader) return nullptr;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* m = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return nullptr;
  const auto* b = static_cast<const uint8_t*>(m);
  uint32_t magic;
  std::memcpy(&magic, b, 4);
  bool swapped = false, nanos = false;
  switch (magic) {
    case 0xa1b2c3d4: break;
    case 0xa1b23c4d: nanos = true; break;
    case 0xd4c3b2a1: swapped = true; break;
    case 0x4d3cb2a1: swapped = nanos = true; break;
    default:
      munmap(m, size_t(st.st_size));
      return nullptr;
  }
  uint32_t lt;
  std::memcpy(&lt, b + 20, 4);
  if (swapped) lt = __builtin_bswap32(lt);
  madvise(m, size_t(st.st_size), MADV_SEQUENTIAL);
  return std::make_unique<MmapPcapReader>(path, b, size_t(st.st_size), swapped, nanos, int(lt & 0xffff));
}

std::string trim_pcap_msg(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Starts `bzip2 -dc -- path` and returns a FILE* on its stdout.
Expected<std::pair<FILE*, pid_t>> spawn_bunzip(const std::string& path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return make_error(path + ": pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::string a0 = "bzip2", a1 = "-dc", a2 = "--", a3 = path;
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "bzip2", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return make_error(path + ": cannot run bzip2 to decompress: " + std::strerror(rc));
  }
  FILE* f = fdopen(fds[0], "rb");
  if (!f) {
    int e = errno;
    close(fds[0]);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return make_error(path + ": fdopen: " + std::strerror(e));
  }
  return std::pair{f, pid};
}

}  // namespace

Expected<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return make_error(path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return make_error(path + ": " + std::strerror(EISDIR));

  uint8_t magic[3] = {};
  size_t got = 0;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(path + ": " + std::strerror(errno));
    got = std::fread(magic, 1, sizeof magic, f);
    std::fclose(f);
  }
  if (got == 0) return make_error(path + ": empty file, not a pcap or pcapng capture");

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  if (got == 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h') {
    auto child = spawn_bunzip(path);
    if (!child) return unexpected(child.error());
    auto [f, pid] = *child;
    pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) {
      std::fclose(f);
      int wst = 0;
      waitpid(pid, &wst, 0);
      if (!(WIFEXITED(wst) && WEXITSTATUS(wst) == 0))
        return make_error(path + ": bzip2 decompression failed (" + trim_pcap_msg(errbuf) + ")");
      return make_error(path + ": decompressed data is not a capture: " + trim_pcap_msg(errbuf));
    }
    return std::unique_ptr<CaptureReader>(new PcapReader(p, pid));
  }

  if (auto r = try_mmap_pcap(path, st)) return r;
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (!p) return make_error(path + ": " + trim_pcap_msg(errbuf));
  return std::unique_ptr<CaptureReader>(new PcapReader(p, -1));
}

}  // namespace nfsfence
