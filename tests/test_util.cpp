#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace nfsfence::test {

std::string temp_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/nfsf_test_XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    // Removed when the test binary exits, unless NFSF_KEEP_TMP is set (for debugging).
    if (!std::getenv("NFSF_KEEP_TMP")) {
      static std::string to_remove = tmpl;
      std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(to_remove, ec);
      });
    }
    return tmpl;
  }();
  return dir;
}

std::string write_file(const std::string& name, ByteView content) {
  std::string path = temp_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(content.data()), std::streamsize(content.size()));
  return path;
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

std::string write_pcap(const std::string& name, int linktype, const std::vector<Frame>& frames, bool nano,
                       uint32_t snaplen) {
  return write_file(name, pcap_file(linktype, frames, nano, snaplen));
}

std::string write_pcapng(const std::string& name, int linktype, const std::vector<Frame>& frames, uint32_t snaplen) {
  return write_file(name, pcapng_file(linktype, frames, snaplen));
}

}  // namespace nfsfence::test
