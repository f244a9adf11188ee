#include "agent/runtime/oci/json.h"

#include <gtest/gtest.h>

namespace phoenix::agent::oci {
namespace {

TEST(JsonTest, DumpsSortedCompactAndPretty) {
  Json j(Json::Object{{"b", Json::Array{1, "x", true, Json()}}, {"a", 2.5}});
  EXPECT_EQ(j.Dump(), R"({"a":2.5,"b":[1,"x",true,null]})");
  EXPECT_EQ(Json(Json::Object{{"k", Json::Array{1}}}).Dump(1), "{\n \"k\": [\n  1\n ]\n}");
  EXPECT_EQ(Json(Json::Object{}).Dump(2), "{}");
}

TEST(JsonTest, EscapesStrings) {
  EXPECT_EQ(Json("a\"b\\c\n\t\x01").Dump(), R"("a\"b\\c\n\t\u0001")");
}

TEST(JsonTest, LargeIntegersStayExact) {
  EXPECT_EQ(Json(uint64_t{68719476736}).Dump(), "68719476736");
  EXPECT_EQ(Json(int64_t{-5}).Dump(), "-5");
}

TEST(JsonTest, ParsesCrunStateOutput) {
  auto j = ParseJson(R"({
    "ociVersion": "1.0.0", "id": "phx-a", "pid": 16539, "status": "running",
    "bundle": "/b", "created": "2026-11-22T15:40:33.722073Z", "systemd-scope": ""
  })");
  ASSERT_TRUE(j.has_value()) << j.error().message;
  EXPECT_EQ(j->StringOr("id"), "phx-a");
  EXPECT_EQ(j->IntOr("pid", 0), 16539);
  EXPECT_EQ(j->StringOr("status"), "running");
  EXPECT_EQ(j->StringOr("missing", "fb"), "fb");
  EXPECT_EQ(j->IntOr("status", -1), -1);  // wrong type: fallback
}

TEST(JsonTest, ParsesRuncEmptyListAsNull) {
  auto j = ParseJson("null\n");
  ASSERT_TRUE(j.has_value());
  EXPECT_TRUE(j->is_null());
}

TEST(JsonTest, RoundTrips) {
  Json j(Json::Object{
      {"s", "\xc3\xa9\n"}, {"n", -12.25}, {"a", Json::Array{}}, {"o", Json::Object{{"x", false}}}});
  auto back = ParseJson(j.Dump(2));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, j);
}

TEST(JsonTest, DecodesUnicodeEscapes) {
  auto j = ParseJson(R"(["\u00e9\ud83d\ude00\/"])");
  ASSERT_TRUE(j.has_value()) << j.error().message;
  EXPECT_EQ(j->as_array()[0].as_string(), "\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST(JsonTest, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "1 2", "{\"a\":1,}",
                          "\"\\ud800\"", "\"\\x\"", "-", "[\"a\nb\"]"}) {
    EXPECT_FALSE(ParseJson(bad).has_value()) << bad;
  }
}

TEST(JsonTest, RejectsDeepNesting) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(ParseJson(deep).has_value());
  std::string ok(60, '[');
  ok += std::string(60, ']');
  EXPECT_TRUE(ParseJson(ok).has_value());
}

}  // namespace
}  // namespace phoenix::agent::oci
