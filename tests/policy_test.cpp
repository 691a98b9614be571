#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "nfs/policy.h"
#include "test_util.h"

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

TEST(Policy, Cluster) {
  std::string dir = test::temp_dir();
  for (const char* f : {"ca.pem", "node.pem", "node-key.pem"}) test::write_file(f, ByteView());
  std::string text =
      "export: /e\ntrees: [{name: a, path: a, limit: 1M}]\ncluster:\n"
      "  etcd: [https://10.0.0.5:2379/, 'http://[fd00::5]:2379']\n  prefix: /nfsfence/e1/\n"
      "  ca: ca.pem\n  cert: node.pem\n  key: " +
      dir +
      "/node-key.pem\n"
      "  room_chunk: 8Mi\n  flush_ms: 50\n  lease_ttl: 5\n";
  auto p = parse_policy(text, dir + "/p.yaml");
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_TRUE(p->cluster);
  EXPECT_EQ(p->cluster->etcd, (std::vector<std::string>{"https://10.0.0.5:2379", "http://[fd00::5]:2379"}));
  EXPECT_EQ(p->cluster->prefix, "/nfsfence/e1");
  EXPECT_EQ(p->cluster->ca, dir + "/ca.pem");  // relative to the policy file
  EXPECT_EQ(p->cluster->cert, dir + "/node.pem");
  EXPECT_EQ(p->cluster->key, dir + "/node-key.pem");
  EXPECT_EQ(p->cluster->room_chunk, 8u << 20);
  EXPECT_EQ(p->cluster->flush_ms, 50u);
  EXPECT_EQ(p->cluster->lease_ttl_s, 5u);
  auto d = parse_policy(
      "export: /e\ntrees: [{name: a, path: a, limit: 1M}]\ncluster: {etcd: http://e:2379, prefix: /p}\n", "p.yaml");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->cluster->room_chunk, 64u << 20);  // defaults
  EXPECT_EQ(d->cluster->flush_ms, 100u);
  EXPECT_EQ(d->cluster->lease_ttl_s, 3u);
  EXPECT_FALSE(parse_policy("export: /e\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml")->cluster);
  // cert without key
  auto e = parse_policy(
      "export: /e\ntrees: [{name: a, path: a, limit: 1M}]\ncluster: {etcd: http://e:2379, prefix: /p, cert: " + dir +
          "/node.pem}\n",
      "p.yaml");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message,
            "p.yaml:3: cluster.key: cert and key go together (a TLS client certificate and its key)");
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
fsstat: pass
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
  EXPECT_EQ(p->fsstat, FsstatMode::Pass);
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
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 50Gx\n",
                  "p.yaml:5: trees[0].limit: '50Gx' is not a size"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: /abs\n    limit: 1M\n", "p.yaml:4: trees[0].path"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: ../up\n    limit: 1M\n", "'..'"},
        BadPolicy{"export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 1M\n    limt: 2M\n",
                  "p.yaml:6: trees[0].limt: unknown key"},
        BadPolicy{"export: /e\nexpor: /x\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml:2: expor: unknown key"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: a, path: b, limit: 1M}]\n",
                  "is used by another tree"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: b, path: a/, limit: 1M}]\n",
                  "is used by another tree"},
        BadPolicy{"export: /e\naccounting: blocks\ntrees: [{name: a, path: a, limit: 1M}]\n",
                  "p.yaml:2: accounting: 'blocks' is not one of"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M, soft_limit: 2M}]\n",
                  "soft_limit: is larger than limit"},
        BadPolicy{"export: /e\nroot_fh: xyz\ntrees: [{name: a, path: a, limit: 1M}]\n", "root_fh"},
        BadPolicy{"export: relative\ntrees: [{name: a, path: a, limit: 1M}]\n", "must be an absolute path"},
        BadPolicy{"export: /e\ntrees: [{name: a, path: a, limit: 1M}\n", "p.yaml:"},
        BadPolicy{"export: /e\ntrees: []\n", "non-empty list"},
        BadPolicy{"- just\n- a list\n", "must be a YAML mapping"}));

TEST(Policy, FsstatDefaultsToRewrite) {
  auto p = parse_policy("export: /e\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->fsstat, FsstatMode::Rewrite);
  p = parse_policy("export: /e\nfsstat: rewrite\ntrees: [{name: a, path: a, limit: 1M}]\n", "p.yaml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->fsstat, FsstatMode::Rewrite);
}

TEST(Policy, MissingFile) {
  auto p = load_policy("/nonexistent/policy.yaml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("/nonexistent/policy.yaml"), std::string::npos);
}

// --- sizes are exact integers

TEST(PolicySize, Exact) {
  EXPECT_EQ(*parse_size("9007199254740993"), 9007199254740993ull);  // 2^53+1: a double says ...992
  EXPECT_EQ(*parse_size("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(*parse_size("000000000000000000000000042"), 42ull);
  EXPECT_EQ(*parse_size("1.5Ti"), 3ull << 39);
  EXPECT_EQ(*parse_size("1.9999999999999999999Ki"), 2047ull);  // rounded down, never up to 2Ki
  EXPECT_EQ(*parse_size("0.0001K"), 0ull);
  EXPECT_EQ(*parse_size("0.001K"), 1ull);
  EXPECT_EQ(*parse_size("16383.999999Pi"), 18446744072583651709ull);
  EXPECT_EQ(*parse_size("16383.9999999999999999999999Pi"), UINT64_MAX);  // floor just fits
  EXPECT_EQ(*parse_size("8191Pi"), 8191ull << 50);
  EXPECT_EQ(*parse_size("12.345678901234567890123456789M"), 12345678ull);
  EXPECT_EQ(*parse_size("5 GiB"), 5ull << 30);
  EXPECT_EQ(*parse_size("0"), 0ull);
}

TEST(PolicySize, Errors) {
  auto msg = [](std::string_view s) { return parse_size(s).error().message; };
  const std::string use = " is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)";
  for (const char* s :
       {"", "-5M", "+5M", " 5M", "5 ", ".5Ki", "5.Ki", "1.2.3M", "50Gx", "Gi", "1e9", "0x10", "5KiBB", "5ki"})
    EXPECT_EQ(msg(s), "'" + std::string(s) + "'" + use);
  EXPECT_EQ(msg("18446744073709551616"), "'18446744073709551616' is too large (over 2^64-1 bytes)");
  EXPECT_EQ(msg("99999999999999999999999999999"), "'99999999999999999999999999999' is too large (over 2^64-1 bytes)");
  EXPECT_EQ(msg("16384Pi"), "'16384Pi' is too large (over 2^64-1 bytes)");
  EXPECT_EQ(msg("1.5"), "'1.5' is a fraction of a byte (a decimal needs a unit, e.g. 1.5Ki)");
  EXPECT_EQ(msg("1.5B"), "'1.5B' is a fraction of a byte (a decimal needs a unit, e.g. 1.5Ki)");
  EXPECT_EQ(msg(std::string_view("5\0M", 3)), "'5\\x00M'" + use);
  EXPECT_EQ(msg("5\nM"), "'5\\x0aM'" + use);
}

// --- every one-line error docs/policy.md lists, with its exact text

struct DocumentedError {
  const char* name;
  std::string text;
  const char* expect;  // the whole message
};

void PrintTo(const DocumentedError& e, std::ostream* os) { *os << e.name; }

class PolicyDocumentedErrors : public ::testing::TestWithParam<DocumentedError> {};

TEST_P(PolicyDocumentedErrors, ExactMessage) {
  auto p = parse_policy(GetParam().text, "p.yaml");
  ASSERT_FALSE(p) << "accepted:\n" << GetParam().text;
  EXPECT_EQ(p.error().message, GetParam().expect);
}

const std::string kTree = "trees: [{name: a, path: a, limit: 1M}]\n";

INSTANTIATE_TEST_SUITE_P(
    Policy, PolicyDocumentedErrors,
    ::testing::Values(
        // the document
        DocumentedError{"YamlSyntax", "export: /e\ntrees: [{name: a, path: a, limit: 1M}\n",
                        "p.yaml:3: end of sequence flow not found"},
        DocumentedError{"UndefinedAlias", "export: /e\ntrees: [{name: *n, path: a, limit: 1M}]\n",
                        "p.yaml:2: the referenced anchor is not defined"},
        DocumentedError{"NestedTooDeeply",
                        "export: " + std::string(10000, '[') + std::string(10000, ']') + "\n" + kTree,
                        "p.yaml:1: lists and mappings nested too deeply"},
        DocumentedError{"Empty", "", "p.yaml: policy: is empty (expected a YAML mapping with keys export, trees, ...)"},
        DocumentedError{"OnlyComments", "# export: /e\n\n",
                        "p.yaml: policy: is empty (expected a YAML mapping with keys export, trees, ...)"},
        DocumentedError{"SecondDocument", "export: /e\n" + kTree + "---\nexport: /x\n" + kTree,
                        "p.yaml:3: a policy is one YAML document; found a second one"},
        DocumentedError{"ThirdDocument",
                        "export: /e\n" + kTree + "---\nexport: /x\n" + kTree + "---\nexport: /y\n" + kTree,
                        "p.yaml:3: a policy is one YAML document; found a second one"},
        DocumentedError{"StrayComma", ",\n", "p.yaml:1: not valid YAML"},
        DocumentedError{"StrayCommaAfterDocument", "{export: /e, " + kTree.substr(0, kTree.size() - 1) + "}\n\n,\n",
                        "p.yaml:3: not valid YAML"},
        DocumentedError{"SecondEmptyDocument", "---\nexport: /e\n" + kTree + "...\n--- # more\n",
                        "p.yaml:5: a policy is one YAML document; found a second one"},
        DocumentedError{"NotAMapping", "- just\n- a list\n",
                        "p.yaml:1: policy: must be a YAML mapping with keys export, trees, ..."},
        // keys
        DocumentedError{"KeyIsAList", "export: /e\n? [a]\n: 1\n",
                        "p.yaml:2: policy: keys must be plain names (found a list)"},
        DocumentedError{"TreeKeyIsAMapping", "export: /e\ntrees:\n  - {name: a, path: a, limit: 1M, ? {x: 1} : 2}\n",
                        "p.yaml:3: trees[0]: keys must be plain names (found a mapping)"},
        DocumentedError{"EmptyKey", "export: /e\n: 1\n",
                        "p.yaml:2: policy: keys must be plain names (found an empty key)"},
        DocumentedError{"UnknownKey", "export: /e\nexpor: /x\n" + kTree,
                        "p.yaml:2: expor: unknown key (expected one of: export, server, accounting, root_fh, fsstat, "
                        "trees, cluster)"},
        DocumentedError{"UnknownTreeKey",
                        "export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 1M\n    soft_limt: 1K\n",
                        "p.yaml:6: trees[0].soft_limt: unknown key (expected one of: name, path, limit, soft_limit)"},
        DocumentedError{
            "UnknownKeyEscaped", "export: /e\n\"ex\\nport\": /x\n",
            "p.yaml:2: ex\\x0aport: unknown key (expected one of: export, server, accounting, root_fh, fsstat, trees, "
            "cluster)"},
        DocumentedError{"TreeKeyGivenTwice", "export: /e\ntrees:\n  - {name: a, path: a, limit: 2Mi, limit: 50Gi}\n",
                        "p.yaml:3: trees[0].limit: given twice (first at line 3)"},
        DocumentedError{"TopKeyGivenTwice", "export: /e\n" + kTree + "trees: [{name: b, path: b, limit: 1M}]\n",
                        "p.yaml:3: trees: given twice (first at line 2)"},
        DocumentedError{"QuotedKeyGivenTwice", "export: /e\n\"export\": /x\n" + kTree,
                        "p.yaml:2: export: given twice (first at line 1)"},
        DocumentedError{"NoValue", "export:\n" + kTree, "p.yaml:1: export: has no value"},
        DocumentedError{"TreeNoValue", "export: /e\ntrees:\n  - name: a\n    path:\n    limit: 1M\n",
                        "p.yaml:4: trees[0].path: has no value"},
        DocumentedError{"NotASingleValue", "export: [/a, /b]\n" + kTree, "p.yaml:1: export: must be a single value"},
        // cluster
        DocumentedError{"ClusterNotAMapping", "export: /e\n" + kTree + "cluster: http://e:2379\n",
                        "p.yaml:3: cluster: must be a mapping with etcd and prefix"},
        DocumentedError{"ClusterUnknownKey",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: /p, ttl: 3}\n",
                        "p.yaml:3: cluster.ttl: unknown key (expected one of: etcd, prefix, ca, cert, key, room_chunk, "
                        "flush_ms, lease_ttl)"},
        DocumentedError{"ClusterNoPrefix", "export: /e\n" + kTree + "cluster: {etcd: http://e:2379}\n",
                        "p.yaml:3: cluster.prefix: missing"},
        DocumentedError{"ClusterEtcdEmpty", "export: /e\n" + kTree + "cluster: {etcd: [], prefix: /p}\n",
                        "p.yaml:3: cluster.etcd: must be a URL or a non-empty list of URLs (http://ADDR:2379)"},
        DocumentedError{"ClusterEtcdNested", "export: /e\n" + kTree + "cluster: {etcd: [[a]], prefix: /p}\n",
                        "p.yaml:3: cluster.etcd: must be a list of URLs"},
        DocumentedError{"ClusterEtcdNotUrl", "export: /e\n" + kTree + "cluster: {etcd: [10.0.0.5:2379], prefix: /p}\n",
                        "p.yaml:3: cluster.etcd: '10.0.0.5:2379' is not an http:// or https:// URL"},
        DocumentedError{"ClusterEtcdNoHost", "export: /e\n" + kTree + "cluster: {etcd: 'https://', prefix: /p}\n",
                        "p.yaml:3: cluster.etcd: 'https://' has no host"},
        DocumentedError{"ClusterEtcdPath", "export: /e\n" + kTree + "cluster: {etcd: 'http://e:2379/v3', prefix: /p}\n",
                        "p.yaml:3: cluster.etcd: 'http://e:2379/v3' has a path: give scheme, host and port only"},
        DocumentedError{"ClusterPrefixRelative",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: nfsf}\n",
                        "p.yaml:3: cluster.prefix: 'nfsf' must be an absolute key prefix, e.g. /nfsfence/export-1"},
        DocumentedError{"ClusterPrefixControl",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: \"/a\\tb\"}\n",
                        "p.yaml:3: cluster.prefix: '/a\\x09b' contains a control character"},
        DocumentedError{
            "ClusterCaMissing",
            "export: /e\n" + kTree + "cluster: {etcd: https://e:2379, prefix: /p, ca: /nonexistent/ca.pem}\n",
            "p.yaml:3: cluster.ca: '/nonexistent/ca.pem' is not a readable file"},
        DocumentedError{"ClusterCertWithoutKey",
                        "export: /e\n" + kTree + "cluster: {etcd: https://e:2379, prefix: /p, cert: /dev/null}\n",
                        "p.yaml:3: cluster.cert: '/dev/null' is not a readable file"},
        DocumentedError{"ClusterRoomChunkZero",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: /p, room_chunk: 0}\n",
                        "p.yaml:3: cluster.room_chunk: must be more than 0 (no node could write)"},
        DocumentedError{"ClusterRoomChunkNotSize",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: /p, room_chunk: lots}\n",
                        "p.yaml:3: cluster.room_chunk: 'lots' is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of "
                        "bytes)"},
        DocumentedError{"ClusterFlushRange",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: /p, flush_ms: 0}\n",
                        "p.yaml:3: cluster.flush_ms: '0' must be a whole number from 1 to 10000"},
        DocumentedError{"ClusterTtlRange",
                        "export: /e\n" + kTree + "cluster: {etcd: http://e:2379, prefix: /p, lease_ttl: 1.5}\n",
                        "p.yaml:3: cluster.lease_ttl: '1.5' must be a whole number from 2 to 600"},
        // export, server, accounting, root_fh
        DocumentedError{"ExportMissing", kTree,
                        "p.yaml:1: export: missing (the export path as the client mounts it, e.g. /srv/nfs)"},
        DocumentedError{"ExportRelative", "export: srv/nfs\n" + kTree,
                        "p.yaml:1: export: 'srv/nfs' must be an absolute path"},
        DocumentedError{
            "ServerWithPort", "export: /e\nserver: 10.99.0.2:2049\n" + kTree,
            "p.yaml:2: server: '10.99.0.2:2049' has a port; give only the address or host name, e.g. 10.99.0.2 "
            "(a port is not part of server: ports come from the traffic)"},
        DocumentedError{
            "ServerUrl", "export: /e\nserver: nfs://10.99.0.2/e\n" + kTree,
            "p.yaml:2: server: 'nfs://10.99.0.2/e' is a URL; give only the address or host name, e.g. 10.99.0.2 "
            "(a port is not part of server: ports come from the traffic)"},
        DocumentedError{
            "ServerBrackets", "export: /e\nserver: '[fe80::1]:2049'\n" + kTree,
            "p.yaml:2: server: '[fe80::1]:2049' is in brackets; give only the address or host name, e.g. 10.99.0.2 "
            "(a port is not part of server: ports come from the traffic)"},
        DocumentedError{"ServerBadIpv6", "export: /e\nserver: 'fe80::1::2'\n" + kTree,
                        "p.yaml:2: server: 'fe80::1::2' is not a valid IPv6 address"},
        DocumentedError{"ServerBadIpv4", "export: /e\nserver: 10.99.0.256\n" + kTree,
                        "p.yaml:2: server: '10.99.0.256' is not a valid IPv4 address"},
        DocumentedError{"ServerNotAHostName", "export: /e\nserver: nfs_server\n" + kTree,
                        "p.yaml:2: server: 'nfs_server' is not an IPv4 or IPv6 address or a host name (letters, "
                        "digits, '-' and '.')"},
        DocumentedError{"ServerNulInside", "export: /e\nserver: \"10.99.0.2\\0x\"\n" + kTree,
                        "p.yaml:2: server: '10.99.0.2\\x00x' is not an IPv4 or IPv6 address or a host name (letters, "
                        "digits, '-' and '.')"},
        DocumentedError{"Accounting", "export: /e\naccounting: blocks\n" + kTree,
                        "p.yaml:2: accounting: 'blocks' is not one of: used, size"},
        DocumentedError{"Fsstat", "export: /e\nfsstat: off\n" + kTree,
                        "p.yaml:2: fsstat: 'off' is not one of: rewrite, pass"},
        DocumentedError{"RootFh", "export: /e\nroot_fh: xyz\n" + kTree,
                        "p.yaml:2: root_fh: must be 1 to 64 bytes of hex (as `nfsfence decode` prints handles)"},
        // trees
        DocumentedError{"TreesMissing", "export: /e\n", "p.yaml:1: trees: missing (a list of {name, path, limit})"},
        DocumentedError{"TreesEmpty", "export: /e\ntrees: []\n",
                        "p.yaml:2: trees: must be a non-empty list of {name, path, limit}"},
        DocumentedError{"TreesNull", "export: /e\ntrees:\n",
                        "p.yaml:2: trees: must be a non-empty list of {name, path, limit}"},
        DocumentedError{"TreeNotAMapping", "export: /e\ntrees:\n  - vol-a\n",
                        "p.yaml:3: trees[0]: must be a mapping with name, path, limit"},
        DocumentedError{"TreeAliasCycle", "export: /e\ntrees: &t [*t]\n",
                        "p.yaml:2: trees[0]: must be a mapping with name, path, limit"},
        DocumentedError{"TreeKeyMissing", "export: /e\ntrees:\n  - {name: a, limit: 1M}\n",
                        "p.yaml:3: trees[0].path: missing"},
        DocumentedError{"NameEmpty", "export: /e\ntrees: [{name: '', path: a, limit: 1M}]\n",
                        "p.yaml:2: trees[0].name: must not be empty"},
        DocumentedError{"NameInvalidUtf8", "export: /e\ntrees: [{name: vol\xff, path: a, limit: 1M}]\n",
                        "p.yaml:2: trees[0].name: is not valid UTF-8 (byte 0xff at offset 3)"},
        DocumentedError{"NameOverlongUtf8",
                        "export: /e\ntrees: [{name: \"a\xc0\xaf"
                        "b\", path: a, limit: 1M}]\n",
                        "p.yaml:2: trees[0].name: is not valid UTF-8 (byte 0xc0 at offset 1)"},
        DocumentedError{"NameControl", "export: /e\ntrees: [{name: \"vol\\e[31m\", path: a, limit: 1M}]\n",
                        "p.yaml:2: trees[0].name: contains a control character (U+001B at offset 3)"},
        DocumentedError{"NameC1Control", "export: /e\ntrees: [{name: \"a\\u0085\", path: a, limit: 1M}]\n",
                        "p.yaml:2: trees[0].name: contains a control character (U+0085 at offset 1)"},
        DocumentedError{"NameUsedTwice",
                        "export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: a, path: b, limit: 1M}]\n",
                        "p.yaml:2: trees[1].name: 'a' is used by another tree"},
        DocumentedError{"PathAbsolute", "export: /e\ntrees:\n  - name: a\n    path: /abs\n    limit: 1M\n",
                        "p.yaml:4: trees[0].path: '/abs' must be relative to the export root (no leading '/')"},
        DocumentedError{"PathDotDot", "export: /e\ntrees: [{name: a, path: \"x/../\\ty\", limit: 1M}]\n",
                        "p.yaml:2: trees[0].path: 'x/../\\x09y' must not contain '..'"},
        DocumentedError{"PathRoot", "export: /e\ntrees: [{name: a, path: ./, limit: 1M}]\n",
                        "p.yaml:2: trees[0].path: './' names the export root itself; a tree must be a subdirectory"},
        DocumentedError{"PathUsedTwice",
                        "export: /e\ntrees: [{name: a, path: a, limit: 1M}, {name: b, path: a/, limit: 1M}]\n",
                        "p.yaml:2: trees[1].path: 'a' is used by another tree"},
        DocumentedError{
            "LimitNotASize", "export: /e\ntrees:\n  - name: a\n    path: a\n    limit: 50Gx\n",
            "p.yaml:5: trees[0].limit: '50Gx' is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)"},
        DocumentedError{
            "LimitNegative", "export: /e\ntrees: [{name: a, path: a, limit: -1}]\n",
            "p.yaml:2: trees[0].limit: '-1' is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)"},
        DocumentedError{"LimitTooLarge", "export: /e\ntrees: [{name: a, path: a, limit: 18446744073709551616}]\n",
                        "p.yaml:2: trees[0].limit: '18446744073709551616' is too large (over 2^64-1 bytes)"},
        DocumentedError{"LimitFractionOfByte", "export: /e\ntrees: [{name: a, path: a, limit: 1.5}]\n",
                        "p.yaml:2: trees[0].limit: '1.5' is a fraction of a byte (a decimal needs a unit, e.g. 1.5Ki)"},
        DocumentedError{
            "SoftLimitNotASize", "export: /e\ntrees: [{name: a, path: a, limit: 1M, soft_limit: lots}]\n",
            "p.yaml:2: trees[0].soft_limit: 'lots' is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)"},
        DocumentedError{
            "SoftLimitLarger",
            "export: /e\ntrees: [{name: a, path: a, limit: 9007199254740992, soft_limit: 9007199254740993}]\n",
            "p.yaml:2: trees[0].soft_limit: is larger than limit"}),
    [](const ::testing::TestParamInfo<DocumentedError>& i) { return std::string(i.param.name); });

TEST(Policy, AcceptsServerForms) {
  for (const char* s :
       {"10.99.0.2", "fe80::1", "::ffff:10.0.0.1", "nfs-1", "nfs-1.example.com", "nfs-1.example.com."}) {
    auto p = parse_policy("export: /e\nserver: '" + std::string(s) + "'\n" + kTree, "p.yaml");
    ASSERT_TRUE(p) << s << ": " << p.error().message;
    EXPECT_EQ(*p->server, s);
  }
}

TEST(Policy, AcceptsUtf8NamesAndExactLimits) {
  auto p = parse_policy("export: /e\ntrees: [{name: \"équipe-\xe2\x82\xac\", path: a, limit: 9007199254740993}]\n",
                        "p.yaml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->trees[0].name, "équipe-€");
  EXPECT_EQ(p->trees[0].limit, 9007199254740993ull);
}

TEST(Policy, OneDocumentWithMarkers) {
  auto p = parse_policy("%YAML 1.2\n---\nexport: /e\n" + kTree + "...\n", "p.yaml");
  ASSERT_TRUE(p) << p.error().message;
}

// --- load_policy: the file itself

TEST(PolicyLoad, ReadsAFile) {
  auto path = nfsfence::test::temp_dir() + "/ok.yaml";
  std::ofstream(path) << "export: /e\n" << kTree;
  auto p = load_policy(path);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->trees.size(), 1u);
}

TEST(PolicyLoad, EmptyFile) {
  auto path = nfsfence::test::temp_dir() + "/empty.yaml";
  std::ofstream{path};
  auto p = load_policy(path);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, path + ": policy: is empty (expected a YAML mapping with keys export, trees, ...)");
}

TEST(PolicyLoad, MissingFile) {
  auto p = load_policy("/nonexistent/policy.yaml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "/nonexistent/policy.yaml: cannot open policy file: No such file or directory");
}

TEST(PolicyLoad, Directory) {
  auto dir = nfsfence::test::temp_dir();
  auto p = load_policy(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + ": cannot read policy file: Is a directory");
}

TEST(PolicyLoad, ReadFails) {
  // Opens, but reading at offset 0 (an unmapped address) fails with EIO.
  auto p = load_policy("/proc/self/mem");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "/proc/self/mem: cannot read policy file: Input/output error");
}

TEST(PolicyLoad, TooLarge) {
  auto p = load_policy("/dev/zero");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message,
            "/dev/zero: cannot read policy file: larger than 16 MiB (a policy is a small text file)");
}

TEST(PolicyLoad, Unreadable) {
  auto path = nfsfence::test::temp_dir() + "/secret.yaml";
  std::ofstream(path) << "export: /e\n" << kTree;
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  std::string msg;
  if (geteuid() != 0) {
    auto p = load_policy(path);
    ASSERT_FALSE(p);
    msg = p.error().message;
  } else {
    // root reads anything: load it as nobody in a child and pass the message back.
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
      auto p = load_policy(path);
      std::string m = p ? "loaded" : p.error().message;
      _exit(write(fds[1], m.data(), m.size()) == ssize_t(m.size()) ? 0 : 3);
    }
    close(fds[1]);
    char buf[512];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) GTEST_SKIP() << "cannot switch to uid 65534";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(msg, path + ": cannot open policy file: Permission denied");
}

// fuzz_policy found that yaml-cpp 0.7's LoadAll loops forever (allocating) on ",::"; the
// bounded document count makes it one line. This test hung before the fix.
TEST(Policy, MalformedYamlThatHangsLoadAllIsOneLine) {
  auto p = nfsfence::parse_policy(",::", "p.yaml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "p.yaml:1: not valid YAML");
}

// --- load_policy_dir: one file per tree

namespace {
std::string policy_dir(std::initializer_list<std::pair<const char*, const char*>> files) {
  auto dir = nfsfence::test::temp_dir() + "/policy.d";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (auto& [name, text] : files) std::ofstream(dir + "/" + name) << text;
  return dir;
}
}  // namespace

TEST(PolicyDir, DefaultsAndOneFilePerTree) {
  auto dir = policy_dir({{"_defaults.yaml", "export: /srv/nfs/\nserver: 10.0.0.2\naccounting: size\n"},
                         {"vol-b.yaml", "path: b\nlimit: 2Gi\nsoft_limit: 1Gi\n"},
                         {"vol-a.yaml", "name: alpha\npath: /a/x\nlimit: 10M\n"},
                         {".vol-c.yaml.tmp", "half a fi"},  // being written: not a tree
                         {"vol-d.yaml.tmp", "path: d\n"},   // not *.yaml
                         {"README", "not yaml at all: ["}});
  std::filesystem::create_directories(dir + "/..2026_12_02");  // a ConfigMap's own entries
  auto p = load_policy_dir(dir);
  ASSERT_FALSE(p) << "a path with a leading / is refused";
  EXPECT_EQ(p.error().message,
            dir + "/vol-a.yaml:2: path: '/a/x' must be relative to the export root (no leading '/')");
  std::ofstream(dir + "/vol-a.yaml") << "name: alpha\npath: a/x\nlimit: 10M\n";
  p = load_policy_dir(dir);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->export_path, "/srv/nfs");
  EXPECT_EQ(p->server, "10.0.0.2");
  EXPECT_EQ(p->accounting, AccountingMode::Size);
  ASSERT_EQ(p->trees.size(), 2u);
  EXPECT_EQ(p->trees[0].name, "alpha");  // files in name order
  EXPECT_EQ(p->trees[0].path, "a/x");
  EXPECT_EQ(p->trees[0].limit, 10000000u);
  EXPECT_EQ(p->trees[0].origin, dir + "/vol-a.yaml");
  EXPECT_EQ(p->trees[1].name, "vol-b");  // the file's name
  EXPECT_EQ(p->trees[1].soft_limit, 1ull << 30);
}

TEST(PolicyDir, TwoFilesClaimingOnePath) {
  auto dir = policy_dir(
      {{"_defaults.yaml", "export: /e\n"}, {"a.yaml", "path: x\nlimit: 1M\n"}, {"b.yaml", "limit: 1M\npath: ./x/\n"}});
  auto p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + "/b.yaml:2: path: 'x' is claimed by " + dir + "/a.yaml too");
}

TEST(PolicyDir, TwoFilesNamingOneTree) {
  auto dir = policy_dir({{"_defaults.yaml", "export: /e\n"},
                         {"a.yaml", "path: x\nlimit: 1M\n"},
                         {"b.yaml", "name: a\npath: y\nlimit: 1M\n"}});
  auto p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + "/b.yaml:1: name: 'a' is the name of the tree in " + dir + "/a.yaml too");
}

TEST(PolicyDir, ExportAndServerFromTreeFilesMustAgree) {
  // csi-driver-nfs's volume id is server#share#subdir: a tree file may carry all three.
  auto dir = policy_dir({{"pvc-1.yaml", "server: 10.0.0.2\nexport: /srv\npath: pvc-1\nlimit: 1G\n"},
                         {"pvc-2.yaml", "server: 10.0.0.2\nexport: /srv\npath: pvc-2\nlimit: 1G\n"}});
  auto p = load_policy_dir(dir);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->export_path, "/srv");
  EXPECT_EQ(p->trees.size(), 2u);
  std::ofstream(dir + "/pvc-3.yaml") << "server: 10.0.0.3\nexport: /srv\npath: pvc-3\nlimit: 1G\n";
  p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + "/pvc-3.yaml:1: server: '10.0.0.3' differs from '10.0.0.2' in " + dir +
                                   "/pvc-1.yaml (one agent enforces one server's export)");
  std::ofstream(dir + "/pvc-3.yaml") << "export: /other\npath: pvc-3\nlimit: 1G\n";
  p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + "/pvc-3.yaml:1: export: '/other' differs from '/srv' in " + dir +
                                   "/pvc-1.yaml (one agent enforces one export)");
}

TEST(PolicyDir, HalfWrittenFileIsRejectedWithItsName) {
  auto dir = policy_dir({{"_defaults.yaml", "export: /e\n"}, {"a.yaml", "path: x\nlim"}});
  auto p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir +
                                   "/a.yaml:2: lim: unknown key (expected one of: name, path, limit, soft_limit, "
                                   "export, server)");
  std::ofstream(dir + "/a.yaml") << "path: x\n";
  p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + "/a.yaml:1: limit: missing");
  std::ofstream(dir + "/a.yaml") << "";
  p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message,
            dir + "/a.yaml: tree file: is empty (expected a YAML mapping with keys path, limit, ...)");
}

TEST(PolicyDir, NoTreesYetIsAPolicy) {
  auto dir = policy_dir({{"_defaults.yaml", "export: /e\nserver: nfs.example\n"}});
  auto p = load_policy_dir(dir);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->trees.empty());
}

TEST(PolicyDir, Errors) {
  auto dir = policy_dir({{"a.yaml", "path: x\nlimit: 1M\n"}});
  auto p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir + ": export: missing (give it in " + dir +
                                   "/_defaults.yaml, e.g. `export: /srv/nfs`, or in the tree files)");
  dir = policy_dir({{"_defaults.yaml", "export: /e\ntrees: []\n"}});
  p = load_policy_dir(dir);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message,
            dir +
                "/_defaults.yaml:2: trees: unknown key (expected one of: export, server, accounting, root_fh, fsstat, "
                "cluster)");
  p = load_policy_dir(dir + "/_defaults.yaml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, dir +
                                   "/_defaults.yaml: not a directory (--policy-dir names a directory of one YAML "
                                   "file per tree)");
  p = load_policy_dir("/nonexistent/dir");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message,
            "/nonexistent/dir: No such file or directory (--policy-dir names a directory of one YAML file per tree)");
}
