// Enrolls the simulated nodes: for each, a key and CSR whose CN is the node name, traded with the
// join token for a client certificate through the supervisor's Enrollment service.
//
// Threading: Enroll blocks its caller and runs a few worker threads of its own; `enrolled` may be
// read from another thread for progress.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/pki.h"

namespace phoenix::fleetsim {

// Certificates for NodeName(0) .. NodeName(count - 1), in that order. Stops at the first failure.
[[nodiscard]] Result<std::vector<pki::KeyAndCert>> EnrollNodes(const std::string& target,
                                                               const std::string& ca_pem,
                                                               const std::string& join_token,
                                                               uint32_t count,
                                                               std::atomic<uint32_t>& enrolled);

}  // namespace phoenix::fleetsim
