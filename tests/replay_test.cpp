// Replay of the bundled lab captures against the server's own disk: each tree's usage at
// the end must equal the sum over the regular files below it of what `stat` said on the
// server (pcaps/NAME.truth.json, written by tests/lab/make_pcaps.sh).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nfs/decoder.h"
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

// What `df` would have shown: per tree, from the FSSTAT replies the capture has, the
// rewrite's numbers (the tree's limit and room, never more free than the server said) and
// the server's. Messages built by hand (as tests/handle_cache_test.cpp does).
namespace {

RpcMessage reply_msg(uint32_t prog, uint32_t proc, NfsFields call, NfsFields res, double t) {
  RpcMessage m;
  m.type = MsgType::Reply;
  m.prog = prog;
  m.vers = 3;
  m.proc = proc;
  m.ts = Timestamp{int64_t(t), 0};
  m.flow.src.port = 2049;
  m.call = std::make_shared<NfsFields>(std::move(call));
  m.fields = std::move(res);
  if (!m.fields.status) m.fields.status = 0;
  return m;
}

RpcMessage fsstat_call(const Bytes& fh) {
  RpcMessage m;
  m.type = MsgType::Call;
  m.prog = kProgNfs;
  m.vers = 3;
  m.proc = NFS3_FSSTAT;
  m.proc_name = "FSSTAT";
  m.flow.dst.port = 2049;
  m.fields.fh = fh;
  return m;
}

RpcMessage fsstat_reply(const Bytes& fh, const FsStatRes& st) {
  NfsFields c, r;
  c.fh = fh;
  r.fsstat = st;
  return reply_msg(kProgNfs, NFS3_FSSTAT, c, r, 10);
}

}  // namespace

TEST(ReplayFsstat, ReportsWhatDfWouldShowPerTree) {
  const Bytes root(32, 1), a(32, 2), f(32, 3);
  const FsStatRes server{40ull << 30, 10ull << 30, 9ull << 30, 1000, 900, 900};
  for (FsstatMode mode : {FsstatMode::Rewrite, FsstatMode::Pass}) {
    auto p = parse_policy("export: /export\ntrees: [{name: a, path: vol-a, limit: 1Mi}]\n", "t.yaml");
    ASSERT_TRUE(p) << p.error().message;
    p->fsstat = mode;
    Replayer rp(*p, ReplayOptions{});
    NfsFields mc, mr;
    mc.path = "/export";
    mr.obj_fh = root;
    rp.on_message(reply_msg(kProgMount, MOUNT3_MNT, mc, mr, 1));
    NfsFields dc, dr;
    dc.dir_fh = root;
    dc.name = "vol-a";
    dr.obj_fh = a;
    dr.attr = Attr{NF3DIR, 4096, 4096, 0, 2};
    rp.on_message(reply_msg(kProgNfs, NFS3_MKDIR, dc, dr, 2));
    NfsFields cc, cr;
    cc.dir_fh = a;
    cc.name = "f";
    cr.obj_fh = f;
    cr.attr = Attr{NF3REG, 300 << 10, 300 << 10, 0, 1};
    rp.on_message(reply_msg(kProgNfs, NFS3_CREATE, cc, cr, 3));
    rp.on_message(fsstat_call(a));
    rp.on_message(fsstat_reply(a, server));
    rp.on_message(fsstat_call(root));  // the export root: in no tree, not counted
    rp.on_message(fsstat_reply(root, server));

    Decoder dec([](const RpcMessage&) {}, DecoderLimits{});
    json j = rp.report(dec, 0, 0);
    const json& t = j["trees"][0]["fsstat"];
    EXPECT_EQ(j["fsstat"], mode == FsstatMode::Rewrite ? "rewrite" : "pass");
    EXPECT_EQ(t["calls"], 1);
    EXPECT_EQ(t["replies"], 1);
    EXPECT_EQ(t["server_df"]["size_bytes"], 40ull << 30);
    EXPECT_EQ(t["server_df"]["used_bytes"], 30ull << 30);
    EXPECT_EQ(t["server_df"]["avail_bytes"], 9ull << 30);
    if (mode == FsstatMode::Rewrite) {
      EXPECT_EQ(t["df"]["size_bytes"], 1u << 20);
      EXPECT_EQ(t["df"]["used_bytes"], 300u << 10);
      EXPECT_EQ(t["df"]["avail_bytes"], (1u << 20) - (300u << 10));
    } else {
      EXPECT_EQ(t["df"], t["server_df"]);
    }
    std::string text = rp.text_report(dec, 0, 0);
    EXPECT_NE(text.find("df, from each tree's last FSSTAT reply"), std::string::npos) << text;

    // Past the limit: nothing left, used shows the whole limit.
    NfsFields wc, wr;
    wc.fh = f;
    wr.attr = Attr{NF3REG, 2 << 20, 2 << 20, 0, 1};
    rp.on_message(reply_msg(kProgNfs, NFS3_WRITE, wc, wr, 11));
    rp.on_message(fsstat_reply(a, server));
    j = rp.report(dec, 0, 0);
    const json& t2 = j["trees"][0]["fsstat"];
    EXPECT_EQ(t2["replies"], 2);
    if (mode == FsstatMode::Rewrite) {
      EXPECT_EQ(t2["df"]["size_bytes"], 1u << 20);
      EXPECT_EQ(t2["df"]["used_bytes"], 1u << 20);
      EXPECT_EQ(t2["df"]["avail_bytes"], 0);
    }
  }
}

TEST(ReplayFsstat, NeverMoreFreeThanTheServerSays) {
  FsStatRes server{40ull << 30, 100, 50, 7, 6, 5};
  FsStatRes r = tree_fsstat(server, 1 << 20, 1000, FsstatMode::Rewrite);
  EXPECT_EQ(r.tbytes, 1u << 20);
  EXPECT_EQ(r.fbytes, 100u);
  EXPECT_EQ(r.abytes, 50u);
  EXPECT_EQ(r.tfiles, 7u);
  EXPECT_EQ(r.ffiles, 6u);
  DfView d = df_of(r);
  EXPECT_EQ(d.size, 1u << 20);
  EXPECT_EQ(d.used, (1u << 20) - 100);
  EXPECT_EQ(d.avail, 50u);
}
