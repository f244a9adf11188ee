#include "agent/runtime/libvirt/asio_event_loop.h"

#include <poll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>

namespace phoenix::agent::libvirt {

namespace asio = boost::asio;

struct AsioEventLoop::Watch {
  int id = 0;
  int fd = -1;
  virEventHandleCallback cb = nullptr;
  void* opaque = nullptr;
  virFreeCallback ff = nullptr;
  // Guarded by AsioEventLoop::mu_.
  int events = 0;
  bool removed = false;
  // io thread only.
  std::optional<asio::posix::stream_descriptor> sd;
  bool owns_fd = false;  // sd holds a dup() of fd (fd was already registered by another watch)
  bool read_waiting = false;
  bool write_waiting = false;
  bool pump_posted = false;

  ~Watch() {
    // The fd belongs to libvirt: never let Asio close it.
    if (sd && !owns_fd) (void)sd->release();
  }
};

struct AsioEventLoop::Timer {
  int id = 0;
  virEventTimeoutCallback cb = nullptr;
  void* opaque = nullptr;
  virFreeCallback ff = nullptr;
  // Guarded by AsioEventLoop::mu_.
  int interval_ms = -1;
  uint64_t generation = 0;  // bumped by every update: completions of older arms are ignored
  bool removed = false;
  // io thread only.
  std::optional<asio::steady_timer> timer;
};

namespace {

int VirToPoll(int events) {
  int mask = 0;
  if (events & VIR_EVENT_HANDLE_READABLE) mask |= POLLIN;
  if (events & VIR_EVENT_HANDLE_WRITABLE) mask |= POLLOUT;
  return mask;
}

int PollToVir(int revents) {
  int events = 0;
  if (revents & POLLIN) events |= VIR_EVENT_HANDLE_READABLE;
  if (revents & POLLOUT) events |= VIR_EVENT_HANDLE_WRITABLE;
  if (revents & POLLERR) events |= VIR_EVENT_HANDLE_ERROR;
  if (revents & (POLLHUP | POLLNVAL)) events |= VIR_EVENT_HANDLE_HANGUP;
  return events;
}

std::mutex g_install_mu;
std::shared_ptr<AsioEventLoop>* g_loop = nullptr;  // leaked on purpose: libvirt uses it until exit
asio::io_context* g_loop_io = nullptr;

int AddHandleThunk(int fd, int events, virEventHandleCallback cb, void* opaque,
                   virFreeCallback ff) {
  return (*g_loop)->AddHandle(fd, events, cb, opaque, ff);
}
void UpdateHandleThunk(int watch, int events) { (*g_loop)->UpdateHandle(watch, events); }
int RemoveHandleThunk(int watch) { return (*g_loop)->RemoveHandle(watch); }
int AddTimeoutThunk(int ms, virEventTimeoutCallback cb, void* opaque, virFreeCallback ff) {
  return (*g_loop)->AddTimeout(ms, cb, opaque, ff);
}
void UpdateTimeoutThunk(int timer, int ms) { (*g_loop)->UpdateTimeout(timer, ms); }
int RemoveTimeoutThunk(int timer) { return (*g_loop)->RemoveTimeout(timer); }

}  // namespace

std::shared_ptr<AsioEventLoop> AsioEventLoop::Create(asio::io_context& io) {
  return std::shared_ptr<AsioEventLoop>(new AsioEventLoop(io));
}

Result<void> AsioEventLoop::Install(asio::io_context& io) {
  std::lock_guard lock(g_install_mu);
  if (g_loop != nullptr) {
    if (g_loop_io == &io) return {};
    return FailedPrecondition(
        "libvirt's event loop is already installed on another io_context (it is process-wide)");
  }
  g_loop = new std::shared_ptr<AsioEventLoop>(Create(io));
  g_loop_io = &io;
  virEventRegisterImpl(AddHandleThunk, UpdateHandleThunk, RemoveHandleThunk, AddTimeoutThunk,
                       UpdateTimeoutThunk, RemoveTimeoutThunk);
  return {};
}

AsioEventLoop::AsioEventLoop(asio::io_context& io) : io_(io) {}

AsioEventLoop::~AsioEventLoop() = default;

size_t AsioEventLoop::ActiveCountForTest() const {
  std::lock_guard lock(mu_);
  return watches_.size() + timers_.size();
}

// ---- fd watches ----

int AsioEventLoop::AddHandle(int fd, int events, virEventHandleCallback cb, void* opaque,
                             virFreeCallback ff) {
  if (fd < 0 || cb == nullptr) return -1;
  auto w = std::make_shared<Watch>();
  w->fd = fd;
  w->cb = cb;
  w->opaque = opaque;
  w->ff = ff;
  w->events = events;
  {
    std::lock_guard lock(mu_);
    w->id = next_id_++;
    watches_.emplace(w->id, w);
  }
  asio::post(io_, [self = shared_from_this(), w] { self->SyncWatch(w); });
  return w->id;
}

void AsioEventLoop::UpdateHandle(int watch, int events) {
  std::shared_ptr<Watch> w;
  {
    std::lock_guard lock(mu_);
    auto it = watches_.find(watch);
    if (it == watches_.end()) return;
    w = it->second;
    w->events = events;
  }
  asio::post(io_, [self = shared_from_this(), w] { self->SyncWatch(w); });
}

int AsioEventLoop::RemoveHandle(int watch) {
  std::shared_ptr<Watch> w;
  {
    std::lock_guard lock(mu_);
    auto it = watches_.find(watch);
    if (it == watches_.end()) return -1;
    w = it->second;
    w->removed = true;
    watches_.erase(it);
  }
  // Teardown and the free callback run later on the io thread, as libvirt requires.
  asio::post(io_, [self = shared_from_this(), w] { self->SyncWatch(w); });
  return 0;
}

void AsioEventLoop::SyncWatch(const std::shared_ptr<Watch>& w) {
  bool removed;
  {
    std::lock_guard lock(mu_);
    removed = w->removed;
  }
  if (removed) {
    if (w->sd) {
      boost::system::error_code ec;
      if (w->owns_fd) {
        (void)w->sd->close(ec);
      } else {
        (void)w->sd->release();  // cancels the pending waits, keeps libvirt's fd open
      }
      w->sd.reset();
    }
    if (w->ff != nullptr) {
      auto ff = std::exchange(w->ff, nullptr);
      ff(w->opaque);
    }
    return;
  }
  if (!w->sd) {
    w->sd.emplace(io_);
    boost::system::error_code ec;
    (void)w->sd->assign(w->fd, ec);
    if (ec) {
      // epoll refuses a second registration of the same fd: watch a duplicate instead.
      int dup_fd = ::dup(w->fd);
      if (dup_fd >= 0) {
        boost::system::error_code ec2;
        (void)w->sd->assign(dup_fd, ec2);
        if (!ec2) {
          w->owns_fd = true;
        } else {
          ::close(dup_fd);
        }
      }
      if (!w->owns_fd) {
        spdlog::error("libvirt event loop: cannot watch fd {}: {}", w->fd, ec.message());
        w->sd.reset();
        return;
      }
    }
  }
  if (!w->pump_posted) Pump(w);
}

void AsioEventLoop::Pump(const std::shared_ptr<Watch>& w) {
  w->pump_posted = false;
  int events;
  {
    std::lock_guard lock(mu_);
    if (w->removed) return;
    events = w->events;
  }
  int mask = VirToPoll(events);
  if (mask == 0 || !w->sd) return;
  // Asio's reactor is edge-triggered; libvirt expects poll() semantics. Check the level first.
  pollfd pfd{w->fd, static_cast<short>(mask), 0};
  int n = ::poll(&pfd, 1, 0);
  if (n > 0 && (pfd.revents & (mask | POLLERR | POLLHUP | POLLNVAL)) != 0) {
    DispatchWatch(w, pfd.revents);
    // Re-check on a later turn so other handlers run in between.
    w->pump_posted = true;
    asio::post(io_, [self = shared_from_this(), w] { self->Pump(w); });
    return;
  }
  auto on_ready = [self = shared_from_this(), w](bool read, const boost::system::error_code& ec) {
    (read ? w->read_waiting : w->write_waiting) = false;
    if (ec == asio::error::operation_aborted || !w->sd) return;
    if (!w->pump_posted) self->Pump(w);
  };
  if ((mask & POLLIN) && !w->read_waiting) {
    w->read_waiting = true;
    w->sd->async_wait(asio::posix::stream_descriptor::wait_read,
                      [on_ready](const boost::system::error_code& ec) { on_ready(true, ec); });
  }
  if ((mask & POLLOUT) && !w->write_waiting) {
    w->write_waiting = true;
    w->sd->async_wait(asio::posix::stream_descriptor::wait_write,
                      [on_ready](const boost::system::error_code& ec) { on_ready(false, ec); });
  }
}

void AsioEventLoop::DispatchWatch(const std::shared_ptr<Watch>& w, int revents) {
  int events;
  {
    std::lock_guard lock(mu_);
    if (w->removed) return;
    events = w->events;
  }
  int vir = PollToVir(revents) & (events | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP);
  if (vir == 0) return;
  w->cb(w->id, w->fd, vir, w->opaque);
}

// ---- timeouts ----

int AsioEventLoop::AddTimeout(int ms, virEventTimeoutCallback cb, void* opaque,
                              virFreeCallback ff) {
  if (cb == nullptr) return -1;
  auto t = std::make_shared<Timer>();
  t->cb = cb;
  t->opaque = opaque;
  t->ff = ff;
  t->interval_ms = ms;
  {
    std::lock_guard lock(mu_);
    t->id = next_id_++;
    timers_.emplace(t->id, t);
  }
  asio::post(io_, [self = shared_from_this(), t] { self->SyncTimer(t); });
  return t->id;
}

void AsioEventLoop::UpdateTimeout(int timer, int ms) {
  std::shared_ptr<Timer> t;
  {
    std::lock_guard lock(mu_);
    auto it = timers_.find(timer);
    if (it == timers_.end()) return;
    t = it->second;
    t->interval_ms = ms;
    ++t->generation;
  }
  asio::post(io_, [self = shared_from_this(), t] { self->SyncTimer(t); });
}

int AsioEventLoop::RemoveTimeout(int timer) {
  std::shared_ptr<Timer> t;
  {
    std::lock_guard lock(mu_);
    auto it = timers_.find(timer);
    if (it == timers_.end()) return -1;
    t = it->second;
    t->removed = true;
    ++t->generation;
    timers_.erase(it);
  }
  asio::post(io_, [self = shared_from_this(), t] { self->SyncTimer(t); });
  return 0;
}

void AsioEventLoop::SyncTimer(const std::shared_ptr<Timer>& t) {
  int interval;
  uint64_t generation;
  bool removed;
  {
    std::lock_guard lock(mu_);
    interval = t->interval_ms;
    generation = t->generation;
    removed = t->removed;
  }
  if (t->timer) t->timer->cancel();
  if (removed) {
    t->timer.reset();
    if (t->ff != nullptr) {
      auto ff = std::exchange(t->ff, nullptr);
      ff(t->opaque);
    }
    return;
  }
  ArmTimer(t, interval, generation);
}

void AsioEventLoop::ArmTimer(const std::shared_ptr<Timer>& t, int interval, uint64_t generation) {
  if (interval < 0) return;
  if (interval == 0) {
    asio::post(io_, [self = shared_from_this(), t, generation] { self->FireTimer(t, generation); });
    return;
  }
  if (!t->timer) t->timer.emplace(io_);
  t->timer->expires_after(std::chrono::milliseconds(interval));
  t->timer->async_wait(
      [self = shared_from_this(), t, generation](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted) return;
        self->FireTimer(t, generation);
      });
}

void AsioEventLoop::FireTimer(const std::shared_ptr<Timer>& t, uint64_t generation) {
  {
    std::lock_guard lock(mu_);
    if (t->removed || t->generation != generation) return;
  }
  t->cb(t->id, t->opaque);
  int interval;
  {
    std::lock_guard lock(mu_);
    // An update or remove (also from inside the callback) posted its own SyncTimer.
    if (t->removed || t->generation != generation) return;
    interval = t->interval_ms;
  }
  ArmTimer(t, interval, generation);
}

}  // namespace phoenix::agent::libvirt
