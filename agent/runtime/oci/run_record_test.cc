#include "agent/runtime/oci/run_record.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace phoenix::agent::oci {
namespace {

namespace fs = std::filesystem;

RunRecord Sample() {
  return RunRecord{.instance = "phx-web-3",
                   .guest_id = "g-123",
                   .oci = "crun",
                   .bundle = "/var/lib/phoenix/guests/web/phx-web-3",
                   .netns = "/var/lib/phoenix/oci/netns/phx-web-3",
                   .cgroups_path = "/phoenix/phx-web-3",
                   .memory_mib = 64,
                   .init_start_time = 123456789,
                   .userns_base = 2147549184u,
                   .address = "10.88.1.7"};
}

TEST(RunRecordTest, RoundTrips) {
  auto back = ParseRunRecord(FormatRunRecord(Sample()));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, Sample());
}

TEST(RunRecordTest, IgnoresUnknownKeysAndRejectsGarbage) {
  auto r = ParseRunRecord("instance=phx-a\nfuture_key=1\n\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->instance, "phx-a");
  EXPECT_FALSE(ParseRunRecord("instance=phx-a\nmemory_mib=lots\n").has_value());
  EXPECT_FALSE(ParseRunRecord("no equals sign\n").has_value());
  EXPECT_FALSE(ParseRunRecord("guest_id=x\n").has_value());  // no instance
}

TEST(RunRecordTest, FileRoundTripAndNotFound) {
  fs::path dir = fs::temp_directory_path() / ("run_record_test." + std::to_string(::getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(WriteRunRecord(dir / "phx-web-3", Sample()).has_value());
  EXPECT_FALSE(fs::exists(dir / "phx-web-3.tmp"));
  auto r = ReadRunRecord(dir / "phx-web-3");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, Sample());
  auto missing = ReadRunRecord(dir / "phx-nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  fs::remove_all(dir);
}

TEST(RunRecordTest, ProcessStartTimeOfThisProcess) {
  uint64_t t = ProcessStartTime(::getpid());
  EXPECT_GT(t, 0u);
  EXPECT_EQ(ProcessStartTime(::getpid()), t);
  EXPECT_EQ(ProcessStartTime(0), 0u);
}

}  // namespace
}  // namespace phoenix::agent::oci
