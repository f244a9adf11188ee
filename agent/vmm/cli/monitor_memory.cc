#include "agent/vmm/cli/monitor_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

namespace phoenix::vmm {

Result<MonitorMemory> ReadMonitorMemory(uint64_t guest_memory_bytes, const char* smaps_path) {
  const int fd = ::open(smaps_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(std::string("open ") + smaps_path);
  auto memory = ReadMonitorMemory(guest_memory_bytes, fd);
  ::close(fd);
  if (!memory) return std::unexpected(Context(smaps_path, memory.error()));
  return memory;
}

Result<MonitorMemory> ReadMonitorMemory(uint64_t guest_memory_bytes, int smaps_fd) {
  // proc regenerates the file on a read from offset 0; a dup keeps `smaps_fd` open after fclose.
  if (::lseek(smaps_fd, 0, SEEK_SET) != 0) return Errno("rewind smaps");
  const int copy = ::dup(smaps_fd);
  if (copy < 0) return Errno("dup smaps");
  FILE* f = ::fdopen(copy, "r");
  if (!f) {
    auto err = Errno("fdopen smaps");
    ::close(copy);
    return err;
  }
  MonitorMemory out;
  bool in_guest = false;
  char line[4096];
  // Bounded by the file: one line per mapping header or field.
  while (std::fgets(line, sizeof line, f)) {
    uint64_t start = 0, end = 0;
    int path_at = 0;
    if (std::sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %*s %*s %*s %n", &start, &end, &path_at) ==
            2 &&
        path_at > 0) {
      std::string path(line + path_at);
      while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
      const bool guest_backing =
          path.starts_with("/memfd:phoenix-vmm-guest-ram") || path.ends_with("/memory.raw");
      in_guest = guest_backing && end - start == guest_memory_bytes;
      continue;
    }
    uint64_t kib = 0;
    if (std::sscanf(line, "Rss: %" SCNu64 " kB", &kib) == 1) {
      out.rss_kib += kib;
      if (in_guest) out.guest_rss_kib += kib;
    }
  }
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return Fail("reading smaps failed");
  return out;
}

}  // namespace phoenix::vmm
