// Test helper: how many file descriptors this process has open, to prove code leaks none.
// Test code only.
#pragma once

#include <cstddef>
#include <filesystem>

namespace phoenix::agent::testing {

inline size_t OpenFdCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

}  // namespace phoenix::agent::testing
