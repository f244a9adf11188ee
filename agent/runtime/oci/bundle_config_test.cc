#include "agent/runtime/oci/bundle_config.h"

#include <algorithm>
#include <map>

#include <gtest/gtest.h>

namespace phoenix::agent::oci {
namespace {

InstanceSpec Spec() {
  InstanceSpec s;
  s.instance = "phx-web-3";
  s.guest_name = "Web_Front";
  s.vcpus = 2;
  s.memory_mib = 64;
  s.image.command = {"/bin/demo-web"};
  s.env = {{"COLOR", "blue"}, {"EMPTY", ""}};
  return s;
}

BundleDetails Details() {
  return BundleDetails{.netns = "/var/lib/phoenix/oci/netns/phx-web-3",
                       .cgroups_path = "/phoenix/phx-web-3"};
}

const Json& At(const Json& j, std::initializer_list<const char*> path) {
  const Json* cur = &j;
  for (const char* key : path) {
    cur = cur->Find(key);
    EXPECT_NE(cur, nullptr) << key;
    if (cur == nullptr) {
      static const Json kNull;
      return kNull;
    }
  }
  return *cur;
}

std::vector<std::string> Strings(const Json& j) {
  std::vector<std::string> out;
  for (const Json& x : j.as_array()) out.push_back(x.as_string());
  return out;
}

TEST(BundleConfigTest, ProcessFromSpec) {
  auto c = BundleConfig(Spec(), Details());
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(Strings(At(*c, {"process", "args"})), std::vector<std::string>{"/bin/demo-web"});
  EXPECT_EQ(
      Strings(At(*c, {"process", "env"})),
      (std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                "HOME=/", "PHOENIX_INSTANCE=phx-web-3", "PHOENIX_RUNTIME=container",
                                "COLOR=blue", "EMPTY="}));
  EXPECT_EQ(At(*c, {"process", "cwd"}).as_string(), "/");
  EXPECT_EQ(At(*c, {"hostname"}).as_string(), "web-front");
  EXPECT_EQ(At(*c, {"process", "terminal"}).as_bool(), false);
}

TEST(BundleConfigTest, SpecCommandOverridesImageCommand) {
  InstanceSpec s = Spec();
  s.command = {"sh", "-c", "head -c 200m /dev/zero | tail"};
  auto c = BundleConfig(s, Details());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(Strings(At(*c, {"process", "args"})), s.command);
}

TEST(BundleConfigTest, UnprivilegedUserWithoutCapabilities) {
  auto c = BundleConfig(Spec(), Details());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(At(*c, {"process", "user", "uid"}).as_number(), 65534);
  EXPECT_EQ(At(*c, {"process", "user", "gid"}).as_number(), 65534);
  EXPECT_TRUE(At(*c, {"process", "noNewPrivileges"}).as_bool());
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"}) {
    EXPECT_TRUE(At(*c, {"process", "capabilities", set}).as_array().empty()) << set;
  }
  // Low ports come from a sysctl the runtime sets in the instance's netns, not from the config
  // (a container in its own user namespace could not write it).
  EXPECT_FALSE(c->as_object().at("linux").as_object().contains("sysctl"));
}

TEST(BundleConfigTest, NamespacesJoinTheInstanceNetns) {
  auto c = BundleConfig(Spec(), Details());
  ASSERT_TRUE(c.has_value());
  std::map<std::string, std::string> ns;
  for (const Json& n : At(*c, {"linux", "namespaces"}).as_array()) {
    ns[n.StringOr("type")] = n.StringOr("path");
  }
  EXPECT_EQ(ns, (std::map<std::string, std::string>{{"pid", ""},
                                                    {"network", Details().netns.string()},
                                                    {"ipc", ""},
                                                    {"uts", ""},
                                                    {"mount", ""}}));
}

TEST(BundleConfigTest, AUserNamespaceMapsTheContainersIdsToItsOwnHostRange) {
  BundleDetails details = Details();
  EXPECT_FALSE(
      BundleConfig(Spec(), details)->as_object().at("linux").as_object().contains("uidMappings"));
  details.userns_base = 2147549184u;
  auto c = BundleConfig(Spec(), details);
  ASSERT_TRUE(c.has_value());
  bool has_user = false;
  for (const Json& n : At(*c, {"linux", "namespaces"}).as_array()) {
    has_user = has_user || n.StringOr("type") == "user";
  }
  EXPECT_TRUE(has_user);
  for (const char* map : {"uidMappings", "gidMappings"}) {
    const auto& m = At(*c, {"linux", map}).as_array();
    ASSERT_EQ(m.size(), 1u) << map;
    EXPECT_EQ(m[0].as_object().at("containerID").as_number(), 0) << map;
    EXPECT_EQ(m[0].as_object().at("hostID").as_number(), 2147549184.0) << map;
    EXPECT_EQ(m[0].as_object().at("size").as_number(), 65536) << map;
  }
  EXPECT_EQ(At(*c, {"process", "user", "uid"}).as_number(), 65534) << "nobody inside";
}

TEST(BundleConfigTest, CgroupLimits) {
  BundleDetails d = Details();
  auto c = BundleConfig(Spec(), d);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(At(*c, {"linux", "cgroupsPath"}).as_string(), "/phoenix/phx-web-3");
  EXPECT_EQ(At(*c, {"linux", "resources", "memory", "limit"}).as_number(), 64.0 * 1024 * 1024);
  EXPECT_EQ(At(*c, {"linux", "resources", "memory"}).Find("swap"), nullptr);
  EXPECT_EQ(At(*c, {"linux", "resources", "cpu", "quota"}).as_number(), 200000);
  EXPECT_EQ(At(*c, {"linux", "resources", "cpu", "period"}).as_number(), 100000);
  EXPECT_EQ(At(*c, {"linux", "resources", "pids", "limit"}).as_number(), 256);
  d.limit_swap = true;
  d.pids_limit = 32;
  c = BundleConfig(Spec(), d);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(At(*c, {"linux", "resources", "memory", "swap"}).as_number(), 64.0 * 1024 * 1024);
  EXPECT_EQ(At(*c, {"linux", "resources", "pids", "limit"}).as_number(), 32);
}

TEST(BundleConfigTest, WritableOverlayRootAndHardenedProcSys) {
  auto c = BundleConfig(Spec(), Details());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(At(*c, {"root", "path"}).as_string(), "rootfs");
  EXPECT_FALSE(At(*c, {"root", "readonly"}).as_bool());
  auto masked = Strings(At(*c, {"linux", "maskedPaths"}));
  EXPECT_NE(std::find(masked.begin(), masked.end(), "/proc/kcore"), masked.end());
  auto ro = Strings(At(*c, {"linux", "readonlyPaths"}));
  EXPECT_NE(std::find(ro.begin(), ro.end(), "/proc/sys"), ro.end());
  bool sys_ro = false;
  for (const Json& m : At(*c, {"mounts"}).as_array()) {
    if (m.StringOr("destination") != "/sys") continue;
    auto opts = Strings(*m.Find("options"));
    sys_ro = std::find(opts.begin(), opts.end(), "ro") != opts.end();
  }
  EXPECT_TRUE(sys_ro);
}

TEST(BundleConfigTest, SeccompDeniesKeyringsNamespacesAndMounts) {
  auto c = BundleConfig(Spec(), Details());
  ASSERT_TRUE(c.has_value());
  const Json& seccomp = At(*c, {"linux", "seccomp"});
  EXPECT_EQ(seccomp.StringOr("defaultAction"), "SCMP_ACT_ALLOW");
  auto arches = Strings(At(seccomp, {"architectures"}));
  EXPECT_NE(std::find(arches.begin(), arches.end(), "SCMP_ARCH_X86"), arches.end())
      << "32-bit entries into the kernel are filtered too";
  std::map<std::string, std::string> action;  // syscall -> action of its unconditional rule
  bool clone_newuser = false;
  for (const Json& rule : At(seccomp, {"syscalls"}).as_array()) {
    for (const std::string& name : Strings(*rule.Find("names"))) {
      if (rule.Find("args") == nullptr) {
        action[name] = rule.StringOr("action");
      } else if (name == "clone") {
        const Json& arg = rule.Find("args")->as_array().at(0);
        clone_newuser = arg.StringOr("op") == "SCMP_CMP_MASKED_EQ" &&
                        arg.Find("value")->as_number() == 0x10000000;
      }
    }
  }
  for (const char* name :
       {"keyctl", "add_key", "request_key", "unshare", "setns", "mount", "bpf", "perf_event_open",
        "kexec_load", "init_module", "finit_module", "ptrace", "process_vm_readv", "userfaultfd",
        "io_uring_setup", "open_by_handle_at", "fsopen", "clone3"}) {
    EXPECT_EQ(action[name], "SCMP_ACT_ERRNO") << name;
  }
  EXPECT_TRUE(clone_newuser) << "clone(CLONE_NEWUSER) is refused";
  EXPECT_FALSE(action.contains("clone")) << "plain clone (fork, threads) stays allowed";
  EXPECT_FALSE(action.contains("read"));
}

TEST(BundleConfigTest, RejectsUnrunnableSpecs) {
  InstanceSpec s = Spec();
  s.image.command.clear();
  EXPECT_EQ(BundleConfig(s, Details()).error().field, "command");
  s = Spec();
  s.memory_mib = 0;
  EXPECT_EQ(BundleConfig(s, Details()).error().field, "memory_mib");
  s = Spec();
  s.vcpus = 0;
  EXPECT_EQ(BundleConfig(s, Details()).error().field, "vcpus");
  s = Spec();
  s.env = {{"A=B", "x"}};
  EXPECT_EQ(BundleConfig(s, Details()).error().field, "env");
  BundleDetails d = Details();
  d.netns = "relative/netns";
  EXPECT_EQ(BundleConfig(Spec(), d).error().field, "netns");
}

TEST(BundleConfigTest, Hostnames) {
  EXPECT_EQ(HostnameFor("phx-web-3"), "phx-web-3");
  EXPECT_EQ(HostnameFor("My Web__App!"), "my-web-app");
  EXPECT_EQ(HostnameFor("--"), "phoenix");
  EXPECT_EQ(HostnameFor(std::string(100, 'a')).size(), 63u);
}

}  // namespace
}  // namespace phoenix::agent::oci
