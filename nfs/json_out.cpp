#include "nfs/json_out.h"

#include <nlohmann/json.hpp>

#include "nfs/decoder.h"

namespace nfsfence {

using nlohmann::json;

const char* decode_result_name(DecodeResult r) {
  switch (r) {
    case DecodeResult::Ok:
      return "ok";
    case DecodeResult::Truncated:
      return "truncated";
    case DecodeResult::Malformed:
      return "malformed";
    case DecodeResult::Unsupported:
      return "unsupported";
  }
  return "?";
}

namespace {
std::string hex(const Bytes& b) { return to_hex(ByteView(b.data(), b.size())); }

template <typename F>
void each_field(const NfsFields& f, F&& put) {
  if (f.fh) put("fh", json(hex(*f.fh)));
  if (f.dir_fh) put("dir_fh", json(hex(*f.dir_fh)));
  if (f.name) put("name", json(*f.name));
  if (f.to_dir_fh) put("to_dir_fh", json(hex(*f.to_dir_fh)));
  if (f.to_name) put("to_name", json(*f.to_name));
  if (f.offset) put("offset", json(*f.offset));
  if (f.count) put("count", json(*f.count));
  if (f.stable) put("stable", json(*f.stable));
  if (f.path) put("path", json(*f.path));
  if (f.status) put("status", json(*f.status));
  if (f.obj_fh) put("obj_fh", json(hex(*f.obj_fh)));
  if (f.attr) {
    put("ftype", json(f.attr->type));
    put("size", json(f.attr->size));
    put("used", json(f.attr->used));
    put("fileid", json(f.attr->fileid));
  }
  if (f.res_count) put("res_count", json(*f.res_count));
  if (f.eof) put("eof", json(*f.eof));
  if (!f.entries.empty()) {
    json e = json::array();
    for (auto& d : f.entries) {
      json o{{"name", d.name}, {"fileid", d.fileid}};
      if (d.fh) o["fh"] = hex(*d.fh);
      if (d.attr) {
        o["size"] = d.attr->size;
        o["used"] = d.attr->used;
      }
      e.push_back(std::move(o));
    }
    put("entries", std::move(e));
  }
}
}  // namespace

json message_json(const RpcMessage& m) {
  json j;
  j["frame"] = m.frame;
  j["ts"] = m.ts.seconds();
  j["src"] = m.flow.src.str();
  j["dst"] = m.flow.dst.str();
  j["transport"] = transport_name(m.flow.transport);
  j["xid"] = m.xid;
  j["type"] = m.type == MsgType::Call ? "call" : "reply";
  j["prog"] = m.proc ? json(m.prog) : json(nullptr);
  j["vers"] = m.proc ? json(m.vers) : json(nullptr);
  j["proc"] = m.proc ? json(*m.proc) : json(nullptr);
  j["proc_name"] = m.proc_name ? json(m.proc_name) : json(nullptr);
  if (m.type == MsgType::Reply) {
    j["reply_stat"] = m.reply_stat;
    j["accept_stat"] = m.accept_stat;
  }
  if (m.is_nfs3_or_mount3()) {
    each_field(m.fields, [&](const char* k, json v) { j[k] = std::move(v); });
    j["decode"] = decode_result_name(m.decode);
  }
  return j;
}

std::string message_text(const RpcMessage& m) {
  std::string s;
  char buf[160];
  snprintf(buf, sizeof buf, "%6llu %.6f %s -> %s %s xid=0x%08x ", static_cast<unsigned long long>(m.frame),
           m.ts.seconds(), m.flow.src.str().c_str(), m.flow.dst.str().c_str(), transport_name(m.flow.transport), m.xid);
  s += buf;
  const char* prog = m.prog == kProgNfs ? "NFS" : m.prog == kProgMount ? "MOUNT" : nullptr;
  if (!m.proc)
    s += "reply (call not seen)";
  else {
    if (prog)
      s += std::string(prog) + "v" + std::to_string(m.vers);
    else
      s += "prog " + std::to_string(m.prog) + "v" + std::to_string(m.vers);
    s += " ";
    s += m.proc_name ? m.proc_name : ("proc " + std::to_string(*m.proc)).c_str();
    s += m.type == MsgType::Call ? " call" : " reply";
  }
  if (m.type == MsgType::Reply && (m.reply_stat || m.accept_stat))
    s +=
        " rpc_error(reply_stat=" + std::to_string(m.reply_stat) + " accept_stat=" + std::to_string(m.accept_stat) + ")";
  if (m.is_nfs3_or_mount3()) {
    each_field(m.fields, [&](const char* k, const json& v) {
      if (std::string_view(k) == "entries") {
        s += " entries=" + std::to_string(v.size());
        return;
      }
      std::string val = v.is_string() ? printable(v.get<std::string>()) : v.dump();
      if ((std::string_view(k).ends_with("fh")) && val.size() > 24)
        val = val.substr(0, 16) + "…" + val.substr(val.size() - 8);
      s += std::string(" ") + k + "=" + val;
    });
    if (m.decode != DecodeResult::Ok) s += std::string(" [") + decode_result_name(m.decode) + "]";
  }
  return s;
}

json stats_json(const Decoder& d) {
  const NetStats& n = d.net_stats();
  const DecodeStats& s = d.stats();
  RecordStats r = d.record_stats();
  json others = json::object();
  for (auto& [k, v] : s.other_programs) others[k] = v;
  return json{
      {"packets", n.packets},
      {"rpc_messages", s.rpc_messages},
      {"calls", s.calls},
      {"replies", s.replies},
      {"other_programs", others},
      {"errors",
       {{"malformed_packets", n.malformed},
        {"truncated_packets", n.truncated},
        {"unsupported_link", n.unsupported_link},
        {"ip_fragments_dropped", n.ip_frag_dropped},
        {"malformed_rpc", s.malformed_rpc},
        {"truncated_rpc", s.truncated_rpc},
        {"malformed_nfs", s.malformed_nfs},
        {"unmatched_replies", s.unmatched_replies},
        {"calls_never_answered", s.pending_evicted},
        {"flows_evicted", s.flows_evicted},
        {"calls_evicted", s.calls_evicted},
        {"tcp_gaps", r.gaps},
        {"tcp_resyncs", r.resyncs},
        {"bad_record_marks", r.bad_record_marks},
        {"truncated_records", r.truncated_records}}},
      {"info",
       {{"non_ip_packets", n.non_ip},
        {"other_l4_packets", n.other_l4},
        {"ip_fragments", n.ip_fragments},
        {"ip_reassembled", n.ip_reassembled},
        {"duplicate_calls", s.duplicate_calls},
        {"flows_idle_closed", s.flows_idle_closed},
        {"replies_reordered", s.replies_reordered},
        {"held_replies_unmatched", s.replies_held_unmatched},
        {"tcp_segments", r.segments},
        {"tcp_retransmitted", r.retransmitted},
        {"tcp_out_of_order", r.out_of_order},
        {"tcp_overlapping", r.overlapping}}},
  };
}

}  // namespace nfsfence
