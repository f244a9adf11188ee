#include "agent/runtime/oci/stop_reason.h"

#include <sys/wait.h>

#include <fmt/format.h>

#include "agent/process/process.h"

namespace phoenix::agent::oci {

StopReason ClassifyStop(const StopFacts& facts) {
  const std::string status =
      facts.wait_status ? DescribeWaitStatus(*facts.wait_status) : "exit status unknown";
  if (facts.stopped_by_us) return {false, fmt::format("stopped by Phoenix ({})", status)};
  if (facts.killed_by_us) return {true, "container init killed by Phoenix (SIGKILL)"};
  if (facts.oom_kills.value_or(0) > 0) {
    return {true, fmt::format("out of memory: the kernel OOM-killed a process at the {} MiB "
                              "limit; container init {}",
                              facts.memory_mib, status)};
  }
  if (!facts.wait_status) {
    return {true,
            "container init exited; exit status unknown (reaped by its parent before Phoenix "
            "could read it), treated as a crash"};
  }
  const int ws = *facts.wait_status;
  const bool clean = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
  return {!clean, "container init " + status};
}

}  // namespace phoenix::agent::oci
