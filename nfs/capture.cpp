// pcap / pcapng reading: classic pcap files from an mmap, everything else (pcapng, old
// pcap versions, pipes, standard input, compressed files) through libpcap reading a
// stream that libarchive decompresses in-process.
//
// Why libarchive: one well-kept library detects and decompresses bzip2, xz, lzma, zstd and
// lz4 by their magic from any byte source, pipes included, in this process (only its
// built-in decompressors are enabled: see enable_builtin_filters). gzip goes to zlib
// itself, which checks the CRC (see Decompressor).
// The earlier design ran `bzip2 -dc` as a child and could deadlock on a damaged file
// (the reader waited for the child to exit while the child waited for the pipe to
// drain); there is no child any more, so nothing can wait on one.
//
// The decompressed bytes reach libpcap through a stdio FILE* made with fopencookie(3):
// libpcap sniffs pcap or pcapng itself from the first bytes, so a pipe is read once and
// never reopened.
#include "nfs/capture.h"

#include <archive.h>
#include <zlib.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <vector>

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

std::string trim_msg(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The decompressors libarchive has built in here. Not archive_read_support_filter_all:
// for formats it has no library for (lrzip, grzip, lzop without liblzo) it runs an
// external program found on PATH, which a crafted capture could then choose. Each
// candidate is probed on a scratch reader: ARCHIVE_OK means in-process, ARCHIVE_WARN an
// external program, which is left out.
void enable_builtin_filters(archive* a) {
  using Enable = int (*)(archive*);
  static const Enable kFilters[] = {archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
                                    archive_read_support_filter_xz,   archive_read_support_filter_lzma,
                                    archive_read_support_filter_zstd, archive_read_support_filter_lz4};
  static const std::vector<Enable> builtin = [] {
    std::vector<Enable> ok;
    for (Enable f : kFilters) {
      archive* probe = archive_read_new();
      if (probe && f(probe) == ARCHIVE_OK) ok.push_back(f);
      if (probe) archive_read_free(probe);
    }
    return ok;
  }();
  for (Enable f : builtin) f(a);
}

// The decompressed byte stream of one file descriptor. The first bytes decide: gzip goes
// to zlib, which checks each member's CRC-32 (libarchive 3.6's gzip reader does not, so a
// flipped byte decoded to other bytes without an error); everything else to libarchive,
// which is handed the bytes already read first, so that a pipe is read once.
class Decompressor {
 public:
  Decompressor(std::string name, int fd, bool own_fd) : name_(std::move(name)), fd_(fd), own_fd_(own_fd) {}
  ~Decompressor() {
    if (a_) archive_read_free(a_);
    if (gzip_) inflateEnd(&z_);
    if (own_fd_ && fd_ >= 0) ::close(fd_);
  }

  Expected<bool> start() {
    while (len_ < 2) {  // a pipe may deliver the magic in pieces
      ssize_t r = read_fd(buf_.data() + len_, buf_.size() - len_);
      if (r < 0) return make_error(name_ + ": cannot read: " + std::strerror(errno));
      if (r == 0) break;
      len_ += size_t(r);
    }
    if (len_ == 0) return make_error(name_ + ": empty file, not a pcap or pcapng capture");
    if (len_ >= 2 && buf_[0] == 0x1f && buf_[1] == 0x8b) {
      gzip_ = compressed_ = true;
      filter_ = "gzip";
      if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) return make_error(name_ + ": zlib: out of memory");
      z_.next_in = buf_.data();
      z_.avail_in = uInt(len_);
      pos_ = len_;
      return true;
    }
    a_ = archive_read_new();
    if (!a_) return make_error(name_ + ": out of memory");
    enable_builtin_filters(a_);
    archive_read_support_format_raw(a_);
    archive_read_support_format_empty(a_);
    if (archive_read_open(a_, this, nullptr, &Decompressor::archive_cb, nullptr) != ARCHIVE_OK) {
      cut_ = cut_message();  // the first block is read here already
      return make_error(failure("cannot read"));
    }
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a_, &e);
    if (rc == ARCHIVE_EOF || (rc == ARCHIVE_OK && archive_format(a_) == ARCHIVE_FORMAT_EMPTY))
      return make_error(name_ + ": empty file, not a pcap or pcapng capture");
    if (rc != ARCHIVE_OK) {
      cut_ = cut_message();
      return make_error(failure("cannot read"));
    }
    // archive_filter_count includes the "none" filter at the end of the chain.
    compressed_ = archive_filter_count(a_) > 1;
    if (compressed_) filter_ = archive_filter_name(a_, 0);
    return true;
  }

  // fread-like; -1 on a decompression error (error() says which).
  ssize_t read(char* out, size_t n) {
    if (!error_.empty()) return -1;
    if (gzip_) return read_gzip(out, n);
    la_ssize_t got = archive_read_data(a_, out, n);
    if (got < 0) {
      // libarchive has no error code for "cut short": its bzip2/zstd/lz4 readers say
      // "truncated", its xz reader "No progress is possible". Its own message, never the
      // file name, decides.
      cut_ = cut_message();
      return fail(failure(raw_error_ ? "read error" : compressed_ ? filter_ + " decompression failed" : "read error"));
    }
    return got;
  }

  bool compressed() const { return compressed_; }
  const std::string& filter() const { return filter_; }
  const std::string& error() const { return error_; }
  // The error is the compressed stream ending early (a truncated capture), not damage.
  bool cut_short() const { return cut_; }

 private:
  ssize_t read_fd(uint8_t* p, size_t n) {
    ssize_t r;
    do r = ::read(fd_, p, n);
    while (r < 0 && errno == EINTR);
    return r;
  }
  // The next raw bytes: what start() read and nobody took yet, else a fresh read.
  ssize_t next_raw(const uint8_t** p) {
    if (pos_ < len_) {
      *p = buf_.data() + pos_;
      size_t n = len_ - pos_;
      pos_ = len_;
      return ssize_t(n);
    }
    ssize_t r = read_fd(buf_.data(), buf_.size());
    pos_ = len_ = r > 0 ? size_t(r) : 0;
    *p = buf_.data();
    return r;
  }
  static la_ssize_t archive_cb(archive* a, void* self, const void** out) {
    const uint8_t* p = nullptr;
    auto* d = static_cast<Decompressor*>(self);
    ssize_t r = d->next_raw(&p);
    if (r < 0) {
      d->raw_error_ = true;
      archive_set_error(a, errno, "%s", std::strerror(errno));
    }
    *out = p;
    return r;
  }

  // gzip through zlib: concatenated members are one stream (as gzip -d reads them); a
  // stream that stops inside a member is cut short; other bytes after a member are damage.
  ssize_t read_gzip(char* out, size_t n) {
    if (n == 0) return 0;
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = uInt(std::min<size_t>(n, 1u << 30));
    const uInt want = z_.avail_out;
    while (z_.avail_out == want) {
      if (z_.avail_in == 0) {
        const uint8_t* p = nullptr;
        ssize_t r = next_raw(&p);
        if (r < 0) return fail(name_ + ": read error: " + std::strerror(errno));
        if (r == 0) {
          if (member_done_) return 0;
          cut_ = true;
          return fail(name_ + ": gzip decompression failed: truncated gzip input");
        }
        z_.next_in = const_cast<Bytef*>(p);
        z_.avail_in = uInt(r);
      }
      if (member_done_) {
        if (z_.next_in[0] != 0x1f)
          return fail(name_ + ": gzip decompression failed: data after the end of the gzip stream");
        inflateReset(&z_);
        member_done_ = false;
      }
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END)
        member_done_ = true;
      else if (rc != Z_OK && rc != Z_BUF_ERROR)
        return fail(name_ + ": gzip decompression failed: " + (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
    }
    return ssize_t(want - z_.avail_out);
  }

  bool cut_message() const {
    const char* m = archive_error_string(a_);
    std::string msg = m ? m : "";
    return !raw_error_ &&
           (msg.find("runcat") != std::string::npos || msg.find("No progress is possible") != std::string::npos);
  }
  ssize_t fail(std::string msg) {
    error_ = std::move(msg);
    errno = EIO;
    return -1;
  }
  std::string failure(const std::string& what) const {
    const char* msg = a_ ? archive_error_string(a_) : nullptr;
    return name_ + ": " + what + (msg ? std::string(": ") + trim_msg(msg) : std::string());
  }

  std::string name_;
  int fd_;
  bool own_fd_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(256 * 1024);
  size_t len_ = 0, pos_ = 0;
  archive* a_ = nullptr;
  bool gzip_ = false, member_done_ = false;
  bool cut_ = false, raw_error_ = false;
  z_stream z_{};
  bool compressed_ = false;
  std::string filter_;
  std::string error_;
};

ssize_t cookie_read(void* c, char* buf, size_t n) { return static_cast<Decompressor*>(c)->read(buf, n); }

class PcapReader final : public CaptureReader {
 public:
  PcapReader(std::string name, std::unique_ptr<Decompressor> dz, pcap_t* p)
      : name_(std::move(name)), dz_(std::move(dz)), p_(p), linktype_(to_linktype(pcap_datalink(p))) {}
  ~PcapReader() override { pcap_close(p_); }  // closes the cookie FILE*; dz_ goes after

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
    if (!dz_->error().empty()) {
      // The decompressor failed under libpcap: its message says why, libpcap's only EIO.
      // A stream cut short is a truncated capture; any other damage is an error.
      if (dz_->cut_short()) {
        truncated_ = true;
        detail_ = dz_->error();
      } else {
        error_ = dz_->error() + " (after packet " + std::to_string(frame_) + ")";
      }
    } else if (rc == PCAP_ERROR) {
      std::string msg = trim_msg(pcap_geterr(p_));
      // libpcap reports a short final record as "truncated dump file; ..." (pcap) or
      // "truncated pcapng dump file..." / "...premature end of file" (pcapng).
      if (msg.find("truncated") != std::string::npos || msg.find("premature") != std::string::npos) {
        truncated_ = true;
        detail_ = name_ + ": " + msg;
      } else {
        error_ = name_ + ": packet " + std::to_string(frame_ + 1) + ": " + msg;
      }
    }
    return false;
  }

  bool truncated() const override { return truncated_; }
  const std::string& error() const override { return error_; }
  const std::string& truncation_detail() const override { return detail_; }

 private:
  std::string name_;
  std::unique_ptr<Decompressor> dz_;
  pcap_t* p_;
  int linktype_;
  uint64_t frame_ = 0;
  bool done_ = false;
  bool truncated_ = false;
  std::string error_, detail_;
};

// A capture cut short before its first packet (inside the compressed stream's first block,
// or its file header): no packets, truncated, so that --allow-truncated treats it as any
// other cut capture.
class CutReader final : public CaptureReader {
 public:
  explicit CutReader(std::string detail) : detail_(std::move(detail)) {}
  bool next(RawPacket&) override { return false; }
  bool truncated() const override { return true; }
  const std::string& error() const override { return error_; }
  const std::string& truncation_detail() const override { return detail_; }

 private:
  std::string error_, detail_;
};

// Classic pcap (version 2.4) read straight from an mmap of the file: no read(2) copies,
// no stdio buffer. Pages already consumed are dropped with MADV_DONTNEED every 8 MiB so
// that RSS stays flat however large the file (they are clean file pages: dropping loses
// nothing). Older versions (before 2.3 caplen and len were in the other order, and 2.3
// files exist in both orders) are left to libpcap, which knows their history.
class MmapPcapReader final : public CaptureReader {
 public:
  static constexpr size_t kFileHeader = 24, kRecordHeader = 16;
  static constexpr uint32_t kMaxRecord = 256 * 1024;  // libpcap's MAXIMUM_SNAPLEN

  MmapPcapReader(const std::string& path, const uint8_t* base, size_t size, bool swapped, bool nanos, int linktype)
      : path_(path), base_(base), size_(size), swapped_(swapped), nanos_(nanos), linktype_(linktype) {}
  ~MmapPcapReader() override { munmap(const_cast<uint8_t*>(base_), size_); }

  bool next(RawPacket& out) override {
    if (pos_ >= size_) return false;
    if (size_ - pos_ < kRecordHeader) return stop_truncated("a record header");
    const uint8_t* h = base_ + pos_;
    uint32_t sec = u32(h), frac = u32(h + 4), incl = u32(h + 8), orig = u32(h + 12);
    if (incl > kMaxRecord) {
      error_ = path_ + ": packet " + std::to_string(frame_ + 1) + " claims " + std::to_string(incl) +
               " bytes (more than 262144): the file is damaged";
      pos_ = size_;
      return false;
    }
    if (size_ - pos_ - kRecordHeader < incl) return stop_truncated("packet data");
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
  const std::string& truncation_detail() const override { return detail_; }

 private:
  bool stop_truncated(const char* what) {
    truncated_ = true;
    detail_ = path_ + ": packet " + std::to_string(frame_ + 1) + ": the file ends inside its " + what;
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
  std::string error_, detail_;
};

// A regular classic-pcap 2.4 file: map it. Anything else: nullptr (the stream path).
std::unique_ptr<CaptureReader> try_mmap_pcap(const std::string& path, int fd, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || size_t(st.st_size) < MmapPcapReader::kFileHeader) return nullptr;
  uint8_t hdr[MmapPcapReader::kFileHeader];
  if (pread(fd, hdr, sizeof hdr, 0) != ssize_t(sizeof hdr)) return nullptr;
  uint32_t magic;
  std::memcpy(&magic, hdr, 4);
  bool swapped = false, nanos = false;
  switch (magic) {
    case 0xa1b2c3d4:
      break;
    case 0xa1b23c4d:
      nanos = true;
      break;
    case 0xd4c3b2a1:
      swapped = true;
      break;
    case 0x4d3cb2a1:
      swapped = nanos = true;
      break;
    default:
      return nullptr;
  }
  auto u16 = [&](size_t at) {
    uint16_t v;
    std::memcpy(&v, hdr + at, 2);
    return swapped ? __builtin_bswap16(v) : v;
  };
  if (u16(4) != 2 || u16(6) != 4) return nullptr;  // not version 2.4
  uint32_t lt;
  std::memcpy(&lt, hdr + 20, 4);
  if (swapped) lt = __builtin_bswap32(lt);
  void* m = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) return nullptr;
  madvise(m, size_t(st.st_size), MADV_SEQUENTIAL);
  return std::make_unique<MmapPcapReader>(path, static_cast<const uint8_t*>(m), size_t(st.st_size), swapped, nanos,
                                          int(lt & 0xffff));
}

}  // namespace

Expected<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path) {
  const bool is_stdin = path == "-";
  const std::string name = is_stdin ? std::string("standard input") : path;
  int fd = is_stdin ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
    if (!is_stdin) ::close(fd);
    return make_error(name + ": " + std::strerror(e));
  }
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    if (!is_stdin) ::close(fd);
    return make_error(name + ": empty file, not a pcap or pcapng capture");
  }
  if (auto r = try_mmap_pcap(name, fd, st)) {
    if (!is_stdin) ::close(fd);  // the mapping stays valid
    return r;
  }

  auto dz = std::make_unique<Decompressor>(name, fd, !is_stdin);
  if (auto ok = dz->start(); !ok) {
    if (dz->cut_short()) return std::unique_ptr<CaptureReader>(new CutReader(ok.error().message));
    return unexpected(ok.error());
  }
  cookie_io_functions_t io{cookie_read, nullptr, nullptr, nullptr};
  FILE* f = fopencookie(dz.get(), "rb", io);
  if (!f) return make_error(name + ": fopencookie: " + std::strerror(errno));
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (!p) {
    std::fclose(f);
    if (dz->cut_short()) return std::unique_ptr<CaptureReader>(new CutReader(dz->error()));
    if (!dz->error().empty()) return make_error(dz->error());
    std::string what = dz->compressed() ? "decompressed (" + dz->filter() + ") data is not a capture: " : "";
    return make_error(name + ": " + what + trim_msg(errbuf));
  }
  return std::unique_ptr<CaptureReader>(new PcapReader(name, std::move(dz), p));
}

}  // namespace nfsfence
