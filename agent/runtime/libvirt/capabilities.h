// Capabilities: deciding from what libvirt reports whether guests run under KVM or TCG. Pure.
//
// KVM only when libvirt can describe a kvm domain (virConnectGetDomainCapabilities with virttype
// "kvm" succeeds) AND the host CPU in virConnectGetCapabilities has hardware virtualization
// (vmx/svm). A /dev/kvm without it (software KVM such as kvm-pvm, found on this project's build
// machines) boots a stock kernel far slower than TCG and pauses guests with "KVM internal error:
// emulation failure" on instructions it cannot emulate (seen: lock cmpxchg16b in early boot).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "agent/runtime/libvirt/domain_xml.h"

namespace phoenix::agent::libvirt {

struct AcceleratorChoice {
  Accelerator accel = Accelerator::kTcg;
  std::string description;  // for Runtime::Describe: "kvm", "tcg (...why...)"
};

// `host_capabilities`: virConnectGetCapabilities output (may be empty when it failed).
AcceleratorChoice ChooseAccelerator(bool kvm_domain_supported, std::string_view host_capabilities);

}  // namespace phoenix::agent::libvirt
