// pcap / pcapng reading through libpcap, with transparent bzip2 decompression.
//
// Compressed captures (`BZh` magic) are read through a `bzip2 -dc` child process: the
// decompressed stream comes in on a pipe that libpcap reads with pcap_fopen_offline.
// No shell is involved (posix_spawnp with an argument vector), so any path works.
#include "nfs/capture.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <spawn.h>
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

  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (!p) return make_error(path + ": " + trim_pcap_msg(errbuf));
  return std::unique_ptr<CaptureReader>(new PcapReader(p, -1));
}

}  // namespace nfsfence
