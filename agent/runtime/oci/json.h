// Json: the small JSON value the OCI runtime needs to write bundle configs (config.json) and to
// read `crun|runc state/list` output. Objects keep their keys sorted (std::map): OCI tools do not
// care about key order, and sorted output makes configs diffable and tests exact.
//
// Parse accepts RFC 8259 JSON (UTF-8 passed through; \u escapes decoded to UTF-8) up to a nesting
// depth of 64; numbers are doubles (exact for the integers OCI uses: pids, byte counts < 2^53).
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::oci {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(int n) : v_(static_cast<double>(n)) {}
  Json(int64_t n) : v_(static_cast<double>(n)) {}
  Json(uint32_t n) : v_(static_cast<double>(n)) {}
  Json(uint64_t n) : v_(static_cast<double>(n)) {}
  Json(double n) : v_(n) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  // Accessors PHX_CHECK the type: check with is_*() first on untrusted input.
  bool as_bool() const;
  double as_number() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Member lookup on an object; nullptr when absent or when this is not an object.
  const Json* Find(std::string_view key) const;
  // Convenience for untrusted input: the member as a string/integer, or the fallback.
  std::string StringOr(std::string_view key, std::string fallback = {}) const;
  int64_t IntOr(std::string_view key, int64_t fallback) const;

  // Compact when indent < 0, else pretty-printed with `indent` spaces per level.
  std::string Dump(int indent = -1) const;

  bool operator==(const Json&) const = default;

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> v_;
};

[[nodiscard]] Result<Json> ParseJson(std::string_view text);

}  // namespace phoenix::agent::oci
