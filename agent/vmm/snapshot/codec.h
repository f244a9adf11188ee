// Byte encoding of monitor state for snapshots: little-endian fixed-width fields appended by
// StateWriter and consumed, bounds-checked, by StateReader. Devices use it for SaveState/LoadState;
// the snapshot file format (snapshot/snapshot_file.h) uses it for its sections.
//
// Plain values; no threading concerns.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

class StateWriter {
 public:
  // Trivially copyable values are stored as their bytes (x86-64 only: little-endian, so a kvm_regs
  // struct round-trips as is).
  template <typename T>
  void Put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  // Length-prefixed (u32) byte string.
  void PutBytes(std::span<const uint8_t> data) {
    Put(static_cast<uint32_t>(data.size()));
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }
  void PutString(std::string_view s) {
    PutBytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> Take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> data) : data_(data) {}

  template <typename T>
  Result<T> Get() {
    static_assert(std::is_trivially_copyable_v<T>);
    if (data_.size() - pos_ < sizeof(T)) return Truncated(sizeof(T));
    T value;
    std::memcpy(&value, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  Result<std::vector<uint8_t>> GetBytes() {
    auto n = Get<uint32_t>();
    if (!n) return std::unexpected(n.error());
    if (data_.size() - pos_ < *n) return Truncated(*n);
    std::vector<uint8_t> out(data_.begin() + pos_, data_.begin() + pos_ + *n);
    pos_ += *n;
    return out;
  }
  Result<std::string> GetString() {
    auto b = GetBytes();
    if (!b) return std::unexpected(b.error());
    return std::string(b->begin(), b->end());
  }

  bool AtEnd() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::unexpected<Error> Truncated(size_t wanted) const {
    return Fail("state truncated: wanted " + std::to_string(wanted) + " bytes at offset " +
                std::to_string(pos_) + ", " + std::to_string(data_.size() - pos_) + " left");
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace phoenix::vmm
