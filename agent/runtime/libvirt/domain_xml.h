// DomainXml: the libvirt domain XML of one Phoenix instance (a pure function of the spec), and
// reading back the Phoenix metadata of a domain so the agent can re-adopt it.
//
// The XML boots the image's kernel directly, gives the instance a qcow2 overlay on virtio, appends
// the serial console to the instance log, has no graphics and no balloon, and is destroyed (never
// restarted) by QEMU/libvirt on poweroff, reboot or crash: the reconciler decides restarts.
// Networking is QEMU user-mode (slirp) with hostfwd on 127.0.0.1 through qemu:commandline, because
// libvirt 9.0's <interface type='user'> can only forward ports with passt. It is restricted
// (restrict=on): the guest can open no connection through it, to the host or beyond; the hostfwd
// rules are its only way in.
//
// Golden snapshots restore the memory of one domain into another: the XML of a golden domain and of
// the instances restored from it must be ABI-identical (same devices and addresses) and differ only
// in name, uuid, disk/log paths and the hostfwd rules (libvirt checks this on restore).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "agent/runtime/runtime.h"

namespace phoenix::agent::libvirt {

enum class Accelerator { kKvm, kTcg };
std::string_view AcceleratorName(Accelerator accel);  // "kvm" / "tcg"

inline constexpr std::string_view kMetadataNamespace =
    "https://phoenix.dev/xmlns/libvirt-instance/1";
inline constexpr std::string_view kMetadataPrefix = "phx";

struct DomainDetails {
  Accelerator accel = Accelerator::kTcg;
  std::string uuid;  // empty: libvirt generates one
  // VM generation id (an ACPI vmgenid device): a fresh one per instance. Restoring a golden
  // snapshot under a new id makes the guest kernel reseed its RNG before user code runs, so
  // clones never share randomness. Empty: no device.
  std::string genid;
  std::filesystem::path overlay;  // the instance's qcow2 overlay; empty: no disk
  std::filesystem::path emulator = "/usr/bin/qemu-system-x86_64";
};

// spec.instance is the domain name; spec.log_path receives the serial console (appended).
std::string DomainXml(const InstanceSpec& spec, const DomainDetails& details);

// XML-escapes text for element content and single- or double-quoted attributes.
std::string XmlEscape(std::string_view text);

// What the Phoenix <metadata> element of a domain records.
struct InstanceMetadata {
  std::string guest_id;
  std::string instance;
};
// Parses the element virDomainGetMetadata returns for kMetadataNamespace. Empty fields when absent.
InstanceMetadata ParseMetadata(std::string_view metadata_xml);

}  // namespace phoenix::agent::libvirt
