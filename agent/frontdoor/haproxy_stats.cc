#include "agent/frontdoor/haproxy_stats.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

namespace phoenix::agent::frontdoor {

namespace {

std::vector<std::string_view> SplitCsv(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) return fields;
    start = comma + 1;
  }
}

template <typename T>
T Number(std::string_view text) {  // empty or malformed: 0 (HAProxy leaves unused cells empty)
  T value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

Result<std::vector<ServerCounters>> ParseShowStat(std::string_view csv) {
  std::map<std::string_view, size_t> column;
  std::vector<ServerCounters> out;
  size_t pos = 0;
  while (pos < csv.size()) {
    size_t end = csv.find('\n', pos);
    if (end == std::string_view::npos) end = csv.size();
    std::string_view line = csv.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    if (line.starts_with("# ")) {
      const auto names = SplitCsv(line.substr(2));
      for (size_t i = 0; i < names.size(); ++i) column[names[i]] = i;
      for (std::string_view needed :
           {"pxname", "svname", "scur", "stot", "econ", "hrsp_5xx", "req_tot", "rtime"}) {
        if (!column.contains(needed)) {
          return InvalidArgument("show stat", "the header has no column " + std::string(needed));
        }
      }
      continue;
    }
    if (column.empty()) return InvalidArgument("show stat", "no header line");
    const auto f = SplitCsv(line);
    auto cell = [&](std::string_view name) -> std::string_view {
      const size_t i = column.at(name);
      return i < f.size() ? f[i] : std::string_view();
    };
    const std::string_view server = cell("svname");
    if (server == "FRONTEND" || server == "BACKEND" || server.empty()) continue;
    const std::string_view req_tot = cell("req_tot");
    out.push_back(ServerCounters{
        .backend = std::string(cell("pxname")),
        .server = std::string(server),
        .requests = req_tot.empty() ? Number<uint64_t>(cell("stot")) : Number<uint64_t>(req_tot),
        .responses_5xx = Number<uint64_t>(cell("hrsp_5xx")),
        .connection_errors = Number<uint64_t>(cell("econ")),
        .in_flight = Number<uint32_t>(cell("scur")),
        .avg_response_ms = Number<uint32_t>(cell("rtime"))});
  }
  if (column.empty()) return InvalidArgument("show stat", "no header line");
  return out;
}

std::vector<ServerLoad> LoadBetween(const std::vector<ServerCounters>& previous,
                                    const std::vector<ServerCounters>& current,
                                    std::chrono::milliseconds window) {
  std::vector<ServerLoad> out;
  out.reserve(current.size());
  const double seconds = std::max<double>(static_cast<double>(window.count()) / 1000.0, 0.001);
  for (const ServerCounters& c : current) {
    auto before = std::ranges::find_if(previous, [&](const ServerCounters& p) {
      return p.backend == c.backend && p.server == c.server;
    });
    const uint64_t base =
        before != previous.end() && before->requests <= c.requests ? before->requests : 0;
    out.push_back(
        ServerLoad{.service = c.backend,
                   .server = c.server,
                   .requests_per_second = static_cast<double>(c.requests - base) / seconds,
                   .requests_total = c.requests,
                   .responses_5xx_total = c.responses_5xx,
                   .connection_errors_total = c.connection_errors,
                   .in_flight = c.in_flight,
                   .avg_response_ms = c.avg_response_ms});
  }
  return out;
}

}  // namespace phoenix::agent::frontdoor
