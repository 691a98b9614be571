// etcd's v3 API through its JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/lease/*,
// /v3/watch), over libcurl: TLS with client certificates, connection reuse, timeouts and
// failover between endpoints come from libcurl, and the gateway needs no generated code
// (docs/architecture.md, "Several nodes", says why not gRPC). Keys and values are base64 in
// the gateway's JSON; this layer takes and gives them as plain bytes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nfs/common.h"

namespace nfsfence::etcd {

using nlohmann::json;

using nfsfence::base64;  // nfs/common.h
using nfsfence::unbase64;
// The end of a range that holds every key starting with `prefix` (etcd's prefix convention).
std::string prefix_end(std::string prefix);

struct Config {
  std::vector<std::string> endpoints;  // http(s)://HOST:PORT
  std::string ca, cert, key;           // PEM files; empty: none
  long timeout_ms = 2000;              // per request
};

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

// One connection (a curl handle): not shared between threads.
class Client {
 public:
  explicit Client(Config c);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // POST `path` with `body`; the parsed answer, or a one-line error (an unreachable
  // endpoint moves to the next one for the following call).
  Expected<json> call(const std::string& path, const json& body);
  const std::string& endpoint() const { return cfg_.endpoints[current_]; }
  void prefer(const std::string& endpoint);  // start with this one (another connection's)

  Expected<std::pair<std::vector<KeyValue>, int64_t>> range_prefix(const std::string& prefix);  // kvs, revision
  Expected<int64_t> grant(unsigned ttl_s);                                                      // lease id
  Expected<int64_t> keepalive(int64_t lease);  // the TTL left (0: the lease is gone)
  Expected<void> revoke(int64_t lease);
  Expected<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);  // revision

  uint64_t calls() const { return calls_; }
  uint64_t bytes_sent() const { return bytes_sent_; }

  // A watch of every key below `prefix` from `start_revision`, run on the calling thread
  // until `stop` or an error: `on_event(kv, deleted)` for each event, `on_progress(rev)`
  // for each message. Returns the reason it ended.
  std::string watch(const std::string& prefix, int64_t start_revision, const std::atomic<bool>& stop,
                    const std::function<void(const KeyValue&, bool deleted)>& on_event,
                    const std::function<void(int64_t revision)>& on_progress);

 private:
  Config cfg_;
  size_t current_ = 0;
  void* curl_ = nullptr;
  uint64_t calls_ = 0, bytes_sent_ = 0;
  void setup(void* curl, const std::string& url);
};

KeyValue parse_kv(const json& kv);        // a gateway "kv" object (key/value decoded)
int64_t revision_of(const json& header);  // a "header" object's revision (0: none)

}  // namespace nfsfence::etcd
