// A minimal ACPI Machine Language (AML) encoder: just the terms a micro-VM's DSDT needs (scopes,
// devices, named integers/strings/buffers/packages, methods that notify a device, resource
// templates with Memory32Fixed and Extended Interrupt descriptors). Encodings follow the ACPI 6.5
// specification, chapters 19 (ASL) and 20 (AML grammar) and 6.4 (resource descriptors).
//
// Names are the monitor's own constants: a NameSeg is 1-4 characters of [A-Z0-9_] (padded with
// '_'), optionally preceded by '\' for the root.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace phoenix::vmm::x86::aml {

using Bytes = std::vector<uint8_t>;

// PkgLength for a package whose contents after the PkgLength are `payload` bytes long: the
// encoded length counts the PkgLength bytes themselves (1 byte below 64, else 2-4 bytes with the
// byte count in bits 7-6 of the lead byte and the low nibble in its bits 3-0).
Bytes PkgLength(size_t payload);

Bytes NameString(std::string_view name);
Bytes Integer(uint64_t value);
// EisaId("PNP0501"): the 32-bit compressed EISA id as a DWord integer.
Bytes EisaId(std::string_view id);  // ZeroOp/OneOp/BytePrefix/WordPrefix/DWordPrefix/QWordPrefix
Bytes String(std::string_view value);
Bytes Buffer(std::span<const uint8_t> data);
Bytes Name(std::string_view name, std::span<const uint8_t> value);  // Name(NAME, value)
Bytes Scope(std::string_view name, std::span<const uint8_t> body);
Bytes Device(std::string_view name, std::span<const uint8_t> body);

// Package(){elements}: each element an encoded data object (Integer, String, ...).
Bytes PackageOf(std::span<const Bytes> elements);
// Method(NAME, arg_count, NotSerialized){body}.
Bytes Method(std::string_view name, uint8_t arg_count, std::span<const uint8_t> body);
// Notify(NAME, value): NAME is resolved from the method's scope upwards.
Bytes Notify(std::string_view name, uint8_t value);

// Resource descriptors for ResourceTemplate.
// IO(Decode16, min, max, alignment, length).
Bytes Io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);
// IRQNoFlags(){irq}: an ISA interrupt, edge-triggered, active high.
Bytes IrqNoFlags(uint8_t irq);
Bytes Memory32Fixed(bool read_write, uint32_t base, uint32_t length);
// Interrupt(ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow, Exclusive){gsi}.
Bytes ExtendedInterrupt(bool level_triggered, bool active_high, uint32_t gsi);
// A Buffer holding the descriptors followed by the End Tag (checksum 0: "treat as summed to 0").
Bytes ResourceTemplate(std::span<const uint8_t> descriptors);

}  // namespace phoenix::vmm::x86::aml
