#include "agent/vmm/arch/x86_64/aml.h"

namespace phoenix::vmm::x86::aml {
namespace {

constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kNotifyOp = 0x86;
constexpr uint8_t kDeviceOp = 0x82;
constexpr uint8_t kRootChar = '\\';

void Append(Bytes& out, std::span<const uint8_t> more) {
  out.reserve(out.size() + more.size());
  out.insert(out.end(), more.begin(), more.end());
}

void AppendLe(Bytes& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// Opcode(s) + PkgLength + contents.
Bytes Package(std::span<const uint8_t> opcode, std::span<const uint8_t> contents) {
  Bytes out(opcode.begin(), opcode.end());
  Append(out, PkgLength(contents.size()));
  Append(out, contents);
  return out;
}

}  // namespace

Bytes PkgLength(size_t payload) {
  // A 1-byte PkgLength holds 0..63; n following bytes add 8 bits each above a 4-bit nibble.
  if (payload + 1 <= 0x3f) return {static_cast<uint8_t>(payload + 1)};
  for (int extra = 1; extra <= 3; ++extra) {
    const uint64_t total = payload + 1 + extra;
    if (total < (1ull << (4 + 8 * extra))) {
      Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0x0f))};
      AppendLe(out, total >> 4, extra);
      return out;
    }
  }
  return {};  // beyond 2^28: no AML object of ours comes near it
}

Bytes NameString(std::string_view name) {
  Bytes out;
  if (!name.empty() && name.front() == kRootChar) {
    out.push_back(kRootChar);
    name.remove_prefix(1);
  }
  for (size_t i = 0; i < 4; ++i)
    out.push_back(i < name.size() ? static_cast<uint8_t>(name[i]) : '_');
  return out;
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLe(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLe(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLe(out, value, 8);
  }
  return out;
}

Bytes EisaId(std::string_view id) {
  // Three letters of 5 bits each ('A' = 1) and four hex digits, stored big-endian.
  auto hex = [](char c) -> uint32_t { return c <= '9' ? c - '0' : c - 'A' + 10; };
  uint32_t value = 0;
  if (id.size() == 7) {
    value = (uint32_t(id[0] - 0x40) << 26) | (uint32_t(id[1] - 0x40) << 21) |
            (uint32_t(id[2] - 0x40) << 16) | (hex(id[3]) << 12) | (hex(id[4]) << 8) |
            (hex(id[5]) << 4) | hex(id[6]);
  }
  Bytes out{kDWordPrefix};
  AppendLe(out, __builtin_bswap32(value), 4);
  return out;
}

Bytes String(std::string_view value) {
  Bytes out;
  out.reserve(value.size() + 2);
  out.push_back(kStringPrefix);
  for (char c : value) out.push_back(static_cast<uint8_t>(c));
  out.push_back(0);
  return out;
}

Bytes Buffer(std::span<const uint8_t> data) {
  Bytes contents = Integer(data.size());
  Append(contents, data);
  const uint8_t op[] = {kBufferOp};
  return Package(op, contents);
}

Bytes Name(std::string_view name, std::span<const uint8_t> value) {
  Bytes out{kNameOp};
  Append(out, NameString(name));
  Append(out, value);
  return out;
}

Bytes Scope(std::string_view name, std::span<const uint8_t> body) {
  Bytes contents = NameString(name);
  Append(contents, body);
  const uint8_t op[] = {kScopeOp};
  return Package(op, contents);
}

Bytes Device(std::string_view name, std::span<const uint8_t> body) {
  Bytes contents = NameString(name);
  Append(contents, body);
  const uint8_t op[] = {kExtOpPrefix, kDeviceOp};
  return Package(op, contents);
}

Bytes PackageOf(std::span<const Bytes> elements) {
  Bytes contents{static_cast<uint8_t>(elements.size())};  // NumElements
  for (const Bytes& e : elements) Append(contents, e);
  const uint8_t op[] = {kPackageOp};
  return Package(op, contents);
}

Bytes Method(std::string_view name, uint8_t arg_count, std::span<const uint8_t> body) {
  Bytes contents = NameString(name);
  contents.push_back(static_cast<uint8_t>(arg_count & 7));  // MethodFlags: NotSerialized, sync 0
  Append(contents, body);
  const uint8_t op[] = {kMethodOp};
  return Package(op, contents);
}

Bytes Notify(std::string_view name, uint8_t value) {
  Bytes out{kNotifyOp};
  Append(out, NameString(name));
  Append(out, Integer(value));
  return out;
}

Bytes Memory32Fixed(bool read_write, uint32_t base, uint32_t length) {
  Bytes out{0x86, 9, 0, static_cast<uint8_t>(read_write ? 1 : 0)};
  AppendLe(out, base, 4);
  AppendLe(out, length, 4);
  return out;
}

Bytes Io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  Bytes out{0x47, 0x01};  // small item 8, length 7; information: 16-bit decode
  AppendLe(out, min, 2);
  AppendLe(out, max, 2);
  out.push_back(alignment);
  out.push_back(length);
  return out;
}

Bytes IrqNoFlags(uint8_t irq) {
  Bytes out{0x22};  // small item 4, length 2: no information byte (edge, active high)
  AppendLe(out, 1u << irq, 2);
  return out;
}

Bytes ExtendedInterrupt(bool level_triggered, bool active_high, uint32_t gsi) {
  // Flags: bit 0 consumer, bit 1 edge (0 = level), bit 2 active low, bit 3 shared (0 = exclusive).
  const uint8_t flags =
      static_cast<uint8_t>(0x01 | (level_triggered ? 0 : 0x02) | (active_high ? 0 : 0x04));
  Bytes out{0x89, 6, 0, flags, 1};
  AppendLe(out, gsi, 4);
  return out;
}

Bytes ResourceTemplate(std::span<const uint8_t> descriptors) {
  Bytes data(descriptors.begin(), descriptors.end());
  data.push_back(0x79);  // End Tag
  data.push_back(0x00);
  return Buffer(data);
}

}  // namespace phoenix::vmm::x86::aml
