#include "src/state_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "src/agent_common.h"

namespace nfsfence::agent {

using nlohmann::json;

std::string state_file_of(const std::string& dir, const std::string& iface) { return dir + "/" + iface + ".json"; }

namespace {

// Optional fields: absent, or of this type.
bool absent_or(const json& j, const char* key, bool (json::*is)() const) {
  auto it = j.find(key);
  return it == j.end() || ((*it).*is)();
}

}  // namespace

std::optional<json> read_state(const std::string& file, std::string* why) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  auto bad = [&](const std::string& what) -> std::optional<json> {
    if (why) *why = file + " is damaged (" + what + ")";
    return std::nullopt;
  };
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return bad("not JSON");
  }
  // What readers use must have its type: a damaged file is "no state", never an exception.
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer()) return bad("no integer pid");
  if (!absent_or(j, "action", &json::is_string) || !absent_or(j, "mount", &json::is_string) ||
      !absent_or(j, "handles", &json::is_number_unsigned) || !absent_or(j, "updated", &json::is_number_integer))
    return bad("action, mount, handles or updated of the wrong type");
  if (!absent_or(j, "policy", &json::is_string) ||
      !(absent_or(j, "policy_error", &json::is_string) || j["policy_error"].is_null()) ||
      !absent_or(j, "policy_reloads", &json::is_number_unsigned) ||
      !absent_or(j, "policy_reload_errors", &json::is_number_unsigned) ||
      !absent_or(j, "policy_applied", &json::is_number_integer))
    return bad("policy, policy_error, policy_reloads, policy_reload_errors or policy_applied of the wrong type");
  if (j.contains("trees")) {
    if (!j["trees"].is_array()) return bad("trees is not a list");
    for (const json& t : j["trees"])
      if (!t.is_object() || !t.value("id", json()).is_number_unsigned() || !t.value("name", json()).is_string() ||
          !t.value("path", json()).is_string() || !t.value("limit_bytes", json()).is_number_unsigned() ||
          !t.value("usage_bytes", json()).is_number_unsigned() || !t.value("over", json()).is_boolean())
        return bad("a tree without id, name, path, limit_bytes, usage_bytes or over");
  }
  return j;
}

Expected<void> write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what) -> Expected<void> {
    std::string msg = what + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return make_error(msg);
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return make_error("creating " + tmp + ": " + std::strerror(errno));
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      return fail("writing " + tmp);
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) return fail("writing " + tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail("renaming " + tmp + " to " + path);
  return {};
}

void StateWriter::write(const json& state) {
  auto r = write_file_atomic(path_, state.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  if (!r && !failing_) log("warning: the state file for `status` was not written: " + r.error().message);
  failing_ = !r;
}

bool process_alive(int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name == "nfsfence";
}

std::optional<int> running_agent(const std::string& state_file) {
  auto state = read_state(state_file);
  if (!state) return std::nullopt;
  int pid = (*state)["pid"].get<int>();
  // A container's agent is pid 1 in every new pod: a state file its predecessor left (on a
  // hostPath) names this very process, which is not another agent.
  if (pid == ::getpid() || !process_alive(pid)) return std::nullopt;
  return pid;
}

void stop_agent(int pid) {
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 50 && process_alive(pid); i++) ::usleep(100000);
}

}  // namespace nfsfence::agent
