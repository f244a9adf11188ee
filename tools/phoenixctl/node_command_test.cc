#include "tools/phoenixctl/node_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tools/phoenixctl/testing/fake_agent.h"

namespace phoenix::ctl {
namespace {

using testing::FakeAgent;
using ::testing::HasSubstr;
using testing::RunCli;

TEST(NodeInfoTest, PrintsCapacityAndRuntimes) {
  FakeAgent agent;
  v1::NodeInfo info;
  info.set_name("host-1");
  info.set_zone("lab");
  (*info.mutable_labels())["rack"] = "r1";
  info.mutable_capacity()->set_vcpus(8);
  info.mutable_capacity()->set_memory_mib(16384);
  info.mutable_allocated()->set_vcpus(2);
  info.mutable_allocated()->set_memory_mib(512);
  info.set_guests(2);
  v1::Accelerator* vm = info.add_runtimes();
  vm->set_runtime(v1::RUNTIME_VM);
  vm->set_available(true);
  vm->set_detail("tcg (no usable /dev/kvm)");
  v1::Accelerator* microvm = info.add_runtimes();
  microvm->set_runtime(v1::RUNTIME_MICROVM);
  microvm->set_detail("needs /dev/kvm");
  agent.SetNodeInfo(info);
  auto result = RunCli(RunNodeGroup, agent.endpoint(), {"info"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("Labels:     rack=r1\n"));
  EXPECT_THAT(result.out, HasSubstr("CPUs:       2 of 8 allocated\n"));
  EXPECT_THAT(result.out, HasSubstr("Memory:     512 of 16384 MiB allocated\n"));
  EXPECT_THAT(result.out, HasSubstr("RUNTIME   AVAILABLE   DETAIL\n"
                                    "vm        yes         tcg (no usable /dev/kvm)\n"
                                    "microvm   no          needs /dev/kvm\n"));
  auto json = RunCli(RunNodeGroup, agent.endpoint(), {"info", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"zone\": \"lab\""));
  auto extra = RunCli(RunNodeGroup, agent.endpoint(), {"info", "x"});
  EXPECT_EQ(extra.exit_code, 2);
}

}  // namespace
}  // namespace phoenix::ctl
