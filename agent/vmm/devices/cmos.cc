#include "agent/vmm/devices/cmos.h"

#include <algorithm>

#include "agent/vmm/snapshot/codec.h"

namespace phoenix::vmm {
namespace {

constexpr uint8_t kSeconds = 0x00;
constexpr uint8_t kMinutes = 0x02;
constexpr uint8_t kHours = 0x04;
constexpr uint8_t kWeekday = 0x06;
constexpr uint8_t kDayOfMonth = 0x07;
constexpr uint8_t kMonth = 0x08;
constexpr uint8_t kYear = 0x09;
constexpr uint8_t kRegA = 0x0a;
constexpr uint8_t kRegB = 0x0b;
constexpr uint8_t kRegC = 0x0c;
constexpr uint8_t kRegD = 0x0d;
constexpr uint8_t kCentury = 0x32;

constexpr uint8_t kRegBBinary = 0x04;
constexpr uint8_t kRegB24Hour = 0x02;
constexpr uint8_t kRegDValid = 0x80;
constexpr uint8_t kRegADivider = 0x26;  // 32.768 kHz time base, 1024 Hz rate

constexpr uint32_t kStateVersion = 1;

bool IsTimeRegister(uint8_t index) {
  return index == kSeconds || index == kMinutes || index == kHours ||
         (index >= kWeekday && index <= kYear) || index == kCentury;
}

uint8_t ToBcd(int value) { return static_cast<uint8_t>(((value / 10) << 4) | (value % 10)); }

}  // namespace

Cmos::Cmos(uint64_t memory_bytes, Clock clock)
    : clock_(clock ? std::move(clock) : Clock([] { return std::time(nullptr); })) {
  nvram_[kRegA] = kRegADivider;
  nvram_[kRegB] = kRegB24Hour;
  nvram_[kRegD] = kRegDValid;
  // Base memory: 640 KiB.
  nvram_[0x15] = 640 & 0xff;
  nvram_[0x16] = 640 >> 8;
  // Extended memory above 1 MiB in KiB, capped at 0xffff (what fits below 64 MiB).
  uint64_t ext_kib = memory_bytes > (1u << 20) ? (memory_bytes - (1u << 20)) >> 10 : 0;
  ext_kib = std::min<uint64_t>(ext_kib, 0xffff);
  nvram_[0x17] = nvram_[0x30] = ext_kib & 0xff;
  nvram_[0x18] = nvram_[0x31] = ext_kib >> 8;
  // Memory above 16 MiB (below 4 GiB) in 64 KiB units.
  constexpr uint64_t k16M = 16ull << 20, k4G = 4ull << 30;
  uint64_t below_4g = std::min(memory_bytes, k4G);
  uint64_t above_16m = below_4g > k16M ? (below_4g - k16M) >> 16 : 0;
  above_16m = std::min<uint64_t>(above_16m, 0xffff);
  nvram_[0x34] = above_16m & 0xff;
  nvram_[0x35] = above_16m >> 8;
  // Memory above 4 GiB in 64 KiB units (always 0 with kMaxMemoryBytes, kept for completeness).
  uint64_t above_4g = memory_bytes > k4G ? (memory_bytes - k4G) >> 16 : 0;
  nvram_[0x5b] = above_4g & 0xff;
  nvram_[0x5c] = (above_4g >> 8) & 0xff;
  nvram_[0x5d] = (above_4g >> 16) & 0xff;
}

uint8_t Cmos::ReadRegister(uint8_t index) const {
  if (!IsTimeRegister(index)) return index == kRegC ? 0 : nvram_[index];
  std::time_t now = clock_();
  std::tm tm{};
  gmtime_r(&now, &tm);
  uint8_t reg_b = nvram_[kRegB];
  bool binary = reg_b & kRegBBinary;
  auto encode = [binary](int value) { return binary ? static_cast<uint8_t>(value) : ToBcd(value); };
  switch (index) {
    case kSeconds:
      return encode(tm.tm_sec);
    case kMinutes:
      return encode(tm.tm_min);
    case kHours: {
      if (reg_b & kRegB24Hour) return encode(tm.tm_hour);
      int hour12 = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
      return static_cast<uint8_t>(encode(hour12) | (tm.tm_hour >= 12 ? 0x80 : 0));
    }
    case kWeekday:
      return encode(tm.tm_wday + 1);
    case kDayOfMonth:
      return encode(tm.tm_mday);
    case kMonth:
      return encode(tm.tm_mon + 1);
    case kYear:
      return encode(tm.tm_year % 100);
    case kCentury:
      return encode((tm.tm_year + 1900) / 100);
    default:
      return 0;
  }
}

void Cmos::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (data.size() != 1) return;
  std::lock_guard lock(mu_);
  data[0] = offset == 0 ? index_ : ReadRegister(index_);
}

void Cmos::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1) return;
  std::lock_guard lock(mu_);
  if (offset == 0) {
    index_ = data[0] & 0x7f;  // bit 7 masks NMIs on a PC; nothing to mask here
    return;
  }
  uint8_t index = index_;
  if (IsTimeRegister(index) || index == kRegC || index == kRegD) return;
  if (index == kRegA) {
    nvram_[kRegA] = data[0] & 0x7f;  // UIP is read-only
    return;
  }
  nvram_[index] = data[0];
}

std::vector<uint8_t> Cmos::SaveState() const {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.Put(kStateVersion);
  w.Put(index_);
  w.Put(nvram_);
  return w.Take();
}

Status Cmos::LoadState(std::span<const uint8_t> state) {
  StateReader r(state);
  auto version = r.Get<uint32_t>();
  auto index = r.Get<uint8_t>();
  auto nvram = r.Get<std::array<uint8_t, 128>>();
  if (!version || !index || !nvram) return Fail("cmos state: truncated");
  if (*version != kStateVersion) return Fail("cmos state: version " + std::to_string(*version));
  if (!r.AtEnd()) return Fail("cmos state: extra bytes");
  if (*index > 0x7f) return Fail("cmos state: index out of range");
  std::lock_guard lock(mu_);
  index_ = *index;
  nvram_ = *nvram;
  return {};
}

}  // namespace phoenix::vmm
