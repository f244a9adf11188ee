// EnrolledNodes: which certificate each enrolled node holds, and the certificates revoked by
// `node rm`, in one text file (DIR/nodes, a LockedTextFile beside the tokens). It is what stops a
// join token from taking over a node: a name that holds an unexpired certificate cannot be
// enrolled again until an admin removes it, and the agent link admits only a node's current
// certificate.
//
// File format ('#' lines are comments; the first says since when the file exists):
//   # phoenix enrolled nodes since <unix s>: node serial not_after | - serial not_after (revoked)
//   web-1 3fa9c0... 1767225600
//   - 77b01d... 1767225600
// Serials are lowercase hex (pki::CertificateSerial); revoked lines go once their certificate
// expires, since an expired certificate fails the TLS handshake anyway.
//
// Certificates issued before this file existed (clusters enrolled by older supervisors) have no
// line: the link adopts such a certificate at the node's first connection, when its notBefore is
// earlier than the file's "since" and its serial is not revoked.
//
// Thread-safety: every method is safe to call concurrently (one internal mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"
#include "supervisor/auth/locked_text_file.h"

namespace phoenix::supervisor::auth {

// A node name: [a-z0-9][a-z0-9.-]{0,62} (a certificate's common name and a DNS label).
bool IsValidNodeName(std::string_view node);

struct NodeCertificate {
  std::string node;
  std::string serial;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

class EnrolledNodes {
 public:
  // Creates the file (0600, "since" = now) when missing.
  [[nodiscard]] static Result<std::unique_ptr<EnrolledNodes>> Open(
      const std::filesystem::path& file);

  // Records `cert` as its node's certificate. kAlreadyExists naming "node" when the node holds
  // another certificate that has not expired.
  [[nodiscard]] Result<void> Enroll(const NodeCertificate& cert);
  // Whether `cert` may speak for its node now: kUnauthenticated saying why not (revoked, replaced,
  // not enrolled). Adopts a certificate from before this file (see above).
  [[nodiscard]] Result<void> Admit(const NodeCertificate& cert);
  // Replaces the node's certificate `old_serial` with `next` and revokes the old one.
  // kUnauthenticated when `old_serial` is not the node's current certificate (any more).
  [[nodiscard]] Result<void> Renew(const std::string& old_serial, const NodeCertificate& next);
  // Forgets the node and revokes its certificate. kNotFound when it is not enrolled.
  [[nodiscard]] Result<NodeCertificate> Remove(const std::string& node);
  // The enrolled nodes, by name.
  [[nodiscard]] Result<std::vector<NodeCertificate>> List();

 private:
  struct State {
    int64_t since = 0;
    std::vector<NodeCertificate> nodes;  // not_before is not kept: zero
    std::vector<NodeCertificate> revoked;
  };
  explicit EnrolledNodes(std::filesystem::path file) : file_(std::move(file)) {}
  Result<void> ReloadIfChangedLocked();
  State Parse(const std::string& text) const;
  static std::string Format(const State& state);
  // Under the file lock: parse, drop expired revocations, `change`, write.
  Result<void> RewriteLocked(const std::function<Result<void>(State&)>& change);

  std::mutex mu_;
  LockedTextFile file_;  // under mu_
  State state_;          // under mu_
};

// EnrolledNodes::Admit for a PEM certificate presented for `node` (the link's CertificateCheck).
[[nodiscard]] Result<void> AdmitCertificate(EnrolledNodes& nodes, const std::string& node,
                                            const std::string& cert_pem);

}  // namespace phoenix::supervisor::auth
