// HaproxyProcess: the life of the node's HAProxy, which the agent starts and owns but which does
// not depend on the agent staying alive. HAProxy runs in master-worker mode as a daemon (its own
// session, re-parented to init): when the agent dies or restarts, HAProxy keeps serving its last
// configuration, and the next agent adopts it through the pid file instead of starting another.
//
// The master's CLI socket (-S) reloads the configuration seamlessly: the master re-executes itself,
// the new worker takes the listening sockets over (expose-fd listeners), the old one finishes its
// in-flight requests (up to hard-stop-after) and exits; no connection is refused. A reload HAProxy
// cannot apply (e.g. a port taken) leaves the old worker serving; Reload() reports it from the
// master's own "show proc" failure count.
//
// Adoption checks the pid file's process is HAProxy running this config file, and watches it
// through a pidfd, so a reused pid is never mistaken for HAProxy.
//
// Thread-safety: not thread-safe; one owner thread (FrontDoor's worker). Calls block, each for at
// most its stated bound.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/frontdoor/frontdoor_table.h"
#include "proto/support/error.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::frontdoor {

// What the master CLI's "show proc" says of the master: its pid, and how many reloads it did and
// how many of those HAProxy rejected.
struct MasterLine {
  int pid = 0;
  int reloads = 0;
  int failed = 0;
  bool operator==(const MasterLine&) const = default;
};

class HaproxyProcess {
 public:
  explicit HaproxyProcess(HaproxyFiles files, std::string binary = "/usr/sbin/haproxy");

  // Finds an HAProxy master already serving files.config() (its pid file, its command line) and
  // watches it once both its sockets answer. kNotFound when there is none; kUnavailable when it
  // does not answer within `bound`.
  [[nodiscard]] Result<void> Adopt(std::chrono::milliseconds bound = std::chrono::seconds(2));

  // Starts HAProxy on files.config() and waits (up to 10 s) until both its sockets answer, after
  // killing every HAProxy process still serving that config (never two: SO_REUSEPORT would let
  // both take connections). kFailedPrecondition with HAProxy's own words (from its log) when it
  // refuses the config.
  [[nodiscard]] Result<void> Start();

  // Validates `config_file` with "haproxy -c" (up to 10 s). kInvalidArgument with HAProxy's words.
  [[nodiscard]] Result<void> Check(const std::filesystem::path& config_file) const;

  // Reloads files.config() through the master CLI and waits (up to 10 s) for the master to report
  // the outcome. kFailedPrecondition when HAProxy rejected it (the old worker keeps serving).
  [[nodiscard]] Result<void> Reload();

  // Whether the watched master is still running (false before Adopt/Start succeeded).
  bool Running() const;
  int pid() const { return pid_; }

  // Stops HAProxy (SIGTERM to the master, then SIGKILL after `grace`) and forgets it. Only for an
  // agent told to give up its front door, and for tests: an agent exiting leaves HAProxy serving.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Sends one command to the master CLI and returns its answer.
  [[nodiscard]] Result<std::string> Master(std::string_view command) const;

 private:
  [[nodiscard]] Result<MasterLine> ReadMasterLine() const;
  [[nodiscard]] Result<void> Watch(int pid);
  [[nodiscard]] Result<void> WaitUntilAnswering(std::chrono::milliseconds bound) const;

  HaproxyFiles files_;
  std::string binary_;
  int pid_ = -1;
  UniqueFd pidfd_;
};

// Every HAProxy process (masters and workers) whose command line serves `config` ("-f <config>"),
// from /proc.
[[nodiscard]] std::vector<int> HaproxyProcesses(const std::filesystem::path& config);

// The master line of the master CLI's "show proc" ("<pid> master <reloads> [failed: <n>] ...").
// Public for tests.
[[nodiscard]] std::optional<MasterLine> ParseShowProcMaster(std::string_view show_proc);

}  // namespace phoenix::agent::frontdoor
