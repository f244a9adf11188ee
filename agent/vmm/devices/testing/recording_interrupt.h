// Test helper: an InterruptLine that records every level it is set to.
// Threading: Set may be called from any thread (device backend threads); readers lock too.
#pragma once

#include <mutex>
#include <vector>

#include "agent/vmm/device.h"

namespace phoenix::vmm::testing {

class RecordingInterrupt : public InterruptLine {
 public:
  void Set(bool level) override {
    std::lock_guard lock(mu_);
    levels_.push_back(level);
  }
  bool level() const {
    std::lock_guard lock(mu_);
    return !levels_.empty() && levels_.back();
  }
  std::vector<bool> levels() const {
    std::lock_guard lock(mu_);
    return levels_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    levels_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<bool> levels_;
};

}  // namespace phoenix::vmm::testing
