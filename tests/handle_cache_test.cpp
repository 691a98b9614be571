// The handle cache and the accounting engine, driven by decoded messages built by hand.
#include <gtest/gtest.h>

#include "nfs/accounting.h"

using namespace nfsfence;

namespace {

Bytes fh(uint8_t n) { return Bytes(32, n); }

Policy make_policy(AccountingMode mode = AccountingMode::Used) {
  auto p = parse_policy(R"(
export: /export
trees:
  - {name: a, path: vol-a, limit: 1000, soft_limit: 600}
  - {name: b, path: vol-b, limit: 1Mi}
  - {name: nested, path: vol-b/inner, limit: 1Mi}
)",
                        "t.yaml");
  EXPECT_TRUE(p);
  p->accounting = mode;
  return *p;
}

struct Msgs {
  double t = 0;
  RpcMessage reply(uint32_t prog, uint32_t proc, NfsFields call, NfsFields res) {
    RpcMessage m;
    m.type = MsgType::Reply;
    m.prog = prog;
    m.vers = 3;
    m.proc = proc;
    m.ts = Timestamp{int64_t(++t), 0};
    m.flow.src.port = 2049;
    m.call = std::make_shared<NfsFields>(std::move(call));
    m.fields = std::move(res);
    if (!m.fields.status) m.fields.status = 0;
    return m;
  }
  RpcMessage mnt(const std::string& path, Bytes root) {
    NfsFields c, r;
    c.path = path;
    r.obj_fh = root;
    return reply(100005, MOUNT3_MNT, c, r);
  }
  RpcMessage create(uint32_t proc, Bytes dir, const std::string& name, Bytes obj, uint32_t type, uint64_t used = 0) {
    NfsFields c, r;
    c.dir_fh = dir;
    c.name = name;
    r.obj_fh = obj;
    r.attr = Attr{type, used, used, 0, 1};
    return reply(100003, proc, c, r);
  }
  RpcMessage write(Bytes file, uint64_t size, uint64_t used) {
    NfsFields c, r;
    c.fh = file;
    r.attr = Attr{NF3REG, size, used, 0, 1};
    return reply(100003, NFS3_WRITE, c, r);
  }
  RpcMessage remove(Bytes dir, const std::string& name) {
    NfsFields c, r;
    c.dir_fh = dir;
    c.name = name;
    return reply(100003, NFS3_REMOVE, c, r);
  }
  RpcMessage rename(Bytes fd, const std::string& fname, Bytes td, const std::string& tname) {
    NfsFields c, r;
    c.dir_fh = fd;
    c.name = fname;
    c.to_dir_fh = td;
    c.to_name = tname;
    return reply(100003, NFS3_RENAME, c, r);
  }
};

const Bytes kRoot = fh(1), kA = fh(2), kB = fh(3), kOut = fh(4), kInner = fh(5);

// export root with vol-a, vol-b, vol-b/inner and an untracked dir "other"
void build_tree(Accounting& acct, Msgs& m) {
  acct.on_message(m.mnt("/export/", kRoot));
  acct.on_message(m.create(NFS3_MKDIR, kRoot, "vol-a", kA, NF3DIR));
  acct.on_message(m.create(NFS3_MKDIR, kRoot, "vol-b", kB, NF3DIR));
  acct.on_message(m.create(NFS3_MKDIR, kB, "inner", kInner, NF3DIR));
  acct.on_message(m.create(NFS3_MKDIR, kRoot, "other", kOut, NF3DIR));
}

}  // namespace

TEST(HandleCache, NearestAncestorTreeWins) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kInner, "f", fh(10), NF3REG));
  acct.on_message(m.create(NFS3_CREATE, kB, "g", fh(11), NF3REG));
  acct.on_message(m.create(NFS3_CREATE, kOut, "h", fh(12), NF3REG));
  EXPECT_EQ(acct.tree_of(fh(10)), 2);  // vol-b/inner, not vol-b
  EXPECT_EQ(acct.tree_of(fh(11)), 1);
  EXPECT_EQ(acct.tree_of(fh(12)), HandleCache::kNoTree);
  EXPECT_EQ(acct.tree_of(fh(99)), HandleCache::kUnknown);
  EXPECT_EQ(acct.tree_of(kA), 0);  // the tree root itself belongs to its tree
}

TEST(HandleCache, WithoutRootEverythingIsUnknownUntilMnt) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  // Children learned before the root: they resolve once the MNT reply arrives.
  acct.on_message(m.create(NFS3_MKDIR, kRoot, "vol-a", kA, NF3DIR));
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 300));
  EXPECT_EQ(acct.tree_of(fh(10)), HandleCache::kUnknown);
  EXPECT_EQ(acct.usage_unknown(), 300u);
  acct.on_message(m.mnt("/other-export", kRoot));  // not our export
  EXPECT_EQ(acct.tree_of(fh(10)), HandleCache::kUnknown);
  acct.on_message(m.mnt("/export", kRoot));
  EXPECT_EQ(acct.tree_of(fh(10)), 0);
  EXPECT_EQ(acct.trees()[0].usage, 300u);
  EXPECT_EQ(acct.usage_unknown(), 0u);
}

TEST(Accounting, UsageFollowsPostOpAttributesAndLimits) {
  Policy p = make_policy();
  std::vector<std::pair<int, bool>> flips;
  int soft = 0;
  Accounting acct(p, 1000, {[&](int t, bool over, Timestamp) { flips.emplace_back(t, over); },
                            [&](int, Timestamp) { soft++; }});
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f1", fh(10), NF3REG));
  acct.on_message(m.write(fh(10), 500, 512));
  EXPECT_EQ(acct.trees()[0].usage, 512u);
  EXPECT_FALSE(acct.trees()[0].over);
  EXPECT_EQ(soft, 0);
  acct.on_message(m.create(NFS3_CREATE, kA, "f2", fh(11), NF3REG));
  acct.on_message(m.write(fh(11), 100, 100));
  EXPECT_EQ(acct.trees()[0].usage, 612u);
  EXPECT_EQ(soft, 1);  // crossed 600
  acct.on_message(m.write(fh(10), 900, 900));  // 900 + 100 = 1000 = limit: over
  EXPECT_EQ(acct.trees()[0].usage, 1000u);
  EXPECT_TRUE(acct.trees()[0].over);
  ASSERT_EQ(flips.size(), 1u);
  EXPECT_EQ(flips[0], std::make_pair(0, true));
  ASSERT_TRUE(acct.trees()[0].exceeded_at);
  EXPECT_EQ(acct.trees()[0].exceeded_at->sec, int64_t(m.t));
  acct.on_message(m.remove(kA, "f1"));
  EXPECT_EQ(acct.trees()[0].usage, 100u);
  EXPECT_FALSE(acct.trees()[0].over);
  ASSERT_EQ(flips.size(), 2u);
  EXPECT_EQ(flips[1], std::make_pair(0, false));
  EXPECT_EQ(acct.trees()[0].peak, 1000u);
  EXPECT_EQ(acct.trees()[0].files, 1u);
  EXPECT_EQ(acct.cache().find(fh(10)), HandleCache::kNone);  // removed file forgotten
}

TEST(Accounting, SizeModeCountsSize) {
  Policy p = make_policy(AccountingMode::Size);
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f1", fh(10), NF3REG));
  acct.on_message(m.write(fh(10), 123, 4096));
  EXPECT_EQ(acct.trees()[0].usage, 123u);
}

TEST(Accounting, RenameAcrossTreesMovesUsage) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 400));
  acct.on_message(m.rename(kA, "f", kB, "f"));
  EXPECT_EQ(acct.trees()[0].usage, 0u);
  EXPECT_EQ(acct.trees()[1].usage, 400u);
  EXPECT_EQ(acct.tree_of(fh(10)), 1);
  // Rename over an existing file: the replaced file's usage is gone.
  acct.on_message(m.create(NFS3_CREATE, kB, "g", fh(11), NF3REG, 50));
  acct.on_message(m.rename(kB, "f", kB, "g"));
  EXPECT_EQ(acct.trees()[1].usage, 400u);
  EXPECT_EQ(acct.trees()[1].files, 1u);
}

TEST(Accounting, DirectoryRenameMovesWholeSubtree) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  Bytes sub = fh(20);
  acct.on_message(m.create(NFS3_MKDIR, kOut, "sub", sub, NF3DIR));
  acct.on_message(m.create(NFS3_CREATE, sub, "x", fh(21), NF3REG, 70));
  acct.on_message(m.create(NFS3_CREATE, sub, "y", fh(22), NF3REG, 30));
  EXPECT_EQ(acct.usage_outside_trees(), 100u);
  acct.on_message(m.rename(kOut, "sub", kA, "sub"));
  EXPECT_EQ(acct.trees()[0].usage, 100u);
  EXPECT_EQ(acct.usage_outside_trees(), 0u);
  EXPECT_EQ(acct.tree_of(fh(22)), 0);
}

TEST(Accounting, ReaddirplusTeachesHandles) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  acct.on_message(m.mnt("/export", kRoot));
  NfsFields c, r;
  c.fh = kRoot;
  r.entries.push_back(DirEntryPlus{".", 1, kRoot, Attr{NF3DIR, 0, 0, 1, 3}});
  r.entries.push_back(DirEntryPlus{"vol-a", 2, kA, Attr{NF3DIR, 4096, 4096, 2, 2}});
  acct.on_message(m.reply(100003, NFS3_READDIRPLUS, c, r));
  NfsFields c2, r2;
  c2.fh = kA;
  r2.entries.push_back(DirEntryPlus{"big", 3, fh(30), Attr{NF3REG, 800, 800, 3, 1}});
  r2.entries.push_back(DirEntryPlus{"nofh", 4, std::nullopt, std::nullopt});
  acct.on_message(m.reply(100003, NFS3_READDIRPLUS, c2, r2));
  EXPECT_EQ(acct.tree_of(fh(30)), 0);
  EXPECT_EQ(acct.trees()[0].usage, 800u);  // directories are not counted
}

TEST(Accounting, HardLinkRemoveKeepsUsageUntilLastName) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 100));
  NfsFields c, r;
  c.fh = fh(10);
  c.to_dir_fh = kA;
  c.to_name = "f2";
  r.attr = Attr{NF3REG, 100, 100, 0, 2};
  acct.on_message(m.reply(100003, NFS3_LINK, c, r));
  acct.on_message(m.remove(kA, "f"));
  EXPECT_EQ(acct.trees()[0].usage, 100u);
}

TEST(Accounting, FailedRepliesChangeNothing) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 100));
  RpcMessage rm = m.remove(kA, "f");
  rm.fields.status = 13;  // NFS3ERR_ACCES
  acct.on_message(rm);
  EXPECT_EQ(acct.trees()[0].usage, 100u);
}

TEST(HandleCache, BoundedAndCounted) {
  HandleCache c({{"a"}}, 3);
  c.set_root(fh(1));
  EXPECT_NE(c.intern(fh(2)), HandleCache::kNone);
  EXPECT_NE(c.intern(fh(3)), HandleCache::kNone);
  EXPECT_EQ(c.intern(fh(4)), HandleCache::kNone);
  EXPECT_EQ(c.stats().full_drops, 1u);
  EXPECT_EQ(c.stats().handles, 3u);
  c.forget(c.find(fh(3)));
  EXPECT_NE(c.intern(fh(4)), HandleCache::kNone);
  EXPECT_GT(c.memory_bytes(), 0u);
}

TEST(HandleCache, CycleIsCutNotHung) {
  HandleCache c({{"a"}}, 100);
  c.set_root(fh(1));
  c.link(fh(2), "x", fh(3), NF3DIR);
  c.link(fh(3), "y", fh(2), NF3DIR);  // a cycle that never reaches the root
  EXPECT_EQ(c.tree_of_fh(fh(3)), HandleCache::kUnknown);
}
