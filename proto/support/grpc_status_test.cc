#include "proto/support/grpc_status.h"

#include <stdexcept>

#include <gtest/gtest.h>

namespace phoenix {
namespace {

TEST(GrpcStatusTest, MapsCodeAndField) {
  grpc::Status s = ToGrpcStatus(Error{ErrorCode::kInvalidArgument, "must be positive", "spec.vcpus"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "spec.vcpus: must be positive");
  EXPECT_EQ(FromGrpcStatus(s).code, ErrorCode::kInvalidArgument);
}

TEST(GrpcStatusTest, UnavailableStaysUnavailable) {
  grpc::Status s = ToGrpcStatus(Error{ErrorCode::kUnavailable, "libvirtd is down", ""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(GrpcStatusTest, GuardTurnsExceptionsIntoInternal) {
  grpc::Status s = GuardHandler([]() -> grpc::Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(s.error_message().find("boom"), std::string::npos);
  EXPECT_TRUE(GuardHandler([] { return grpc::Status::OK; }).ok());
}

}  // namespace
}  // namespace phoenix
