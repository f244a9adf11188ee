// Needs /dev/kvm (label kvm): the wrappers against the real kernel.
#include "agent/vmm/kvm/kvm.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "agent/vmm/kvm/cpuid.h"
#include "agent/vmm/memory.h"

namespace phoenix::vmm {
namespace {

TEST(KvmTest, OpenChecksVersionAndCapabilities) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm) << kvm.error().message;
  EXPECT_GT(kvm->CheckExtension(KVM_CAP_IRQCHIP), 0);
  auto cpuid = kvm->SupportedCpuid();
  ASSERT_TRUE(cpuid) << cpuid.error().message;
  EXPECT_GT(cpuid->size(), 4u);
  auto msrs = kvm->MsrIndexList();
  ASSERT_TRUE(msrs) << msrs.error().message;
  EXPECT_GT(msrs->size(), 10u);
}

TEST(KvmTest, MissingDeviceNamed) {
  auto kvm = Kvm::Open("/nonexistent/kvm");
  ASSERT_FALSE(kvm);
  EXPECT_EQ(kvm.error().sys_errno, ENOENT);
  EXPECT_NE(kvm.error().message.find("/nonexistent/kvm"), std::string::npos);
}

// Real mode, no irqchip: mov dx,0x3f8; mov al,'A'; out dx,al; hlt -> KVM_EXIT_IO, KVM_EXIT_HLT.
TEST(KvmTest, RealModeGuestExitsOnIoThenHalt) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm) << kvm.error().message;
  auto vm = kvm->CreateVm();
  ASSERT_TRUE(vm) << vm.error().message;
  auto mem = GuestMemory::CreateAnonymous(2 << 20);
  ASSERT_TRUE(mem);
  const uint8_t code[] = {0xba, 0xf8, 0x03, 0xb0, 'A', 0xee, 0xf4};
  ASSERT_TRUE(mem->Write(0x1000, code));
  ASSERT_TRUE(vm->SetUserMemoryRegion(0, 0, mem->size(), mem->host_base()));
  auto vcpu = vm->CreateVcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().message;
  auto sregs = vcpu->GetSregs();
  ASSERT_TRUE(sregs);
  sregs->cs.base = 0;
  sregs->cs.selector = 0;
  ASSERT_TRUE(vcpu->SetSregs(*sregs));
  kvm_regs regs{};
  regs.rip = 0x1000;
  regs.rflags = 2;
  ASSERT_TRUE(vcpu->SetRegs(regs));
  ASSERT_TRUE(vcpu->Run());
  ASSERT_EQ(vcpu->run()->exit_reason, KVM_EXIT_IO);
  EXPECT_EQ(vcpu->run()->io.port, 0x3f8);
  EXPECT_EQ(reinterpret_cast<char*>(vcpu->run())[vcpu->run()->io.data_offset], 'A');
  ASSERT_TRUE(vcpu->Run());
  EXPECT_EQ(vcpu->run()->exit_reason, KVM_EXIT_HLT);
  auto after = vcpu->GetRegs();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->rip, 0x1007u);
}

TEST(KvmTest, VcpuStateRoundTrips) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm) << kvm.error().message;
  auto vm = kvm->CreateVm();
  ASSERT_TRUE(vm);
  ASSERT_TRUE(vm->SetTssAddress(0xfffbd000));
  ASSERT_TRUE(vm->SetIdentityMapAddress(0xfffbc000));
  ASSERT_TRUE(vm->CreateIrqchip());
  ASSERT_TRUE(vm->CreatePit2());
  auto vcpu = vm->CreateVcpu(0);
  ASSERT_TRUE(vcpu);
  auto supported = kvm->SupportedCpuid();
  ASSERT_TRUE(supported);
  auto cpuid = VcpuCpuid(*supported, 0, 1);
  ASSERT_TRUE(vcpu->SetCpuid(cpuid)) << vcpu->SetCpuid(cpuid).error().message;
  auto list = kvm->MsrIndexList();
  ASSERT_TRUE(list);
  auto saveable = vcpu->ProbeSaveableMsrs(*list);
  EXPECT_GT(saveable.size(), 5u);
  auto state = std::make_unique<VcpuState>();
  auto captured = vcpu->CaptureState(saveable, *state);
  ASSERT_TRUE(captured) << captured.error().message;
  state->cpuid = cpuid;
  state->regs.rax = 0x1234;
  state->regs.rflags = 2;

  auto vcpu2 = vm->CreateVcpu(1);
  ASSERT_TRUE(vcpu2);
  state->cpuid = VcpuCpuid(*supported, 1, 2);
  state->lapic = *vcpu2->GetLapic();  // LAPIC ids must match the vCPU
  auto applied = vcpu2->ApplyState(*state, kvm->tsc_control());
  ASSERT_TRUE(applied) << applied.error().message;
  auto regs = vcpu2->GetRegs();
  ASSERT_TRUE(regs);
  EXPECT_EQ(regs->rax, 0x1234u);
  auto pit = vm->GetPit2();
  ASSERT_TRUE(pit);
  EXPECT_TRUE(vm->SetPit2(*pit));
  for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    auto c = vm->GetIrqchip(chip);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(vm->SetIrqchip(*c));
  }
  auto clock = vm->GetClock();
  ASSERT_TRUE(clock);
  EXPECT_TRUE(vm->SetClock(*clock));
}

}  // namespace
}  // namespace phoenix::vmm
