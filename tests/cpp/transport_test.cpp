// Transport (src/io/transport.h) over a real socket pair: write order across
// uv_try_write and uv_write, files queued between output, shutdown after
// pending output, destruction with a write in flight.
#include "io/transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.h"
#include "core/loop.h"

namespace evo {
namespace {

// Bytes that tell their position: a misplaced piece shows.
std::string pattern(size_t n, size_t salt) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + salt * 13 + i / 251) % 26);
  return s;
}

// Where two byte strings first differ (their common length when one is a
// prefix of the other): compared this way, a failure does not print both.
size_t first_difference(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return n;
}

struct RecordingUser final : TransportUser {
  int inputs = 0;
  int outputs = 0;
  int shutdowns = 0;
  int shutdown_status = 1;
  int closed = 0;
  void on_input() override { ++inputs; }
  void on_output() override { ++outputs; }
  void on_shutdown_done(int status) override {
    ++shutdowns;
    shutdown_status = status;
  }
  void on_transport_closed() override { ++closed; }
  void release_transport() override {}
};

// A transport over one end of a Unix socketpair (uv_pipe_open), with small
// socket buffers so writes go partial; the test reads the other end.
class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    int small = 4096;
    ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    peer_ = fds[1];
    int status = 0;
    auto h = std::make_unique<UvStreamHandle>(loop_.get(), UvStreamHandle::Kind::Pipe, &status);
    ASSERT_EQ(status, 0);
    handle_ = NativeHandle::release_to_loop(std::move(h));
    ASSERT_EQ(uv_pipe_open(handle_->pipe(), fds[0]), 0);
    t_ = std::make_unique<Transport>(handle_);
    t_->set_user(&user_);
  }

  void TearDown() override {
    t_.reset();
    if (peer_ >= 0) ::close(peer_);
    loop_.run();
    EXPECT_EQ(uv_loop_alive(loop_.get()), 0);
  }

  // Reads what is there, at most max bytes; false at the end.
  bool peer_read(size_t max = 64 * 1024) {
    std::string buf(max, '\0');
    ssize_t n = ::recv(peer_, buf.data(), buf.size(), 0);
    if (n > 0) received_.append(buf.data(), static_cast<size_t>(n));
    if (n == 0) peer_eof_ = true;
    return n != 0;
  }

  // Turns the loop, the peer reading a little each turn, until done() or
  // the deadline.
  template <class Done>
  bool pump(Done done, size_t per_turn = 4096) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(loop_.get(), UV_RUN_NOWAIT);
      if (!peer_eof_) peer_read(per_turn);
    }
    return true;
  }

  // A temporary file holding `content`; the descriptor is closed at the end.
  int temp_file(const std::string& content) {
    char path[] = "/tmp/evo_transport_test_XXXXXX";
    int fd = ::mkstemp(path);
    ::unlink(path);
    EXPECT_EQ(::pwrite(fd, content.data(), content.size(), 0), static_cast<ssize_t>(content.size()));
    files_.push_back(fd);
    return fd;
  }

  Loop loop_;
  RecordingUser user_;
  UvStreamHandle* handle_ = nullptr;
  std::unique_ptr<Transport> t_;
  int peer_ = -1;
  std::string received_;
  bool peer_eof_ = false;
  struct FileCloser {
    std::vector<int>* fds;
    ~FileCloser() {
      for (int fd : *fds) ::close(fd);
    }
  };
  std::vector<int> files_;
  FileCloser closer_{&files_};
};

TEST_F(TransportTest, WritesKeepTheirOrderAcrossTryWriteAndLibuvWrites) {
  std::string expected;
  // The first flush goes partly by uv_try_write and the rest by uv_write;
  // the later ones are corked behind the write in flight.
  for (size_t i = 0; i < 12; ++i) {
    std::string piece = pattern(i % 3 == 0 ? 100000 : 700 + i, i);
    expected += piece;
    t_->write(piece);
    t_->flush();
    if (i == 0) {
      EXPECT_TRUE(t_->write_in_flight()) << "the socket took 100 KB at once: the test needs a slow reader";
    }
    uv_run(loop_.get(), UV_RUN_NOWAIT);
    peer_read(1000);  // a slow reader
  }
  ASSERT_TRUE(pump([&] { return received_.size() >= expected.size() && t_->drained(); }, 1500));
  EXPECT_EQ(received_.size(), expected.size());
  EXPECT_EQ(first_difference(received_, expected), expected.size()) << "bytes out of order";
  EXPECT_EQ(t_->pending(), 0u);
  EXPECT_EQ(t_->sent(), expected.size());
  EXPECT_GT(user_.outputs, 0);
}

TEST_F(TransportTest, AFileQueuedBehindOutputGoesAfterItAndBeforeLaterBytes) {
  std::string content = pattern(200000, 99);
  int fd = temp_file(content);
  std::string a = pattern(100000, 1);  // more than the socket takes: a write stays in flight
  std::string b = pattern(3000, 2);    // corked behind that write, before the file
  std::string c = pattern(5000, 3);    // written after the file
  t_->write(a);
  t_->flush();
  ASSERT_TRUE(t_->write_in_flight());
  t_->write(b);
  t_->flush();
  int64_t result = 0;
  int done_calls = 0;
  int64_t r = t_->send_file(fd, 1000, 150000, /*owns_fd=*/false, [&](int64_t res) {
    ++done_calls;
    result = res;
  });
  ASSERT_EQ(r, Transport::kPending);
  t_->write(c);
  t_->flush();
  ASSERT_TRUE(pump([&] { return done_calls == 1 && t_->drained(); }));
  t_->flush();  // the bytes after the file (flush() waits while the file goes)
  std::string expected = a + b + content.substr(1000, 150000) + c;
  ASSERT_TRUE(pump([&] { return received_.size() >= expected.size() && t_->drained(); }));
  EXPECT_EQ(result, 150000);
  ASSERT_EQ(received_.size(), expected.size());
  EXPECT_GE(first_difference(received_, expected), a.size() + b.size())
      << "the file overtook output written before it";
  EXPECT_EQ(first_difference(received_, expected), expected.size()) << "bytes out of order around the file";
}

TEST_F(TransportTest, AFileAfterOutputTheSocketTookThenLaterBytes) {
  std::string content = pattern(80000, 7);
  int fd = temp_file(content);
  std::string a = pattern(500, 1);
  t_->write(a);
  int done_calls = 0;
  int64_t r = t_->send_file(fd, 0, 1 << 20, /*owns_fd=*/false, [&](int64_t res) {
    ++done_calls;
    EXPECT_EQ(res, 80000);  // the file ended before the length asked for
  });
  std::string c = pattern(2000, 3);
  t_->write(c);
  ASSERT_TRUE(
      pump([&] { return (r != Transport::kPending || done_calls == 1) && t_->file_in_flight() == false; }));
  t_->flush();
  std::string expected = a + content + c;
  ASSERT_TRUE(pump([&] { return received_.size() >= expected.size() && t_->drained(); }));
  EXPECT_EQ(first_difference(received_, expected), expected.size());
}

TEST_F(TransportTest, ShutdownAfterPendingOutputDeliversEverythingThenTheEnd) {
  std::string data = pattern(300000, 5);
  t_->write(data);
  t_->flush();
  ASSERT_TRUE(t_->write_in_flight());
  EXPECT_EQ(t_->shutdown(), 0);
  EXPECT_EQ(user_.shutdowns, 0) << "called back from the user's own call";
  ASSERT_TRUE(pump([&] { return peer_eof_; }, 3000));
  EXPECT_EQ(received_.size(), data.size());
  EXPECT_EQ(first_difference(received_, data), data.size());
  ASSERT_TRUE(pump([&] { return user_.shutdowns == 1; }));
  EXPECT_EQ(user_.shutdown_status, 0);
  EXPECT_TRUE(t_->drained());
}

TEST_F(TransportTest, DestroyingWithAWriteInFlightLeavesTheHandleToFinish) {
  std::string data = pattern(500000, 11);
  t_->write(data);
  t_->flush();
  ASSERT_TRUE(t_->write_in_flight());
  t_.reset();  // the handle and the bytes libuv refers to stay until the close callback
  EXPECT_EQ(user_.outputs, 0);
  ASSERT_TRUE(pump([&] { return peer_eof_ || received_.size() == data.size(); }));
  loop_.run();  // the write's cancellation and the close callback, on a living handle
  EXPECT_EQ(uv_loop_alive(loop_.get()), 0);
  EXPECT_EQ(user_.outputs, 0) << "the user was called after the transport was destroyed";
  EXPECT_EQ(user_.closed, 0);
  EXPECT_EQ(first_difference(received_, data), received_.size())
      << "what arrived is a prefix of what was written";
}

TEST_F(TransportTest, DestroyingWithAFileInFlightEndsTheFileOnce) {
  std::string content = pattern(400000, 4);
  int fd = temp_file(content);
  int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int done_calls = 0;
  int64_t result = 0;
  int64_t r = t_->send_file(dup_fd, 0, 400000, /*owns_fd=*/true, [&](int64_t res) {
    ++done_calls;
    result = res;
  });
  ASSERT_EQ(r, Transport::kPending);
  ASSERT_TRUE(t_->write_in_flight());
  t_.reset();
  EXPECT_EQ(done_calls, 1);
  EXPECT_EQ(result, UV_ECANCELED);
  EXPECT_EQ(::fcntl(dup_fd, F_GETFD), -1) << "the descriptor handed over was not closed";
  loop_.run();
  EXPECT_EQ(done_calls, 1);
  EXPECT_EQ(user_.outputs, 0);
}

// Connection::send_file does not check closed(): a file handed to a transport
// closed with a write in flight must still end (done, or a result now), and
// a descriptor handed over must be closed.
TEST_F(TransportTest, AFileSentAfterCloseWithAWriteInFlightStillEnds) {
  std::string data = pattern(300000, 8);
  t_->write(data);
  t_->flush();
  ASSERT_TRUE(t_->write_in_flight());
  t_->close();
  std::string content = pattern(10000, 6);
  int fd = temp_file(content);
  int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int done_calls = 0;
  int64_t r = t_->send_file(dup_fd, 0, 10000, /*owns_fd=*/true, [&](int64_t /*res*/) { ++done_calls; });
  loop_.run();
  EXPECT_TRUE(r != Transport::kPending || done_calls == 1) << "the file never ended";
  EXPECT_LT(r, 0);
  EXPECT_FALSE(t_->file_in_flight());
  EXPECT_EQ(::fcntl(dup_fd, F_GETFD), -1) << "the descriptor handed over was not closed";
}

// What the HTTP server's sweep calls on idle keep-alive connections: empty
// buffers give their memory back, a write in flight keeps its bytes, and
// the transport reads and writes as before afterwards.
TEST_F(TransportTest, ReleaseBuffersFreesEmptyBuffersOnlyAndTheTransportGoesOn) {
  const size_t kInline = std::string().capacity();
  std::string small = pattern(300, 1);
  t_->write(small);
  t_->flush();
  ASSERT_TRUE(pump([&] { return received_.size() >= small.size() && t_->drained(); }));
  ASSERT_GT(t_->output().capacity() + handle_->writing.capacity(), kInline) << "the answer left no buffer";
  t_->release_buffers();
  EXPECT_EQ(t_->output().capacity(), kInline);
  EXPECT_EQ(handle_->writing.capacity(), kInline);

  // Input read and consumed, released, then more input.
  t_->set_reading(true);
  ASSERT_EQ(::send(peer_, "hello", 5, 0), 5);
  ASSERT_TRUE(pump([&] { return t_->buffered() == 5; }));
  EXPECT_EQ(t_->input(), "hello");
  t_->consume(5);
  t_->release_buffers();
  ASSERT_EQ(::send(peer_, "again", 5, 0), 5);
  ASSERT_TRUE(pump([&] { return t_->buffered() == 5; }));
  EXPECT_EQ(t_->input(), "again");
  t_->consume(5);

  // A write in flight keeps its bytes through a release.
  std::string big = pattern(100000, 2);
  t_->write(big);
  t_->flush();
  ASSERT_TRUE(t_->write_in_flight()) << "the socket took 100 KB at once: the test needs a slow reader";
  t_->release_buffers();
  std::string expected = small + big;
  ASSERT_TRUE(pump([&] { return received_.size() >= expected.size() && t_->drained(); }, 1500));
  EXPECT_EQ(first_difference(received_, expected), expected.size()) << "bytes lost or out of order";
  t_->set_reading(false);
}

}  // namespace
}  // namespace evo
