// Enrollment and the link's TLS credentials. An agent without a client certificate trades its join
// token and a CSR (its private key never leaves the node) for one (phoenix.v1.Enrollment.Enroll),
// over TLS that trusts only the CA the operator gave it (--supervisor-ca), and keeps the result in
// <state-dir>/pki/{agent.key (0600), agent.pem, ca.pem}. Afterwards the link uses mutual TLS with
// that certificate (its common name is the node name) and that CA.
//
// Crash safety: every file is written atomically, agent.pem last, so "agent.pem exists" means
// enrolled; a crash earlier just enrolls again (with a join token that still has a use).
//
// Renewal: certificates are short-lived (30 days). Once less than a third of its lifetime is left
// (RenewalDue), LinkCredentials first asks the supervisor (Enrollment.Renew, over mutual TLS with
// the current certificate) for a new one for the same key, and replaces agent.pem atomically; if
// that fails it goes on with the current certificate while it is valid and tries again next dial.
//
// Threading: LinkCredentials blocks (an RPC of up to 10 s): call it from the link thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "proto/support/error.h"

namespace phoenix::agent::link {

struct EnrollmentOptions {
  std::string target;                   // supervisor HOST:PORT
  std::string node;                     // becomes the certificate's common name
  std::filesystem::path pki_dir;        // <state-dir>/pki
  std::string join_token;               // needed only while not enrolled
  std::filesystem::path supervisor_ca;  // CA to trust while enrolling
  // The clock renewal decisions use (tests move it forward).
  std::chrono::system_clock::time_point (*now)() = std::chrono::system_clock::now;
};

// True once pki_dir holds agent.pem.
bool IsEnrolled(const std::filesystem::path& pki_dir);

// Whether the certificate has less than a third of its lifetime left (or cannot be read).
bool RenewalDue(const std::string& cert_pem, std::chrono::system_clock::time_point now);
// RenewalDue for pki_dir/agent.pem; false when not enrolled.
bool RenewalDueAt(const std::filesystem::path& pki_dir);

// Mutual-TLS credentials from the certificate pki_dir holds now, for calls beside the link (token
// reviews): never enrolls or renews. kFailedPrecondition while not enrolled.
[[nodiscard]] Result<std::shared_ptr<grpc::ChannelCredentials>> EnrolledCredentials(
    const std::filesystem::path& pki_dir);

// Mutual-TLS credentials for the link, enrolling first when not enrolled yet, renewing first when
// due.
[[nodiscard]] Result<std::shared_ptr<grpc::ChannelCredentials>> LinkCredentials(
    const EnrollmentOptions& options);

}  // namespace phoenix::agent::link
