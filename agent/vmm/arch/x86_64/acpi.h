// ACPI tables for a hardware-reduced micro-VM: RSDP v2 -> XSDT -> {FADT -> DSDT, MADT}. The DSDT
// describes the COM1 UART, the RTC, the VM generation id and its event device, and each virtio-mmio
// device as an "LNRO0005" device (the ACPI id Linux's
// virtio_mmio driver matches), so a stock kernel finds them without command-line options.
//
// Ownership: BuildAcpiTables returns the tables as one byte image the caller writes into guest
// memory at `base`; every table's checksum is already computed for that address.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/vmm/arch/x86_64/linux_boot.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm::x86 {

inline constexpr uint64_t kIoApicAddress = 0xfec00000;
inline constexpr uint64_t kLocalApicAddress = 0xfee00000;

struct AcpiTables {
  uint64_t base = 0;  // guest physical address of bytes[0]
  uint64_t rsdp = 0;  // == base: the RSDP comes first (16-byte aligned)
  uint64_t xsdt = 0, fadt = 0, madt = 0, dsdt = 0;
  std::vector<uint8_t> bytes;
};

// Device(VRxx) for virtio-mmio slot `index`: _HID "LNRO0005", _UID index, _CRS with the slot's
// Memory32Fixed window and level/active-high Extended Interrupt.
std::vector<uint8_t> VirtioMmioDeviceAml(size_t index, const VirtioMmioSlot& slot);
// Device(COM1): _HID PNP0501, _CRS IO 0x3f8/8 and IRQ 4. On a hardware-reduced platform Linux
// has no legacy PIC and sets up no ISA interrupts by itself: without this device the 8250 driver
// would find no usable IRQ for ttyS0.
std::vector<uint8_t> SerialDeviceAml();
// Device(RTC_): _HID PNP0B00, _CRS IO 0x70/2, no IRQ (the CMOS device raises none). The x86 code
// registers no legacy RTC on a hardware-reduced platform either (and rtc_cmos's fallback probe
// fails there without an IRQ), so without this device the guest has no /dev/rtc and a clone
// restored from a golden snapshot cannot read the real time (the demo image's init re-reads it).
std::vector<uint8_t> RtcDeviceAml();
// Device(VGEN): the VM generation id device Linux's vmgenid driver binds (_HID "PHXVGID0",
// _CID "VM_GEN_COUNTER"), whose ADDR package holds the guest physical address of the 16-byte id.
// The driver reads the id at probe; when notified (0x80) it reads it again and, if it changed,
// reseeds the kernel's RNG: how clones of one snapshot stop sharing randomness.
std::vector<uint8_t> VmGenIdDeviceAml(uint64_t id_address);
// Device(GED_): a generic event device (ACPI0013) on `gsi`, edge-triggered; its _EVT notifies
// VGEN. Hardware-reduced ACPI has no GPE block, so this is how the monitor raises the event.
std::vector<uint8_t> GenericEventDeviceAml(uint32_t gsi);
// The DSDT's AML body (everything after the table header): Scope(\_SB) { COM1, RTC_, VGEN, GED_,
// VR00, ... }.
std::vector<uint8_t> DsdtBody(const std::vector<VirtioMmioSlot>& virtio);

// `base` must be 16-byte aligned and below 4 GiB (the tables use 32-bit addresses where ACPI only
// has those). Refuses more than 255 vCPUs (xAPIC ids) and slots outside 32-bit space.
Result<AcpiTables> BuildAcpiTables(uint64_t base, uint32_t vcpus,
                                   const std::vector<VirtioMmioSlot>& virtio);

// A fresh random VM generation id at kVmGenIdAddress (getrandom): at every cold boot and every
// restore, before the guest runs again.
Status WriteVmGenerationId(const GuestMemory& memory);

// 8-bit sum of the bytes (a correct ACPI table sums to 0).
uint8_t AcpiChecksum(const uint8_t* data, size_t length);

}  // namespace phoenix::vmm::x86
