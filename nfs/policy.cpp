#include "nfs/policy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace nfsfence {
namespace {

struct PolicyError {
  std::string msg;
};

bool is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp < 0xa0); }

// Text from the file as it may appear in a one-line message: control characters and
// invalid UTF-8 as \xNN, cut after 200 bytes.
std::string clean(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (out.size() >= 200) return out + "...";
    uint32_t cp = 0;
    size_t n = utf8_char(s, i, cp);
    if (n == 0 || is_control(cp)) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += hex;
      i++;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string quote(std::string_view s) { return "'" + clean(s) + "'"; }

[[noreturn]] void fail(const std::string& origin, const YAML::Node& at, const std::string& key,
                       const std::string& what) {
  std::ostringstream os;
  os << origin;
  if (at.IsDefined() && at.Mark().line >= 0) os << ":" << at.Mark().line + 1;
  os << ": " << key << ": " << what;
  throw PolicyError{os.str()};
}

std::vector<std::string> split_path(const std::string& origin, const YAML::Node& at, const std::string& key,
                                    const std::string& p) {
  std::vector<std::string> out;
  if (!p.empty() && p[0] == '/')
    fail(origin, at, key, quote(p) + " must be relative to the export root (no leading '/')");
  std::string cur;
  std::istringstream is(p);
  while (std::getline(is, cur, '/')) {
    if (cur.empty() || cur == ".") continue;
    if (cur == "..") fail(origin, at, key, quote(p) + " must not contain '..'");
    out.push_back(cur);
  }
  if (out.empty()) fail(origin, at, key, quote(p) + " names the export root itself; a tree must be a subdirectory");
  return out;
}

using Keys = std::map<std::string, YAML::Node>;  // name -> its key node (for its line)

// Every key of a mapping must be a plain name, one of `allowed`, and given once: yaml-cpp
// keeps a repeated key in iteration order but finds only the first.
Keys check_keys(const std::string& origin, const YAML::Node& map, const std::string& where,
                std::initializer_list<const char*> allowed) {
  Keys seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node kn = it->first;  // a copy: `it->` is a temporary
    if (!kn.IsScalar()) {
      const char* found = kn.IsSequence() ? "a list" : kn.IsMap() ? "a mapping" : "an empty key";
      fail(origin, kn, where.empty() ? "policy" : where, std::string("keys must be plain names (found ") + found + ")");
    }
    std::string k = kn.Scalar();
    std::string key = (where.empty() ? "" : where + ".") + clean(k);
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail(origin, kn, key, "unknown key (expected one of: " + list + ")");
    }
    auto [first, fresh] = seen.emplace(k, kn);
    if (!fresh)
      fail(origin, kn, key, "given twice (first at line " + std::to_string(first->second.Mark().line + 1) + ")");
  }
  return seen;
}

// The value of `name` in `map` as text. A null value's own mark is where the next token
// starts, so "has no value" is reported at the key's line.
std::string scalar(const std::string& origin, const YAML::Node& map, const Keys& keys, const char* name,
                   const std::string& key) {
  const YAML::Node n = map[name];
  if (n.IsNull()) fail(origin, keys.at(name), key, "has no value");
  if (!n.IsScalar()) fail(origin, n, key, "must be a single value");
  return n.Scalar();
}

// A tree's name is shown in logs, terminals and metrics labels.
void check_name(const std::string& origin, const YAML::Node& at, const std::string& key, const std::string& name) {
  if (name.empty()) fail(origin, at, key, "must not be empty");
  for (size_t i = 0; i < name.size();) {
    uint32_t cp = 0;
    size_t n = utf8_char(name, i, cp);
    char what[96];
    if (n == 0) {
      snprintf(what, sizeof what, "is not valid UTF-8 (byte 0x%02x at offset %zu)", static_cast<unsigned char>(name[i]),
               i);
      fail(origin, at, key, what);
    }
    if (is_control(cp)) {
      snprintf(what, sizeof what, "contains a control character (U+%04X at offset %zu)", static_cast<unsigned>(cp), i);
      fail(origin, at, key, what);
    }
    i += n;
  }
}

// `server:` is compared with the traffic's addresses; a name is resolved later, by the
// accounting, never here. It has to look like an address or a host name.
void check_server(const std::string& origin, const YAML::Node& at, const std::string& s) {
  in6_addr addr;
  bool nul = s.find('\0') != std::string::npos;
  if (!nul && (inet_pton(AF_INET, s.c_str(), &addr) == 1 || inet_pton(AF_INET6, s.c_str(), &addr) == 1)) return;
  const std::string only =
      "; give only the address or host name, e.g. 10.99.0.2 (a port is not part of server: ports come from the "
      "traffic)";
  size_t colons = std::count(s.begin(), s.end(), ':');
  if (s.find("://") != std::string::npos) fail(origin, at, "server", quote(s) + " is a URL" + only);
  if (!s.empty() && s[0] == '[') fail(origin, at, "server", quote(s) + " is in brackets" + only);
  if (colons == 1) fail(origin, at, "server", quote(s) + " has a port" + only);
  if (colons > 1) fail(origin, at, "server", quote(s) + " is not a valid IPv6 address");
  // A host name: labels of letters, digits and '-' joined by '.', optionally a final '.'.
  std::string name = s.size() > 1 && s.back() == '.' ? s.substr(0, s.size() - 1) : s;
  bool ok = !name.empty() && name.size() <= 253;
  size_t label = 0;
  bool digits_only = true;  // of the last label
  for (char c : name) {
    if (c == '.') {
      ok = ok && label > 0;
      label = 0;
      digits_only = true;
    } else {
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-') && ++label <= 63;
      digits_only = digits_only && std::isdigit(static_cast<unsigned char>(c));
    }
  }
  ok = ok && label > 0;
  if (ok && digits_only) fail(origin, at, "server", quote(s) + " is not a valid IPv4 address");
  if (!ok)
    fail(origin, at, "server",
         quote(s) + " is not an IPv4 or IPv6 address or a host name (letters, digits, '-' and '.')");
}

// The keys a policy file and a policy directory's _defaults.yaml share: export (when
// given), server, accounting, root_fh, fsstat.
void parse_common(const std::string& origin, const YAML::Node& root, const Keys& keys, Policy& p) {
  if (root["export"]) {
    p.export_path = scalar(origin, root, keys, "export", "export");
    if (p.export_path.empty() || p.export_path[0] != '/')
      fail(origin, root["export"], "export", quote(p.export_path) + " must be an absolute path");
    while (p.export_path.size() > 1 && p.export_path.back() == '/') p.export_path.pop_back();
  }
  if (root["server"]) {
    p.server = scalar(origin, root, keys, "server", "server");
    check_server(origin, root["server"], *p.server);
  }
  if (root["accounting"]) {
    std::string a = scalar(origin, root, keys, "accounting", "accounting");
    if (a == "used")
      p.accounting = AccountingMode::Used;
    else if (a == "size")
      p.accounting = AccountingMode::Size;
    else
      fail(origin, root["accounting"], "accounting", quote(a) + " is not one of: used, size");
  }
  if (root["fsstat"]) {
    std::string f = scalar(origin, root, keys, "fsstat", "fsstat");
    if (f == "rewrite")
      p.fsstat = FsstatMode::Rewrite;
    else if (f == "pass")
      p.fsstat = FsstatMode::Pass;
    else
      fail(origin, root["fsstat"], "fsstat", quote(f) + " is not one of: rewrite, pass");
  }
  if (root["root_fh"]) {
    auto fh = from_hex(scalar(origin, root, keys, "root_fh", "root_fh"));
    if (!fh || fh->empty() || fh->size() > 64)
      fail(origin, root["root_fh"], "root_fh", "must be 1 to 64 bytes of hex (as `nfsfence decode` prints handles)");
    p.root_fh = *fh;
  }
}

// `cluster:` (the policy file, or a policy directory's _defaults.yaml). PEM paths are made
// absolute against the file's directory: the agent may run elsewhere.
ClusterPolicy parse_cluster(const std::string& origin, const YAML::Node& root, const Keys& keys) {
  const YAML::Node c = root["cluster"];
  if (!c.IsMap()) fail(origin, keys.at("cluster"), "cluster", "must be a mapping with etcd and prefix");
  Keys ck =
      check_keys(origin, c, "cluster", {"etcd", "prefix", "ca", "cert", "key", "room_chunk", "flush_ms", "lease_ttl"});
  ClusterPolicy cp;
  for (const char* k : {"etcd", "prefix"})
    if (!c[k]) fail(origin, c, std::string("cluster.") + k, "missing");
  const YAML::Node e = c["etcd"];
  std::vector<std::string> urls;
  if (e.IsScalar())
    urls.push_back(e.Scalar());
  else if (e.IsSequence() && e.size() > 0)
    for (size_t i = 0; i < e.size(); i++) {
      if (!e[i].IsScalar()) fail(origin, e[i], "cluster.etcd", "must be a list of URLs");
      urls.push_back(e[i].Scalar());
    }
  else
    fail(origin, ck.at("etcd"), "cluster.etcd", "must be a URL or a non-empty list of URLs (http://ADDR:2379)");
  for (std::string& u : urls) {
    bool http = u.rfind("http://", 0) == 0, https = u.rfind("https://", 0) == 0;
    if (!http && !https) fail(origin, e, "cluster.etcd", quote(u) + " is not an http:// or https:// URL");
    size_t host = u.find("://") + 3;
    if (host >= u.size() || u.find_first_of(" \t\n\r", 0) != std::string::npos)
      fail(origin, e, "cluster.etcd", quote(u) + " has no host");
    while (u.size() > host && u.back() == '/') u.pop_back();
    if (u.find('/', host) != std::string::npos)
      fail(origin, e, "cluster.etcd", quote(u) + " has a path: give scheme, host and port only");
  }
  cp.etcd = urls;
  cp.prefix = scalar(origin, c, ck, "prefix", "cluster.prefix");
  while (cp.prefix.size() > 1 && cp.prefix.back() == '/') cp.prefix.pop_back();
  if (cp.prefix.empty() || cp.prefix[0] != '/' || cp.prefix == "/")
    fail(origin, c["prefix"], "cluster.prefix",
         quote(cp.prefix) + " must be an absolute key prefix, e.g. /nfsfence/export-1");
  for (char ch : cp.prefix)
    if (static_cast<unsigned char>(ch) < 0x20)
      fail(origin, c["prefix"], "cluster.prefix", quote(cp.prefix) + " contains a control character");
  namespace fs = std::filesystem;
  fs::path base = fs::absolute(fs::path(origin)).parent_path();
  auto pem = [&](const char* k, std::string& out) {
    if (!c[k]) return;
    std::string v = scalar(origin, c, ck, k, std::string("cluster.") + k);
    fs::path fp = fs::path(v).is_absolute() ? fs::path(v) : base / v;
    std::error_code ec;
    if (!fs::is_regular_file(fp, ec))
      fail(origin, c[k], std::string("cluster.") + k, quote(fp.string()) + " is not a readable file");
    out = fp.lexically_normal().string();
  };
  pem("ca", cp.ca);
  pem("cert", cp.cert);
  pem("key", cp.key);
  if (cp.cert.empty() != cp.key.empty())
    fail(origin, c, cp.cert.empty() ? "cluster.cert" : "cluster.key",
         "cert and key go together (a TLS client certificate and its key)");
  if (c["room_chunk"]) {
    auto v = parse_size(scalar(origin, c, ck, "room_chunk", "cluster.room_chunk"));
    if (!v) fail(origin, c["room_chunk"], "cluster.room_chunk", v.error().message);
    if (*v == 0) fail(origin, c["room_chunk"], "cluster.room_chunk", "must be more than 0 (no node could write)");
    cp.room_chunk = *v;
  }
  auto number = [&](const char* k, unsigned lo, unsigned hi, unsigned& out) {
    if (!c[k]) return;
    std::string v = scalar(origin, c, ck, k, std::string("cluster.") + k);
    unsigned long n = 0;
    bool ok = !v.empty() && v.size() < 10 && std::all_of(v.begin(), v.end(), [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch)) != 0;
    });
    if (ok) n = std::stoul(v);
    if (!ok || n < lo || n > hi)
      fail(origin, c[k], std::string("cluster.") + k,
           quote(v) + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
    out = unsigned(n);
  };
  number("flush_ms", 1, 10000, cp.flush_ms);
  number("lease_ttl", 2, 600, cp.lease_ttl_s);
  return cp;
}

// One tree's path, limit and soft_limit (its keys already checked), under `name`.
TreePolicy parse_tree(const std::string& origin, const YAML::Node& t, const Keys& tkeys, const std::string& key,
                      std::string name) {
  TreePolicy tp;
  for (const char* k : {"path", "limit"})
    if (!t[k]) fail(origin, t, key + (key.empty() ? "" : ".") + k, "missing");
  auto k = [&](const char* name) { return key.empty() ? std::string(name) : key + "." + name; };
  tp.name = std::move(name);
  check_name(origin, t["name"] ? t["name"] : t, k("name"), tp.name);
  tp.components = split_path(origin, t["path"], k("path"), scalar(origin, t, tkeys, "path", k("path")));
  for (auto& c : tp.components) tp.path += (tp.path.empty() ? "" : "/") + c;
  auto lim = parse_size(scalar(origin, t, tkeys, "limit", k("limit")));
  if (!lim) fail(origin, t["limit"], k("limit"), lim.error().message);
  tp.limit = *lim;
  if (t["soft_limit"]) {
    auto soft = parse_size(scalar(origin, t, tkeys, "soft_limit", k("soft_limit")));
    if (!soft) fail(origin, t["soft_limit"], k("soft_limit"), soft.error().message);
    if (*soft > tp.limit) fail(origin, t["soft_limit"], k("soft_limit"), "is larger than limit");
    tp.soft_limit = *soft;
  }
  tp.origin = origin;
  return tp;
}

// The marks where the documents of `text` start (each at its `---` if it has one), at most
// `max` of them; parser events only, no nodes. yaml-cpp 0.7 yields empty documents
// forever, without moving on, at a ',' outside a list or mapping: the count stops there
// too, with the last two starts the same.
std::vector<YAML::Mark> document_starts(const std::string& text, size_t max) {
  struct Starts : YAML::EventHandler {
    std::vector<YAML::Mark> marks;
    void OnDocumentStart(const YAML::Mark& m) override { marks.push_back(m); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
    bool stuck() const { return marks.size() >= 2 && marks.back().pos == marks[marks.size() - 2].pos; }
  } h;
  std::istringstream in(text);
  YAML::Parser parser(in);
  while (h.marks.size() < max && !h.stuck() && parser.HandleNextDocument(h)) {
  }
  return h.marks;
}

}  // namespace

Expected<uint64_t> parse_size(std::string_view s) {
  auto bad = [&] { return make_error(quote(s) + " is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)"); };
  auto too_large = [&] { return make_error(quote(s) + " is too large (over 2^64-1 bytes)"); };
  // Exact integer arithmetic: the whole part with an overflow check, then the fraction.
  unsigned __int128 whole = 0;
  size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); i++) {
    whole = whole * 10 + unsigned(s[i] - '0');
    if (whole > UINT64_MAX) return too_large();
  }
  if (i == 0) return bad();
  std::string_view frac;
  if (i < s.size() && s[i] == '.') {
    size_t from = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
    frac = s.substr(from, i - from);
    if (frac.empty()) return bad();
  }
  std::string_view unit = s.substr(i);
  if (unit.size() > 1 && unit.front() == ' ') unit.remove_prefix(1);
  if (unit.size() > 1 && (unit.back() == 'B' || unit.back() == 'b')) unit.remove_suffix(1);
  static const std::pair<std::string_view, uint64_t> units[] = {{"", 1},
                                                                {"B", 1},
                                                                {"K", 1000},
                                                                {"k", 1000},
                                                                {"M", 1000000},
                                                                {"G", 1000000000},
                                                                {"T", 1000000000000},
                                                                {"P", 1000000000000000},
                                                                {"Ki", 1ull << 10},
                                                                {"Mi", 1ull << 20},
                                                                {"Gi", 1ull << 30},
                                                                {"Ti", 1ull << 40},
                                                                {"Pi", 1ull << 50}};
  uint64_t mult = 0;
  for (auto& [u, m] : units)
    if (unit == u) mult = m;
  if (mult == 0) return bad();
  if (mult == 1 && !frac.empty())
    return make_error(quote(s) + " is a fraction of a byte (a decimal needs a unit, e.g. 1.5Ki)");
  // floor(0.frac * mult), exactly, from the last digit: floor((d*m + y)/10) == floor((d*m + floor(y))/10).
  uint64_t part = 0;
  for (size_t k = frac.size(); k-- > 0;) part = (uint64_t(frac[k] - '0') * mult + part) / 10;
  unsigned __int128 bytes = whole * mult + part;
  if (bytes > UINT64_MAX) return too_large();
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t b) {
  static const char* units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char buf[32];
  if (u == 0)
    snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(b));
  else if (v == std::floor(v))
    snprintf(buf, sizeof buf, "%.0f%s", v, units[u]);
  else
    snprintf(buf, sizeof buf, "%.2f%s", v, units[u]);
  return buf;
}

namespace {

// Loads the one YAML document of `text` and hands its mapping to `body`, which fails
// through fail(); every error, yaml-cpp's included, ends as one line naming origin.
// `what` names the file's kind in the messages ("policy", "tree file").
template <typename F>
Expected<Policy> with_document(const std::string& text, const std::string& origin, const char* what, const char* expect,
                               F&& body) {
  try {
    // Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on some malformed
    // input (",::" found by fuzz_policy; fixed upstream in yaml-cpp PR 1319). Count the
    // documents with a bounded loop instead, then load the first.
    std::vector<YAML::Mark> starts = document_starts(text, 3);
    size_t n = starts.size();
    if (n >= 2 && starts[n - 1].pos == starts[n - 2].pos)  // no progress: the parser is stuck on bad input
      return make_error(origin + ":" + std::to_string(starts[n - 1].line + 1) + ": not valid YAML");
    if (n >= 2)
      return make_error(origin + ":" + std::to_string(starts[1].line + 1) + ": a " + what +
                        " is one YAML document; found a second one");
    const YAML::Node root = starts.empty() ? YAML::Node() : YAML::Load(text);
    if (!root.IsDefined() || root.IsNull())
      return make_error(origin + ": " + what + ": is empty (expected a YAML mapping with keys " + expect + ")");
    if (!root.IsMap()) fail(origin, root, what, std::string("must be a YAML mapping with keys ") + expect);
    return body(root);
  } catch (const PolicyError& e) {
    return make_error(e.msg);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's own text for it is "bad file"
    return make_error(origin + ":" + std::to_string(e.mark.line + 1) + ": lists and mappings nested too deeply");
  } catch (const YAML::Exception& e) {
    std::ostringstream os;
    os << origin;
    if (e.mark.line >= 0) os << ":" << e.mark.line + 1;
    os << ": " << clean(e.msg);
    return make_error(os.str());
  } catch (const std::exception& e) {
    return make_error(origin + ": cannot parse the " + what + ": " + clean(e.what()));
  } catch (...) {
    return make_error(origin + ": cannot parse the " + what);
  }
}

}  // namespace

Expected<Policy> parse_policy(const std::string& text, const std::string& origin) {
  return with_document(text, origin, "policy", "export, trees, ...", [&](const YAML::Node& root) -> Policy {
    Keys keys =
        check_keys(origin, root, "", {"export", "server", "accounting", "root_fh", "fsstat", "trees", "cluster"});
    Policy p;
    if (!root["export"])
      fail(origin, root, "export", "missing (the export path as the client mounts it, e.g. /srv/nfs)");
    parse_common(origin, root, keys, p);
    if (root["cluster"]) p.cluster = parse_cluster(origin, root, keys);
    const YAML::Node trees = root["trees"];
    if (!trees) fail(origin, root, "trees", "missing (a list of {name, path, limit})");
    if (!trees.IsSequence() || trees.size() == 0)
      fail(origin, keys.at("trees"), "trees", "must be a non-empty list of {name, path, limit}");
    std::set<std::string> names, paths;
    for (size_t i = 0; i < trees.size(); i++) {
      const YAML::Node t = trees[i];
      std::string key = "trees[" + std::to_string(i) + "]";
      if (!t.IsMap()) fail(origin, t, key, "must be a mapping with name, path, limit");
      Keys tkeys = check_keys(origin, t, key, {"name", "path", "limit", "soft_limit"});
      if (!t["name"]) fail(origin, t, key + ".name", "missing");
      TreePolicy tp = parse_tree(origin, t, tkeys, key, scalar(origin, t, tkeys, "name", key + ".name"));
      if (!names.insert(tp.name).second)
        fail(origin, t["name"], key + ".name", quote(tp.name) + " is used by another tree");
      if (!paths.insert(tp.path).second)
        fail(origin, t["path"], key + ".path", quote(tp.path) + " is used by another tree");
      p.trees.push_back(std::move(tp));
    }
    return p;
  });
}

namespace {

// A policy file's text: bounded (a policy is a small text file; /dev/zero is not one).
Expected<std::string> read_policy_text(const std::string& path) {
  constexpr size_t kMaxBytes = 16 << 20;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": cannot open policy file: " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return make_error(path + ": cannot read policy file: " + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxBytes) {
      ::close(fd);
      return make_error(path + ": cannot read policy file: larger than 16 MiB (a policy is a small text file)");
    }
  }
  ::close(fd);
  return text;
}

}  // namespace

Expected<Policy> load_policy(const std::string& path) {
  auto text = read_policy_text(path);
  if (!text) return unexpected(text.error());
  return parse_policy(*text, path);
}

namespace {

bool is_tree_file(const std::string& name) {
  return name.size() > 5 && name[0] != '.' && name[0] != '_' && name.ends_with(".yaml");
}

}  // namespace

Expected<Policy> load_policy_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error(dir + ": " +
                      (ec                ? ec.message()
                       : fs::exists(dir) ? "not a directory"
                                         : "does not exist") +
                      " (--policy-dir names a directory of one YAML file per tree)");
  std::vector<std::string> files;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    // Regular files (or links to them, as a Kubernetes ConfigMap mounts them); dot files are
    // what a writer renames into place, and ConfigMaps' own ..data.
    if (is_tree_file(name) && fs::is_regular_file(it->path(), ec)) files.push_back(name);
  }
  if (ec) return make_error(dir + ": cannot list the policy directory: " + ec.message());
  std::sort(files.begin(), files.end());
  auto join = [&](const std::string& name) { return (fs::path(dir) / name).string(); };

  Policy p;
  std::string export_from, server_from;  // the file that gave each
  std::string defaults = join("_defaults.yaml");
  if (fs::exists(defaults, ec)) {
    auto text = read_policy_text(defaults);
    if (!text) return unexpected(text.error());
    auto d = with_document(*text, defaults, "defaults file", "export, server, accounting, root_fh, fsstat, cluster",
                           [&](const YAML::Node& root) -> Policy {
                             Keys keys = check_keys(defaults, root, "",
                                                    {"export", "server", "accounting", "root_fh", "fsstat", "cluster"});
                             Policy q;
                             parse_common(defaults, root, keys, q);
                             if (root["cluster"]) q.cluster = parse_cluster(defaults, root, keys);
                             return q;
                           });
    if (!d) return d;
    p = std::move(*d);
    if (!p.export_path.empty()) export_from = defaults;
    if (p.server) server_from = defaults;
  }
  std::map<std::string, std::string> names, paths;  // -> the file that claimed it
  for (const std::string& f : files) {
    std::string origin = join(f);
    auto text = read_policy_text(origin);
    if (!text) return unexpected(text.error());
    auto one = with_document(*text, origin, "tree file", "path, limit, ...", [&](const YAML::Node& t) -> Policy {
      Keys keys = check_keys(origin, t, "", {"name", "path", "limit", "soft_limit", "export", "server"});
      Policy q;
      parse_common(origin, t, keys, q);
      std::string name = t["name"] ? scalar(origin, t, keys, "name", "name") : f.substr(0, f.size() - 5);
      q.trees.push_back(parse_tree(origin, t, keys, "", name));
      const TreePolicy& tp = q.trees.back();
      auto claim = [&](std::map<std::string, std::string>& seen, const std::string& v, const char* key,
                       const char* what) {
        auto [it, fresh] = seen.emplace(v, origin);
        if (!fresh) fail(origin, t[key] ? t[key] : t, key, quote(v) + " is " + what + " " + it->second + " too");
      };
      claim(names, tp.name, "name", "the name of the tree in");
      claim(paths, tp.path, "path", "claimed by");
      // One agent enforces one export of one server: every file that names them agrees.
      if (!q.export_path.empty()) {
        if (export_from.empty()) {
          p.export_path = q.export_path;
          export_from = origin;
        } else if (q.export_path != p.export_path) {
          fail(origin, t["export"], "export",
               quote(q.export_path) + " differs from " + quote(p.export_path) + " in " + export_from +
                   " (one agent enforces one export)");
        }
      }
      if (q.server) {
        if (server_from.empty()) {
          p.server = q.server;
          server_from = origin;
        } else if (*q.server != *p.server) {
          fail(origin, t["server"], "server",
               quote(*q.server) + " differs from " + quote(*p.server) + " in " + server_from +
                   " (one agent enforces one server's export)");
        }
      }
      return q;
    });
    if (!one) return one;
    p.trees.push_back(std::move(one->trees[0]));
  }
  if (p.export_path.empty())
    return make_error(dir + ": export: missing (give it in " + defaults +
                      ", e.g. `export: /srv/nfs`, or in the tree files)");
  return p;
}

}  // namespace nfsfence
