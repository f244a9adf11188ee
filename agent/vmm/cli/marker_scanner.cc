#include "agent/vmm/cli/marker_scanner.h"

namespace phoenix::vmm {

bool MarkerScanner::Feed(std::span<const uint8_t> bytes) {
  if (found_ || marker_.empty()) return false;
  tail_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (tail_.find(marker_) != std::string::npos) {
    found_ = true;
    tail_.clear();
    return true;
  }
  const size_t keep = marker_.size() - 1;
  if (tail_.size() > keep) tail_.erase(0, tail_.size() - keep);
  return false;
}

}  // namespace phoenix::vmm
