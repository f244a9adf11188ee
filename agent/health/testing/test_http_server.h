// TestHttpServer: a tiny real HTTP responder on 127.0.0.1:0 (or on a given listening socket) for
// probe and monitor tests.
//
// Each connection reads the request head, then sends the next scripted response verbatim and
// closes, or, in silent mode, keeps the connection open without answering. Test-only; runs on the
// test's io_context thread.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

namespace phoenix::agent::health::testing {

inline std::string HttpResponse(int status) {
  return "HTTP/1.0 " + std::to_string(status) + " Whatever\r\nContent-Length: 2\r\n\r\nok";
}

class TestHttpServer {
 public:
  explicit TestHttpServer(boost::asio::io_context& io) : state_(std::make_shared<State>(io)) {
    using boost::asio::ip::tcp;
    tcp::endpoint endpoint(boost::asio::ip::make_address_v4("127.0.0.1"), 0);
    state_->acceptor.open(endpoint.protocol());
    state_->acceptor.bind(endpoint);
    state_->acceptor.listen();
    Accept(state_);
  }
  // Serves on an already listening socket (e.g. one made inside a test network namespace).
  TestHttpServer(boost::asio::io_context& io, int listening_fd)
      : state_(std::make_shared<State>(io)) {
    state_->acceptor.assign(boost::asio::ip::tcp::v4(), listening_fd);
    Accept(state_);
  }
  ~TestHttpServer() { Shutdown(); }

  uint16_t port() const { return state_->port(); }

  // Responses for the next requests, in order; the last one repeats.
  void Script(std::vector<std::string> responses) {
    state_->responses.assign(responses.begin(), responses.end());
  }
  void Respond(std::string response) { Script({std::move(response)}); }
  // Accept and read, but never answer.
  void SetSilent(bool silent) { state_->silent = silent; }

  int requests() const { return state_->requests; }
  const std::string& last_request() const { return state_->last_request; }

  // Stops listening and drops every connection (connects are then refused).
  void Shutdown() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& socket : state_->held) {
      socket->close(ignored);
    }
    state_->held.clear();
  }

 private:
  struct State {
    explicit State(boost::asio::io_context& io) : acceptor(io) {}
    uint16_t port() const {
      boost::system::error_code ec;
      return acceptor.local_endpoint(ec).port();
    }
    boost::asio::ip::tcp::acceptor acceptor;
    std::deque<std::string> responses{HttpResponse(200)};
    bool silent = false;
    int requests = 0;
    std::string last_request;
    std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> held;
  };

  static void Accept(std::shared_ptr<State> state) {
    using boost::asio::ip::tcp;
    state->acceptor.async_accept([state](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) {
        return;
      }
      auto socket = std::make_shared<tcp::socket>(std::move(s));
      auto request = std::make_shared<std::string>();
      boost::asio::async_read_until(
          *socket, boost::asio::dynamic_buffer(*request), "\r\n\r\n",
          [state, socket, request](const boost::system::error_code& read_ec, size_t) {
            if (read_ec) {
              return;
            }
            ++state->requests;
            state->last_request = *request;
            if (state->silent) {
              state->held.push_back(socket);
              return;
            }
            auto response = std::make_shared<std::string>(state->responses.front());
            if (state->responses.size() > 1) {
              state->responses.pop_front();
            }
            boost::asio::async_write(*socket, boost::asio::buffer(*response),
                                     [socket, response](const boost::system::error_code&, size_t) {
                                       boost::system::error_code ignored;
                                       socket->shutdown(tcp::socket::shutdown_both, ignored);
                                     });
          });
      Accept(state);
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace phoenix::agent::health::testing
