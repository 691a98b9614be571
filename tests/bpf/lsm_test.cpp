// The LSM fallback on this host: mount discovery and --mode auto's reasons (pure), and the
// kernel probe. The hooks themselves run in the QEMU guest (tests/vm/kclient_vm.sh): where
// this kernel refuses BPF LSM programs the tests that need them skip with its answer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "src/agent_common.h"
#include "src/lsm_agent.h"
#include "src/lsm_loader.h"

using namespace nfsfence;
using namespace nfsfence::agent;

namespace {

// Lines as /proc/self/mountinfo prints them (the optional fields end at " - ").
const char* kMountinfo =
    "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
    "40 1 0:45 / /mnt/nfs rw,relatime shared:1 - nfs 10.0.2.2:/srv/nfs/kclient "
    "rw,vers=3,rsize=1048576,wsize=1048576,hard,proto=tcp,sec=sys,mountaddr=10.0.2.2,addr=10.0.2.2\n"
    "41 1 0:46 / /mnt/with\\040space rw - nfs server.example:/srv/nfs/kclient/ rw,vers=3,sec=krb5p,addr=10.0.2.2\n"
    "42 1 0:47 / /mnt/other rw - nfs 10.0.2.2:/srv/nfs/else rw,vers=3,sec=sys,addr=10.0.2.2\n"
    "43 1 0:48 / /mnt/v4 rw - nfs4 10.0.2.3:/srv/nfs/kclient rw,vers=4.2,sec=sys,xprtsec=tls,addr=10.0.2.3\n"
    "44 1 0:49 / /mnt/integ rw - nfs 10.0.2.2:/srv/nfs/kclient rw,vers=3,sec=krb5i,addr=10.0.2.2\n"
    "garbage line\n";

TEST(LsmMounts, FindsTheExportsMountsByServerOrAddr) {
  auto m = parse_nfs_mounts(kMountinfo, "10.0.2.2", "/srv/nfs/kclient");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].dir, "/mnt/nfs");
  EXPECT_EQ(m[0].fstype, "nfs");
  EXPECT_EQ(m[1].dir, "/mnt/with space");  // \040 unescaped; matched by addr=, trailing '/' ignored
  EXPECT_EQ(m[2].dir, "/mnt/integ");
  auto v4 = parse_nfs_mounts(kMountinfo, "10.0.2.3", "/srv/nfs/kclient/");
  ASSERT_EQ(v4.size(), 1u);
  EXPECT_EQ(v4[0].fstype, "nfs4");
  EXPECT_TRUE(parse_nfs_mounts(kMountinfo, "10.9.9.9", "/srv/nfs/kclient").empty());
  EXPECT_EQ(parse_nfs_mounts(kMountinfo, "", "/srv/nfs/kclient").size(), 4u);  // any server
}

TEST(LsmMounts, SaysWhyTcCannotEnforceAMount) {
  auto m = parse_nfs_mounts(kMountinfo, "", "/srv/nfs/kclient");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(tc_blind_reason(m[0]), "");
  EXPECT_NE(tc_blind_reason(m[1]).find("sec=krb5p"), std::string::npos);
  EXPECT_NE(tc_blind_reason(m[2]).find("xprtsec=tls"), std::string::npos);
  EXPECT_NE(tc_blind_reason(m[3]).find("sec=krb5i"), std::string::npos);  // a rewrite breaks its checksum
}

TEST(LsmMode, AutoWithAnInterfaceAndAReadableMountPicksTc) {
  Policy p;
  p.export_path = "/no/such/export/mounted/here";
  p.server = "192.0.2.1";
  AttachOptions o;
  o.mode = Mode::Auto;
  o.iface = "lo";
  auto c = choose_mode(o, p);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->first, Mode::Tc);
  EXPECT_EQ(c->second.rfind("tc: ", 0), 0u) << c->second;
}

// What the kernel says, by trying. Where it refuses (this lab's host kernel: EPERM), the
// answer must be one line that says so; where it accepts, the hooks load and attach here.
TEST(LsmKernel, ProbeAnswersInOneLineOrTheHooksAttach) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
  auto why = bpf::lsm_unavailable();
  if (why) {
    EXPECT_EQ(why->find('\n'), std::string::npos) << *why;
    EXPECT_NE(why->find("LSM"), std::string::npos) << *why;
    GTEST_SKIP() << "this kernel: " << *why;
  }
  auto prog = bpf::LsmProgram::load("");
  ASSERT_TRUE(prog) << prog.error().message();
  ASSERT_TRUE((*prog)->attach()) << "the probe attached, the hooks must too";
  EXPECT_EQ((*prog)->hooks().size(), 8u);
}

// `status`, `detach` and a new `attach` read the state file an agent left: a damaged one is
// "no state" with a reason, never an exception.
TEST(AgentState, DamagedStateFilesAreNoStateWithAReason) {
  std::string dir = ::testing::TempDir();
  struct Case {
    const char* text;
    bool ok;
  } cases[] = {
      {"{\"pid\": 123, \"trees\": [{\"id\": 1, \"name\": \"a\", \"path\": \"a\", \"limit_bytes\": 5, "
       "\"usage_bytes\": 0, \"over\": false}]}",
       true},
      {"{\"pid\": 123}", true},
      {"not json", false},
      {"[1, 2]", false},
      {"{\"pid\": \"123\"}", false},
      {"{\"pid\": 1, \"trees\": {}}", false},
      {"{\"pid\": 1, \"trees\": [{\"id\": -1, \"name\": \"a\"}]}", false},
      {"{\"pid\": 1, \"trees\": [{\"id\": 1, \"name\": 7, \"path\": \"a\", \"limit_bytes\": 5, "
       "\"usage_bytes\": 0, \"over\": false}]}",
       false},
  };
  for (const Case& c : cases) {
    std::string f = dir + "/nfsf-state-test.json";
    std::ofstream(f) << c.text;
    std::string why;
    auto j = read_state(f, &why);
    EXPECT_EQ(j.has_value(), c.ok) << c.text;
    if (!c.ok) {
      EXPECT_NE(why.find("is damaged"), std::string::npos) << c.text << ": " << why;
    }
  }
  std::string why;
  EXPECT_FALSE(read_state(dir + "/no-such-state.json", &why));
  EXPECT_EQ(why, "");  // absent is not damaged
}

}  // namespace
