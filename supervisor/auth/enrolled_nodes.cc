#include "supervisor/auth/enrolled_nodes.h"

#include <algorithm>
#include <charconv>
#include <sstream>

#include <spdlog/spdlog.h>

#include "proto/support/pki.h"

namespace phoenix::supervisor::auth {

namespace {

using Clock = std::chrono::system_clock;

int64_t Unix(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
Clock::time_point FromUnix(int64_t s) { return Clock::time_point(std::chrono::seconds(s)); }

bool ParseInt(std::string_view text, int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

bool IsSerial(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

constexpr std::string_view kSincePrefix = "# phoenix enrolled nodes since ";

std::string Header(int64_t since) {
  return std::string(kSincePrefix) + std::to_string(since) +
         ": node serial not_after | - serial not_after (revoked)\n";
}

}  // namespace

bool IsValidNodeName(std::string_view node) {
  if (node.empty() || node.size() > 63) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(node.front())) return false;
  for (char c : node.substr(1)) {
    if (!lower_or_digit(c) && c != '.' && c != '-') return false;
  }
  return true;
}

Result<std::unique_ptr<EnrolledNodes>> EnrolledNodes::Open(const std::filesystem::path& file) {
  std::unique_ptr<EnrolledNodes> nodes(new EnrolledNodes(file));
  std::lock_guard lock(nodes->mu_);
  PHX_TRY(nodes->file_.CreateIfMissing(Header(Unix(Clock::now()))));
  auto text = nodes->file_.Read();
  if (!text) return std::unexpected(text.error());
  nodes->state_ = nodes->Parse(text->value_or(""));
  return nodes;
}

EnrolledNodes::State EnrolledNodes::Parse(const std::string& text) const {
  State state;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.starts_with(kSincePrefix)) {
      std::string_view rest = std::string_view(line).substr(kSincePrefix.size());
      int64_t since = 0;
      if (ParseInt(rest.substr(0, rest.find(':')), since)) state.since = since;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, serial, expiry, extra;
    fields >> name >> serial >> expiry >> extra;
    int64_t not_after = 0;
    if (!IsSerial(serial) || !ParseInt(expiry, not_after) || !extra.empty() || name.empty()) {
      spdlog::warn("{}:{}: malformed line skipped", file_.path().string(), number);
      continue;
    }
    NodeCertificate cert{
        .node = name == "-" ? "" : name, .serial = serial, .not_after = FromUnix(not_after)};
    (name == "-" ? state.revoked : state.nodes).push_back(std::move(cert));
  }
  return state;
}

std::string EnrolledNodes::Format(const State& state) {
  std::string text = Header(state.since);
  for (const NodeCertificate& c : state.nodes)
    text += c.node + " " + c.serial + " " + std::to_string(Unix(c.not_after)) + "\n";
  for (const NodeCertificate& c : state.revoked)
    text += "- " + c.serial + " " + std::to_string(Unix(c.not_after)) + "\n";
  return text;
}

Result<void> EnrolledNodes::ReloadIfChangedLocked() {
  auto changed = file_.Changed();
  if (!changed) return std::unexpected(changed.error());
  if (!*changed) return {};
  auto text = file_.Read();
  if (!text) return std::unexpected(text.error());
  if (!*text) {
    // Deleted: nobody is enrolled and nothing from before can be adopted (fail closed).
    spdlog::warn("{} is gone: no node certificate is admitted until it returns",
                 file_.path().string());
    state_ = State{.since = 0};
    return {};
  }
  state_ = Parse(**text);
  return {};
}

Result<void> EnrolledNodes::RewriteLocked(const std::function<Result<void>(State&)>& change) {
  State next;
  auto written =
      file_.Rewrite([&](const std::optional<std::string>& current) -> Result<std::string> {
        next = Parse(current.value_or(Header(Unix(Clock::now()))));
        const auto now = Clock::now();
        std::erase_if(next.revoked, [&](const NodeCertificate& c) { return c.not_after <= now; });
        PHX_TRY(change(next));
        return Format(next);
      });
  if (!written) return std::unexpected(written.error());
  state_ = std::move(next);
  return {};
}

Result<void> EnrolledNodes::Enroll(const NodeCertificate& cert) {
  if (!IsSerial(cert.serial)) return InvalidArgument("serial", "must be lowercase hex");
  std::lock_guard lock(mu_);
  return RewriteLocked([&](State& state) -> Result<void> {
    auto it = std::find_if(state.nodes.begin(), state.nodes.end(),
                           [&](const NodeCertificate& c) { return c.node == cert.node; });
    if (it != state.nodes.end()) {
      if (it->not_after > Clock::now()) {
        return MakeError(ErrorCode::kAlreadyExists,
                         "node " + cert.node +
                             " is enrolled and its certificate is valid; if this is a "
                             "reinstalled host, remove the old one first: phoenixctl node rm " +
                             cert.node,
                         "node");
      }
      state.nodes.erase(it);
    }
    state.nodes.push_back(NodeCertificate{cert.node, cert.serial, {}, cert.not_after});
    std::sort(state.nodes.begin(), state.nodes.end(),
              [](const NodeCertificate& a, const NodeCertificate& b) { return a.node < b.node; });
    return {};
  });
}

Result<void> EnrolledNodes::Admit(const NodeCertificate& cert) {
  std::lock_guard lock(mu_);
  PHX_TRY(ReloadIfChangedLocked());
  auto refuse = [&](const std::string& why) {
    return MakeError(ErrorCode::kUnauthenticated,
                     "certificate " + cert.serial + " of node " + cert.node + " " + why);
  };
  for (const NodeCertificate& r : state_.revoked)
    if (r.serial == cert.serial) return refuse("was revoked (node rm); enroll the node again");
  auto it = std::find_if(state_.nodes.begin(), state_.nodes.end(),
                         [&](const NodeCertificate& c) { return c.node == cert.node; });
  if (it != state_.nodes.end()) {
    if (it->serial == cert.serial) return {};
    return refuse("is not the node's current certificate (it was enrolled again)");
  }
  // notBefore is backdated at issue: a certificate issued by this supervisor since the file exists
  // has notBefore + the backdate >= since.
  if (state_.since == 0 || Unix(cert.not_before + pki::kCertificateBackdate) >= state_.since)
    return refuse("is not enrolled (removed with node rm?); enroll the node with a join token");
  // Issued before this file existed: the node enrolled with an older supervisor.
  return RewriteLocked([&](State& state) -> Result<void> {
    if (std::none_of(state.nodes.begin(), state.nodes.end(),
                     [&](const NodeCertificate& c) { return c.node == cert.node; })) {
      state.nodes.push_back(NodeCertificate{cert.node, cert.serial, {}, cert.not_after});
      spdlog::info("node {}: adopted its certificate {} from before {}", cert.node, cert.serial,
                   file_.path().string());
    }
    return {};
  });
}

Result<void> EnrolledNodes::Renew(const std::string& old_serial, const NodeCertificate& next) {
  if (!IsSerial(next.serial)) return InvalidArgument("serial", "must be lowercase hex");
  std::lock_guard lock(mu_);
  return RewriteLocked([&](State& state) -> Result<void> {
    auto it = std::find_if(state.nodes.begin(), state.nodes.end(),
                           [&](const NodeCertificate& c) { return c.node == next.node; });
    if (it == state.nodes.end() || it->serial != old_serial) {
      return MakeError(
          ErrorCode::kUnauthenticated,
          "certificate " + old_serial + " of node " + next.node + " is not the node's current one");
    }
    state.revoked.push_back(NodeCertificate{"", it->serial, {}, it->not_after});
    it->serial = next.serial;
    it->not_after = next.not_after;
    return {};
  });
}

Result<NodeCertificate> EnrolledNodes::Remove(const std::string& node) {
  std::lock_guard lock(mu_);
  NodeCertificate removed;
  PHX_TRY(RewriteLocked([&](State& state) -> Result<void> {
    auto it = std::find_if(state.nodes.begin(), state.nodes.end(),
                           [&](const NodeCertificate& c) { return c.node == node; });
    if (it == state.nodes.end()) return NotFound("node " + node + " is not enrolled");
    removed = *it;
    state.revoked.push_back(NodeCertificate{"", it->serial, {}, it->not_after});
    state.nodes.erase(it);
    return {};
  }));
  return removed;
}

Result<std::vector<NodeCertificate>> EnrolledNodes::List() {
  std::lock_guard lock(mu_);
  PHX_TRY(ReloadIfChangedLocked());
  return state_.nodes;
}

Result<void> AdmitCertificate(EnrolledNodes& nodes, const std::string& node,
                              const std::string& cert_pem) {
  auto serial = pki::CertificateSerial(cert_pem);
  auto not_before = pki::CertificateNotBefore(cert_pem);
  auto not_after = pki::CertificateNotAfter(cert_pem);
  if (!serial || !not_before || !not_after)
    return MakeError(ErrorCode::kUnauthenticated, "the client certificate could not be read");
  return nodes.Admit(
      {.node = node, .serial = *serial, .not_before = *not_before, .not_after = *not_after});
}

}  // namespace phoenix::supervisor::auth
