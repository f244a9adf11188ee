// Test support: run real processes (the agent, virsh, recipes) from integration tests.
// Thread-compatible; test code only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::testing {

// Runs argv to completion; returns exit status and combined stdout+stderr.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv);

// A child process with stdout/stderr appended to a log file; killed (SIGKILL) on destruction
// unless it already exited.
class ChildProcess {
 public:
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv, const std::string& log);
  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Sends `signal` and reaps the process (bounded wait). Returns false if it did not exit.
  bool KillAndWait(int signal, std::chrono::milliseconds timeout);
  bool Running();

 private:
  pid_t pid_ = -1;
};

// Reads an integer from a file written by a process once it is ready; waits up to `timeout`.
Result<int> WaitForIntFile(const std::string& path, std::chrono::milliseconds timeout);

bool ProcessAlive(pid_t pid);

}  // namespace phoenix::testing
