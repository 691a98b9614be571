// The agent's event log (`nfsfence events`): one JSON object per line in
// STATE_DIR/IFACE.events.jsonl, next to the state file, appended by the agent and read by
// other processes. Bounded: past max_bytes the file is renamed to IFACE.events.jsonl.1
// (replacing the previous one) and a new one begun, so at most about 2 x max_bytes stay.
// Every line is written with one write(2) on an O_APPEND descriptor, so a reader never sees
// half of a line followed by another line; a reader that catches a line being written sees
// its start without the newline and waits for the rest (EventFollower).
//
// A line: {"time": "2026-12-02T05:10:00.123Z", "type": "tree_over", ...fields}; the types
// and their fields are listed in docs/events.md.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nfs/common.h"

namespace nfsfence::agent {

inline constexpr uint64_t kEventLogMaxBytes = 1 << 20;

std::string event_log_of(const std::string& state_dir, const std::string& iface);
// The interfaces (and `lsm`) that have an event log (current or rotated) in state_dir, sorted.
std::vector<std::string> event_logs_in(const std::string& state_dir);

// "2026-12-02T05:10:00.123Z" for a CLOCK_REALTIME time in nanoseconds.
std::string iso_time(int64_t realtime_ns);

// One event as `nfsfence events` prints it by default: time, type, tree, then the other
// fields as key=value (sizes as 1.5Mi), on one line whatever the names hold.
std::string event_text(const nlohmann::ordered_json& event);

class EventLog {
 public:
  explicit EventLog(std::string path, uint64_t max_bytes = kEventLogMaxBytes);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Appends {"time": now, "type": type, ...fields} (fields: a JSON object; its own "time"
  // or "type" are overwritten). Never throws for I/O: a failure is logged once, and again
  // only after an append succeeded in between. Text that is not UTF-8 is replaced.
  void emit(std::string_view type, const nlohmann::json& fields = nlohmann::json::object());
  // The same with a given time (tests).
  void emit_at(int64_t realtime_ns, std::string_view type, const nlohmann::json& fields);

  const std::string& path() const { return path_; }

 private:
  bool open();
  void append(const std::string& line);
  std::string path_;
  uint64_t max_bytes_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool failing_ = false;
};

// Reads an event log from its beginning (the rotated file first, then the current one) and
// then follows it: poll() hands every complete new line to the callback, across rotations
// (the old file is read to its end before the new one is opened), an agent restarting
// (appending to the same file) and the file being removed and made again. A last line
// without its newline is held until it is complete.
class EventFollower {
 public:
  using LineFn = std::function<void(std::string_view line)>;
  EventFollower(std::string path, LineFn on_line);
  ~EventFollower();
  EventFollower(const EventFollower&) = delete;
  EventFollower& operator=(const EventFollower&) = delete;

  // Reads what is there now: the rotated file's lines, then the current file's (call once first).
  void read_existing();
  // Reads what was added since, following a rotation or a new file. Returns the number of lines handed on.
  size_t poll();
  // Waits (inotify on the directory, at most timeout_ms) until the log may have changed,
  // then poll()s. An error (no inotify) falls back to sleeping timeout_ms.
  size_t wait_and_poll(int timeout_ms);

 private:
  size_t drain(int fd, uint64_t& offset);
  bool reopen_if_replaced(size_t& lines);
  std::string path_;
  LineFn on_line_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t dev_ = 0, ino_ = 0;
  std::string partial_;
  int inotify_fd_ = -1;
};

}  // namespace nfsfence::agent
