#include <gtest/gtest.h>

#include "nfs/policy.h"

using namespace nfsfence;

TEST(PolicySize, Units) {
  EXPECT_EQ(*parse_size("50Gi"), 50ull << 30);
  EXPECT_EQ(*parse_size("500M"), 500000000ull);
  EXPECT_EQ(*parse_size("1.5Ki"), 1536ull);
  EXPECT_EQ(*parse_size("1048576"), 1048576ull);
  EXPECT_EQ(*parse_size("2Ti"), 2ull << 40);
  EXPECT_EQ(*parse_size("10KB"), 10000ull);
  EXPECT_EQ(*parse_size("3MiB"), 3ull << 20);
  EXPECT_FALSE(parse_size("50Gx"));
  EXPECT_FALSE(parse_size("Gi"));
  EXPECT_FALSE(parse_size("-5M"));
  EXPECT_FALSE(parse_size("1.2.3M"));
  EXPECT_NE(parse_size("50Gx").error().message.find("50Gi"), std::string::npos);
}

TEST(PolicySize, Format) {
  EXPECT_EQ(format_size(50ull << 30), "50Gi");
  EXPECT_EQ(format_size(1536), "1.50Ki");
  EXPECT_EQ(format_size(999), "999");
}

TEST(Policy, ParsesEverything) {
  auto p = parse_policy(R"(
export: /srv/nfs/export/
server: 10.99.0.2
accounting: size
root_fh: "01AB02"
trees:
  - name: vol-a
    path: vol-a/
    limit: 50Gi
    soft_limit: 40Gi
  - {name: deep, path: ./x/y/z, limit: 1M}
)",
                        "p.yaml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->export_path, "/srv/nfs/export");
  EXPECT_EQ(*p->server, "10.99.0.2");
  EXPECT_EQ(p->accounting, AccountingMode::Size);
  EXPECT_EQ(*p->root_fh, (Bytes{0x01, 0xab, 0x02}));
  ASSERT_EQ(p->trees.size(), 2u);
  EXPECT_EQ(p->trees[0].path, "vol-a");
  EXPECT_EQ(p->trees[0].limit, 50ull << 30);
  EXPECT_EQ(*p->trees[0].soft_limit, 40ull << 30);
  EXPECT_EQ(p->trees[1].path, "x/y/z");
  EXPECT_EQ(p->trees[1].components, (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_FALSE(p->trees[1].soft_limit);
}

struct BadPolicy {
  const char* text;
  const char* expect;  // substring of the one-line error
};

class PolicyErrors : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(PolicyErrors, OneLineNamingKeyAndLine) {
  auto p = parse_policy(GetParam().text, "p.yaml");
  ASSERT_FALSE(p);
  const std::string& m = p.error().message;
  EXPECT_NE(m.find(GetParam().expect), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_EQ(m.rfind("p.yaml:", 0), 0u) << m;
}

INSTANTIATE_TEST_SUITE_P(
    All, PolicyErrors,
    ::testing::Values(
        BadPolicy{"trees: [{name: a, path: a, limit: 1M}]\n", "export: missing"},
        BadPolicy{"export: /e\n", "trees: missing"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 50Gx\n", "p.yaml:5: trees[0].limit: '50Gx' is not a size"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: /abs\n    limit: 1M\n", "p.yaml:4: trees[0].path"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: ../up\n    limit: 1M\n", "'..'"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 1M\n    limt: 2M\n", "p.yaml:6: trees[0].limt: unknown key"},
        BadPolicy{"export: /e\nexpor: /x\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml:2: expor: unknown key"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: a, path: b, limit: 1M}]\n", "is used by another tree"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: b, path: a/, limit: 1M}]\n", "is used by another tree"},
        BadPolicy{"export: /e\naccounting: blocks\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml:2: accounting: 'blocks' is not one of"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M, soft_limit: 2M}]\n", "soft_limit: is larger than limit"},
        BadPolicy{"export: /e\nroot_fh: xyz\ntrees: [{name: a, path: a, limit: 1M}]\n", "root_fh"},
        BadPolicy{"export: relative\ntrees: [{name: a, path: a, limit: 1M}]\n", "must be an absolute path"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}\n", "p.yaml:"},
        BadPolicy{"export: /e\ntrees: []\n", "non-empty list"},
        BadPolicy{"- just\n- a list\n", "must be a YAML mapping"}));

TEST(Policy, MissingFile) {
  auto p = load_policy("/nonexistent/policy.yaml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("/nonexistent/policy.yaml"), std::string::npos);
}
