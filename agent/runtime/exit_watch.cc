#include "agent/runtime/exit_watch.h"

#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <map>

namespace phoenix::agent {

namespace asio = boost::asio;

void EventSink::Set(std::function<void(const RuntimeEvent&)> sink) {
  std::lock_guard lock(mu_);
  sink_ = std::move(sink);
}

void EventSink::Emit(const RuntimeEvent& event) const {
  std::function<void(const RuntimeEvent&)> sink;
  {
    std::lock_guard lock(mu_);
    sink = sink_;
  }
  if (sink) sink(event);
}

// What io_context handlers reach the watch through: they may outlive it.
struct ExitWatch::State {
  explicit State(asio::io_context& io_context) : io(io_context) {}
  asio::io_context& io;
  std::mutex mu;
  bool alive = true;
  // io thread only (and Stop, which runs there or after the loop stopped).
  std::map<std::string, std::unique_ptr<asio::posix::stream_descriptor>> watchers;
};

ExitWatch::ExitWatch(asio::io_context& io) : state_(std::make_shared<State>(io)) {}

ExitWatch::~ExitWatch() { Stop(); }

void ExitWatch::Stop() {
  std::lock_guard lock(state_->mu);
  state_->alive = false;
  state_->watchers.clear();  // cancels the waits; their handlers see alive == false
}

void ExitWatch::Watch(const std::string& instance, int pidfd, std::function<void()> on_exit) {
  asio::post(state_->io, [state = state_, instance, pidfd, on_exit = std::move(on_exit)] {
    std::lock_guard lock(state->mu);
    if (!state->alive) {
      ::close(pidfd);
      return;
    }
    auto sd = std::make_unique<asio::posix::stream_descriptor>(state->io, pidfd);
    sd->async_wait(asio::posix::stream_descriptor::wait_read,
                   [state, instance, on_exit](const boost::system::error_code& ec) {
                     if (ec) return;  // cancelled: the watch is going away
                     std::lock_guard lock(state->mu);
                     if (!state->alive) return;
                     state->watchers.erase(instance);
                     on_exit();
                   });
    state->watchers[instance] = std::move(sd);
  });
}

}  // namespace phoenix::agent
