#include "agent/runtime/libvirt/domain_xml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::agent::libvirt {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

InstanceSpec BaseSpec() {
  InstanceSpec s;
  s.instance = "phx-web-3";
  s.guest_id = "g-123";
  s.guest_name = "web";
  s.image.image_id = "sha256:abcd";
  s.image.kernel = "/images/abcd/vmlinux";
  s.image.initrd = "/images/abcd/initrd.img";
  s.image.disk = "/images/abcd/disk.qcow2";
  s.image.cmdline = "console=ttyS0 quiet";
  s.vcpus = 2;
  s.memory_mib = 384;
  s.log_path = "/guests/web/console.log";
  s.guest_dir = "/guests/web";
  return s;
}

struct Case {
  std::string name;
  std::function<void(InstanceSpec&, DomainDetails&)> mutate;
  std::vector<std::string> present;
  std::vector<std::string> absent;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class DomainXmlTest : public ::testing::TestWithParam<Case> {};

TEST_P(DomainXmlTest, Renders) {
  InstanceSpec spec = BaseSpec();
  DomainDetails details{.accel = Accelerator::kTcg,
                        .uuid = "0f0e0d0c-0b0a-4908-8706-050403020100",
                        .genid = "11111111-2222-4333-8444-555555555555",
                        .overlay = "/guests/web/phx-web-3.qcow2"};
  GetParam().mutate(spec, details);
  std::string xml = DomainXml(spec, details);
  for (const auto& s : GetParam().present) EXPECT_THAT(xml, HasSubstr(s)) << xml;
  for (const auto& s : GetParam().absent) EXPECT_THAT(xml, Not(HasSubstr(s))) << xml;
}

INSTANTIATE_TEST_SUITE_P(
    Table, DomainXmlTest,
    ::testing::Values(Case{"Tcg",
                           [](InstanceSpec&, DomainDetails&) {},
                           {"<domain type='qemu'",
                            "<name>phx-web-3</name>",
                            "<uuid>0f0e0d0c-0b0a-4908-8706-050403020100</uuid>",
                            "<genid>11111111-2222-4333-8444-555555555555</genid>",
                            "<memory unit='MiB'>384</memory>",
                            "<vcpu>2</vcpu>",
                            "<kernel>/images/abcd/vmlinux</kernel>",
                            "<initrd>/images/abcd/initrd.img</initrd>",
                            "<cmdline>console=ttyS0 quiet</cmdline>",
                            "<source file='/guests/web/phx-web-3.qcow2'/>",
                            "<driver name='qemu' type='qcow2'/>",
                            "<target dev='vda' bus='virtio'/>",
                            "<source path='/guests/web/console.log' append='on'/>",
                            "<on_poweroff>destroy</on_poweroff>",
                            "<on_reboot>destroy</on_reboot>",
                            "<on_crash>destroy</on_crash>",
                            "<memballoon model='none'/>",
                            "<video><model type='none'/></video>",
                            "<qemu:arg value='user,id=phxnet0,restrict=on'/>",
                            "virtio-net-pci,netdev=phxnet0,addr=0x10",
                            "<phx:guest-id>g-123</phx:guest-id>",
                            "<phx:instance>phx-web-3</phx:instance>",
                            "xmlns:phx='https://phoenix.dev/xmlns/libvirt-instance/1'"},
                           {"<graphics", "<cpu", "<interface", "hostfwd"}},
                      Case{"Kvm",
                           [](InstanceSpec&, DomainDetails& d) { d.accel = Accelerator::kKvm; },
                           {"<domain type='kvm'", "<cpu mode='host-passthrough'"},
                           {"<domain type='qemu'"}},
                      Case{"PortsBecomeLoopbackHostfwd",
                           [](InstanceSpec& s, DomainDetails&) {
                             s.ports = {{.guest_port = 80, .host_port = 41001},
                                        {.guest_port = 22, .host_port = 41002}};
                           },
                           {"user,id=phxnet0,restrict=on,hostfwd=tcp:127.0.0.1:41001-:80,"
                            "hostfwd=tcp:127.0.0.1:41002-:22"},
                           {}},
                      Case{"NoDiskNoInitrdNoUuid",
                           [](InstanceSpec& s, DomainDetails& d) {
                             s.image.initrd.clear();
                             d.overlay.clear();
                             d.uuid.clear();
                           },
                           {"<kernel>"},
                           {"<disk", "<initrd>", "<uuid>"}},
                      Case{"EverythingEscaped",
                           [](InstanceSpec& s, DomainDetails&) {
                             s.instance = "phx-a&b";
                             s.guest_id = "<id>\"'";
                             s.image.cmdline = "x=<1> & y='2'";
                             s.log_path = "/logs/o'neil.log";
                           },
                           {"<name>phx-a&amp;b</name>",
                            "<phx:guest-id>&lt;id&gt;&quot;&apos;</phx:guest-id>",
                            "<cmdline>x=&lt;1&gt; &amp; y=&apos;2&apos;</cmdline>",
                            "<source path='/logs/o&apos;neil.log' append='on'/>"},
                           {"phx-a&b", "o'neil"}}),
    [](const auto& info) { return info.param.name; });

TEST(DomainXml, IsPure) {
  InstanceSpec spec = BaseSpec();
  DomainDetails d{.accel = Accelerator::kKvm, .uuid = "u", .overlay = "/o.qcow2"};
  EXPECT_EQ(DomainXml(spec, d), DomainXml(spec, d));
}

TEST(DomainXml, GoldenAndInstanceDifferOnlyInIdentityPathsAndPorts) {
  InstanceSpec golden = BaseSpec();
  golden.instance = "phoenix-golden-x";
  InstanceSpec inst = BaseSpec();
  inst.ports = {{.guest_port = 80, .host_port = 40000}};
  std::string a = DomainXml(golden, {.accel = Accelerator::kTcg, .overlay = "/o.qcow2"});
  std::string b = DomainXml(inst, {.accel = Accelerator::kTcg, .overlay = "/o.qcow2"});
  auto devices = [](const std::string& x) {
    return x.substr(x.find("<devices>"), x.find("</devices>") - x.find("<devices>"));
  };
  EXPECT_EQ(devices(a), devices(b));
}

TEST(ParseMetadata, ReadsWhatDomainXmlWrites) {
  InstanceSpec spec = BaseSpec();
  spec.guest_id = "id & <more>";
  std::string xml = DomainXml(spec, {});
  auto start = xml.find("<phx:phoenix");
  auto end = xml.find("</phx:phoenix>") + std::string("</phx:phoenix>").size();
  InstanceMetadata m = ParseMetadata(xml.substr(start, end - start));
  EXPECT_EQ(m.guest_id, "id & <more>");
  EXPECT_EQ(m.instance, "phx-web-3");
}

TEST(ParseMetadata, LibvirtFormattingAndAbsentFields) {
  // virDomainGetMetadata returns the element with its own namespace declaration, double quotes.
  InstanceMetadata m = ParseMetadata(
      "<phx:phoenix xmlns:phx=\"https://phoenix.dev/xmlns/libvirt-instance/1\">\n"
      "  <phx:guest-id>g-9</phx:guest-id>\n</phx:phoenix>");
  EXPECT_EQ(m.guest_id, "g-9");
  EXPECT_EQ(m.instance, "");
  EXPECT_EQ(ParseMetadata("").guest_id, "");
}

TEST(XmlEscape, AllFiveCharacters) {
  EXPECT_EQ(XmlEscape("a&b<c>d'e\"f"), "a&amp;b&lt;c&gt;d&apos;e&quot;f");
  EXPECT_EQ(XmlEscape("plain"), "plain");
}

}  // namespace
}  // namespace phoenix::agent::libvirt
