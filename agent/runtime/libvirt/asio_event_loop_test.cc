#include "agent/runtime/libvirt/asio_event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <thread>
#include <vector>

namespace phoenix::agent::libvirt {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    PHX_CHECK(::pipe(fds) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
};

// What one callback saw; callbacks run on the io thread.
struct Record {
  std::atomic<int> calls{0};
  std::atomic<int> last_events{0};
  std::atomic<int> freed{0};
  std::thread::id thread;
  int drain_fd = -1;  // read one byte per call (level-triggered consumer)
  AsioEventLoop* loop = nullptr;
  int remove_after = -1;  // remove own watch/timer from inside the callback after N calls
};

void OnHandle(int watch, int fd, int events, void* opaque) {
  auto* r = static_cast<Record*>(opaque);
  r->thread = std::this_thread::get_id();
  r->last_events = events;
  int n = ++r->calls;
  if (r->drain_fd >= 0 && (events & VIR_EVENT_HANDLE_READABLE)) {
    char c;
    (void)::read(fd, &c, 1);
  }
  if (r->remove_after == n) r->loop->RemoveHandle(watch);
}

void OnTimeout(int timer, void* opaque) {
  auto* r = static_cast<Record*>(opaque);
  r->thread = std::this_thread::get_id();
  int n = ++r->calls;
  if (r->remove_after == n) r->loop->RemoveTimeout(timer);
}

void OnFree(void* opaque) { ++static_cast<Record*>(opaque)->freed; }

// Runs the io_context until `pred` holds or `limit` passes; returns pred().
template <typename Pred>
bool RunUntil(asio::io_context& io, Pred pred, std::chrono::milliseconds limit = 3000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(5ms);
  }
  return pred();
}

void RunFor(asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

class AsioEventLoopTest : public ::testing::Test {
 protected:
  asio::io_context io_;
  std::shared_ptr<AsioEventLoop> loop_ = AsioEventLoop::Create(io_);
};

TEST_F(AsioEventLoopTest, ReadableWatchIsLevelTriggeredUntilDrained) {
  Pipe p;
  Record rec;
  rec.drain_fd = p.r;
  int id = loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &rec, OnFree);
  ASSERT_GT(id, 0);
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, 0) << "nothing to read yet";
  ASSERT_EQ(::write(p.w, "abc", 3), 3);
  // One byte consumed per callback: three callbacks although only one write (edge) happened.
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.calls >= 3; }));
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, 3);
  EXPECT_EQ(rec.last_events, VIR_EVENT_HANDLE_READABLE);
  EXPECT_EQ(rec.thread, std::this_thread::get_id());
  EXPECT_EQ(loop_->RemoveHandle(id), 0);
  EXPECT_EQ(rec.freed, 0) << "free callback must not run inside remove";
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.freed == 1; }));
  // The fd stays open: asio must not have closed it.
  EXPECT_EQ(::write(p.w, "x", 1), 1);
  char c;
  EXPECT_EQ(::read(p.r, &c, 1), 1);
}

TEST_F(AsioEventLoopTest, RemovedWatchIsNeverDispatched) {
  Pipe p;
  Record rec;
  int id = loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &rec, OnFree);
  ASSERT_EQ(::write(p.w, "a", 1), 1);
  // Removed before the loop ran at all: data is pending but no dispatch may happen.
  EXPECT_EQ(loop_->RemoveHandle(id), 0);
  EXPECT_EQ(loop_->RemoveHandle(id), -1);
  RunFor(io_, 100ms);
  EXPECT_EQ(rec.calls, 0);
  EXPECT_EQ(rec.freed, 1);
}

TEST_F(AsioEventLoopTest, RemoveFromInsideCallbackStopsDispatch) {
  Pipe p;
  Record rec;
  rec.loop = loop_.get();
  rec.remove_after = 1;
  loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &rec, OnFree);
  ASSERT_EQ(::write(p.w, "abc", 3), 3);  // never drained: stays readable
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.freed == 1; }));
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, 1);
}

TEST_F(AsioEventLoopTest, UpdateDisablesAndReenablesWatch) {
  Pipe p;
  Record rec;
  int id = loop_->AddHandle(p.r, 0, OnHandle, &rec, nullptr);
  ASSERT_EQ(::write(p.w, "a", 1), 1);
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, 0) << "events=0 means disabled";
  loop_->UpdateHandle(id, VIR_EVENT_HANDLE_READABLE);
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.calls > 0; }));
  loop_->UpdateHandle(id, 0);
  RunFor(io_, 20ms);
  int seen = rec.calls;
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, seen) << "no dispatch after disabling";
  loop_->RemoveHandle(id);
  RunFor(io_, 10ms);
}

TEST_F(AsioEventLoopTest, WritableAndHangup) {
  Pipe p;
  Record wrec;
  int wid = loop_->AddHandle(p.w, VIR_EVENT_HANDLE_WRITABLE, OnHandle, &wrec, nullptr);
  ASSERT_TRUE(RunUntil(io_, [&] { return wrec.calls > 0; }));
  EXPECT_TRUE(wrec.last_events & VIR_EVENT_HANDLE_WRITABLE);
  loop_->RemoveHandle(wid);
  RunFor(io_, 10ms);

  Record rrec;
  rrec.loop = loop_.get();
  rrec.remove_after = 1;
  loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &rrec, nullptr);
  ::close(p.w);
  p.w = -1;
  ASSERT_TRUE(RunUntil(io_, [&] { return rrec.calls > 0; }));
  EXPECT_TRUE(rrec.last_events & VIR_EVENT_HANDLE_HANGUP);
}

TEST_F(AsioEventLoopTest, TwoWatchesOnOneFd) {
  Pipe p;
  Record a, b;
  int ia = loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &a, nullptr);
  int ib = loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &b, nullptr);
  ASSERT_EQ(::write(p.w, "a", 1), 1);
  ASSERT_TRUE(RunUntil(io_, [&] { return a.calls > 0 && b.calls > 0; }));
  loop_->RemoveHandle(ia);
  loop_->RemoveHandle(ib);
  RunFor(io_, 10ms);
  EXPECT_EQ(::write(p.w, "x", 1), 1) << "fd still open";
}

TEST_F(AsioEventLoopTest, PeriodicTimeoutRepeats) {
  Record rec;
  auto start = std::chrono::steady_clock::now();
  int id = loop_->AddTimeout(20, OnTimeout, &rec, OnFree);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.calls >= 3; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 55ms);
  EXPECT_EQ(rec.thread, std::this_thread::get_id());
  EXPECT_EQ(loop_->RemoveTimeout(id), 0);
  EXPECT_EQ(rec.freed, 0);
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.freed == 1; }));
  int seen = rec.calls;
  RunFor(io_, 60ms);
  EXPECT_EQ(rec.calls, seen);
}

TEST_F(AsioEventLoopTest, ZeroTimeoutFiresImmediatelyAndRepeatedly) {
  Record rec;
  int id = loop_->AddTimeout(0, OnTimeout, &rec, nullptr);
  ASSERT_TRUE(RunUntil(
      io_, [&] { return rec.calls >= 100; }, 1000ms));
  loop_->UpdateTimeout(id, -1);
  RunFor(io_, 10ms);
  int seen = rec.calls;
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, seen) << "-1 disables";
  loop_->UpdateTimeout(id, 10);
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.calls > seen; }));
  loop_->RemoveTimeout(id);
  RunFor(io_, 10ms);
}

TEST_F(AsioEventLoopTest, DisabledTimeoutNeverFires) {
  Record rec;
  int id = loop_->AddTimeout(-1, OnTimeout, &rec, nullptr);
  RunFor(io_, 50ms);
  EXPECT_EQ(rec.calls, 0);
  loop_->RemoveTimeout(id);
  RunFor(io_, 10ms);
}

TEST_F(AsioEventLoopTest, TimeoutRemovedInsideItsCallback) {
  Record rec;
  rec.loop = loop_.get();
  rec.remove_after = 2;
  loop_->AddTimeout(0, OnTimeout, &rec, OnFree);
  ASSERT_TRUE(RunUntil(io_, [&] { return rec.freed == 1; }));
  RunFor(io_, 30ms);
  EXPECT_EQ(rec.calls, 2);
}

// libvirt calls update/remove from its worker threads while the io thread dispatches.
TEST_F(AsioEventLoopTest, UpdateAndRemoveFromAnotherThread) {
  auto guard = asio::make_work_guard(io_);
  std::thread io_thread([&] { io_.run(); });
  Pipe p;
  Record hrec, trec;
  hrec.drain_fd = p.r;
  int hid = loop_->AddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &hrec, OnFree);
  int tid = loop_->AddTimeout(-1, OnTimeout, &trec, OnFree);
  for (int i = 0; i < 200; ++i) {
    loop_->UpdateHandle(hid, i % 2 ? VIR_EVENT_HANDLE_READABLE : 0);
    loop_->UpdateTimeout(tid, i % 3 == 0 ? 0 : (i % 3 == 1 ? 1 : -1));
  }
  loop_->UpdateHandle(hid, VIR_EVENT_HANDLE_READABLE);
  loop_->UpdateTimeout(tid, 1);
  ASSERT_EQ(::write(p.w, "xy", 2), 2);
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while ((hrec.calls < 2 || trec.calls < 3) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(hrec.calls, 2);
  EXPECT_GE(trec.calls, 3);
  EXPECT_NE(hrec.thread, std::this_thread::get_id());
  EXPECT_EQ(loop_->RemoveHandle(hid), 0);
  EXPECT_EQ(loop_->RemoveTimeout(tid), 0);
  deadline = std::chrono::steady_clock::now() + 3s;
  while ((hrec.freed == 0 || trec.freed == 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  // After the free callbacks ran on the io thread nothing may be dispatched any more.
  int hcalls = hrec.calls, tcalls = trec.calls;
  ASSERT_EQ(::write(p.w, "z", 1), 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(hrec.calls, hcalls);
  EXPECT_EQ(trec.calls, tcalls);
  EXPECT_EQ(hrec.freed, 1);
  EXPECT_EQ(trec.freed, 1);
  EXPECT_EQ(loop_->ActiveCountForTest(), 0u);
  guard.reset();
  io_.stop();
  io_thread.join();
}

// The installed loop serves libvirt's public virEvent* API (no daemon needed).
TEST(AsioEventLoopInstallTest, ServesLibvirtEventApi) {
  static asio::io_context io;  // process-wide, like the agent's
  ASSERT_TRUE(AsioEventLoop::Install(io).has_value());
  ASSERT_TRUE(AsioEventLoop::Install(io).has_value()) << "idempotent";
  asio::io_context other;
  auto again = AsioEventLoop::Install(other);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);

  Pipe p;
  Record hrec, trec;
  hrec.drain_fd = p.r;
  int hid = virEventAddHandle(p.r, VIR_EVENT_HANDLE_READABLE, OnHandle, &hrec, OnFree);
  int tid = virEventAddTimeout(5, OnTimeout, &trec, OnFree);
  ASSERT_GE(hid, 0);
  ASSERT_GE(tid, 0);
  ASSERT_EQ(::write(p.w, "a", 1), 1);
  ASSERT_TRUE(RunUntil(io, [&] { return hrec.calls == 1 && trec.calls >= 2; }));
  EXPECT_EQ(virEventRemoveHandle(hid), 0);
  EXPECT_EQ(virEventRemoveTimeout(tid), 0);
  ASSERT_TRUE(RunUntil(io, [&] { return hrec.freed == 1 && trec.freed == 1; }));
}

}  // namespace
}  // namespace phoenix::agent::libvirt
