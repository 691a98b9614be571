#include "nfs/shared_usage.h"

#include <gtest/gtest.h>

using namespace nfsfence;

namespace {
SharedRecord rec(const std::string& tree, uint64_t bytes, uint64_t ctime, bool gone = false) {
  SharedRecord r;
  r.tree = tree;
  r.bytes = bytes;
  r.ctime_ns = ctime;
  r.gone = gone;
  r.node = "other";
  return r;
}
}  // namespace

TEST(SharedRecord, RoundTripsAndRejectsForeignValues) {
  SharedRecord r = rec("vol-a", 123, 1700000000123456789ull);
  auto back = decode_record(encode_record(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  EXPECT_EQ(back->node, "other");
  SharedRecord t = rec("vol-a", 0, 5, true);
  EXPECT_EQ(encode_record(t), R"({"b":0,"c":5,"g":true,"n":"other","t":"vol-a"})");
  EXPECT_TRUE(decode_record(encode_record(t))->gone);
  for (const char* bad : {"", "[]", "{}", R"({"t":1,"b":2,"c":3})", R"({"t":"a","b":-2,"c":3})",
                          R"({"t":"a","b":2,"c":3,"g":"yes"})", "{\"t\":\"a\",\"b\":2,"})
    EXPECT_FALSE(decode_record(bad)) << bad;
}

TEST(SharedUsage, OneFileTwoReportersCountsOnceNewestCtimeWins) {
  SharedUsage su({"vol-a", "vol-b"}, "me");
  su.local("fh1", 0, 100, 10, false);
  EXPECT_EQ(su.usage(0), 100u);
  EXPECT_EQ(su.confirmed(0), 0u);
  EXPECT_EQ(su.unconfirmed_growth(0), 100u);
  ASSERT_EQ(su.pending(), 1u);
  auto pub = su.to_publish(10);
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(pub[0].expect_revision, 0);  // the key must not exist yet
  EXPECT_EQ(pub[0].record.node, "me");
  // Another node's newer report of the same file: it replaces ours, not added to it.
  su.remote("fh1", rec("vol-a", 300, 20), 7);
  EXPECT_EQ(su.usage(0), 300u);
  EXPECT_EQ(su.confirmed(0), 300u);
  EXPECT_EQ(su.unconfirmed_growth(0), 0u);
  EXPECT_EQ(su.pending(), 0u);
  // Our older report arriving late (a reply we read after theirs) changes nothing.
  su.local("fh1", 0, 200, 15, false);
  EXPECT_EQ(su.usage(0), 300u);
  EXPECT_EQ(su.pending(), 0u);
  // Our newer one wins and is to be published against revision 7.
  su.local("fh1", 0, 400, 30, false);
  EXPECT_EQ(su.usage(0), 400u);
  EXPECT_EQ(su.unconfirmed_growth(0), 100u);
  pub = su.to_publish(10);
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(pub[0].expect_revision, 7);
  // Published (our txn's revision): confirmed, nothing pending.
  su.remote("fh1", pub[0].record, 9);
  EXPECT_EQ(su.confirmed(0), 400u);
  EXPECT_EQ(su.pending(), 0u);
  // A watch event older than what is known is ignored.
  su.remote("fh1", rec("vol-a", 300, 20), 7);
  EXPECT_EQ(su.usage(0), 400u);
  EXPECT_EQ(su.files(), 1u);
}

TEST(SharedUsage, RemovalLeavesEveryTreeAndTombstoneWins) {
  SharedUsage su({"vol-a"}, "me");
  su.remote("fh1", rec("vol-a", 500, 10), 3);  // another node wrote it
  EXPECT_EQ(su.usage(0), 500u);
  su.local("fh1", 0, 0, 10, true);  // we removed it
  EXPECT_EQ(su.usage(0), 0u);
  EXPECT_EQ(su.confirmed(0), 500u);
  EXPECT_EQ(su.unconfirmed_growth(0), 0u);  // a removal is no growth
  auto pub = su.to_publish(10);
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_TRUE(pub[0].record.gone);
  EXPECT_EQ(pub[0].expect_revision, 3);
  su.remote("fh1", pub[0].record, 4);
  EXPECT_EQ(su.confirmed(0), 0u);
  // A late report of the removed file, even with a newer ctime, does not bring it back.
  su.local("fh1", 0, 700, 100, false);
  EXPECT_EQ(su.usage(0), 0u);
  EXPECT_EQ(su.pending(), 0u);
  // The tombstone expires (a delete event): the entry goes.
  su.remote("fh1", std::nullopt, 8);
  EXPECT_EQ(su.files(), 0u);
}

TEST(SharedUsage, MovesBetweenTreesAndOutOfThem) {
  SharedUsage su({"vol-a", "vol-b"}, "me");
  su.local("outside", -1, 50, 1, false);  // never in a tree: nothing to share
  EXPECT_EQ(su.files(), 0u);
  su.remote("fh1", rec("vol-a", 100, 10), 2);
  su.local("fh1", 1, 100, 10, false);  // renamed into vol-b (same ctime)
  EXPECT_EQ(su.usage(0), 0u);
  EXPECT_EQ(su.usage(1), 100u);
  EXPECT_EQ(su.unconfirmed_growth(1), 100u);  // vol-b grew by it until etcd says so
  su.local("fh1", -1, 100, 11, false);        // moved out of every tree
  EXPECT_EQ(su.usage(1), 0u);
  auto pub = su.to_publish(10);
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(pub[0].record.tree, "");
  // A record of a tree this policy lacks counts nowhere; a reload that adds it counts it.
  su.remote("fh2", rec("vol-c", 70, 1), 3);
  EXPECT_EQ(su.usage(0) + su.usage(1), 0u);
  su.set_trees({"vol-c", "vol-a", "vol-b"});
  EXPECT_EQ(su.usage(0), 70u);
  EXPECT_EQ(su.confirmed(1), 100u);  // fh1 in etcd: still vol-a's
  EXPECT_EQ(su.usage(1), 0u);        // but here it is outside now
}

TEST(SharedUsage, RoomIsAShareLessUnconfirmedGrowth) {
  SharedUsage su({"vol-a", "vol-b"}, "me");
  const uint64_t limit = 1000, chunk = 1u << 30;
  su.set_nodes({"me", "n1", "n2", "n3"});
  su.set_active_window(5000);
  su.set_clock(10000);
  su.remote("a", rec("vol-a", 200, 1), 2);  // rec(): node "other", which holds no lease
  EXPECT_EQ(su.writers(0), 1u);
  EXPECT_EQ(su.room(0, limit, chunk), 800u);  // alone: all the room
  auto by = [](SharedRecord r, const char* node) {
    r.node = node;
    return r;
  };
  su.remote("x1", by(rec("vol-a", 0, 1), "n1"), 3);  // three live nodes write vol-a
  su.remote("x2", by(rec("vol-a", 0, 1), "n2"), 4);
  su.remote("x3", by(rec("vol-a", 0, 1), "n3"), 5);
  su.remote("y", by(rec("vol-b", 0, 1), "n1"), 6);
  EXPECT_EQ(su.writers(0), 4u);
  EXPECT_EQ(su.writers(1), 2u);
  EXPECT_EQ(su.room(0, limit, chunk), 200u);  // (1000 - 200) / 4
  EXPECT_EQ(su.room(0, limit, 100), 100u);    // capped by room_chunk
  su.local("b", 0, 150, 1, false);            // our growth, not yet in etcd
  EXPECT_EQ(su.room(0, limit, chunk), 50u);
  su.local("b", 0, 250, 2, false);
  EXPECT_EQ(su.room(0, limit, chunk), 0u);  // used up: refused until renewed
  su.remote("b", su.to_publish(1)[0].record, 7);
  EXPECT_EQ(su.room(0, limit, chunk), 137u);  // renewed: (1000 - 450) / 4
  su.set_nodes({"me", "n1"});                 // n2's and n3's leases expired
  EXPECT_EQ(su.room(0, limit, chunk), 275u);  // / 2
  su.set_clock(16000);                        // n1 silent for more than the window
  EXPECT_EQ(su.writers(0), 1u);
  EXPECT_EQ(su.room(0, limit, chunk), 550u);
  su.remote("c", rec("vol-a", 900, 1), 8);
  EXPECT_EQ(su.room(0, limit, chunk), 0u);  // over: no room
  EXPECT_EQ(su.usage(0), 1350u);
}

TEST(SharedUsage, ReconnectRepublishesWhatEtcdLacks) {
  SharedUsage su({"vol-a"}, "me");
  su.local("a", 0, 100, 1, false);
  su.remote("a", su.to_publish(1)[0].record, 5);
  EXPECT_EQ(su.pending(), 0u);
  su.local("b", 0, 40, 1, false);  // written while etcd was away
  su.clear_remote();               // reconnect: etcd's state is read again
  EXPECT_EQ(su.usage(0), 40u);     // (our settled report of "a" was etcd's: gone with it)
  su.remote("a", rec("vol-a", 100, 1), 5);
  EXPECT_EQ(su.usage(0), 140u);
  auto pub = su.to_publish(10);
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(pub[0].fh, "b");
}
