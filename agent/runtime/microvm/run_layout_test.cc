#include "agent/runtime/microvm/run_layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace phoenix::agent::microvm {
namespace {

namespace fs = std::filesystem;

TEST(RunLayoutTest, Paths) {
  RunLayout l{"/s"};
  EXPECT_EQ(l.GoldenDir("k"), "/s/golden/k");
  EXPECT_EQ(l.GoldenBootLog("k"), "/s/golden/k.boot.log");
  EXPECT_EQ(l.GoldenTemp("k", 7), "/s/golden/.tmp-k-7");
  EXPECT_EQ(l.RecordFile("phx-a"), "/s/run/phx-a/record");
  EXPECT_EQ(l.ControlSocket("phx-a"), "/s/run/phx-a/control.sock");
  EXPECT_EQ(l.VmmLog("phx-a"), "/s/run/phx-a/vmm.log");
  EXPECT_EQ(l.NetnsFile("phx-a"), "/s/netns/phx-a");
}

TEST(RunLayoutTest, GoldenTempsBelongToTheirKeyOnly) {
  RunLayout l{"/s"};
  EXPECT_TRUE(l.IsGoldenTempOf(l.GoldenTemp("ab-128m-1c", 3), "ab-128m-1c"));
  EXPECT_FALSE(l.IsGoldenTempOf(l.GoldenTemp("ab-128m-1c", 3), "ab-128m-2c"));
  EXPECT_FALSE(l.IsGoldenTempOf("/s/golden/ab-128m-1c", "ab-128m-1c"));
  EXPECT_FALSE(l.IsGoldenTempOf("/elsewhere/.tmp-ab-128m-1c-1", "ab-128m-1c"));
}

TEST(InstanceRecordTest, RoundTrips) {
  InstanceRecord r{.instance = "phx-web-3",
                   .guest_id = "g-123",
                   .netns = "/s/netns/phx-web-3",
                   .golden = "ab-128m-1c",
                   .pid = 4242,
                   .start_time = 987654321};
  auto parsed = ParseInstanceRecord(FormatInstanceRecord(r));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, r);
}

TEST(InstanceRecordTest, IgnoresUnknownKeysAndRefusesBadOnes) {
  auto r = ParseInstanceRecord("instance=phx-a\nfuture=1\npid=7\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->pid, 7);
  EXPECT_FALSE(ParseInstanceRecord("instance=phx-a\npid=seven\n"));
  EXPECT_FALSE(ParseInstanceRecord("instance=web\n"));  // not ours
  EXPECT_FALSE(ParseInstanceRecord("instance=phx-a\nnonsense\n"));
}

TEST(InstanceRecordTest, FileRoundTripAndNotFound) {
  fs::path dir = fs::temp_directory_path() / ("microvm_record_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  InstanceRecord r{.instance = "phx-a", .pid = 5};
  ASSERT_TRUE(WriteInstanceRecord(dir / "record", r));
  EXPECT_FALSE(fs::exists(dir / "record.tmp"));
  auto back = ReadInstanceRecord(dir / "record");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, r);
  auto missing = ReadInstanceRecord(dir / "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  fs::remove_all(dir);
}

TEST(ValidInstanceNameTest, Names) {
  EXPECT_TRUE(ValidInstanceName("phx-web-3"));
  EXPECT_TRUE(ValidInstanceName("phx-a.b_c"));
  EXPECT_FALSE(ValidInstanceName("web-3"));
  EXPECT_FALSE(ValidInstanceName("phx-../x"));
  EXPECT_FALSE(ValidInstanceName("phx-" + std::string(61, 'a')));
}

}  // namespace
}  // namespace phoenix::agent::microvm
