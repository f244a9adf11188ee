#include "tools/phoenixctl/image_commands.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tools/phoenixctl/testing/fake_agent.h"

namespace phoenix::ctl {
namespace {

using testing::FakeAgent;
using ::testing::HasSubstr;
using testing::RunCli;

TEST(ImageLsTest, TableWithShortIdsRuntimesAndSizes) {
  FakeAgent agent;
  v1::Image image;
  image.set_id("sha256:0123456789abcdef0123456789abcdef");
  image.set_name("demo");
  image.set_tag("latest");
  image.add_runtimes(v1::RUNTIME_VM);
  image.add_runtimes(v1::RUNTIME_MICROVM);
  image.add_artifacts()->set_size_bytes(3 * 1024 * 1024);
  image.add_artifacts()->set_size_bytes(1024 * 1024);
  agent.AddImage(image);
  auto result = RunCli(RunImageGroup, agent.endpoint(), {"ls"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "NAME   TAG      ID                    RUNTIMES     SIZE      AGE\n"
            "demo   latest   sha256:0123456789ab   vm,microvm   4.0 MiB   -\n");
}

TEST(ImageBuildTest, StreamsLinesThenTheImage) {
  FakeAgent agent;
  agent.SetBuildLines({"building kernel", "packing rootfs\n"});
  auto result = RunCli(RunImageGroup, agent.endpoint(), {"build", "--tag", "v2"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(
      result.out,
      "building kernel\npacking rootfs\nbuilt demo:v2 (sha256:0123456789abcdef0123456789abcdef)\n");
  auto requests = agent.build_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].recipe(), "demo");
  EXPECT_EQ(requests[0].tag(), "v2");

  auto json = RunCli(RunImageGroup, agent.endpoint(), {"build", "web", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(std::count(json.out.begin(), json.out.end(), '\n'), 3) << json.out;
  EXPECT_THAT(json.out, HasSubstr("\"name\":\"web\""));
}

TEST(ImageImportTest, MakesTheDirectoryAbsoluteAndNeedsAName) {
  FakeAgent agent;
  auto missing = RunCli(RunImageGroup, agent.endpoint(), {"import", "/tmp/x"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--name is required"));
  auto result = RunCli(RunImageGroup, agent.endpoint(), {"import", "out/../img", "--name", "web"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto requests = agent.import_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].directory(), (std::filesystem::current_path() / "img").string());
  EXPECT_EQ(requests[0].name(), "web");
  EXPECT_EQ(result.out, "imported web:latest (sha256:feedface)\n");
}

TEST(ImageBuildTest, ServerErrorExits1) {
  FakeAgent agent;
  agent.FailNext("BuildImage",
                 grpc::Status(grpc::StatusCode::NOT_FOUND, "recipe nope not found in /recipes"));
  auto result = RunCli(RunImageGroup, agent.endpoint(), {"build", "nope"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "error: recipe nope not found in /recipes (NOT_FOUND)\n");
}

}  // namespace
}  // namespace phoenix::ctl
