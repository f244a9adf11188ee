#include "agent/vmm/devices/serial.h"

#include <gtest/gtest.h>

#include <string>

#include "agent/vmm/devices/testing/recording_interrupt.h"

namespace phoenix::vmm {
namespace {

using testing::RecordingInterrupt;

class SerialTest : public ::testing::Test {
 protected:
  uint8_t In(uint64_t offset) {
    uint8_t b = 0xee;
    serial_->Read(offset, {&b, 1});
    return b;
  }
  void Out(uint64_t offset, uint8_t value) { serial_->Write(offset, {&value, 1}); }

  std::shared_ptr<RecordingInterrupt> irq_ = std::make_shared<RecordingInterrupt>();
  std::string console_;
  std::unique_ptr<Serial8250> serial_ = std::make_unique<Serial8250>(
      irq_, [this](std::span<const uint8_t> b) { console_.append(b.begin(), b.end()); });
};

TEST_F(SerialTest, ThrBytesReachTheConsoleAndLsrSaysEmpty) {
  for (char c : std::string("hi\n")) Out(0, static_cast<uint8_t>(c));
  EXPECT_EQ(console_, "hi\n");
  EXPECT_EQ(In(5) & 0x60, 0x60);        // THRE | TEMT
  EXPECT_EQ(In(5) & 0x01, 0);           // no data
  EXPECT_TRUE(irq_->levels().empty());  // no interrupt enabled, none raised
}

TEST_F(SerialTest, DivisorLatchScratchAndLcr) {
  Out(3, 0x83);  // DLAB, 8N1
  Out(0, 0x01);
  Out(1, 0x02);
  EXPECT_EQ(In(0), 0x01);
  EXPECT_EQ(In(1), 0x02);
  Out(3, 0x03);
  EXPECT_EQ(In(3), 0x03);
  EXPECT_EQ(In(1), 0x00);  // IER again, not DLM
  Out(0, 'x');             // THR, not DLL
  EXPECT_EQ(console_, "x");
  Out(7, 0x5a);
  EXPECT_EQ(In(7), 0x5a);
}

TEST_F(SerialTest, LinuxAutoconfigSeesA16550AWithWorkingLoopback) {
  // serial8250 autoconfig: loopback with RTS|OUT2 must read CTS|DCD in MSR's top nibble.
  Out(4, 0x10 | 0x0a);
  EXPECT_EQ(In(6) & 0xf0, 0x90);
  Out(4, 0x10 | 0x05);  // DTR|OUT1 -> DSR|RI
  EXPECT_EQ(In(6) & 0xf0, 0x60);
  // Loopback: THR comes back through RBR and not out of the console.
  Out(0, 'L');
  EXPECT_EQ(console_, "");
  EXPECT_EQ(In(5) & 0x01, 0x01);
  EXPECT_EQ(In(0), 'L');
  Out(4, 0x08);
  // FIFO enabled: IIR's top bits read 11 (16550A).
  Out(2, 0x01);
  EXPECT_EQ(In(2) >> 6, 3);
  Out(2, 0x00);
  EXPECT_EQ(In(2) >> 6, 0);
  EXPECT_EQ(In(2) & 0x0f, 0x01);  // no interrupt pending
}

TEST_F(SerialTest, ThreInterruptOnEnableAckByIirAndAgainAfterEachWrite) {
  Out(1, 0x02);  // IER THRI
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(In(2) & 0x0f, 0x02);
  EXPECT_FALSE(irq_->level());  // reading IIR acknowledged THRE
  EXPECT_EQ(In(2) & 0x0f, 0x01);
  irq_->Clear();
  Out(0, 'a');
  EXPECT_EQ(console_, "a");
  EXPECT_TRUE(irq_->level());
  // Write after an unacknowledged THRE: the line drops and rises again, a fresh edge.
  irq_->Clear();
  Out(0, 'b');
  EXPECT_EQ(irq_->levels(), (std::vector<bool>{false, true}));
  Out(1, 0x00);
  EXPECT_FALSE(irq_->level());
}

TEST_F(SerialTest, InputRaisesRxInterruptWithPriorityOverThre) {
  Out(1, 0x03);  // RDI | THRI
  EXPECT_TRUE(irq_->level());
  std::string in = "ok";
  EXPECT_EQ(serial_->QueueInput({reinterpret_cast<const uint8_t*>(in.data()), in.size()}), 2u);
  EXPECT_EQ(In(5) & 0x01, 0x01);
  EXPECT_EQ(In(2) & 0x0f, 0x04);  // RX first
  EXPECT_EQ(In(0), 'o');
  EXPECT_EQ(In(0), 'k');
  EXPECT_EQ(In(5) & 0x01, 0x00);
  EXPECT_EQ(In(2) & 0x0f, 0x02);  // THRE still pending, now reported (and acknowledged)
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(In(0), 0);  // empty RBR reads 0
}

TEST_F(SerialTest, FifoClearDropsInputAndInputIsBounded) {
  std::vector<uint8_t> big(Serial8250::kMaxQueuedInput + 10, 'z');
  EXPECT_EQ(serial_->QueueInput(big), Serial8250::kMaxQueuedInput);
  Out(2, 0x03);  // enable + clear RX
  EXPECT_EQ(In(5) & 0x01, 0);
}

TEST_F(SerialTest, SnapshotRoundTripKeepsRegistersInputAndInterrupt) {
  Out(3, 0x83);
  Out(0, 0x01);
  Out(3, 0x03);
  Out(7, 0x42);
  Out(1, 0x01);
  uint8_t in[] = {'q', 'r'};
  serial_->QueueInput(in);
  EXPECT_EQ(In(0), 'q');
  auto state = serial_->SaveState();

  auto irq2 = std::make_shared<RecordingInterrupt>();
  Serial8250 restored(irq2, nullptr);
  ASSERT_TRUE(restored.LoadState(state));
  EXPECT_TRUE(irq2->level());  // RX pending re-asserted
  uint8_t b = 0;
  restored.Read(7, {&b, 1});
  EXPECT_EQ(b, 0x42);
  restored.Read(0, {&b, 1});
  EXPECT_EQ(b, 'r');
  EXPECT_FALSE(irq2->level());
  uint8_t lcr = 0x80;
  restored.Write(3, {&lcr, 1});
  restored.Read(0, {&b, 1});
  EXPECT_EQ(b, 0x01);
  EXPECT_EQ(restored.SaveState().size(), state.size() - 1);  // one input byte fewer
}

TEST_F(SerialTest, LoadStateRefusesTruncatedAndForeignState) {
  auto state = serial_->SaveState();
  for (size_t n : {size_t{0}, size_t{3}, state.size() - 1}) {
    auto cut = std::span<const uint8_t>(state).first(n);
    EXPECT_FALSE(serial_->LoadState(cut)) << n;
  }
  auto other = state;
  other[0] = 9;  // version
  EXPECT_FALSE(serial_->LoadState(other));
  auto extra = state;
  extra.push_back(0);
  EXPECT_FALSE(serial_->LoadState(extra));
}

TEST_F(SerialTest, WideAccessesAreIgnored) {
  uint8_t word[2] = {'a', 'b'};
  serial_->Write(0, word);
  EXPECT_EQ(console_, "");
  serial_->Read(5, word);
  EXPECT_EQ(word[0], 0);
}

}  // namespace
}  // namespace phoenix::vmm
