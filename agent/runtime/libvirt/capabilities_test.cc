#include "agent/runtime/libvirt/capabilities.h"

#include <gtest/gtest.h>

namespace phoenix::agent::libvirt {
namespace {

std::string Caps(std::string_view host_features, std::string_view guest_features = "") {
  return "<capabilities>\n  <host>\n    <cpu>\n      <arch>x86_64</arch>\n" +
         std::string(host_features) + "    </cpu>\n  </host>\n  <guest>" +
         std::string(guest_features) + "</guest>\n</capabilities>\n";
}

TEST(ChooseAccelerator, Table) {
  struct Case {
    const char* name;
    bool kvm_domain;
    std::string caps;
    Accelerator want;
  } cases[] = {
      {"intel vmx", true, Caps("      <feature name='vmx'/>\n"), Accelerator::kKvm},
      {"amd svm", true, Caps("      <feature name='svm'/>\n"), Accelerator::kKvm},
      {"double quotes", true, Caps("      <feature name=\"vmx\"/>\n"), Accelerator::kKvm},
      {"software kvm (kvm-pvm)", true, Caps("      <feature name='hypervisor'/>\n"),
       Accelerator::kTcg},
      {"vmx only outside the host cpu", true,
       Caps("      <feature name='ss'/>\n", "<feature name='vmx'/>"), Accelerator::kTcg},
      {"no kvm domain", false, Caps("      <feature name='vmx'/>\n"), Accelerator::kTcg},
      {"capabilities unavailable", true, "", Accelerator::kTcg},
  };
  for (const auto& c : cases) {
    AcceleratorChoice got = ChooseAccelerator(c.kvm_domain, c.caps);
    EXPECT_EQ(got.accel, c.want) << c.name;
    EXPECT_EQ(got.description.starts_with(AcceleratorName(c.want)), true) << c.name;
  }
}

}  // namespace
}  // namespace phoenix::agent::libvirt
