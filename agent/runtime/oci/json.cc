#include "agent/runtime/oci/json.h"

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace phoenix::agent::oci {

namespace {

constexpr int kMaxDepth = 64;

void DumpString(const std::string& s, std::string& out) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void DumpNumber(double d, std::string& out) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
    out += fmt::format("{}", static_cast<int64_t>(d));
  } else if (std::isfinite(d)) {
    out += fmt::format("{}", d);
  } else {
    out += "null";  // JSON has no inf/nan
  }
}

void Newline(int indent, int level, std::string& out) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent * level), ' ');
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<Json> ParseDocument() {
    auto v = ParseValue(0);
    if (!v) return v;
    SkipSpace();
    if (pos_ != s_.size()) return Fail("trailing characters");
    return v;
  }

 private:
  std::unexpected<Error> Fail(std::string_view what) const {
    return InvalidArgument("json", fmt::format("{} at offset {}", what, pos_));
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Result<Json> ParseValue(int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    char c = s_[pos_];
    if (c == '{') return ParseObject(depth);
    if (c == '[') return ParseArray(depth);
    if (c == '"') {
      auto str = ParseString();
      if (!str) return std::unexpected(str.error());
      return Json(std::move(*str));
    }
    if (Consume("true")) return Json(true);
    if (Consume("false")) return Json(false);
    if (Consume("null")) return Json();
    return ParseNumber();
  }

  Result<Json> ParseObject(int depth) {
    ++pos_;  // {
    Json::Object obj;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return Json(std::move(obj));
    }
    for (;;) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a member name");
      auto key = ParseString();
      if (!key) return std::unexpected(key.error());
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      auto value = ParseValue(depth + 1);
      if (!value) return value;
      obj[std::move(*key)] = std::move(*value);
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return Json(std::move(obj));
      }
      return Fail("expected ',' or '}'");
    }
  }

  Result<Json> ParseArray(int depth) {
    ++pos_;  // [
    Json::Array arr;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return Json(std::move(arr));
    }
    for (;;) {
      auto value = ParseValue(depth + 1);
      if (!value) return value;
      arr.push_back(std::move(*value));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return Json(std::move(arr));
      }
      return Fail("expected ',' or ']'");
    }
  }

  Result<Json> ParseNumber() {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
            s_[pos_] == 'e' || s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == start) return Fail("unexpected character");
    std::string text(s_.substr(start, pos_ - start));
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) {
      pos_ = start;
      return Fail("malformed number");
    }
    return Json(d);
  }

  Result<uint32_t> ParseHex4() {
    if (pos_ + 4 > s_.size()) return Fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<uint32_t>(h - 'A' + 10);
      } else {
        return Fail("bad \\u escape");
      }
    }
    return v;
  }

  static void AppendUtf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Result<std::string> ParseString() {
    ++pos_;  // "
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          auto cp = ParseHex4();
          if (!cp) return std::unexpected(cp.error());
          uint32_t code = *cp;
          if (code >= 0xD800 && code < 0xDC00) {
            if (!Consume("\\u")) return Fail("unpaired surrogate");
            auto lo = ParseHex4();
            if (!lo) return std::unexpected(lo.error());
            if (*lo < 0xDC00 || *lo >= 0xE000) return Fail("unpaired surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (*lo - 0xDC00);
          } else if (code >= 0xDC00 && code < 0xE000) {
            return Fail("unpaired surrogate");
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          return Fail("bad escape");
      }
    }
    return Fail("unterminated string");
  }

  std::string_view s_;
  size_t pos_ = 0;
};

void DumpValue(const Json& j, int indent, int level, std::string& out) {
  if (j.is_null()) {
    out += "null";
  } else if (j.is_bool()) {
    out += j.as_bool() ? "true" : "false";
  } else if (j.is_number()) {
    DumpNumber(j.as_number(), out);
  } else if (j.is_string()) {
    DumpString(j.as_string(), out);
  } else if (j.is_array()) {
    const auto& a = j.as_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < a.size(); ++i) {
      if (i > 0) out += ',';
      Newline(indent, level + 1, out);
      DumpValue(a[i], indent, level + 1, out);
    }
    Newline(indent, level, out);
    out += ']';
  } else {
    const auto& o = j.as_object();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    bool first = true;
    for (const auto& [k, v] : o) {
      if (!first) out += ',';
      first = false;
      Newline(indent, level + 1, out);
      DumpString(k, out);
      out += indent < 0 ? ":" : ": ";
      DumpValue(v, indent, level + 1, out);
    }
    Newline(indent, level, out);
    out += '}';
  }
}

}  // namespace

bool Json::as_bool() const {
  PHX_CHECK(is_bool());
  return std::get<bool>(v_);
}
double Json::as_number() const {
  PHX_CHECK(is_number());
  return std::get<double>(v_);
}
const std::string& Json::as_string() const {
  PHX_CHECK(is_string());
  return std::get<std::string>(v_);
}
const Json::Array& Json::as_array() const {
  PHX_CHECK(is_array());
  return std::get<Array>(v_);
}
Json::Array& Json::as_array() {
  PHX_CHECK(is_array());
  return std::get<Array>(v_);
}
const Json::Object& Json::as_object() const {
  PHX_CHECK(is_object());
  return std::get<Object>(v_);
}
Json::Object& Json::as_object() {
  PHX_CHECK(is_object());
  return std::get<Object>(v_);
}

const Json* Json::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  const auto& o = std::get<Object>(v_);
  auto it = o.find(std::string(key));
  return it == o.end() ? nullptr : &it->second;
}

std::string Json::StringOr(std::string_view key, std::string fallback) const {
  const Json* m = Find(key);
  return m != nullptr && m->is_string() ? m->as_string() : fallback;
}

int64_t Json::IntOr(std::string_view key, int64_t fallback) const {
  const Json* m = Find(key);
  if (m == nullptr || !m->is_number()) return fallback;
  double d = m->as_number();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0) return fallback;
  return static_cast<int64_t>(d);
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpValue(*this, indent, 0, out);
  return out;
}

Result<Json> ParseJson(std::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace phoenix::agent::oci
