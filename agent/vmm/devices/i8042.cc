#include "agent/vmm/devices/i8042.h"

#include <algorithm>

#include "agent/vmm/snapshot/codec.h"

namespace phoenix::vmm {
namespace {

constexpr uint64_t kDataPort = 0;     // 0x60
constexpr uint64_t kCommandPort = 4;  // 0x64

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;  // self test passed
constexpr uint8_t kStatusLastCommand = 0x08;

constexpr uint8_t kCmdReadCommandByte = 0x20;
constexpr uint8_t kCmdWriteCommandByte = 0x60;
constexpr uint8_t kCmdDisableAux = 0xa7;
constexpr uint8_t kCmdEnableAux = 0xa8;
constexpr uint8_t kCmdTestAux = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdTestKbd = 0xab;
constexpr uint8_t kCmdDisableKbd = 0xad;
constexpr uint8_t kCmdEnableKbd = 0xae;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdWriteAux = 0xd4;
constexpr uint8_t kCmdPulseReset = 0xfe;

constexpr uint8_t kCommandByteKbdDisabled = 0x10;
constexpr uint8_t kCommandByteAuxDisabled = 0x20;

constexpr size_t kMaxOutput = 16;
constexpr uint32_t kStateVersion = 1;

}  // namespace

I8042::I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

uint8_t I8042::StatusRegister() const {
  uint8_t status = kStatusSystemFlag;
  if (!output_.empty()) status |= kStatusOutputFull;
  if (last_was_command_) status |= kStatusLastCommand;
  return status;
}

void I8042::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (data.size() != 1) return;
  std::lock_guard lock(mu_);
  if (offset == kCommandPort) {
    data[0] = StatusRegister();
  } else if (offset == kDataPort && !output_.empty()) {
    data[0] = output_.front();
    output_.pop_front();
  }
}

void I8042::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1) return;
  uint8_t value = data[0];
  bool reset = false;
  {
    std::lock_guard lock(mu_);
    auto push = [this](uint8_t byte) {
      if (output_.size() < kMaxOutput) output_.push_back(byte);
    };
    if (offset == kCommandPort) {
      last_was_command_ = true;
      pending_command_ = 0;
      switch (value) {
        case kCmdReadCommandByte:
          push(command_byte_);
          break;
        case kCmdWriteCommandByte:
        case kCmdWriteOutputPort:
        case kCmdWriteAux:
          pending_command_ = value;
          break;
        case kCmdDisableAux:
          command_byte_ |= kCommandByteAuxDisabled;
          break;
        case kCmdEnableAux:
          command_byte_ &= ~kCommandByteAuxDisabled;
          break;
        case kCmdDisableKbd:
          command_byte_ |= kCommandByteKbdDisabled;
          break;
        case kCmdEnableKbd:
          command_byte_ &= ~kCommandByteKbdDisabled;
          break;
        case kCmdSelfTest:
          push(0x55);
          break;
        case kCmdTestKbd:
        case kCmdTestAux:
          push(0x00);  // interface test passed
          break;
        case kCmdPulseReset:
          reset = true;
          break;
        default:
          break;  // other commands (LEDs, A20, ...) have no effect here
      }
    } else if (offset == kDataPort) {
      last_was_command_ = false;
      uint8_t command = pending_command_;
      pending_command_ = 0;
      if (command == kCmdWriteCommandByte) {
        command_byte_ = value;
      } else if (command == kCmdWriteOutputPort) {
        // Output port bit 0 is the CPU reset line (active low).
        if (!(value & 0x01)) reset = true;
      } else if (command == kCmdWriteAux) {
        // No mouse: the byte is lost; the driver times out on the reply and reports no AUX port.
      } else {
        // A command for the (absent) keyboard: no device answers, so nothing is queued and the
        // driver sees a timeout, as on a PC with nothing plugged in.
      }
    }
  }
  if (reset && on_reset_) on_reset_();
}

std::vector<uint8_t> I8042::SaveState() const {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.Put(kStateVersion);
  w.Put(command_byte_);
  w.Put(pending_command_);
  w.Put(static_cast<uint8_t>(last_was_command_));
  std::vector<uint8_t> output(output_.begin(), output_.end());
  w.PutBytes(output);
  return w.Take();
}

Status I8042::LoadState(std::span<const uint8_t> state) {
  StateReader r(state);
  auto version = r.Get<uint32_t>();
  auto command_byte = r.Get<uint8_t>();
  auto pending = r.Get<uint8_t>();
  auto last = r.Get<uint8_t>();
  auto output = r.GetBytes();
  if (!version || !command_byte || !pending || !last || !output)
    return Fail("i8042 state: truncated");
  if (*version != kStateVersion) return Fail("i8042 state: version " + std::to_string(*version));
  if (!r.AtEnd()) return Fail("i8042 state: extra bytes");
  if (*last > 1 || output->size() > kMaxOutput) return Fail("i8042 state: impossible values");
  std::lock_guard lock(mu_);
  command_byte_ = *command_byte;
  pending_command_ = *pending;
  last_was_command_ = *last != 0;
  output_.assign(output->begin(), output->end());
  return {};
}

}  // namespace phoenix::vmm
