#include "agent/vmm/arch/x86_64/acpi.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "agent/vmm/arch/x86_64/aml.h"
#include "agent/vmm/arch/x86_64/boot_layout.h"
#include "agent/vmm/machine.h"

namespace phoenix::vmm::x86 {
namespace {

constexpr char kOemId[] = "PHNIX ";         // 6 bytes
constexpr char kOemTableId[] = "PHNXVMM ";  // 8 bytes
constexpr char kCreatorId[] = "PHNX";       // 4 bytes
constexpr size_t kHeaderSize = 36;

constexpr size_t kRsdpSize = 36;
constexpr size_t kFadtSize = 276;  // revision 6
constexpr uint32_t kFadtHwReducedAcpi = 1u << 20;
// IAPC_BOOT_ARCH: no VGA, no MSI (there is no PCI), ASPM not controllable. The 8042 bit stays
// clear, so Linux does not probe a keyboard controller; its reboot path still writes 0xFE to 0x64.
constexpr uint16_t kIapcBootArch = (1u << 2) | (1u << 3) | (1u << 4);
constexpr uint32_t kMadtPcatCompat = 1;
constexpr uint16_t kCmosPort = 0x70;     // MC146818 RTC: index 0x70, data 0x71
constexpr uint16_t kSerialPort = 0x3f8;  // COM1  // the in-kernel irqchip includes the dual 8259

void PutLe(std::vector<uint8_t>& bytes, size_t offset, uint64_t value, int size) {
  for (int i = 0; i < size; ++i) bytes[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void PutText(std::vector<uint8_t>& bytes, size_t offset, const char* text, size_t size) {
  std::memcpy(bytes.data() + offset, text, size);
}

// A standard description header (ACPI 6.5 section 5.2.6) followed by `body`, checksum set.
std::vector<uint8_t> Table(const char signature[5], uint8_t revision,
                           const std::vector<uint8_t>& body) {
  std::vector<uint8_t> table(kHeaderSize + body.size(), 0);
  PutText(table, 0, signature, 4);
  PutLe(table, 4, table.size(), 4);
  table[8] = revision;
  PutText(table, 10, kOemId, 6);
  PutText(table, 16, kOemTableId, 8);
  PutLe(table, 24, 1, 4);  // OEM revision
  PutText(table, 28, kCreatorId, 4);
  PutLe(table, 32, 1, 4);  // creator revision
  std::memcpy(table.data() + kHeaderSize, body.data(), body.size());
  table[9] = static_cast<uint8_t>(-AcpiChecksum(table.data(), table.size()));
  return table;
}

std::vector<uint8_t> Dsdt(const std::vector<VirtioMmioSlot>& virtio) {
  return Table("DSDT", 2, DsdtBody(virtio));  // revision 2: 64-bit AML integers
}

std::vector<uint8_t> Fadt(uint64_t dsdt) {
  std::vector<uint8_t> body(kFadtSize - kHeaderSize, 0);
  auto put = [&](size_t table_offset, uint64_t value, int size) {
    PutLe(body, table_offset - kHeaderSize, value, size);
  };
  put(40, dsdt, 4);  // DSDT (32-bit; equal to X_DSDT so ACPICA sees no conflict)
  put(109, kIapcBootArch, 2);
  put(112, kFadtHwReducedAcpi, 4);
  put(131, 5, 1);     // FADT minor version: ACPI 6.5
  put(140, dsdt, 8);  // X_DSDT
  // Everything else (SCI, SMI, PM1/PM2/GPE/PM timer blocks, reset and sleep registers) is zero:
  // a hardware-reduced platform has none of them.
  return Table("FACP", 6, body);
}

std::vector<uint8_t> Madt(uint32_t vcpus) {
  std::vector<uint8_t> body(8, 0);
  PutLe(body, 0, kLocalApicAddress, 4);
  PutLe(body, 4, kMadtPcatCompat, 4);
  for (uint32_t i = 0; i < vcpus; ++i) {
    // Processor Local APIC: type 0, length 8, ACPI processor UID, APIC id, flags (enabled).
    body.insert(body.end(), {0, 8, static_cast<uint8_t>(i), static_cast<uint8_t>(i), 1, 0, 0, 0});
  }
  // I/O APIC: type 1, length 12, id 0, reserved, address, GSI base 0. No interrupt source
  // overrides: KVM's in-kernel PIT drives GSI 0 and the ISA IRQs are identity-mapped.
  std::vector<uint8_t> ioapic(12, 0);
  ioapic[0] = 1;
  ioapic[1] = 12;
  PutLe(ioapic, 4, kIoApicAddress, 4);
  body.insert(body.end(), ioapic.begin(), ioapic.end());
  return Table("APIC", 5, body);
}

std::vector<uint8_t> Xsdt(const std::vector<uint64_t>& entries) {
  std::vector<uint8_t> body(entries.size() * 8, 0);
  for (size_t i = 0; i < entries.size(); ++i) PutLe(body, i * 8, entries[i], 8);
  return Table("XSDT", 1, body);
}

std::vector<uint8_t> Rsdp(uint64_t xsdt) {
  std::vector<uint8_t> rsdp(kRsdpSize, 0);
  PutText(rsdp, 0, "RSD PTR ", 8);
  PutText(rsdp, 9, kOemId, 6);
  rsdp[15] = 2;  // revision: ACPI 2.0+ (XSDT)
  PutLe(rsdp, 20, kRsdpSize, 4);
  PutLe(rsdp, 24, xsdt, 8);
  rsdp[8] = static_cast<uint8_t>(-AcpiChecksum(rsdp.data(), 20));  // over the ACPI 1.0 part
  rsdp[32] = static_cast<uint8_t>(-AcpiChecksum(rsdp.data(), kRsdpSize));
  return rsdp;
}

std::string DeviceName(size_t index) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("VR") + kHex[(index >> 4) & 0xf] + kHex[index & 0xf];
}

uint64_t Align16(uint64_t value) { return (value + 15) & ~uint64_t{15}; }

}  // namespace

Status WriteVmGenerationId(const GuestMemory& memory) {
  uint8_t id[16];
  size_t done = 0;
  while (done < sizeof id) {
    const ssize_t n = ::getrandom(id + done, sizeof id - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("getrandom for the VM generation id");
    done += static_cast<size_t>(n);
  }
  if (auto r = memory.Write(kVmGenIdAddress, id); !r)
    return std::unexpected(Context("writing the VM generation id", r.error()));
  return {};
}

uint8_t AcpiChecksum(const uint8_t* data, size_t length) {
  uint8_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return sum;
}

std::vector<uint8_t> VirtioMmioDeviceAml(size_t index, const VirtioMmioSlot& slot) {
  aml::Bytes resources =
      aml::Memory32Fixed(true, static_cast<uint32_t>(slot.base), static_cast<uint32_t>(slot.size));
  const aml::Bytes interrupt = aml::ExtendedInterrupt(true, true, slot.gsi);
  resources.insert(resources.end(), interrupt.begin(), interrupt.end());

  aml::Bytes body = aml::Name("_HID", aml::String("LNRO0005"));
  const aml::Bytes uid = aml::Name("_UID", aml::Integer(index));
  const aml::Bytes crs = aml::Name("_CRS", aml::ResourceTemplate(resources));
  body.insert(body.end(), uid.begin(), uid.end());
  body.insert(body.end(), crs.begin(), crs.end());
  return aml::Device(DeviceName(index), body);
}

std::vector<uint8_t> SerialDeviceAml() {
  aml::Bytes resources = aml::Io(kSerialPort, kSerialPort, 1, 8);
  const aml::Bytes irq = aml::IrqNoFlags(static_cast<uint8_t>(kSerialGsi));
  resources.insert(resources.end(), irq.begin(), irq.end());

  aml::Bytes body = aml::Name("_HID", aml::EisaId("PNP0501"));
  const aml::Bytes uid = aml::Name("_UID", aml::Integer(0));
  const aml::Bytes crs = aml::Name("_CRS", aml::ResourceTemplate(resources));
  body.insert(body.end(), uid.begin(), uid.end());
  body.insert(body.end(), crs.begin(), crs.end());
  return aml::Device("COM1", body);
}

std::vector<uint8_t> RtcDeviceAml() {
  const aml::Bytes resources = aml::Io(kCmosPort, kCmosPort, 1, 2);
  aml::Bytes body = aml::Name("_HID", aml::EisaId("PNP0B00"));
  const aml::Bytes crs = aml::Name("_CRS", aml::ResourceTemplate(resources));
  body.insert(body.end(), crs.begin(), crs.end());
  return aml::Device("RTC_", body);
}

std::vector<uint8_t> VmGenIdDeviceAml(uint64_t id_address) {
  aml::Bytes body = aml::Name("_HID", aml::String("PHXVGID0"));
  const aml::Bytes cid = aml::Name("_CID", aml::String("VM_GEN_COUNTER"));
  const aml::Bytes ddn = aml::Name("_DDN", aml::String("VM_Gen_Counter"));
  const aml::Bytes parts[] = {aml::Integer(id_address & 0xffffffff),
                              aml::Integer(id_address >> 32)};
  const aml::Bytes addr = aml::Name("ADDR", aml::PackageOf(parts));
  for (const aml::Bytes* b : {&cid, &ddn, &addr}) body.insert(body.end(), b->begin(), b->end());
  return aml::Device("VGEN", body);
}

std::vector<uint8_t> GenericEventDeviceAml(uint32_t gsi) {
  aml::Bytes body = aml::Name("_HID", aml::String("ACPI0013"));
  const aml::Bytes crs =
      aml::Name("_CRS", aml::ResourceTemplate(aml::ExtendedInterrupt(false, true, gsi)));
  const aml::Bytes evt = aml::Method("_EVT", 1, aml::Notify("VGEN", 0x80));
  body.insert(body.end(), crs.begin(), crs.end());
  body.insert(body.end(), evt.begin(), evt.end());
  return aml::Device("GED_", body);
}

std::vector<uint8_t> DsdtBody(const std::vector<VirtioMmioSlot>& virtio) {
  aml::Bytes devices = SerialDeviceAml();
  const aml::Bytes rtc = RtcDeviceAml();
  devices.insert(devices.end(), rtc.begin(), rtc.end());
  const aml::Bytes vgen = VmGenIdDeviceAml(kVmGenIdAddress);
  const aml::Bytes ged = GenericEventDeviceAml(kGenerationIdGsi);
  devices.insert(devices.end(), vgen.begin(), vgen.end());
  devices.insert(devices.end(), ged.begin(), ged.end());
  for (size_t i = 0; i < virtio.size(); ++i) {
    const aml::Bytes device = VirtioMmioDeviceAml(i, virtio[i]);
    devices.insert(devices.end(), device.begin(), device.end());
  }
  return aml::Scope("\\_SB_", devices);
}

Result<AcpiTables> BuildAcpiTables(uint64_t base, uint32_t vcpus,
                                   const std::vector<VirtioMmioSlot>& virtio) {
  if (base % 16 != 0 || base >= (1ull << 32))
    return Fail("ACPI tables at " + std::to_string(base) +
                ": need a 16-byte aligned 32-bit address");
  if (vcpus == 0 || vcpus > 255)
    return Fail("ACPI MADT: " + std::to_string(vcpus) + " vCPUs (1..255 supported)");
  if (virtio.size() > 256) return Fail("ACPI DSDT: more than 256 virtio-mmio slots");
  for (const VirtioMmioSlot& slot : virtio) {
    if (slot.size == 0 || slot.base + slot.size > (1ull << 32) || slot.base + slot.size < slot.base)
      return Fail("ACPI DSDT: virtio-mmio slot at " + std::to_string(slot.base) + " size " +
                  std::to_string(slot.size) + " is not inside 32-bit address space");
  }

  AcpiTables t;
  t.base = base;
  t.rsdp = base;
  const std::vector<uint8_t> dsdt_bytes = Dsdt(virtio);
  const std::vector<uint8_t> madt_bytes = Madt(vcpus);
  // Layout: RSDP, XSDT, FADT, MADT, DSDT, each 16-byte aligned.
  t.xsdt = Align16(t.rsdp + kRsdpSize);
  t.fadt = Align16(t.xsdt + kHeaderSize + 2 * 8);
  t.madt = Align16(t.fadt + kFadtSize);
  t.dsdt = Align16(t.madt + madt_bytes.size());
  const std::vector<uint8_t> fadt_bytes = Fadt(t.dsdt);
  const std::vector<uint8_t> xsdt_bytes = Xsdt({t.fadt, t.madt});
  const std::vector<uint8_t> rsdp_bytes = Rsdp(t.xsdt);

  t.bytes.assign(t.dsdt + dsdt_bytes.size() - base, 0);
  auto place = [&](uint64_t at, const std::vector<uint8_t>& table) {
    std::memcpy(t.bytes.data() + (at - base), table.data(), table.size());
  };
  place(t.rsdp, rsdp_bytes);
  place(t.xsdt, xsdt_bytes);
  place(t.fadt, fadt_bytes);
  place(t.madt, madt_bytes);
  place(t.dsdt, dsdt_bytes);
  return t;
}

}  // namespace phoenix::vmm::x86
