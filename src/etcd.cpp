#include "src/etcd.h"

#include <curl/curl.h>

#include <mutex>

namespace nfsfence::etcd {

namespace {
std::once_flag curl_once;
void init_curl() {
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t collect(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

int64_t as_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return s;
}
}  // namespace

std::string prefix_end(std::string p) {
  while (!p.empty()) {
    if (uint8_t(p.back()) < 0xff) {
      p.back() = char(uint8_t(p.back()) + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');  // every key
}

int64_t revision_of(const json& header) { return header.is_object() ? as_int(header, "revision") : 0; }

KeyValue parse_kv(const json& kv) {
  KeyValue out;
  out.key = unbase64(kv.value("key", "")).value_or("");
  out.value = unbase64(kv.value("value", "")).value_or("");
  out.mod_revision = as_int(kv, "mod_revision");
  out.lease = as_int(kv, "lease");
  return out;
}

Client::Client(Config c) : cfg_(std::move(c)) {
  init_curl();
  curl_ = curl_easy_init();
}

void Client::prefer(const std::string& endpoint) {
  for (size_t i = 0; i < cfg_.endpoints.size(); i++)
    if (cfg_.endpoints[i] == endpoint) current_ = i;
}

Client::~Client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void Client::setup(void* h, const std::string& url) {
  CURL* c = static_cast<CURL*>(h);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never through a proxy from the environment
  if (!cfg_.ca.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, cfg_.ca.c_str());
  if (!cfg_.cert.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, cfg_.cert.c_str());
  if (!cfg_.key.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, cfg_.key.c_str());
}

Expected<json> Client::call(const std::string& path, const json& body) {
  if (!curl_) return make_error("etcd: cannot create a curl handle");
  std::string text = body.dump(), answer;
  const std::string& base = cfg_.endpoints[current_];
  setup(curl_, base + path);
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, text.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, long(text.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  calls_++;
  bytes_sent_ += text.size();
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    std::string why = "etcd " + base + ": " + curl_easy_strerror(rc);
    current_ = (current_ + 1) % cfg_.endpoints.size();
    return make_error(why);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  auto j = json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error("etcd " + base + path + ": HTTP " + std::to_string(status) + ": not JSON: " + one_line(answer));
  if (j.contains("error") || status != 200) {
    auto text = [&](const char* k) {
      return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
    };
    std::string msg = text("message");
    if (msg.empty()) msg = j.contains("error") ? j["error"].dump() : "HTTP " + std::to_string(status);
    if (status >= 500 || status == 0) current_ = (current_ + 1) % cfg_.endpoints.size();
    return make_error("etcd " + base + path + ": " + one_line(msg));
  }
  return j;
}

Expected<std::pair<std::vector<KeyValue>, int64_t>> Client::range_prefix(const std::string& prefix) {
  auto r = call("/v3/kv/range", json{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}});
  if (!r) return unexpected(r.error());
  std::vector<KeyValue> kvs;
  for (const json& kv : r->value("kvs", json::array())) kvs.push_back(parse_kv(kv));
  return std::make_pair(std::move(kvs), as_int(r->value("header", json::object()), "revision"));
}

Expected<int64_t> Client::grant(unsigned ttl_s) {
  auto r = call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}});
  if (!r) return unexpected(r.error());
  int64_t id = as_int(*r, "ID");
  if (!id) return make_error("etcd: lease grant gave no ID");
  return id;
}

Expected<int64_t> Client::keepalive(int64_t lease) {
  auto r = call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}});
  if (!r) return unexpected(r.error());
  return as_int(r->value("result", json::object()), "TTL");
}

Expected<void> Client::revoke(int64_t lease) {
  auto r = call("/v3/lease/revoke", json{{"ID", std::to_string(lease)}});
  if (!r) return unexpected(r.error());
  return {};
}

Expected<int64_t> Client::put(const std::string& key, const std::string& value, int64_t lease) {
  json body{{"key", base64(key)}, {"value", base64(value)}};
  if (lease) body["lease"] = std::to_string(lease);
  auto r = call("/v3/kv/put", body);
  if (!r) return unexpected(r.error());
  return as_int(r->value("header", json::object()), "revision");
}

namespace {
struct WatchState {
  std::string buf;
  const std::atomic<bool>* stop;
  const std::function<void(const KeyValue&, bool)>* on_event;
  const std::function<void(int64_t)>* on_progress;
  std::string ended;  // why the stream must end (set by the callback)
};

size_t watch_lines(char* p, size_t size, size_t n, WatchState* w);

// libcurl's C code calls this: nothing may be thrown through it (an answer of an unexpected
// shape ends the stream with a reason instead).
size_t watch_data(char* p, size_t size, size_t n, void* arg) {
  auto* w = static_cast<WatchState*>(arg);
  try {
    return watch_lines(p, size, n, w);
  } catch (const std::exception& e) {
    w->ended = std::string("etcd watch: unexpected answer: ") + e.what();
    return 0;
  }
}

size_t watch_lines(char* p, size_t size, size_t n, WatchState* w) {
  w->buf.append(p, size * n);
  size_t nl;
  while ((nl = w->buf.find('\n')) != std::string::npos) {
    std::string line = w->buf.substr(0, nl);
    w->buf.erase(0, nl + 1);
    if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      w->ended = "etcd watch: not JSON: " + one_line(line);
      return 0;
    }
    if (j.contains("error")) {
      w->ended = "etcd watch: " + one_line(j["error"].value("message", j["error"].dump()));
      return 0;
    }
    const json& r = j.value("result", json::object());
    if (r.value("canceled", false)) {
      w->ended = "etcd watch canceled: " + one_line(r.value("cancel_reason", std::string("compacted")));
      return 0;
    }
    for (const json& e : r.value("events", json::array()))
      (*w->on_event)(parse_kv(e.value("kv", json::object())), e.value("type", "PUT") == "DELETE");
    (*w->on_progress)(as_int(r.value("header", json::object()), "revision"));
  }
  return size * n;
}

int watch_progress(void* arg, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<WatchState*>(arg)->stop->load() ? 1 : 0;
}
}  // namespace

std::string Client::watch(const std::string& prefix, int64_t start_revision, const std::atomic<bool>& stop,
                          const std::function<void(const KeyValue&, bool deleted)>& on_event,
                          const std::function<void(int64_t revision)>& on_progress) {
  if (!curl_) return "etcd: cannot create a curl handle";
  json body{{"create_request",
             {{"key", base64(prefix)},
              {"range_end", base64(prefix_end(prefix))},
              {"start_revision", std::to_string(start_revision)},
              {"progress_notify", true}}}};
  std::string text = body.dump();
  const std::string base = cfg_.endpoints[current_];
  setup(curl_, base + "/v3/watch");
  CURL* c = static_cast<CURL*>(curl_);
  WatchState w{{}, &stop, &on_event, &on_progress, {}};
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, text.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, long(text.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
  // A stream that says nothing for this long is a dead connection (progress_notify makes a
  // live one speak every few seconds... etcd's default is 10 min, so the keepalive does it).
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 2L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 1L);
  CURLcode rc = curl_easy_perform(c);
  if (stop.load()) return "stopped";
  if (!w.ended.empty()) return w.ended;
  current_ = (current_ + 1) % cfg_.endpoints.size();
  return "etcd watch " + base + ": " + (rc == CURLE_OK ? std::string("the stream ended") : curl_easy_strerror(rc));
}

}  // namespace nfsfence::etcd
