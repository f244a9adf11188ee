#include "agent/vmm/devices/serial.h"

#include <algorithm>

#include "agent/vmm/snapshot/codec.h"

namespace phoenix::vmm {
namespace {

// Register offsets from the base (0x3f8).
constexpr uint64_t kData = 0;  // RBR/THR, DLL with DLAB
constexpr uint64_t kIer = 1;   // DLM with DLAB
constexpr uint64_t kIir = 2;   // FCR on write
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRdi = 0x01;   // received data available
constexpr uint8_t kIerThri = 0x02;  // THR empty
constexpr uint8_t kIerMask = 0x0f;

constexpr uint8_t kIirNoInt = 0x01;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirRdi = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;

constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

constexpr uint32_t kStateVersion = 1;

}  // namespace

Serial8250::Serial8250(std::shared_ptr<InterruptLine> irq, Console console)
    : irq_(std::move(irq)), console_(std::move(console)) {}

void Serial8250::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (data.size() != 1) return;  // the 8250 has byte registers only
  std::lock_guard lock(mu_);
  data[0] = ReadRegister(offset);
}

void Serial8250::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1) return;
  std::lock_guard lock(mu_);
  WriteRegister(offset, data[0]);
}

size_t Serial8250::QueueInput(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  size_t room = kMaxQueuedInput - std::min(kMaxQueuedInput, input_.size());
  size_t n = std::min(room, bytes.size());
  input_.insert(input_.end(), bytes.begin(), bytes.begin() + n);
  UpdateLine();
  return n;
}

uint8_t Serial8250::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kData: {
      if (lcr_ & kLcrDlab) return dll_;
      if (input_.empty()) return 0;
      uint8_t byte = input_.front();
      input_.pop_front();
      UpdateLine();
      return byte;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIir: {
      uint8_t iir = InterruptIdentification();
      // Reading IIR while it reports THRE is the THRE interrupt's acknowledgement.
      if (iir == kIirThri) {
        thre_pending_ = false;
        UpdateLine();
      }
      return iir | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return kLsrThre | kLsrTemt | (input_.empty() ? 0 : kLsrDr);
    case kMsr:
      return ModemStatus();
    case kScr:
      return scr_;
    default:
      return 0;
  }
}

void Serial8250::WriteRegister(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      // Writing THR clears the THRE interrupt; the byte leaves at once, so THR is empty again
      // and (if enabled) a fresh THRE interrupt follows: lower, then raise, the line.
      thre_pending_ = false;
      UpdateLine();
      if (mcr_ & kMcrLoop) {
        if (input_.size() < kMaxQueuedInput) input_.push_back(value);
      } else if (console_) {
        console_(std::span<const uint8_t>(&value, 1));
      }
      thre_pending_ = true;
      UpdateLine();
      return;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling THRI while THR is empty (always) raises the interrupt, which is how the 8250
      // driver starts transmitting.
      if ((value & kIerThri) && !(ier_ & kIerThri)) thre_pending_ = true;
      ier_ = value & kIerMask;
      UpdateLine();
      return;
    case kIir:  // FCR
      fcr_ = value & ~kFcrClearRx & ~0x04;
      if (value & kFcrClearRx) {
        input_.clear();
        UpdateLine();
      }
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & kMcrMask;
      return;
    case kScr:
      scr_ = value;
      return;
    default:  // LSR and MSR are read-only
      return;
  }
}

uint8_t Serial8250::InterruptIdentification() const {
  if ((ier_ & kIerRdi) && !input_.empty()) return kIirRdi;
  if ((ier_ & kIerThri) && thre_pending_) return kIirThri;
  return kIirNoInt;
}

uint8_t Serial8250::ModemStatus() const {
  if (mcr_ & kMcrLoop) {
    // Loopback wires RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD; Linux's probe expects exactly this.
    uint8_t msr = 0;
    if (mcr_ & kMcrRts) msr |= kMsrCts;
    if (mcr_ & kMcrDtr) msr |= kMsrDsr;
    if (mcr_ & kMcrOut1) msr |= kMsrRi;
    if (mcr_ & kMcrOut2) msr |= kMsrDcd;
    return msr;
  }
  // A connected, ready peer.
  return kMsrCts | kMsrDsr | kMsrDcd;
}

void Serial8250::UpdateLine() {
  bool level = InterruptIdentification() != kIirNoInt;
  if (level == line_level_) return;
  line_level_ = level;
  irq_->Set(level);
}

std::vector<uint8_t> Serial8250::SaveState() const {
  std::lock_guard lock(mu_);
  StateWriter w;
  w.Put(kStateVersion);
  w.Put(dll_);
  w.Put(dlm_);
  w.Put(ier_);
  w.Put(lcr_);
  w.Put(mcr_);
  w.Put(scr_);
  w.Put(fcr_);
  w.Put(static_cast<uint8_t>(thre_pending_));
  std::vector<uint8_t> input(input_.begin(), input_.end());
  w.PutBytes(input);
  return w.Take();
}

Status Serial8250::LoadState(std::span<const uint8_t> state) {
  StateReader r(state);
  auto version = r.Get<uint32_t>();
  if (!version) return std::unexpected(Context("serial state", version.error()));
  if (*version != kStateVersion)
    return Fail("serial state: version " + std::to_string(*version) + ", expected " +
                std::to_string(kStateVersion));
  uint8_t regs[8];
  for (auto& reg : regs) {
    auto v = r.Get<uint8_t>();
    if (!v) return std::unexpected(Context("serial state", v.error()));
    reg = *v;
  }
  auto input = r.GetBytes();
  if (!input) return std::unexpected(Context("serial state", input.error()));
  if (!r.AtEnd()) return Fail("serial state: " + std::to_string(r.remaining()) + " extra bytes");
  if (regs[7] > 1) return Fail("serial state: bad THRE flag");
  if (input->size() > kMaxQueuedInput) return Fail("serial state: input queue too long");

  std::lock_guard lock(mu_);
  dll_ = regs[0];
  dlm_ = regs[1];
  ier_ = regs[2] & kIerMask;
  lcr_ = regs[3];
  mcr_ = regs[4] & kMcrMask;
  scr_ = regs[5];
  fcr_ = regs[6];
  thre_pending_ = regs[7] != 0;
  input_.assign(input->begin(), input->end());
  line_level_ = InterruptIdentification() != kIirNoInt;
  if (line_level_) irq_->Set(true);
  return {};
}

}  // namespace phoenix::vmm
