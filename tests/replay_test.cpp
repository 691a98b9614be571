// Replay of the bundled lab captures against the server's own disk: each tree's usage at
// the end must equal the sum over the regular files below it of what `stat` said on the
// server (pcaps/NAME.truth.json, written by tests/lab/make_pcaps.sh).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nfs/replay.h"

using namespace nfsfence;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path source_dir() {
  const char* s = std::getenv("NFSF_SOURCE_DIR");
  return s ? fs::path(s) : fs::path(NFSF_TEST_SOURCE_DIR);
}

std::vector<std::string> lab_captures() {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(source_dir() / "pcaps"))
    if (e.path().extension() == ".pcap" && fs::exists(fs::path(e.path()).replace_extension(".truth.json")))
      out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t disk_sum(const json& truth, const std::string& tree_path, const char* field) {
  uint64_t sum = 0;
  for (auto& f : truth["files"]) {
    std::string p = f["path"];
    if (p.rfind(tree_path + "/", 0) == 0) sum += f[field].get<uint64_t>();
  }
  return sum;
}

class LabReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(LabReplay, UsageEqualsServerDisk) {
  fs::path base = source_dir() / "pcaps" / GetParam();
  json truth = json::parse(std::ifstream(fs::path(base).replace_extension(".truth.json")));
  auto policy = load_policy(fs::path(base).replace_extension(".policy.yaml"));
  ASSERT_TRUE(policy) << policy.error().message;
  for (AccountingMode mode : {AccountingMode::Used, AccountingMode::Size}) {
    policy->accounting = mode;
    const char* field = mode == AccountingMode::Used ? "used" : "size";
    auto r = replay_file(fs::path(base).replace_extension(".pcap"), *policy, ReplayOptions{});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE((*r)["handle_cache"]["export_root_known"].get<bool>());
    EXPECT_EQ((*r)["errors"]["malformed_rpc"], 0);
    EXPECT_EQ((*r)["errors"]["unmatched_replies"], 0);
    EXPECT_EQ((*r)["unknown_handle_writes"], 0);
    bool any_nonzero = false;
    for (auto& t : (*r)["trees"]) {
      uint64_t want = disk_sum(truth, t["path"], field);
      any_nonzero |= want > 0;
      EXPECT_EQ(t["usage_bytes"].get<uint64_t>(), want)
          << GetParam() << " tree " << t["name"] << " accounting=" << field << " (expected equal to the server disk)";
      EXPECT_GE(t["peak_usage_bytes"].get<uint64_t>(), t["usage_bytes"].get<uint64_t>());
    }
    EXPECT_TRUE(any_nonzero) << "a capture whose trees are all empty tests nothing";
  }
}

INSTANTIATE_TEST_SUITE_P(Pcaps, LabReplay, ::testing::ValuesIn(lab_captures()), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

// The README's demo: vol-a crosses its 2 MiB limit during the WRITEs of vol-a/f5, and the
// WRITE calls sent after the reply that showed it are refused; READs never are.
TEST(LabReplayDemo, QuotaCrossingRefusesLaterWrites) {
  fs::path base = source_dir() / "pcaps" / "lab-tcp-quota";
  auto policy = load_policy(fs::path(base).replace_extension(".policy.yaml"));
  ASSERT_TRUE(policy);
  auto r = replay_file(fs::path(base).replace_extension(".pcap"), *policy, ReplayOptions{});
  ASSERT_TRUE(r) << r.error().message;
  const json& a = (*r)["trees"][0];
  ASSERT_EQ(a["name"], "vol-a");
  EXPECT_FALSE(a["exceeded_at"].is_null());
  EXPECT_GE(a["peak_usage_bytes"].get<uint64_t>(), a["limit_bytes"].get<uint64_t>());
  EXPECT_GE(a["refused_writes"].get<uint64_t>(), 1u);
  EXPECT_LT(a["refused_writes"].get<uint64_t>(), a["writes"].get<uint64_t>());
  EXPECT_GT(a["refused_bytes"].get<uint64_t>(), 0u);
  const json& b = (*r)["trees"][1];
  EXPECT_EQ(b["refused_writes"], 0);
  EXPECT_TRUE(b["exceeded_at"].is_null());
}

// A capture of the kernel's own NFS client (tests/vm/kclient_vm.sh, the guest's eth0 through
// QEMU's filter-dump, behind nfsfence's TC egress rewrite): the third 64 KiB O_SYNC file in
// the 128 KiB tree went out with its handle poisoned, and the replay says so.
TEST(LabReplayKernelClient, SeesTheWriteTheRewriteRefused) {
  fs::path base = source_dir() / "pcaps" / "kclient-tiny";
  auto policy = load_policy(fs::path(base).replace_extension(".policy.yaml"));
  ASSERT_TRUE(policy) << policy.error().message;
  auto r = replay_file(fs::path(base).replace_extension(".pcap"), *policy, ReplayOptions{});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["poisoned_writes"], 1);
  EXPECT_EQ((*r)["poisoned_write_bytes"], 65536);
  const json& tiny = (*r)["trees"][0];
  ASSERT_EQ(tiny["name"], "tiny");
  EXPECT_EQ(tiny["usage_bytes"], 131072);
  EXPECT_EQ(tiny["writes"], 2);
  EXPECT_FALSE(tiny["exceeded_at"].is_null());
}

}  // namespace
