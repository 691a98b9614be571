// The handle cache and the accounting engine, driven by decoded messages built by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "nfs/accounting.h"
#include "nfs/shared_usage.h"

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
    return reply(kProgMount, MOUNT3_MNT, c, r);
  }
  RpcMessage create(uint32_t proc, Bytes dir, const std::string& name, Bytes obj, uint32_t type, uint64_t used = 0) {
    NfsFields c, r;
    c.dir_fh = dir;
    c.name = name;
    r.obj_fh = obj;
    r.attr = Attr{type, used, used, 0, 1};
    return reply(kProgNfs, proc, c, r);
  }
  RpcMessage write(Bytes file, uint64_t size, uint64_t used) {
    NfsFields c, r;
    c.fh = file;
    r.attr = Attr{NF3REG, size, used, 0, 1};
    return reply(kProgNfs, NFS3_WRITE, c, r);
  }
  // LINK file -> dir/name; the reply's attributes say nlink (2 after the first link).
  RpcMessage link(Bytes file, Bytes dir, const std::string& name, uint64_t used, uint32_t nlink = 2) {
    NfsFields c, r;
    c.fh = std::move(file);
    c.to_dir_fh = std::move(dir);
    c.to_name = name;
    r.attr = Attr{NF3REG, used, used, 0, nlink};
    return reply(kProgNfs, NFS3_LINK, c, r);
  }
  RpcMessage remove(Bytes dir, const std::string& name) {
    NfsFields c, r;
    c.dir_fh = dir;
    c.name = name;
    return reply(kProgNfs, NFS3_REMOVE, c, r);
  }
  RpcMessage rename(Bytes fd, const std::string& fname, Bytes td, const std::string& tname) {
    NfsFields c, r;
    c.dir_fh = fd;
    c.name = fname;
    c.to_dir_fh = td;
    c.to_name = tname;
    return reply(kProgNfs, NFS3_RENAME, c, r);
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
  Accounting acct(p, 1000,
                  {[&](int t, bool over, Timestamp) { flips.emplace_back(t, over); }, [&](int, Timestamp) { soft++; }});
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
  EXPECT_EQ(soft, 1);                          // crossed 600
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

// A server answering WRITEs in parallel can send a reply built earlier (older post-op
// attributes) after a newer one: the usage must not go back to the older size.
TEST(Accounting, OlderPostOpAttributesAreSkipped) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f1", fh(10), NF3REG));
  auto w = [&](uint64_t used, uint64_t ctime) {
    RpcMessage r = m.write(fh(10), used, used);
    r.fields.attr->ctime_ns = ctime;
    acct.on_message(r);
    return acct.trees()[0].usage;
  };
  EXPECT_EQ(w(300, 2'000'000'000), 300u);
  EXPECT_EQ(w(200, 1'000'000'000), 300u);  // built before the 300 one
  EXPECT_EQ(w(250, 2'000'000'000), 300u);  // same tick: the larger size
  EXPECT_EQ(w(400, 2'000'000'000), 400u);
  EXPECT_EQ(w(100, 3'000'000'000), 100u);  // newer: a truncation counts
  EXPECT_EQ(w(50, 0), 50u);                // a server without ctime: the last one
  EXPECT_EQ(acct.stats().stale_attrs, 2u);
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
  acct.on_message(m.reply(kProgNfs, NFS3_READDIRPLUS, c, r));
  NfsFields c2, r2;
  c2.fh = kA;
  r2.entries.push_back(DirEntryPlus{"big", 3, fh(30), Attr{NF3REG, 800, 800, 3, 1}});
  r2.entries.push_back(DirEntryPlus{"nofh", 4, std::nullopt, std::nullopt});
  acct.on_message(m.reply(kProgNfs, NFS3_READDIRPLUS, c2, r2));
  EXPECT_EQ(acct.tree_of(fh(30)), 0);
  EXPECT_EQ(acct.trees()[0].usage, 800u);  // directories are not counted
}

TEST(Accounting, HardLinkRemoveKeepsUsageUntilLastName) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 100));
  acct.on_message(m.link(fh(10), kA, "f2", 100));
  acct.on_message(m.remove(kA, "f"));
  EXPECT_EQ(acct.trees()[0].usage, 100u);
}

// The name the cache knows goes, another (unknown to it) stays: the file and its usage stay
// in the tree, in the handle map too, rather than turning unknown.
TEST(Accounting, HardLinkKeepsTreeWhenKnownNameGoes) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 100));
  acct.on_message(m.link(fh(10), kA, "f2", 100));  // the cache now knows f2, not f
  acct.on_message(m.remove(kA, "f2"));
  EXPECT_EQ(acct.tree_of(fh(10)), 0);
  EXPECT_EQ(acct.trees()[0].usage, 100u);
  EXPECT_EQ(acct.usage_unknown(), 0u);
  acct.on_message(m.write(fh(10), 300, 300));  // written through the other name
  EXPECT_EQ(acct.trees()[0].usage, 300u);
  // Named again elsewhere: it follows.
  acct.on_message(m.create(NFS3_LOOKUP, kB, "f", fh(10), NF3REG, 300));
  EXPECT_EQ(acct.trees()[0].usage, 0u);
  EXPECT_EQ(acct.trees()[1].usage, 300u);
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
  EXPECT_EQ(c.stats().cycles_refused, 1u);  // the second link is refused, not cut later
}

namespace {
// Handles beyond the 1-byte ones above: 32 bytes, the index in the first 8.
Bytes big_fh(uint64_t i) {
  Bytes b(32, 0x42);
  for (int k = 0; k < 8; k++) b[k] = uint8_t(i >> (8 * k));
  return b;
}
}  // namespace

// Issue 8: a directory rename used to re-resolve every cached handle. Now the work is the
// moved subtree's: a small directory renamed 10,000 times, within a tree and between two
// trees, with 200,000 files cached, visits nodes in proportion to its own size, and every
// tree's usage stays exact. (Before, nodes_resolved did not exist, and these 20,000
// renames took over a minute.)
TEST(HandleCache, ChurnWorkFollowsMovedSubtree) {
  Policy p = make_policy();
  p.trees[0].limit = p.trees[1].limit = UINT64_MAX;
  p.trees[0].soft_limit.reset();
  Accounting acct(p, 300000);
  Msgs m;
  build_tree(acct, m);
  const size_t kFiles = 200000, kPerDir = 1000, kMoved = 10;
  const uint64_t kBytes = 4096;
  const Bytes big = big_fh(1ull << 50), mv = big_fh(1ull << 51);
  acct.on_message(m.create(NFS3_MKDIR, kA, "big", big, NF3DIR));
  for (size_t i = 0; i < kFiles; i++) {
    Bytes dir = big_fh((1ull << 40) + i / kPerDir);
    if (i % kPerDir == 0) acct.on_message(m.create(NFS3_MKDIR, big, "d" + std::to_string(i / kPerDir), dir, NF3DIR));
    acct.on_message(m.create(NFS3_CREATE, dir, "f" + std::to_string(i), big_fh(i), NF3REG, kBytes));
  }
  acct.on_message(m.create(NFS3_MKDIR, kA, "mv", mv, NF3DIR));
  for (size_t i = 0; i < kMoved; i++)
    acct.on_message(m.create(NFS3_CREATE, mv, "m" + std::to_string(i), big_fh((1ull << 41) + i), NF3REG, kBytes));
  const uint64_t all = (kFiles + kMoved) * kBytes, moved = kMoved * kBytes;
  ASSERT_GT(acct.cache().stats().handles, kFiles);
  ASSERT_EQ(acct.trees()[0].usage, all);
  ASSERT_EQ(acct.trees()[0].files, kFiles + kMoved);

  const HandleCache::Stats& s = acct.cache().stats();
  const size_t kRenames = 10000;
  // Within vol-a, off every tree path: nothing below mv changes, so nothing below is visited.
  uint64_t nodes = s.nodes_resolved, walks = s.subtree_walks;
  for (size_t i = 0; i < kRenames; i++)
    acct.on_message(i % 2 ? m.rename(kA, "mv2", kA, "mv") : m.rename(kA, "mv", kA, "mv2"));
  EXPECT_EQ(acct.trees()[0].usage, all);
  EXPECT_EQ(acct.trees()[1].usage, 0u);
  EXPECT_EQ(s.subtree_walks - walks, 0u);
  EXPECT_LE(s.nodes_resolved - nodes, kRenames);
  EXPECT_EQ(acct.stats().recounts, s.subtree_walks);

  // Between vol-a and vol-b: each rename moves mv and its 10 files, and visits just those.
  nodes = s.nodes_resolved;
  walks = s.subtree_walks;
  for (size_t i = 0; i < kRenames; i++) {
    acct.on_message(i % 2 ? m.rename(kB, "mv", kA, "mv") : m.rename(kA, "mv", kB, "mv"));
    if (i % 1000 == 0) {
      ASSERT_EQ(acct.trees()[0].usage, all - moved);
      ASSERT_EQ(acct.trees()[1].usage, moved);
      ASSERT_EQ(acct.trees()[1].files, kMoved);
    }
  }
  EXPECT_EQ(acct.trees()[0].usage, all);
  EXPECT_EQ(acct.trees()[1].usage, 0u);
  EXPECT_EQ(acct.trees()[0].files, kFiles + kMoved);
  EXPECT_EQ(s.subtree_walks - walks, kRenames);
  EXPECT_LE(s.nodes_resolved - nodes, kRenames * (kMoved + 1));
  EXPECT_GE(s.nodes_resolved - nodes, kRenames * (kMoved + 1));

  // Moving the big directory itself costs its subtree, once.
  nodes = s.nodes_resolved;
  acct.on_message(m.rename(kA, "big", kB, "big"));
  EXPECT_EQ(acct.trees()[0].usage, moved);
  EXPECT_EQ(acct.trees()[1].usage, kFiles * kBytes);
  EXPECT_EQ(acct.trees()[1].files, kFiles);
  EXPECT_LE(s.nodes_resolved - nodes, kFiles + kFiles / kPerDir + 1);
  EXPECT_EQ(acct.tree_of(big_fh(12345)), 1);
  EXPECT_EQ(acct.usage_unknown(), 0u);
  EXPECT_EQ(acct.usage_outside_trees(), 0u);
}

// Linking a directory under its own descendant is refused and counted: the graph stays a
// forest, every walk ends, and the refused directory (with its subtree) is unknown until a
// sane name for it arrives.
TEST(HandleCache, CycleIsRefusedAndCounted) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  Msgs m;
  build_tree(acct, m);
  const Bytes x = fh(40), y = fh(41), z = fh(42);
  acct.on_message(m.create(NFS3_MKDIR, kA, "x", x, NF3DIR));
  acct.on_message(m.create(NFS3_MKDIR, x, "y", y, NF3DIR));
  acct.on_message(m.create(NFS3_MKDIR, y, "z", z, NF3DIR));
  acct.on_message(m.create(NFS3_CREATE, z, "f", fh(43), NF3REG, 100));
  ASSERT_EQ(acct.trees()[0].usage, 100u);
  acct.on_message(m.rename(kA, "x", z, "loop"));  // x below its own grandchild
  EXPECT_EQ(acct.cache().stats().cycles_refused, 1u);
  EXPECT_EQ(acct.cache().lookup_child(acct.cache().find(z), "loop"), HandleCache::kNone);
  EXPECT_EQ(acct.tree_of(x), HandleCache::kUnknown);
  EXPECT_EQ(acct.tree_of(fh(43)), HandleCache::kUnknown);
  EXPECT_EQ(acct.trees()[0].usage, 0u);
  EXPECT_EQ(acct.usage_unknown(), 100u);
  // The same through a LOOKUP reply, and a directory under itself.
  acct.on_message(m.create(NFS3_LOOKUP, y, "up", x, NF3DIR));
  acct.on_message(m.rename(x, "y", y, "self"));
  EXPECT_EQ(acct.cache().stats().cycles_refused, 3u);
  // y was unlinked by its refused rename; x, refused twice, has no name: both unknown.
  EXPECT_EQ(acct.tree_of(y), HandleCache::kUnknown);
  // A sane name puts the pieces back.
  acct.on_message(m.create(NFS3_LOOKUP, kB, "x", x, NF3DIR));
  acct.on_message(m.create(NFS3_LOOKUP, x, "y", y, NF3DIR));
  EXPECT_EQ(acct.tree_of(fh(43)), 1);
  EXPECT_EQ(acct.trees()[1].usage, 100u);
  EXPECT_EQ(acct.usage_unknown(), 0u);
}

// Depth is bounded only where a walk's length would be the input's choice, the cycle check
// (kMaxDepth nodes above the new parent); a chain far deeper than that, built from its
// bottom up, is linked, moved between trees and walked without recursion.
TEST(HandleCache, DeepChainIsWalkedIteratively) {
  Policy p = make_policy();
  const size_t kDepth = 200000;
  Accounting acct(p, kDepth + 2000);
  Msgs m;
  build_tree(acct, m);
  auto dir = [](size_t i) { return big_fh((1ull << 40) + i); };
  const Bytes file = big_fh(7);
  acct.on_message(m.create(NFS3_CREATE, dir(kDepth - 1), "f", file, NF3REG, 300));
  for (size_t i = kDepth - 1; i-- > 0;)  // each parent has no parent yet: a cheap check
    acct.on_message(m.create(NFS3_MKDIR, dir(i), "d", dir(i + 1), NF3DIR));
  EXPECT_EQ(acct.usage_unknown(), 300u);
  acct.on_message(m.create(NFS3_LOOKUP, kA, "deep", dir(0), NF3DIR));
  EXPECT_EQ(acct.tree_of(file), 0);
  EXPECT_EQ(acct.trees()[0].usage, 300u);
  acct.on_message(m.rename(kA, "deep", kB, "deep"));
  EXPECT_EQ(acct.tree_of(file), 1);
  EXPECT_EQ(acct.trees()[0].usage, 0u);
  EXPECT_EQ(acct.trees()[1].usage, 300u);
  // Below the bottom the chain up is too long to check: refused and counted, unknown.
  EXPECT_EQ(acct.cache().stats().too_deep_refused, 0u);
  acct.on_message(m.create(NFS3_CREATE, dir(kDepth - 1), "g", big_fh(8), NF3REG, 5));
  EXPECT_EQ(acct.cache().stats().too_deep_refused, 1u);
  EXPECT_EQ(acct.tree_of(big_fh(8)), HandleCache::kUnknown);
  EXPECT_EQ(acct.usage_unknown(), 5u);
  // kMaxDepth nodes above the parent still pass.
  Bytes top = big_fh(9);
  acct.on_message(m.create(NFS3_MKDIR, kA, "top", top, NF3DIR));
  Bytes cur = top;
  for (size_t i = 3; i < HandleCache::kMaxDepth; i++) {  // root, vol-a, top: 3 already
    Bytes next = big_fh(10 + i);
    acct.on_message(m.create(NFS3_MKDIR, cur, "d", next, NF3DIR));
    cur = next;
  }
  acct.on_message(m.create(NFS3_CREATE, cur, "ok", big_fh(5000), NF3REG, 1));
  EXPECT_EQ(acct.tree_of(big_fh(5000)), 0);
  acct.on_message(m.create(NFS3_CREATE, big_fh(5000), "no", big_fh(5001), NF3REG, 1));
  EXPECT_EQ(acct.cache().stats().too_deep_refused, 2u);
  EXPECT_EQ(acct.cache().stats().cycles_refused, 0u);
}

// Sums of per-file values saturate instead of wrapping, and come back down exactly.
TEST(Accounting, UsageSaturatesAndComesBackExactly) {
  Policy p = make_policy();
  std::vector<std::pair<int, bool>> flips;
  Accounting acct(p, 1000, {[&](int t, bool over, Timestamp) { flips.emplace_back(t, over); }, {}});
  Msgs m;
  build_tree(acct, m);
  const uint64_t big1 = (1ull << 63) + 5, big2 = (1ull << 63) + 7;
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, big1));
  acct.on_message(m.create(NFS3_CREATE, kA, "g", fh(11), NF3REG, big2));
  acct.on_message(m.create(NFS3_CREATE, kA, "h", fh(12), NF3REG, UINT64_MAX));
  EXPECT_EQ(acct.trees()[0].usage, UINT64_MAX);
  EXPECT_EQ(acct.trees()[0].peak, UINT64_MAX);
  EXPECT_TRUE(acct.trees()[0].over);
  acct.on_message(m.remove(kA, "h"));
  EXPECT_EQ(acct.trees()[0].usage, UINT64_MAX);  // big1 + big2 is still past 2^64
  acct.on_message(m.remove(kA, "f"));
  EXPECT_EQ(acct.trees()[0].usage, big2);
  acct.on_message(m.rename(kA, "g", kB, "g"));
  EXPECT_EQ(acct.trees()[0].usage, 0u);
  EXPECT_FALSE(acct.trees()[0].over);
  EXPECT_EQ(acct.trees()[1].usage, big2);
  EXPECT_EQ(acct.trees()[0].peak, UINT64_MAX);
  // The outside and unknown buckets too.
  acct.on_message(m.create(NFS3_CREATE, kOut, "o1", fh(20), NF3REG, big1));
  acct.on_message(m.create(NFS3_CREATE, kOut, "o2", fh(21), NF3REG, big2));
  EXPECT_EQ(acct.usage_outside_trees(), UINT64_MAX);
  acct.on_message(m.create(NFS3_CREATE, fh(99), "u1", fh(22), NF3REG, big1));
  acct.on_message(m.create(NFS3_CREATE, fh(99), "u2", fh(23), NF3REG, big2));
  EXPECT_EQ(acct.usage_unknown(), UINT64_MAX);
  acct.on_message(m.remove(kOut, "o1"));
  EXPECT_EQ(acct.usage_outside_trees(), big2);
  acct.on_message(m.remove(fh(99), "u2"));
  EXPECT_EQ(acct.usage_unknown(), big1);
  // A 2^64-wrapping sum would have flipped vol-a back under with the third file.
  std::vector<std::pair<int, bool>> want = {{0, true}, {0, false}, {1, true}};
  EXPECT_EQ(flips, want);
}

// What the agent mirrors: only the nodes whose tree changed, once each.
TEST(HandleCache, TouchedListsOnlyWhatChangedTree) {
  Policy p = make_policy();
  Accounting acct(p, 1000);
  acct.cache().track_changes(true);
  Msgs m;
  build_tree(acct, m);
  const Bytes d = fh(30);
  acct.on_message(m.create(NFS3_MKDIR, kA, "d", d, NF3DIR));
  for (uint8_t i = 0; i < 5; i++)
    acct.on_message(m.create(NFS3_CREATE, d, "f" + std::to_string(i), fh(31 + i), NF3REG, 1));
  for (uint8_t i = 0; i < 20; i++)
    acct.on_message(m.create(NFS3_CREATE, kA, "g" + std::to_string(i), fh(50 + i), NF3REG, 1));
  HandleCache& c = acct.cache();
  c.clear_touched();
  acct.on_message(m.rename(kA, "d", kA, "e"));  // same tree: nothing to mirror
  EXPECT_TRUE(c.touched().empty());
  acct.on_message(m.rename(kA, "e", kB, "e"));
  acct.on_message(m.rename(kB, "e", kInner, "e"));  // twice before a sync: listed once
  std::vector<HandleCache::Id> want = {c.find(d)};
  for (uint8_t i = 0; i < 5; i++) want.push_back(c.find(fh(31 + i)));
  std::vector<HandleCache::Id> got = c.touched();
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  for (HandleCache::Id id : got) EXPECT_EQ(c.tree_of(id), 2);
  c.clear_touched();
  EXPECT_TRUE(c.touched().empty());
  // A second MNT naming another root: everything below the old one becomes unknown.
  acct.on_message(m.mnt("/export", fh(90)));
  EXPECT_EQ(acct.tree_of(fh(31)), HandleCache::kUnknown);
  EXPECT_EQ(acct.usage_unknown(), 25u);
  acct.on_message(m.mnt("/export", kRoot));
  EXPECT_EQ(acct.tree_of(fh(31)), 2);
  EXPECT_EQ(acct.usage_unknown(), 0u);
}

// A forgotten directory's children are orphaned, not handed to the next handle that
// reuses its slot.
TEST(HandleCache, ForgetOrphansChildren) {
  HandleCache c({{"a"}}, 100);
  c.set_root(fh(1));
  c.link(fh(1), "a", fh(2), NF3DIR);
  c.link(fh(2), "sub", fh(3), NF3DIR);
  c.link(fh(3), "f", fh(4), NF3REG);
  EXPECT_EQ(c.tree_of_fh(fh(4)), 0);
  HandleCache::Id sub = c.find(fh(3));
  c.forget(sub);
  EXPECT_EQ(c.tree_of_fh(fh(4)), HandleCache::kUnknown);
  HandleCache::Id reused = c.intern(fh(5));
  ASSERT_EQ(reused, sub);
  EXPECT_EQ(c.lookup_child(reused, "f"), HandleCache::kNone);
  c.link(fh(2), "other", fh(5), NF3DIR);
  EXPECT_EQ(c.tree_of_fh(fh(4)), HandleCache::kUnknown);
  c.link(fh(5), "f", fh(4), NF3REG);
  EXPECT_EQ(c.tree_of_fh(fh(4)), 0);
}

namespace {
// The placement a full resolution from the export root gives (the nearest tree whose path
// is a prefix of the node's), or -3 for a file that lost its name (it keeps a tree of its
// own, see HandleCache::unlink).
int full_resolution(const Policy& p, const HandleCache& c, HandleCache::Id id) {
  std::vector<std::string> path;
  HandleCache::Id cur = id;
  for (size_t steps = 0; cur != c.root() && c.node(cur).parent != HandleCache::kNone; steps++) {
    if (steps > 100000) return -100;  // a cycle
    path.push_back(c.node(cur).name);
    cur = c.node(cur).parent;
  }
  if (cur != c.root()) return cur == id && !c.node(id).has_children() ? -3 : HandleCache::kUnknown;
  std::reverse(path.begin(), path.end());
  int tree = HandleCache::kNoTree;
  size_t best = 0;
  for (size_t t = 0; t < p.trees.size(); t++) {
    auto& comps = p.trees[t].components;
    if (comps.size() > best && comps.size() <= path.size() && std::equal(comps.begin(), comps.end(), path.begin())) {
      best = comps.size();
      tree = int(t);
    }
  }
  return tree;
}

// Random (often nonsensical) replies against a full resolution of every handle after each
// one: the incremental placements, the child lists, the dirents and every bucket's usage
// must agree with what resolving from scratch gives.
// `policies`: every 250 ops the next one is applied (Accounting::set_policy), and the
// same checks hold against it.
void random_ops_match_full_resolution(const std::vector<Policy>& policies) {
  const Policy& p0 = policies[0];
  const char* names[] = {"vol-a", "vol-b", "inner", "x", "y"};
  for (uint32_t seed = 1; seed <= 8; seed++) {
    SCOPED_TRACE(seed);
    Accounting acct(p0, seed % 2 ? 1000 : 12);  // a small cache: full_drops too
    HandleCache& c = acct.cache();
    Msgs m;
    std::mt19937 rng(seed);
    auto pick = [&](uint32_t n) { return uint32_t(rng() % n); };
    auto handle = [&] { return fh(uint8_t(1 + pick(24))); };
    auto name = [&] { return std::string(names[pick(5)]); };
    acct.on_message(m.mnt("/export", kRoot));
    size_t next_policy = 1;
    for (int op = 0; op < 3000; op++) {
      if (policies.size() > 1 && op % 250 == 249) acct.set_policy(policies[next_policy++ % policies.size()]);
      const Policy& p = acct.policy();
      switch (pick(9)) {
        case 0:
        case 1:
          acct.on_message(m.create(pick(3) ? NFS3_MKDIR : NFS3_CREATE, handle(), name(), handle(),
                                   pick(3) ? NF3DIR : NF3REG, pick(1000)));
          break;
        case 2:
          acct.on_message(m.create(NFS3_LOOKUP, handle(), name(), handle(), pick(2) ? NF3DIR : NF3REG, pick(1000)));
          break;
        case 3:
          acct.on_message(m.remove(handle(), name()));
          break;
        case 4:
        case 5:
          acct.on_message(m.rename(handle(), name(), handle(), name()));
          break;
        case 6:
          acct.on_message(m.write(handle(), 0, pick(1000)));
          break;
        case 7: {
          Bytes file = handle(), dir = handle();  // in this order: the seeded sequence stays the same
          acct.on_message(m.link(file, dir, name(), 10));
          break;
        }
        default:
          if (pick(4) == 0) {
            acct.on_message(m.mnt("/export", pick(3) ? kRoot : kA));
          } else if (HandleCache::Id id = c.find(handle()); id != HandleCache::kNone && !c.node(id).charged_file) {
            c.forget(id);
          }
          break;
      }
      std::vector<unsigned __int128> sums(p.trees.size() + 2);
      std::vector<uint64_t> files(p.trees.size());
      bool ok = true;
      c.for_each([&](HandleCache::Id id, HandleCache::Node& n) {
        int want = full_resolution(p, c, id);
        if (want != -3 && n.tree != want) {
          ok = false;
          std::string chain;
          for (HandleCache::Id k = id; k != HandleCache::kNone && chain.size() < 200; k = c.node(k).parent)
            chain += std::to_string(int((*c.node(k).fh)[0])) + "(" + c.node(k).name + ",t" +
                     std::to_string(c.node(k).tree) + (c.node(k).has_children() ? ",dir" : "") + ") ";
          ADD_FAILURE() << "handle " << int((*n.fh)[0]) << " tree " << n.tree << " want " << want << " root "
                        << int((*c.node(c.root()).fh)[0]) << " chain " << chain;
        }
        EXPECT_NE(want, -100) << "cycle at op " << op;
        if (n.parent != HandleCache::kNone) {
          EXPECT_TRUE(c.node(n.parent).live);
          EXPECT_EQ(c.lookup_child(n.parent, n.name), id);
          bool listed = false;
          for (HandleCache::Id k = c.node(n.parent).first_child; k != HandleCache::kNone; k = c.node(k).next_sibling)
            listed = listed || k == id;
          EXPECT_TRUE(listed);
        }
        for (HandleCache::Id k = n.first_child; k != HandleCache::kNone; k = c.node(k).next_sibling) {
          EXPECT_EQ(c.node(k).parent, id);
          if (c.node(k).next_sibling != HandleCache::kNone) {
            EXPECT_EQ(c.node(c.node(k).next_sibling).prev_sibling, k);
          }
        }
        if (n.charged_file) {
          EXPECT_EQ(n.charged_tree, n.tree);
          int t = n.charged_tree;
          sums[t >= 0 ? size_t(t) : t == HandleCache::kNoTree ? p.trees.size() : p.trees.size() + 1] += n.charged;
          if (t >= 0) files[size_t(t)]++;
        }
      });
      ASSERT_TRUE(ok) << "placement differs from a full resolution at op " << op;
      for (size_t t = 0; t < p.trees.size(); t++) {
        ASSERT_EQ(acct.trees()[t].usage, uint64_t(sums[t])) << "op " << op;
        ASSERT_EQ(acct.trees()[t].files, files[t]) << "op " << op;
      }
      ASSERT_EQ(acct.usage_outside_trees(), uint64_t(sums[p.trees.size()])) << "op " << op;
      ASSERT_EQ(acct.usage_unknown(), uint64_t(sums[p.trees.size() + 1])) << "op " << op;
    }
    EXPECT_GT(c.stats().subtree_walks, 0u);
  }
}
}  // namespace

TEST(HandleCache, RandomOpsMatchFullResolution) {
  Policy p = make_policy();
  p.trees[0].soft_limit.reset();
  random_ops_match_full_resolution({p});
}

// Policy reloads in between: trees removed, added, moved to another path and renumbered;
// placements and every bucket's sums must still match a full resolution.
TEST(HandleCache, RandomOpsWithPolicyChangesMatchFullResolution) {
  Policy p = make_policy();
  p.trees[0].soft_limit.reset();
  Policy fewer = p;  // b removed: a and nested renumbered
  fewer.trees.erase(fewer.trees.begin() + 1);
  Policy more = p;  // a new tree below an old one, and one at a name that is a tree elsewhere
  more.trees.push_back(p.trees[0]);
  more.trees.back().name = "x-in-a";
  more.trees.back().components = {"vol-a", "x"};
  more.trees.back().path = "vol-a/x";
  more.trees.push_back(p.trees[0]);
  more.trees.back().name = "y";
  more.trees.back().components = {"y"};
  more.trees.back().path = "y";
  Policy moved = p;  // a's path changes; order reversed
  moved.trees[0].components = {"inner"};
  moved.trees[0].path = "inner";
  std::reverse(moved.trees.begin(), moved.trees.end());
  random_ops_match_full_resolution({p, fewer, more, moved});
}

// A reload by hand: kept trees keep their usage, a lowered limit flips the tree, a removed
// nested tree's files go to the tree around it, a new tree takes the files the cache
// already knows below its path, and a removed tree's handles leave the cache (and with them
// its memory).
TEST(Accounting, SetPolicyKeepsMovesAndForgets) {
  Policy p = make_policy();
  std::vector<std::pair<int, bool>> flips;
  Accounting acct(p, 1000, {[&](int t, bool over, Timestamp) { flips.push_back({t, over}); }, nullptr});
  acct.cache().track_changes(true);  // as the agent does: touched() must stay valid through compact()
  Msgs m;
  build_tree(acct, m);
  acct.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG, 400));
  acct.on_message(m.create(NFS3_CREATE, kB, "g", fh(11), NF3REG, 500));
  for (uint8_t i = 0; i < 20; i++)
    acct.on_message(m.create(NFS3_CREATE, kInner, "n" + std::to_string(i), fh(uint8_t(40 + i)), NF3REG, 10));
  acct.on_message(m.create(NFS3_CREATE, kOut, "h", fh(12), NF3REG, 700));
  ASSERT_EQ(acct.trees()[0].usage, 400u);
  ASSERT_EQ(acct.trees()[2].usage, 200u);
  uint64_t handles = acct.cache().stats().handles;

  // nested removed; a's limit lowered below its usage; `other` becomes a tree
  Policy next = p;
  next.trees.erase(next.trees.begin() + 2);
  next.trees[0].limit = 300;
  TreePolicy other = next.trees[1];
  other.name = "other";
  other.path = "other";
  other.components = {"other"};
  other.limit = 600;
  next.trees.insert(next.trees.begin(), other);  // renumbered: other 0, a 1, b 2
  auto renumber = acct.set_policy(next);
  EXPECT_EQ(renumber, (std::vector<int>{1, 2, HandleCache::kNoTree}));
  ASSERT_EQ(acct.trees().size(), 3u);
  EXPECT_EQ(acct.trees()[1].usage, 400u);  // a, kept
  EXPECT_TRUE(acct.trees()[1].over);
  EXPECT_EQ(acct.trees()[2].usage, 700u);  // b, with what was nested
  EXPECT_EQ(acct.trees()[2].files, 21u);
  EXPECT_EQ(acct.tree_of(fh(40)), 2);
  EXPECT_EQ(acct.trees()[0].usage, 700u);  // other: what the cache knew
  EXPECT_TRUE(acct.trees()[0].over);
  EXPECT_EQ(acct.usage_outside_trees(), 0u);
  EXPECT_EQ(acct.tree_of(fh(12)), 0);
  EXPECT_EQ(acct.cache().stats().handles, handles);
  EXPECT_EQ(flips, (std::vector<std::pair<int, bool>>{{0, true}, {1, true}}));
  // New WRITEs are counted in the new numbering.
  acct.on_message(m.write(fh(11), 900, 900));
  EXPECT_EQ(acct.trees()[2].usage, 1100u);
  // And back: `other` is no tree any more: its directory and file are forgotten.
  flips.clear();
  acct.set_policy(p);
  EXPECT_EQ(acct.trees()[0].usage, 400u);
  EXPECT_FALSE(acct.trees()[0].over);
  EXPECT_EQ(acct.trees()[1].usage, 900u);
  EXPECT_EQ(acct.trees()[2].usage, 200u);
  EXPECT_EQ(acct.usage_outside_trees(), 0u);
  EXPECT_EQ(acct.tree_of(fh(12)), HandleCache::kUnknown);
  EXPECT_EQ(acct.tree_of(kOut), HandleCache::kUnknown);
  EXPECT_EQ(acct.cache().stats().handles, handles - 2);
  EXPECT_EQ(flips, (std::vector<std::pair<int, bool>>{{0, false}}));
  size_t nodes = 0;
  acct.cache().for_each([&](HandleCache::Id id, HandleCache::Node&) { nodes = std::max<size_t>(nodes, id + 1); });
  for (HandleCache::Id id : acct.cache().touched()) EXPECT_LT(id, nodes) << "a touched id past the node table";
  acct.cache().clear_touched();
}

// Two nodes, each with its own accounting (its own traffic), sharing per-file records
// through a stand-in for etcd (compare-and-swap on a key's revision, every write seen by
// both): a file both write is counted once, a file one writes and the other removes leaves
// the tree for both.
namespace {
struct FakeEtcd {
  struct Kv {
    SharedRecord r;
    int64_t rev;
  };
  std::map<std::string, Kv> kv;
  int64_t rev = 1;
  std::vector<SharedUsage*> watchers;
  void publish(SharedUsage& su) {
    for (auto& p : su.to_publish(100)) {
      auto it = kv.find(p.fh);
      int64_t cur = it == kv.end() ? 0 : it->second.rev;
      if (cur != p.expect_revision) {  // the txn's failure branch: read it back
        su.remote(p.fh, it->second.r, cur);
        continue;
      }
      kv[p.fh] = Kv{p.record, ++rev};
      for (SharedUsage* w : watchers) w->remote(p.fh, p.record, rev);
    }
  }
};
}  // namespace

TEST(Accounting, FileReportsShareUsageAcrossNodes) {
  Policy p = make_policy();
  SharedUsage su_a({"vol-a", "vol-b", "inner"}, "a"), su_b({"vol-a", "vol-b", "inner"}, "b");
  auto hook = [](SharedUsage& su) {
    Accounting::Events ev;
    ev.on_file = [&su](const std::string& fh, int tree, uint64_t bytes, uint64_t ctime, bool gone) {
      su.local(fh, tree, bytes, ctime, gone);
    };
    return ev;
  };
  Accounting a(p, 1000, hook(su_a)), b(p, 1000, hook(su_b));
  FakeEtcd etcd;
  etcd.watchers = {&su_a, &su_b};
  Msgs m;
  build_tree(a, m);
  build_tree(b, m);
  auto write = [&](Accounting& acct, const Bytes& f, uint64_t used, uint64_t ctime) {
    RpcMessage r = m.write(f, used, used);
    r.fields.attr->ctime_ns = ctime;
    acct.on_message(r);
  };
  // Node a creates f and writes 400 bytes; node b (which learns f by a LOOKUP) writes on to 700.
  a.on_message(m.create(NFS3_CREATE, kA, "f", fh(10), NF3REG));
  write(a, fh(10), 400, 100);
  b.on_message(m.create(NFS3_LOOKUP, kA, "f", fh(10), NF3REG, 400));
  write(b, fh(10), 700, 200);
  etcd.publish(su_b);
  etcd.publish(su_a);  // a's 400 is older than b's 700: a drops it, nothing published
  EXPECT_EQ(su_a.usage(0), 700u);
  EXPECT_EQ(su_b.usage(0), 700u);
  EXPECT_EQ(a.trees()[0].usage, 400u);  // each node's own view stays its own
  EXPECT_EQ(etcd.kv.size(), 1u);
  // A second file only node a knows of.
  a.on_message(m.create(NFS3_CREATE, kA, "g", fh(11), NF3REG));
  write(a, fh(11), 50, 300);
  etcd.publish(su_a);
  EXPECT_EQ(su_b.usage(0), 750u);
  // Node b removes f (written by both): it leaves the tree on both nodes.
  b.on_message(m.remove(kA, "f"));
  etcd.publish(su_b);
  EXPECT_EQ(su_a.usage(0), 50u);
  EXPECT_EQ(su_b.usage(0), 50u);
  // Node a's late reply about f (built before the REMOVE) does not bring it back.
  write(a, fh(10), 800, 250);
  etcd.publish(su_a);
  EXPECT_EQ(su_a.usage(0), 50u);
  EXPECT_EQ(su_b.usage(0), 50u);
  // A rename by node a into vol-b moves g for both.
  a.on_message(m.rename(kA, "g", kB, "g"));
  etcd.publish(su_a);
  EXPECT_EQ(su_b.usage(0), 0u);
  EXPECT_EQ(su_b.usage(1), 50u);
}
