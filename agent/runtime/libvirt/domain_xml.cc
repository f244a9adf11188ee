#include "agent/runtime/libvirt/domain_xml.h"

#include <fmt/format.h>

namespace phoenix::agent::libvirt {

std::string_view AcceleratorName(Accelerator accel) {
  return accel == Accelerator::kKvm ? "kvm" : "tcg";
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

std::string XmlUnescape(std::string_view text) {
  static constexpr std::pair<std::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    if (text[i] == '&') {
      for (auto [entity, c] : kEntities) {
        if (text.substr(i, entity.size()) == entity) {
          out += c;
          i += entity.size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out += text[i++];
  }
  return out;
}

// Text of the first <...name>text</...name> element, whatever its namespace prefix.
std::string ElementText(std::string_view xml, std::string_view name) {
  std::string open = std::string(name) + ">";
  for (size_t pos = xml.find(open); pos != std::string_view::npos; pos = xml.find(open, pos + 1)) {
    // Must be an opening tag: "<name>" or "<prefix:name>".
    size_t lt = xml.rfind('<', pos);
    if (lt == std::string_view::npos || xml[lt + 1] == '/') continue;
    std::string_view between = xml.substr(lt + 1, pos - lt - 1);
    if (!between.empty() && between.back() != ':') continue;
    size_t start = pos + open.size();
    size_t end = xml.find('<', start);
    if (end == std::string_view::npos) return {};
    return XmlUnescape(xml.substr(start, end - start));
  }
  return {};
}

}  // namespace

std::string DomainXml(const InstanceSpec& spec, const DomainDetails& d) {
  const bool kvm = d.accel == Accelerator::kKvm;
  std::string x;
  x += fmt::format("<domain type='{}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n",
                   kvm ? "kvm" : "qemu");
  x += fmt::format("  <name>{}</name>\n", XmlEscape(spec.instance));
  if (!d.uuid.empty()) x += fmt::format("  <uuid>{}</uuid>\n", XmlEscape(d.uuid));
  if (!d.genid.empty()) x += fmt::format("  <genid>{}</genid>\n", XmlEscape(d.genid));
  x += "  <metadata>\n";
  x += fmt::format("    <{0}:phoenix xmlns:{0}='{1}'>\n", kMetadataPrefix, kMetadataNamespace);
  x += fmt::format("      <{0}:guest-id>{1}</{0}:guest-id>\n", kMetadataPrefix,
                   XmlEscape(spec.guest_id));
  x += fmt::format("      <{0}:guest-name>{1}</{0}:guest-name>\n", kMetadataPrefix,
                   XmlEscape(spec.guest_name));
  x += fmt::format("      <{0}:instance>{1}</{0}:instance>\n", kMetadataPrefix,
                   XmlEscape(spec.instance));
  x += fmt::format("      <{0}:image>{1}</{0}:image>\n", kMetadataPrefix,
                   XmlEscape(spec.image.image_id));
  x += fmt::format("    </{}:phoenix>\n", kMetadataPrefix);
  x += "  </metadata>\n";
  x += fmt::format("  <memory unit='MiB'>{}</memory>\n", spec.memory_mib);
  x += fmt::format("  <vcpu>{}</vcpu>\n", spec.vcpus);
  x += "  <os>\n";
  x += "    <type arch='x86_64' machine='pc'>hvm</type>\n";
  x += fmt::format("    <kernel>{}</kernel>\n", XmlEscape(spec.image.kernel.string()));
  if (!spec.image.initrd.empty()) {
    x += fmt::format("    <initrd>{}</initrd>\n", XmlEscape(spec.image.initrd.string()));
  }
  x += fmt::format("    <cmdline>{}</cmdline>\n", XmlEscape(spec.image.cmdline));
  x += "  </os>\n";
  x += "  <features><acpi/></features>\n";
  // KVM: the host's CPU (snapshots are per host and accelerator anyway). TCG: libvirt's default
  // qemu64 model; naming one explicitly makes libvirt check it against the host's KVM CPU.
  if (kvm) x += "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n";
  x += "  <clock offset='utc'/>\n";
  x += "  <on_poweroff>destroy</on_poweroff>\n";
  x += "  <on_reboot>destroy</on_reboot>\n";
  x += "  <on_crash>destroy</on_crash>\n";
  x += "  <devices>\n";
  x += fmt::format("    <emulator>{}</emulator>\n", XmlEscape(d.emulator.string()));
  if (!d.overlay.empty()) {
    x += "    <disk type='file' device='disk'>\n";
    x += "      <driver name='qemu' type='qcow2'/>\n";
    x += fmt::format("      <source file='{}'/>\n", XmlEscape(d.overlay.string()));
    x += "      <target dev='vda' bus='virtio'/>\n";
    x += "    </disk>\n";
  }
  const std::string log = XmlEscape(spec.log_path.string());
  x += "    <serial type='file'>\n";
  x += fmt::format("      <source path='{}' append='on'/>\n", log);
  x += "      <target port='0'/>\n";
  x += "    </serial>\n";
  x += "    <console type='file'>\n";
  x += fmt::format("      <source path='{}' append='on'/>\n", log);
  x += "      <target type='serial' port='0'/>\n";
  x += "    </console>\n";
  x += "    <video><model type='none'/></video>\n";
  x += "    <memballoon model='none'/>\n";
  x += "  </devices>\n";
  // The NIC lives outside libvirt's device model, at a fixed PCI slot so that a restored guest
  // finds it where the golden guest had it.
  // restrict=on: the guest reaches nothing through slirp (not the host's loopback at 10.0.2.2, not
  // the outside); only the hostfwd rules below reach it. Without it, every loopback service of the
  // host is one connect away from the guest.
  std::string netdev = "user,id=phxnet0,restrict=on";
  for (const PortForward& p : spec.ports) {
    netdev += fmt::format(",hostfwd=tcp:127.0.0.1:{}-:{}", p.host_port, p.guest_port);
  }
  x += "  <qemu:commandline>\n";
  x += "    <qemu:arg value='-netdev'/>\n";
  x += fmt::format("    <qemu:arg value='{}'/>\n", XmlEscape(netdev));
  x += "    <qemu:arg value='-device'/>\n";
  x += "    <qemu:arg value='virtio-net-pci,netdev=phxnet0,addr=0x10'/>\n";
  x += "  </qemu:commandline>\n";
  x += "</domain>\n";
  return x;
}

InstanceMetadata ParseMetadata(std::string_view metadata_xml) {
  InstanceMetadata m;
  m.guest_id = ElementText(metadata_xml, "guest-id");
  m.instance = ElementText(metadata_xml, "instance");
  return m;
}

}  // namespace phoenix::agent::libvirt
