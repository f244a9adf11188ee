// Free loopback port allocation for published ports and guest forwards (QEMU hostfwd).
//
// The kernel picks a port; we close the socket and hand the number out. This is inherently racy:
// another process may bind the port between our close and the caller's bind. Callers must treat
// "address in use" on the returned port as transient and pick again (a bounded number of times).
// Where the caller can bind the socket itself, binding port 0 directly (PortProxy::Listen with
// port 0) is race-free and preferred.
//
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <cstdint>

#include "proto/support/error.h"

namespace phoenix::agent::net {

// Binds 127.0.0.1:0, reads the port the kernel chose, closes the socket. Errors carry errno.
[[nodiscard]] Result<uint16_t> PickFreeLoopbackPort();

}  // namespace phoenix::agent::net
