#include "agent/net/netns_connect.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

namespace phoenix::agent::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

std::string BackendString(const Backend& backend) {
  const asio::ip::address& address = backend.endpoint.address();
  std::string out = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  out += ":" + std::to_string(backend.endpoint.port());
  if (!backend.netns.empty()) {
    out += " in netns " + backend.netns.string();
  }
  return out;
}

namespace {

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) {
      ::close(fd_);  // nothing useful to do about a failed close of a socket or namespace fd
      fd_ = -1;
    }
  }

 private:
  int fd_ = -1;
};

// Asio says "Connection refused"; errors read as one lower-case sentence after the colon.
std::string Lowercased(std::string message) {
  if (!message.empty()) {
    message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
  }
  return message;
}

ErrorCode CodeForErrno(int err) {
  switch (err) {
    case ENOENT:
      return ErrorCode::kNotFound;
    case EPERM:
    case EACCES:
      return ErrorCode::kPermissionDenied;
    case EINVAL:
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kInternal;
  }
}

// The helper's answer, sent as one SOCK_SEQPACKET message: this header, then the error text;
// on success the socket travels alongside as SCM_RIGHTS.
struct ReplyHeader {
  int32_t code = 0;  // 0 = ok, else an ErrorCode
};
constexpr size_t kMaxReplyBytes = 1024;

struct Request {
  std::string netns;
  int family = AF_INET;
  Fd reply;  // the helper's end of the requester's socketpair
};

// The process-wide helper thread. Lives until static destruction, which stops and joins it;
// requests still queued then are dropped, and their requesters read EOF.
class NetnsHelper {
 public:
  static NetnsHelper& Instance() {
    static NetnsHelper helper;
    return helper;
  }

  ~NetnsHelper() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  [[nodiscard]] Result<void> Submit(Request request) {
    std::unique_lock lock(mu_);
    if (!running_) {
      // First use, or the previous thread quit because it could not leave a namespace. That one
      // no longer needs mu_ once running_ is false, so joining under the lock cannot deadlock.
      if (thread_.joinable()) {
        thread_.join();
      }
      try {
        thread_ = std::thread([this] { Run(); });
      } catch (const std::system_error& e) {
        return Internal(std::string("start the netns helper thread: ") + e.what());
      }
      running_ = true;
    }
    queue_.push_back(std::move(request));
    lock.unlock();
    cv_.notify_one();
    return {};
  }

 private:
  NetnsHelper() = default;

  void Run() {
    // Our way back after each request. The thread was started from a thread in the agent's own
    // namespace (the loop never leaves it), so this is the agent's namespace.
    Fd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    std::string home_error;
    if (!home.valid()) {
      home_error =
          std::string("open the agent's netns /proc/thread-self/ns/net: ") + std::strerror(errno);
    }
    while (true) {
      Request request;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) {
          return;
        }
        request = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!Serve(request, home, home_error)) {
        // Stuck in a guest's namespace: never serve from here again. The next Submit starts a
        // fresh thread, which begins in the agent's namespace; this one ends, and with it its
        // membership of the wrong namespace.
        std::lock_guard lock(mu_);
        running_ = false;
        for (Request& queued : queue_) {
          Reply(queued, ErrorCode::kInternal, "netns helper restarting; retry", Fd());
        }
        queue_.clear();
        return;
      }
    }
  }

  // Returns false when the thread could not return to the agent's namespace.
  static bool Serve(Request& request, const Fd& home, const std::string& home_error) {
    if (!home.valid()) {
      Reply(request, ErrorCode::kInternal, home_error, Fd());
      return true;
    }
    Fd ns(::open(request.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) {
      int err = errno;
      if (err == ENOENT) {
        Reply(request, ErrorCode::kNotFound, "no such namespace file " + request.netns, Fd());
      } else {
        Reply(request, CodeForErrno(err), "open netns " + request.netns + ": " + std::strerror(err),
              Fd());
      }
      return true;
    }
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      int err = errno;
      std::string message = "enter netns " + request.netns + ": " + std::strerror(err);
      if (err == EINVAL) {
        message += " (not a network namespace file)";
      }
      Reply(request, CodeForErrno(err), message, Fd());
      return true;
    }
    Fd socket(::socket(request.family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
    int socket_err = errno;
    if (::setns(home.get(), CLONE_NEWNET) != 0) {
      int err = errno;
      Reply(request, ErrorCode::kInternal,
            "return from netns " + request.netns + " to the agent's: " + std::strerror(err), Fd());
      return false;
    }
    if (!socket.valid()) {
      Reply(request, CodeForErrno(socket_err),
            "socket in netns " + request.netns + ": " + std::strerror(socket_err), Fd());
      return true;
    }
    Reply(request, ErrorCode{}, "", std::move(socket));
    return true;
  }

  // Sends the answer and closes our copies. A requester that gave up closed its end: EPIPE, and
  // the socket we made is closed here.
  static void Reply(Request& request, ErrorCode code, const std::string& message, Fd socket) {
    char payload[kMaxReplyBytes];
    ReplyHeader header{static_cast<int32_t>(code)};
    std::memcpy(payload, &header, sizeof header);
    size_t text = std::min(message.size(), sizeof payload - sizeof header);
    std::memcpy(payload + sizeof header, message.data(), text);
    iovec iov{payload, sizeof header + text};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (socket.valid()) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      int fd = socket.get();
      std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    // On failure the requester reads EOF when request.reply closes, and reports that instead.
    while (::sendmsg(request.reply.get(), &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    request.reply.Reset();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> queue_;
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
};

}  // namespace

namespace detail {

class ConnectOperation : public std::enable_shared_from_this<ConnectOperation> {
 public:
  ConnectOperation(asio::io_context& io, Backend backend,
                   std::function<void(Result<tcp::socket>)> done)
      : io_(io), backend_(std::move(backend)), done_(std::move(done)), socket_(io), channel_(io) {}

  void Start() {
    if (backend_.netns.empty()) {
      Connect();
      return;
    }
    if (!backend_.netns.is_absolute()) {
      FailSoon(Error{ErrorCode::kInvalidArgument,
                     "namespace file \"" + backend_.netns.string() + "\" is not an absolute path",
                     "netns"});
      return;
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      FailSoon(ErrnoError("socketpair for the netns helper").error());
      return;
    }
    Fd ours(pair[0]);
    Fd theirs(pair[1]);
    error_code ec;
    channel_.assign(ours.get(), ec);
    if (ec) {
      FailSoon(Error{ErrorCode::kInternal, "watch the netns helper channel: " + ec.message()});
      return;
    }
    ours.Release();  // channel_ owns it now
    Result<void> submitted = NetnsHelper::Instance().Submit(
        Request{backend_.netns.string(), backend_.endpoint.protocol().family(), std::move(theirs)});
    if (!submitted) {
      FailSoon(submitted.error());
      return;
    }
    WaitForSocket();
  }

  void Cancel() {
    if (finished_) {
      return;
    }
    finished_ = true;
    done_ = nullptr;
    Release();
  }

 private:
  void WaitForSocket() {
    channel_.async_wait(
        asio::posix::stream_descriptor::wait_read,
        [this, self = shared_from_this()](const error_code& ec) {
          if (finished_) {
            return;
          }
          if (ec) {
            Fail(Error{ErrorCode::kInternal, "wait for the netns helper: " + ec.message()});
            return;
          }
          ReceiveSocket();
        });
  }

  void ReceiveSocket() {
    char payload[kMaxReplyBytes];
    iovec iov{payload, sizeof payload};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(channel_.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        WaitForSocket();
        return;
      }
      Fail(ErrnoError("receive from the netns helper").error());
      return;
    }
    Fd received;
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
      if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
          cmsg->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
        received = Fd(fd);
      }
    }
    error_code ignored;
    channel_.close(ignored);
    if (n == 0) {
      Fail(Error{ErrorCode::kInternal,
                 "netns helper stopped before answering for " + BackendString(backend_)});
      return;
    }
    ReplyHeader header;
    if (static_cast<size_t>(n) < sizeof header) {
      Fail(Error{ErrorCode::kInternal, "malformed reply from the netns helper"});
      return;
    }
    std::memcpy(&header, payload, sizeof header);
    if (header.code != 0) {
      Fail(Error{static_cast<ErrorCode>(header.code),
                 std::string(payload + sizeof header, static_cast<size_t>(n) - sizeof header)});
      return;
    }
    if (!received.valid()) {
      Fail(Error{ErrorCode::kInternal, "the netns helper sent no socket"});
      return;
    }
    error_code ec;
    socket_.assign(backend_.endpoint.protocol(), received.get(), ec);
    if (ec) {
      Fail(Error{ErrorCode::kInternal,
                 "adopt the socket from netns " + backend_.netns.string() + ": " + ec.message()});
      return;
    }
    received.Release();  // socket_ owns it now
    Connect();
  }

  void Connect() {
    // Without a netns, socket_ is still closed and async_connect opens it in our namespace.
    socket_.async_connect(
        backend_.endpoint, [this, self = shared_from_this()](const error_code& ec) {
          if (finished_) {
            return;
          }
          if (ec) {
            Fail(Error{ErrorCode::kUnavailable,
                       "connect " + BackendString(backend_) + ": " + Lowercased(ec.message())});
            return;
          }
          Finish(std::move(socket_));
        });
  }

  // For failures found before any I/O: `done` must still run later, on the loop.
  void FailSoon(Error error) {
    asio::post(io_, [self = shared_from_this(), error = std::move(error)]() mutable {
      self->Fail(std::move(error));
    });
  }

  void Fail(Error error) { Finish(std::unexpected(std::move(error))); }

  void Finish(Result<tcp::socket> result) {
    if (finished_) {
      return;
    }
    finished_ = true;
    Release();  // a socket moved into `result` is unaffected
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) {
      done(std::move(result));
    }
  }

  // Closes what this operation still holds; pending completions see finished_ and return.
  void Release() {
    error_code ignored;
    socket_.close(ignored);
    channel_.close(ignored);
  }

  asio::io_context& io_;
  Backend backend_;
  std::function<void(Result<tcp::socket>)> done_;
  tcp::socket socket_;
  asio::posix::stream_descriptor channel_;  // our end of the socketpair to the netns helper
  bool finished_ = false;
};

}  // namespace detail

void ConnectCanceller::Cancel() {
  if (auto operation = operation_.lock()) {
    operation->Cancel();
  }
  operation_.reset();
}

ConnectCanceller AsyncConnect(asio::io_context& io, const Backend& backend,
                              std::function<void(Result<tcp::socket>)> done) {
  auto operation = std::make_shared<detail::ConnectOperation>(io, backend, std::move(done));
  operation->Start();
  return ConnectCanceller(operation);
}

}  // namespace phoenix::agent::net
