#include "proto/support/error.h"

#include <gtest/gtest.h>

namespace phoenix {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return InvalidArgument("value", "must be even");
  return v / 2;
}

Result<int> Quarter(int v) {
  auto h = Half(v);
  PHX_TRY(h);
  return Half(*h);
}

TEST(ErrorTest, CarriesFieldIntoMessage) {
  auto r = Half(3);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().ToString(), "value: must be even");
}

TEST(ErrorTest, TryPropagatesFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "value");
}

TEST(ErrorTest, ErrnoErrorNamesCallAndErrno) {
  auto e = ErrnoError("open /nonexistent", ENOENT);
  EXPECT_NE(e.error().message.find("open /nonexistent: No such file"), std::string::npos);
  EXPECT_NE(e.error().message.find("errno 2"), std::string::npos);
}

TEST(ErrorTest, WrapKeepsCodeAndField) {
  Error e{ErrorCode::kNotFound, "no image demo", "spec.image"};
  Error w = e.Wrap("run web");
  EXPECT_EQ(w.code, ErrorCode::kNotFound);
  EXPECT_EQ(w.ToString(), "spec.image: run web: no image demo");
}

}  // namespace
}  // namespace phoenix
