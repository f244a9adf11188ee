// PidWatch: notices at once that a process which is not our child (QEMU, started by libvirtd)
// has exited, through a pidfd (pidfd_open(2), Linux >= 5.3) that becomes readable when the process
// exits, waited on with the io_context's reactor. Unlike kill(pid, 0) polling it cannot be fooled
// by pid reuse once opened: the pidfd refers to that one process.
//
// Ownership: the PidWatch owns the pidfd (O_CLOEXEC) and closes it in Close() or its destructor.
//
// Threading: Open() from any thread. Arm(), Close() and the destructor on the io_context thread
// (or after the io_context stopped running); a watch never armed may be destroyed on any thread.
// `on_exit` runs on the io_context thread, at most once, and never after Close() returned or the
// PidWatch was destroyed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>

#include "proto/support/error.h"

namespace phoenix::agent::libvirt {

class PidWatch {
 public:
  // kNotFound when `pid` does not exist (it already exited and was reaped); kInternal with errno
  // otherwise (e.g. ENOSYS on kernels without pidfd).
  [[nodiscard]] static Result<std::unique_ptr<PidWatch>> Open(boost::asio::io_context& io, int pid);

  PidWatch(const PidWatch&) = delete;
  PidWatch& operator=(const PidWatch&) = delete;
  ~PidWatch();

  int pid() const { return pid_; }
  // Starts waiting; `on_exit` is called once when the process has exited (at once if it already
  // has). Call at most once.
  void Arm(std::function<void()> on_exit);
  // Stops waiting and closes the pidfd. Idempotent.
  void Close();

 private:
  struct State;
  PidWatch(int pid, std::shared_ptr<State> state) : pid_(pid), state_(std::move(state)) {}

  const int pid_;
  std::shared_ptr<State> state_;  // shared with the pending wait's handler
};

}  // namespace phoenix::agent::libvirt
