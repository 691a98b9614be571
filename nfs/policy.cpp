#include "nfs/policy.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace nfsfence {
namespace {

struct PolicyError {
  std::string msg;
};

[[noreturn]] void fail(const std::string& origin, const YAML::Node& at, const std::string& key, const std::string& what) {
  std::ostringstream os;
  os << origin;
  if (at.IsDefined() && at.Mark().line >= 0) os << ":" << at.Mark().line + 1;
  os << ": " << key << ": " << what;
  throw PolicyError{os.str()};
}

std::string scalar(const std::string& origin, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) fail(origin, n, key, "must be a single value");
  return n.Scalar();
}

std::vector<std::string> split_path(const std::string& origin, const YAML::Node& at, const std::string& key,
                                    const std::string& p) {
  std::vector<std::string> out;
  if (!p.empty() && p[0] == '/') fail(origin, at, key, "'" + p + "' must be relative to the export root (no leading '/')");
  std::string cur;
  std::istringstream is(p);
  while (std::getline(is, cur, '/')) {
    if (cur.empty() || cur == ".") continue;
    if (cur == "..") fail(origin, at, key, "'" + p + "' must not contain '..'");
    out.push_back(cur);
  }
  if (out.empty()) fail(origin, at, key, "'" + p + "' names the export root itself; a tree must be a subdirectory");
  return out;
}

void check_keys(const std::string& origin, const YAML::Node& map, const std::string& where,
                std::initializer_list<const char*> allowed) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string k = it->first.as<std::string>();
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail(origin, it->first, where + k, "unknown key (expected one of: " + list + ")");
    }
  }
}

}  // namespace

Expected<uint64_t> parse_size(std::string_view s) {
  auto bad = [&] {
    return make_error("'" + std::string(s) + "' is not a size (use e.g. 50Gi, 500M, 1.5Ti or a number of bytes)");
  };
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) i++;
  if (i == 0) return bad();
  std::string num(s.substr(0, i));
  std::string unit(s.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b') && unit != "B" && unit.size() > 1) unit.pop_back();
  static const std::pair<const char*, double> units[] = {
      {"", 1},         {"B", 1},         {"K", 1e3},          {"k", 1e3},          {"M", 1e6},
      {"G", 1e9},      {"T", 1e12},      {"P", 1e15},         {"Ki", 1024.0},      {"Mi", 1048576.0},
      {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}, {"Pi", 1125899906842624.0}};
  for (auto& [u, mult] : units) {
    if (unit != u) continue;
    char* end = nullptr;
    double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || !std::isfinite(v)) return bad();
    double bytes = std::floor(v * mult);
    if (bytes > 1.8e19) return make_error("'" + std::string(s) + "' is too large");
    return static_cast<uint64_t>(bytes);
  }
  return bad();
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
  if (u == 0) snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(b));
  else if (v == std::floor(v)) snprintf(buf, sizeof buf, "%.0f%s", v, units[u]);
  else snprintf(buf, sizeof buf, "%.2f%s", v, units[u]);
  return buf;
}

Expected<Policy> parse_policy(const std::string& text, const std::string& origin) {
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) fail(origin, root, "policy", "must be a YAML mapping with keys export, trees, ...");
    check_keys(origin, root, "", {"export", "server", "accounting", "root_fh", "trees"});
    Policy p;
    if (!root["export"]) fail(origin, root, "export", "missing (the export path as the client mounts it, e.g. /srv/nfs)");
    p.export_path = scalar(origin, root["export"], "export");
    if (p.export_path.empty() || p.export_path[0] != '/')
      fail(origin, root["export"], "export", "'" + p.export_path + "' must be an absolute path");
    while (p.export_path.size() > 1 && p.export_path.back() == '/') p.export_path.pop_back();
    if (root["server"]) p.server = scalar(origin, root["server"], "server");
    if (root["accounting"]) {
      std::string a = scalar(origin, root["accounting"], "accounting");
      if (a == "used") p.accounting = AccountingMode::Used;
      else if (a == "size") p.accounting = AccountingMode::Size;
      else fail(origin, root["accounting"], "accounting", "'" + a + "' is not one of: used, size");
    }
    if (root["root_fh"]) {
      auto fh = from_hex(scalar(origin, root["root_fh"], "root_fh"));
      if (!fh || fh->empty() || fh->size() > 64)
        fail(origin, root["root_fh"], "root_fh", "must be 1 to 64 bytes of hex (as `nfsfence decode` prints handles)");
      p.root_fh = *fh;
    }
    YAML::Node trees = root["trees"];
    if (!trees) fail(origin, root, "trees", "missing (a list of {name, path, limit})");
    if (!trees.IsSequence() || trees.size() == 0) fail(origin, trees, "trees", "must be a non-empty list of {name, path, limit}");
    std::set<std::string> names, paths;
    for (size_t i = 0; i < trees.size(); i++) {
      const YAML::Node t = trees[i];
      std::string key = "trees[" + std::to_string(i) + "]";
      if (!t.IsMap()) fail(origin, t, key, "must be a mapping with name, path, limit");
      check_keys(origin, t, key + ".", {"name", "path", "limit", "soft_limit"});
      TreePolicy tp;
      for (const char* k : {"name", "path", "limit"})
        if (!t[k]) fail(origin, t, key + "." + k, "missing");
      tp.name = scalar(origin, t["name"], key + ".name");
      if (tp.name.empty()) fail(origin, t["name"], key + ".name", "must not be empty");
      tp.components = split_path(origin, t["path"], key + ".path", scalar(origin, t["path"], key + ".path"));
      for (auto& c : tp.components) tp.path += (tp.path.empty() ? "" : "/") + c;
      auto lim = parse_size(scalar(origin, t["limit"], key + ".limit"));
      if (!lim) fail(origin, t["limit"], key + ".limit", lim.error().message);
      tp.limit = *lim;
      if (t["soft_limit"]) {
        auto soft = parse_size(scalar(origin, t["soft_limit"], key + ".soft_limit"));
        if (!soft) fail(origin, t["soft_limit"], key + ".soft_limit", soft.error().message);
        if (*soft > tp.limit) fail(origin, t["soft_limit"], key + ".soft_limit", "is larger than limit");
        tp.soft_limit = *soft;
      }
      if (!names.insert(tp.name).second) fail(origin, t["name"], key + ".name", "'" + tp.name + "' is used by another tree");
      if (!paths.insert(tp.path).second) fail(origin, t["path"], key + ".path", "'" + tp.path + "' is used by another tree");
      p.trees.push_back(std::move(tp));
    }
    return p;
  } catch (const PolicyError& e) {
    return make_error(e.msg);
  } catch (const YAML::Exception& e) {
    std::ostringstream os;
    os << origin;
    if (e.mark.line >= 0) os << ":" << e.mark.line + 1;
    os << ": " << e.msg;
    return make_error(os.str());
  }
}

Expected<Policy> load_policy(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(path + ": cannot open policy file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_policy(ss.str(), path);
}

}  // namespace nfsfence
