// The monitor's own memory, for `stats`: this process's RSS split into the guest RAM mapping and
// everything else (the monitor's overhead). Guest RAM is recognised in /proc/self/smaps as the
// mapping of exactly the guest's size backed by the guest RAM memfd (cold boot) or by a snapshot's
// memory.raw (restore), so the figure does not depend on page-cache residency of that file.
//
// Plain function; callable from any thread.
#pragma once

#include <cstdint>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

struct MonitorMemory {
  uint64_t rss_kib = 0;        // whole process
  uint64_t guest_rss_kib = 0;  // the guest RAM mapping's resident part
  uint64_t overhead_kib() const { return rss_kib > guest_rss_kib ? rss_kib - guest_rss_kib : 0; }
};

Result<MonitorMemory> ReadMonitorMemory(uint64_t guest_memory_bytes,
                                        const char* smaps_path = "/proc/self/smaps");
// From an open /proc/<pid>/smaps: a jailed monitor opens it before its root has no /proc.
Result<MonitorMemory> ReadMonitorMemory(uint64_t guest_memory_bytes, int smaps_fd);

}  // namespace phoenix::vmm
