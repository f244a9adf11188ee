#include "agent/health/probe.h"

#include <array>
#include <cctype>
#include <utility>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "agent/net/netns_connect.h"

namespace phoenix::agent::health {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// Asio says "Connection refused"; details read as one lower-case sentence.
std::string Lowercased(std::string message) {
  if (!message.empty()) {
    message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
  }
  return message;
}

// A short, printable excerpt of what a misbehaving server sent.
std::string Excerpt(std::string_view data) {
  constexpr size_t kMax = 40;
  std::string out;
  for (char c : data.substr(0, kMax)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  }
  if (data.size() > kMax) {
    out += "...";
  }
  return "\"" + out + "\"";
}

bool IsValidPath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return false;
  }
  for (char c : path) {
    if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<int> ParseHttpStatusLine(std::string_view line) {
  // "HTTP/" digit "." digit SP 3DIGIT [SP reason]
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" ||
      !std::isdigit(static_cast<unsigned char>(line[5])) || line[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(line[7])) || line[8] != ' ') {
    return std::nullopt;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) {
      return std::nullopt;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') {
    return std::nullopt;
  }
  if (status < 100) {
    return std::nullopt;
  }
  return status;
}

namespace detail {

class ProbeOperation : public std::enable_shared_from_this<ProbeOperation> {
 public:
  ProbeOperation(asio::io_context& io, ProbeTarget target, std::function<void(ProbeResult)> done)
      : io_(io),
        socket_(io),
        timer_(io),
        target_(std::move(target)),
        done_(std::move(done)),
        start_(std::chrono::steady_clock::now()) {}

  void Start() {
    error_code ec;
    asio::ip::address address = asio::ip::make_address(target_.host, ec);
    if (ec) {
      FinishSoon("invalid probe host " + Excerpt(target_.host) + ": not an IP address");
      return;
    }
    if (target_.timeout.count() <= 0) {
      FinishSoon("invalid probe timeout: must be positive");
      return;
    }
    if (target_.kind == ProbeTarget::Kind::kHttp && !IsValidPath(target_.path)) {
      FinishSoon("invalid probe path " + Excerpt(target_.path) + ": must start with '/'" +
                 " and contain no spaces or control characters");
      return;
    }
    endpoint_ = tcp::endpoint(address, target_.port);
    peer_ = address.is_v6() ? "[" + address.to_string() + "]:" + std::to_string(target_.port)
                            : address.to_string() + ":" + std::to_string(target_.port);

    auto self = shared_from_this();
    timer_.expires_after(target_.timeout);
    timer_.async_wait([this, self](const error_code& timer_ec) {
      if (!timer_ec) {
        Finish(false, "timed out after " + std::to_string(target_.timeout.count()) + " ms");
      }
    });
    connect_ = net::AsyncConnect(io_, net::Backend{endpoint_, target_.netns},
                                 [this, self](Result<tcp::socket> socket) {
                                   if (finished_) {
                                     return;
                                   }
                                   if (!socket) {
                                     Finish(false, socket.error().message);
                                     return;
                                   }
                                   socket_ = std::move(*socket);
                                   if (target_.kind == ProbeTarget::Kind::kTcp) {
                                     Finish(true, "connected to " + peer_);
                                     return;
                                   }
                                   SendRequest();
                                 });
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
  void SendRequest() {
    request_ = "GET " + target_.path + " HTTP/1.0\r\nHost: " + peer_ +
               "\r\nUser-Agent: phoenix-agent-health\r\nConnection: close\r\n\r\n";
    asio::async_write(socket_, asio::buffer(request_),
                      [this, self = shared_from_this()](const error_code& ec, size_t) {
                        if (finished_) {
                          return;
                        }
                        if (ec) {
                          Finish(false,
                                 "send request to " + peer_ + ": " + Lowercased(ec.message()));
                          return;
                        }
                        ReadStatusLine();
                      });
  }

  void ReadStatusLine() {
    socket_.async_read_some(
        asio::buffer(buffer_), [this, self = shared_from_this()](const error_code& ec, size_t n) {
          if (finished_) {
            return;
          }
          if (ec == asio::error::eof) {
            if (response_.empty()) {
              Finish(false, "HTTP: connection closed without a response");
            } else {
              Evaluate(response_);  // a status line without its line end is still one
            }
            return;
          }
          if (ec) {
            Finish(false, "read response from " + peer_ + ": " + Lowercased(ec.message()));
            return;
          }
          response_.append(buffer_.data(), n);
          size_t line_end = response_.find('\n');
          if (line_end != std::string::npos) {
            std::string_view line(response_.data(), line_end);
            if (!line.empty() && line.back() == '\r') {
              line.remove_suffix(1);
            }
            Evaluate(line);
            return;
          }
          if (response_.size() >= kMaxStatusLineBytes) {
            Finish(false, "invalid HTTP response: no status line in the first " +
                              std::to_string(kMaxStatusLineBytes) + " bytes");
            return;
          }
          ReadStatusLine();
        });
  }

  void Evaluate(std::string_view status_line) {
    std::optional<int> status = ParseHttpStatusLine(status_line);
    if (!status) {
      Finish(false, "invalid HTTP response: " + Excerpt(status_line));
      return;
    }
    Finish(*status >= 200 && *status <= 399, "HTTP " + std::to_string(*status));
  }

  // For failures found before any I/O: `done` must still run later, on the loop.
  void FinishSoon(std::string detail) {
    asio::post(io_, [self = shared_from_this(), detail = std::move(detail)]() mutable {
      self->Finish(false, std::move(detail));
    });
  }

  void Finish(bool ok, std::string detail) {
    if (finished_) {
      return;
    }
    finished_ = true;
    Release();
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start_);
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) {
      done(ProbeResult{ok, std::move(detail), latency});
    }
  }

  // Frees the socket now; pending completions see finished_ and return.
  void Release() {
    error_code ignored;
    timer_.cancel();
    connect_.Cancel();
    socket_.close(ignored);
  }

  asio::io_context& io_;
  net::ConnectCanceller connect_;
  tcp::socket socket_;  // from connect_ once connected
  asio::steady_timer timer_;
  ProbeTarget target_;
  std::function<void(ProbeResult)> done_;
  std::chrono::steady_clock::time_point start_;
  tcp::endpoint endpoint_;
  std::string peer_;  // "127.0.0.1:8080"
  std::string request_;
  std::string response_;
  std::array<char, 1024> buffer_;
  bool finished_ = false;
};

}  // namespace detail

void ProbeCanceller::Cancel() {
  if (auto operation = operation_.lock()) {
    operation->Cancel();
  }
  operation_.reset();
}

ProbeCanceller RunProbe(asio::io_context& io, const ProbeTarget& target,
                        std::function<void(ProbeResult)> done) {
  auto operation = std::make_shared<detail::ProbeOperation>(io, target, std::move(done));
  operation->Start();
  return ProbeCanceller(operation);
}

}  // namespace phoenix::agent::health
