#include "nfs/replay.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "nfs/decoder.h"
#include "nfs/json_out.h"
#include "nfsfence_abi.h"

namespace nfsfence {

using nlohmann::json;

FsStatRes tree_fsstat(const FsStatRes& server, uint64_t limit, uint64_t used, FsstatMode mode) {
  if (mode == FsstatMode::Pass) return server;
  uint64_t left = used < limit ? limit - used : 0;
  FsStatRes r = server;
  r.tbytes = limit;
  r.fbytes = std::min(server.fbytes, left);
  r.abytes = std::min(server.abytes, left);
  return r;
}

DfView df_of(const FsStatRes& r) { return DfView{r.tbytes, r.tbytes > r.fbytes ? r.tbytes - r.fbytes : 0, r.abytes}; }

Replayer::Replayer(const Policy& policy, const ReplayOptions& opt)
    : acct_(policy, opt.max_handles), counters_(policy.trees.size()), max_handles_(opt.max_handles) {}

void Replayer::on_message(const RpcMessage& m) {
  if (!acct_.from_policy_server(m)) {
    server_.skipped++;
    if (server_.other_servers.size() < ServerFilterStats::kMaxListed) {
      std::string addr = (m.type == MsgType::Call ? m.flow.dst : m.flow.src).addr_str();
      if (std::find(server_.other_servers.begin(), server_.other_servers.end(), addr) == server_.other_servers.end())
        server_.other_servers.push_back(addr);
    }
    return;
  }
  server_.matched++;
  if (m.type == MsgType::Call && m.proc) {
    const char* group = m.prog == kProgNfs && m.vers == 3     ? "NFS3"
                        : m.prog == kProgMount && m.vers == 3 ? "MOUNT3"
                                                              : nullptr;
    if (group)
      by_procedure_[group][m.proc_name ? m.proc_name : "proc" + std::to_string(*m.proc)]++;
    else
      by_procedure_["other"][std::to_string(m.prog) + "v" + std::to_string(m.vers)]++;
    if (group && m.prog == kProgNfs && m.fields.fh) {
      const Bytes& fh = *m.fields.fh;
      if (*m.proc == NFS3_WRITE) {
        uint64_t bytes = m.fields.count.value_or(0);
        int tree = acct_.tree_of(ByteView(fh.data(), fh.size()));
        if (tree >= 0) {
          TreeCounters& c = counters_[tree];
          c.writes++;
          c.write_bytes += bytes;
          if (acct_.trees()[tree].over) {
            c.refused_writes++;
            c.refused_bytes += bytes;
          }
        } else if (!fh.empty() && std::all_of(fh.begin(), fh.end(), [](uint8_t b) { return b == NFSF_FH_POISON; })) {
          // Captured after nfsfence's TC rewrite (on the client's interface): a WRITE it
          // refused, the handle poisoned so that the server refuses it.
          poisoned_writes_++;
          poisoned_write_bytes_ += bytes;
        } else if (tree == HandleCache::kUnknown) {
          unknown_writes_++;
          unknown_write_bytes_ += bytes;
        } else {
          outside_writes_++;
          outside_write_bytes_ += bytes;
        }
      } else if (*m.proc == NFS3_FSSTAT) {
        int tree = acct_.tree_of(ByteView(fh.data(), fh.size()));
        if (tree >= 0) counters_[tree].fsstat_calls++;
      } else if (*m.proc == NFS3_READ) {
        int tree = acct_.tree_of(ByteView(fh.data(), fh.size()));
        if (tree >= 0) {
          counters_[tree].reads++;
          counters_[tree].read_bytes += m.fields.count.value_or(0);
        }
      }
    }
  }
  if (m.type == MsgType::Reply && m.proc == NFS3_FSSTAT && m.prog == kProgNfs && m.vers == 3 && m.fields.fsstat &&
      m.call && m.call->fh) {
    int tree = acct_.tree_of(ByteView(m.call->fh->data(), m.call->fh->size()));
    if (tree >= 0) {
      TreeCounters& c = counters_[tree];
      c.fsstat_replies++;
      c.server_df = df_of(*m.fields.fsstat);
      c.df = df_of(tree_fsstat(*m.fields.fsstat, acct_.policy().trees[tree].limit, acct_.trees()[tree].usage,
                               acct_.policy().fsstat));
    }
  }
  // Usage follows the server's replies: the simulation counts refusals but does not
  // change what the server reported (it accepted those writes in the capture).
  acct_.on_message(m);
}

static json ts_or_null(const std::optional<Timestamp>& t) { return t ? json(t->seconds()) : json(nullptr); }

static json df_json(const std::optional<DfView>& d) {
  if (!d) return nullptr;
  return json{{"size_bytes", d->size}, {"used_bytes", d->used}, {"avail_bytes", d->avail}};
}

json Replayer::report(const Decoder& d, uint64_t capture_bytes, double seconds) const {
  json j = stats_json(d);
  j["by_procedure"] = by_procedure_;
  json trees = json::array();
  const Policy& p = acct_.policy();
  for (size_t i = 0; i < p.trees.size(); i++) {
    const TreeState& s = acct_.trees()[i];
    const TreeCounters& c = counters_[i];
    trees.push_back(json{
        {"name", p.trees[i].name},
        {"path", p.trees[i].path},
        {"limit_bytes", p.trees[i].limit},
        {"soft_limit_bytes", p.trees[i].soft_limit ? json(*p.trees[i].soft_limit) : json(nullptr)},
        {"usage_bytes", s.usage},
        {"peak_usage_bytes", s.peak},
        {"files", s.files},
        {"over_limit", s.over},
        {"exceeded_at", ts_or_null(s.exceeded_at)},
        {"soft_exceeded_at", ts_or_null(s.soft_exceeded_at)},
        {"writes", c.writes},
        {"write_bytes", c.write_bytes},
        {"refused_writes", c.refused_writes},
        {"refused_bytes", c.refused_bytes},
        {"reads", c.reads},
        {"read_bytes", c.read_bytes},
        {"fsstat", json{{"calls", c.fsstat_calls},
                        {"replies", c.fsstat_replies},
                        {"df", df_json(c.df)},
                        {"server_df", df_json(c.server_df)}}},
    });
  }
  j["trees"] = std::move(trees);
  j["accounting"] = p.accounting == AccountingMode::Used ? "used" : "size";
  j["fsstat"] = p.fsstat == FsstatMode::Rewrite ? "rewrite" : "pass";
  j["unknown_handle_writes"] = unknown_writes_;
  j["unknown_handle_write_bytes"] = unknown_write_bytes_;
  j["poisoned_writes"] = poisoned_writes_;
  j["poisoned_write_bytes"] = poisoned_write_bytes_;
  j["outside_tree_writes"] = outside_writes_;
  j["outside_tree_write_bytes"] = outside_write_bytes_;
  j["usage_outside_trees_bytes"] = acct_.usage_outside_trees();
  j["usage_unknown_bytes"] = acct_.usage_unknown();
  j["server_filter"] = json{
      {"server", p.server ? json(*p.server) : json(nullptr)},
      {"matched_messages", server_.matched},
      {"skipped_messages", server_.skipped},
      {"other_servers", server_.other_servers},
  };
  const AccountingStats& a = acct_.stats();
  const HandleCache& cache = acct_.cache();
  size_t handles = cache.stats().handles;
  j["handle_cache"] = json{
      {"export_root_known", cache.has_root()},
      {"handles", handles},
      {"max_handles", max_handles_},
      {"full_drops", cache.stats().full_drops},
      {"memory_bytes", cache.memory_bytes()},
      {"bytes_per_handle", handles ? double(cache.memory_bytes()) / double(handles) : 0.0},
      {"roots_learned_from_mnt", a.roots_learned},
      {"recounts", a.recounts},  // subtree walks: a directory's placement changed
      {"nodes_resolved", cache.stats().nodes_resolved},
      {"cycles_refused", cache.stats().cycles_refused},
      {"too_deep_refused", cache.stats().too_deep_refused},
      {"other_server_messages", a.other_server},
      {"create_without_fh", a.create_without_fh},
  };
  j["capture_bytes"] = capture_bytes;
  j["seconds"] = seconds;
  j["mb_per_s"] = seconds > 0 ? double(capture_bytes) / 1e6 / seconds : 0.0;
  return j;
}

std::string Replayer::text_report(const Decoder& d, uint64_t capture_bytes, double seconds) const {
  json j = report(d, capture_bytes, seconds);
  std::string out;
  char buf[512];
  snprintf(buf, sizeof buf, "%llu packets, %llu RPC messages (%.1f MB in %.3f s, %.0f MB/s)\n",
           static_cast<unsigned long long>(j["packets"].get<uint64_t>()),
           static_cast<unsigned long long>(j["rpc_messages"].get<uint64_t>()), double(capture_bytes) / 1e6, seconds,
           j["mb_per_s"].get<double>());
  out += buf;
  const Policy& pol = acct_.policy();
  if (pol.server && server_.matched == 0) {
    std::string others;
    for (auto& a : server_.other_servers) others += (others.empty() ? "" : ", ") + a;
    out += "warning: the policy's server '" + printable(*pol.server) + "' matched none of the " +
           std::to_string(server_.skipped) + " RPC messages" +
           (others.empty() ? std::string() : " (servers in the capture: " + others + ")") +
           ": every message was skipped\n";
  } else if (server_.skipped) {
    out += "note: " + std::to_string(server_.skipped) + " RPC messages to or from servers other than '" +
           printable(*pol.server) + "' were skipped\n";
  }
  if (server_.matched && !j["handle_cache"]["export_root_known"].get<bool>())
    out +=
        "warning: the export root handle was never learned (no MNT of the policy's export in the capture and no "
        "root_fh in the policy): every handle is unknown\n";
  snprintf(buf, sizeof buf, "%-16s %-20s %10s %10s %10s %8s %8s %10s %8s  %s\n", "tree", "path", "limit", "usage",
           "peak", "writes", "refused", "refused_B", "reads", "exceeded_at");
  out += buf;
  for (auto& t : j["trees"]) {
    std::string ex = t["exceeded_at"].is_null() ? "-" : std::to_string(t["exceeded_at"].get<double>());
    snprintf(buf, sizeof buf, "%-16s %-20s %10s %10s %10s %8llu %8llu %10s %8llu  %s\n",
             printable(t["name"].get<std::string>()).c_str(), printable(t["path"].get<std::string>()).c_str(),
             format_size(t["limit_bytes"]).c_str(), format_size(t["usage_bytes"]).c_str(),
             format_size(t["peak_usage_bytes"]).c_str(), static_cast<unsigned long long>(t["writes"].get<uint64_t>()),
             static_cast<unsigned long long>(t["refused_writes"].get<uint64_t>()),
             format_size(t["refused_bytes"]).c_str(), static_cast<unsigned long long>(t["reads"].get<uint64_t>()),
             ex.c_str());
    out += buf;
  }
  bool any_df = false;
  for (const TreeCounters& c : counters_) any_df = any_df || c.df;
  if (any_df) {
    out += std::string("df, from each tree's last FSSTAT reply (fsstat: ") +
           (pol.fsstat == FsstatMode::Rewrite ? "rewrite" : "pass") + "; the server's numbers in brackets):\n";
    snprintf(buf, sizeof buf, "%-16s %8s %10s %10s %10s  %s\n", "tree", "fsstats", "size", "used", "avail",
             "[server size used avail]");
    out += buf;
    for (size_t i = 0; i < counters_.size(); i++) {
      const TreeCounters& c = counters_[i];
      if (!c.df) continue;
      snprintf(buf, sizeof buf, "%-16s %8llu %10s %10s %10s  [%s %s %s]\n", printable(pol.trees[i].name).c_str(),
               static_cast<unsigned long long>(c.fsstat_replies), format_size(c.df->size).c_str(),
               format_size(c.df->used).c_str(), format_size(c.df->avail).c_str(),
               format_size(c.server_df->size).c_str(), format_size(c.server_df->used).c_str(),
               format_size(c.server_df->avail).c_str());
      out += buf;
    }
  }
  snprintf(buf, sizeof buf, "writes to unknown handles: %llu, outside any tree: %llu\n",
           static_cast<unsigned long long>(unknown_writes_), static_cast<unsigned long long>(outside_writes_));
  out += buf;
  if (poisoned_writes_) {
    snprintf(buf, sizeof buf, "writes refused in the capture (handle poisoned by nfsfence's rewrite): %llu (%s)\n",
             static_cast<unsigned long long>(poisoned_writes_), format_size(poisoned_write_bytes_).c_str());
    out += buf;
  }
  std::string errs;
  for (auto& [k, v] : j["errors"].items())
    if (v.get<uint64_t>()) errs += " " + k + "=" + std::to_string(v.get<uint64_t>());
  out += "errors:" + (errs.empty() ? std::string(" none") : errs) + "\n";
  snprintf(buf, sizeof buf, "handle cache: %llu handles (--max-handles %llu), %.0f bytes per handle\n",
           static_cast<unsigned long long>(j["handle_cache"]["handles"].get<uint64_t>()),
           static_cast<unsigned long long>(max_handles_), j["handle_cache"]["bytes_per_handle"].get<double>());
  out += buf;
  uint64_t cycles = j["handle_cache"]["cycles_refused"].get<uint64_t>(),
           deep = j["handle_cache"]["too_deep_refused"].get<uint64_t>();
  if (cycles || deep) {
    snprintf(buf, sizeof buf,
             "warning: %llu directory links were refused as cycles and %llu as deeper than %zu levels: "
             "their subtrees count as unknown\n",
             static_cast<unsigned long long>(cycles), static_cast<unsigned long long>(deep), HandleCache::kMaxDepth);
    out += buf;
  }
  if (uint64_t drops = j["handle_cache"]["full_drops"].get<uint64_t>()) {
    snprintf(buf, sizeof buf,
             "warning: the handle cache was full: %llu times a new handle was not cached (a handle seen again "
             "counts again); writes to such handles count as unknown (raise --max-handles)\n",
             static_cast<unsigned long long>(drops));
    out += buf;
  }
  return out;
}

Expected<json> replay_file(const std::string& capture, const Policy& policy, const ReplayOptions& opt,
                           std::string* text_out) {
  auto reader = CaptureReader::open(capture);
  if (!reader) return unexpected(reader.error());
  Replayer rp(policy, opt);
  Decoder dec([&](const RpcMessage& m) { rp.on_message(m); }, opt.limits);
  auto t0 = std::chrono::steady_clock::now();
  RawPacket pkt;
  while ((*reader)->next(pkt)) dec.feed(pkt);
  dec.finish();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct stat st {};
  uint64_t bytes = ::stat(capture.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  json j = rp.report(dec, bytes, secs);
  const CaptureReader& r = **reader;
  j["capture"] = capture;
  j["capture_truncated"] = r.truncated();
  j["capture_truncation"] = r.truncated() ? json(r.truncation_detail()) : json(nullptr);
  j["capture_error"] = r.error().empty() ? json(nullptr) : json(r.error());
  if (text_out) *text_out = rp.text_report(dec, bytes, secs);
  return j;
}

}  // namespace nfsfence
