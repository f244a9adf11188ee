// Guest console logs (`<guests>/<id>/console.log`): every runtime appends a guest's serial console
// or stdout/stderr there (QEMU, phoenix-vmm and crun all write with O_APPEND). A guest controls
// what it prints, so nothing here ever reads a whole log, and the logs are bounded on disk:
//
//  - ReadTail reads at most the last N bytes (error messages quote the end of a console).
//  - RotateIfLarger keeps a log under its cap the way logrotate's copytruncate does: the current
//    content's last `cap` bytes move to `console.log.1` (replacing the previous generation) and the
//    log is truncated in place, so writers keep their descriptors; with O_APPEND their next write
//    lands at the new end. Bytes written between the copy and the truncation are lost.
//  - ConsoleLogRotator runs RotateIfLarger over every guest's log on a timer.
//
// Threading: the free functions are thread-safe (plain file I/O). ConsoleLogRotator arms its timer
// on the given io_context and does the file work on the given pool; Start once, destroy after the
// loop and the pool have stopped.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "proto/support/error.h"

namespace phoenix::agent {

// The last `max_bytes` bytes of `path` without trailing blanks; "" when it cannot be read.
std::string ReadTail(const std::filesystem::path& path, size_t max_bytes);

// Rotates `path` when it is larger than `cap` bytes; true when it did.
[[nodiscard]] Result<bool> RotateIfLarger(const std::filesystem::path& path, uint64_t cap);

class ConsoleLogRotator {
 public:
  struct Options {
    std::filesystem::path guests_dir;          // holds <id>/console.log
    uint64_t max_bytes = 8 * 1024 * 1024;      // per guest, plus one rotated generation
    std::chrono::milliseconds interval{1000};  // how often the logs are checked
  };
  ConsoleLogRotator(boost::asio::io_context& loop, boost::asio::thread_pool& pool, Options options);
  ConsoleLogRotator(const ConsoleLogRotator&) = delete;
  ConsoleLogRotator& operator=(const ConsoleLogRotator&) = delete;

  void Start();
  // One pass over every guest's log, on the calling thread; returns how many were rotated.
  int RotateAll();

 private:
  void Schedule();

  boost::asio::io_context& loop_;
  boost::asio::thread_pool& pool_;
  const Options options_;
  boost::asio::steady_timer timer_;
};

}  // namespace phoenix::agent
