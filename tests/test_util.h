// Helpers for byte-level test fixtures: the packet library (tests/pkt: link/IP/TCP/UDP
// frames, RPC records, capture file formats) plus files in a temporary directory.
#pragma once

#include <string>
#include <vector>

#include "nfs/common.h"
#include "pkt/pkt.h"

namespace nfsfence::test {

using namespace nfsfence::pkt;

// A fresh directory under $TMPDIR for this test binary, created once and removed at exit
// (kept when NFSF_KEEP_TMP is set).
std::string temp_dir();
// Writes a classic pcap (microsecond or nanosecond magic) and returns the path.
std::string write_pcap(const std::string& name, int linktype, const std::vector<Frame>& frames, bool nano = false,
                       uint32_t snaplen = 262144);
// Writes a pcapng file: SHB + IDB + one EPB per frame (nanosecond if_tsresol).
std::string write_pcapng(const std::string& name, int linktype, const std::vector<Frame>& frames,
                         uint32_t snaplen = 262144);
std::string write_file(const std::string& name, ByteView content);
Bytes read_file(const std::string& path);

}  // namespace nfsfence::test
