#include "agent/runtime/libvirt/pid_watch.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <string>

namespace phoenix::agent::libvirt {

struct PidWatch::State {
  explicit State(boost::asio::io_context& io, int fd) : descriptor(io, fd) {}
  boost::asio::posix::stream_descriptor descriptor;
  bool closed = false;  // a completed wait may already be queued when Close() runs
};

Result<std::unique_ptr<PidWatch>> PidWatch::Open(boost::asio::io_context& io, int pid) {
  if (pid <= 0) return InvalidArgument("pid", "must be positive");
  // The raw syscall: glibc's wrapper needs 2.36 and says nothing more.
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    if (errno == ESRCH) return NotFound("no process " + std::to_string(pid));
    return ErrnoError("pidfd_open(" + std::to_string(pid) + ")");
  }
  std::shared_ptr<State> state;
  try {
    state = std::make_shared<State>(io, static_cast<int>(fd));
  } catch (const std::exception& e) {
    ::close(static_cast<int>(fd));
    return Internal("watching pidfd of " + std::to_string(pid) + ": " + e.what());
  }
  return std::unique_ptr<PidWatch>(new PidWatch(pid, std::move(state)));
}

PidWatch::~PidWatch() { Close(); }

void PidWatch::Arm(std::function<void()> on_exit) {
  state_->descriptor.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [state = state_, on_exit = std::move(on_exit)](const boost::system::error_code& ec) {
        if (ec || state->closed) return;  // closed (operation_aborted) or superseded by Close()
        state->closed = true;
        boost::system::error_code ignored;
        state->descriptor.close(ignored);
        on_exit();
      });
}

void PidWatch::Close() {
  if (state_->closed) return;
  state_->closed = true;
  boost::system::error_code ignored;
  state_->descriptor.close(ignored);  // cancels the pending wait (its handler sees closed)
}

}  // namespace phoenix::agent::libvirt
