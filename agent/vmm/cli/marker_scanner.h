// Finds the ready marker in the guest's console stream. The console arrives in arbitrary pieces
// (one byte per UART write, or whole buffers), so a marker may be split across any number of
// Feed calls; the scanner keeps only the last marker.size()-1 bytes between calls.
//
// Threading: not synchronized; phoenix-vmm feeds it from vCPU threads under its console mutex.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace phoenix::vmm {

class MarkerScanner {
 public:
  explicit MarkerScanner(std::string marker) : marker_(std::move(marker)) {}

  // Returns true exactly once: on the call whose bytes complete the first occurrence.
  bool Feed(std::span<const uint8_t> bytes);
  bool found() const { return found_; }

 private:
  std::string marker_;
  std::string tail_;
  bool found_ = false;
};

}  // namespace phoenix::vmm
