#include "agent/runtime/libvirt/capabilities.h"

namespace phoenix::agent::libvirt {

namespace {

// The <host><cpu> element lists vmx/svm among its <feature>s when the CPU has them.
bool HostHasHardwareVirtualization(std::string_view caps) {
  size_t host = caps.find("<host>");
  if (host == std::string_view::npos) return false;
  size_t end = caps.find("</cpu>", host);
  if (end == std::string_view::npos) return false;
  std::string_view cpu = caps.substr(host, end - host);
  for (std::string_view f : {"name='vmx'", "name='svm'", "name=\"vmx\"", "name=\"svm\""}) {
    if (cpu.find(f) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

AcceleratorChoice ChooseAccelerator(bool kvm_domain_supported, std::string_view host_capabilities) {
  if (!kvm_domain_supported) return {Accelerator::kTcg, "tcg (libvirt reports no usable KVM)"};
  if (!HostHasHardwareVirtualization(host_capabilities)) {
    return {Accelerator::kTcg,
            "tcg (/dev/kvm exists but the host CPU has no vmx/svm: software KVM is slower than "
            "TCG and cannot run every guest instruction)"};
  }
  return {Accelerator::kKvm, "kvm"};
}

}  // namespace phoenix::agent::libvirt
