// Process helpers shared by the agent's runtimes and its front door: run a tool (crun, unshare,
// qemu-img, haproxy) to completion with a bounded wait, and the pidfd calls used to watch and
// signal processes that are not our children (container inits, phoenix-vmm monitors, HAProxy's
// master).
//
// Thread-safety: free functions; safe from any thread. Spawned children inherit only stdin, stdout
// and stderr: every other descriptor is closed in the child (closefrom), including those libraries
// open without O_CLOEXEC.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent {

struct CommandOptions {
  std::chrono::milliseconds timeout{30000};  // then SIGKILL and an error
  // When >= 0 the child's stdout/stderr go to this descriptor instead of being captured (for a
  // detached container, whose init inherits them and would hold a capture pipe open forever).
  int output_fd = -1;
};

struct CommandResult {
  int wait_status = 0;           // as from waitpid
  std::string out;               // captured stdout (bounded)
  std::string err;               // captured stderr (bounded)
  bool ok() const;               // exited with status 0
  std::string Describe() const;  // "exited with status 1: <stderr>" for error messages
};

// Runs argv[0] (searched in PATH) with stdin from /dev/null. Errors only when it cannot be started
// or does not finish in time (then it is killed); a non-zero exit is a CommandResult.
[[nodiscard]] Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                               const CommandOptions& options = {});

// "exited with status N" / "killed by signal N (SIGKILL)".
std::string DescribeWaitStatus(int wait_status);

// Whether `name` is an executable in PATH; its full path.
std::optional<std::string> FindInPath(const std::string& name);

// pidfd_open(2) (O_CLOEXEC by nature); -1 with errno on failure.
int PidfdOpen(pid_t pid);
// pidfd_send_signal(2); 0 or -1 with errno. Signal 0 probes whether the process is not yet reaped.
int PidfdSendSignal(int pidfd, int signal);

// The wait status of a process that exited but was not yet reaped by its parent, read from
// /proc/<pid>/stat; only trusted while `pidfd` (for that pid) still reaches the process afterwards,
// which proves the pid was not reused in between. nullopt when it was already reaped.
std::optional<int> ZombieWaitStatus(pid_t pid, int pidfd);

}  // namespace phoenix::agent
