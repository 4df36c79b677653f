// The Io interface (src/io/io.h): the same operations, with the same
// results, through the evented and the blocking implementation.
#include "io/io.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "core/loop.h"
#include "io/transport.h"

namespace evo {
namespace {

class IoTest : public ::testing::TestWithParam<bool> {  // param: evented
 protected:
  void SetUp() override { io_ = GetParam() ? make_evented_io(loop_.get()) : make_blocking_io(); }
  void TearDown() override {
    listener_.reset();
    io_.reset();
    uv_walk(
        loop_.get(),
        [](uv_handle_t* h, void*) {
          if (uv_is_closing(h) == 0) uv_close(h, nullptr);
        },
        nullptr);
    loop_.drain_closing();
  }

  // Runs the loop until done was called (the evented Io) — or checks that
  // it was called inside the call (the blocking one).
  IoResult finish(IoOp* op, std::optional<IoResult>& got) {
    if (!GetParam()) EXPECT_EQ(op, nullptr) << "the blocking Io finishes inside the call";
    for (int i = 0; i < 2000 && !got.has_value(); ++i) uv_run(loop_.get(), UV_RUN_ONCE);
    EXPECT_TRUE(got.has_value());
    return got.has_value() ? std::move(*got) : IoResult::failed("NotDone", "");
  }

  int listen_port() {
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    ListenSpec spec;
    spec.addr = reinterpret_cast<sockaddr*>(&addr);
    spec.addr_len = sizeof(addr);
    int status = 0;
    listener_ = io_->listen(spec, &status);
    EXPECT_EQ(status, 0);
    sockaddr_in bound{};
    socklen_t len = sizeof(bound);
    getsockname(listener_->fd(), reinterpret_cast<sockaddr*>(&bound), &len);
    return ntohs(bound.sin_port);
  }

  Loop loop_;
  std::unique_ptr<Io> io_;
  std::unique_ptr<IoListener> listener_;
};

TEST_P(IoTest, ConnectsAcceptsAndCarriesBytes) {
  int port = listen_port();
  std::optional<IoResult> conn;
  IoResult c = finish(
      io_->connect_tcp("127.0.0.1", port, 5, GetParam(), [&](IoResult r) { conn = std::move(r); }), conn);
  ASSERT_TRUE(c.ok()) << c.status << " " << c.message;
  std::optional<IoResult> acc;
  IoResult a = finish(listener_->accept(GetParam(), 5, [&](IoResult r) { acc = std::move(r); }), acc);
  ASSERT_TRUE(a.ok()) << a.status;
  EXPECT_EQ(c.transport->evented(), GetParam());
  EXPECT_EQ(a.transport->evented(), GetParam());
  ASSERT_EQ(::write(c.transport->fd(), "ping", 4), 4);
  char buf[8] = {};
  ASSERT_TRUE(a.transport->wait_fd(false, 5));
  EXPECT_EQ(::read(a.transport->fd(), buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf), "ping");
}

TEST_P(IoTest, ACallThatCannotWaitFinishesInsideTheCall) {
  int port = listen_port();
  std::optional<IoResult> conn;
  EXPECT_EQ(io_->connect_tcp("127.0.0.1", port, 5, false, [&](IoResult r) { conn = std::move(r); }), nullptr);
  ASSERT_TRUE(conn.has_value() && conn->ok());
  // In the evented Io the descriptor was adopted: a libuv stream all the same.
  EXPECT_EQ(conn->transport->evented(), GetParam());
  std::optional<IoResult> acc;
  EXPECT_EQ(listener_->accept(false, 5, [&](IoResult r) { acc = std::move(r); }), nullptr);
  ASSERT_TRUE(acc.has_value() && acc->ok());
  EXPECT_EQ(acc->transport->evented(), GetParam());
}

TEST_P(IoTest, ReportsRefusedConnectionsAndLongPathsAlike) {
  int port = listen_port();
  listener_->close();
  std::optional<IoResult> got;
  IoResult r = finish(
      io_->connect_tcp("127.0.0.1", port, 5, GetParam(), [&](IoResult x) { got = std::move(x); }), got);
  EXPECT_EQ(r.status, UV_ECONNREFUSED);
  EXPECT_EQ(r.message, "127.0.0.1:" + std::to_string(port));

  std::optional<IoResult> pipe;
  std::string longpath = "/tmp/" + std::string(120, 'x');
  ListenSpec spec;
  spec.path = longpath.c_str();
  int status = 0;
  EXPECT_EQ(io_->listen(spec, &status), nullptr);
  EXPECT_EQ(status, UV_ENAMETOOLONG) << uv_err_name(status);
  IoResult p =
      finish(io_->connect_pipe(longpath, GetParam(), [&](IoResult x) { pipe = std::move(x); }), pipe);
  EXPECT_EQ(p.status, UV_ENAMETOOLONG);
}

TEST_P(IoTest, AcceptTimesOutWhenItBlocks) {
  listen_port();
  std::optional<IoResult> acc;
  EXPECT_EQ(listener_->accept(false, 0.05, [&](IoResult r) { acc = std::move(r); }), nullptr);
  ASSERT_TRUE(acc.has_value());
  ASSERT_NE(acc->code, nullptr);
  EXPECT_STREQ(acc->code, "Timeout");
}

TEST_P(IoTest, ClosingAListenerEndsTheAcceptInFlight) {
  if (!GetParam()) GTEST_SKIP() << "a blocking accept cannot be in flight";
  listen_port();
  std::optional<IoResult> acc;
  ASSERT_NE(listener_->accept(true, 0, [&](IoResult r) { acc = std::move(r); }), nullptr);
  listener_->close();
  ASSERT_TRUE(acc.has_value());
  EXPECT_STREQ(acc->code, "Closed");
}

TEST_P(IoTest, ACancelledOperationNeverReports) {
  if (!GetParam()) GTEST_SKIP() << "a blocking operation is never in flight";
  int port = listen_port();
  bool called = false;
  IoOp* op = io_->connect_tcp("127.0.0.1", port, 5, true, [&](IoResult) { called = true; });
  ASSERT_NE(op, nullptr);
  op->cancel();
  IoOp* acc = listener_->accept(true, 0, [&](IoResult) { called = true; });
  ASSERT_NE(acc, nullptr);
  acc->cancel();
  for (int i = 0; i < 50; ++i) uv_run(loop_.get(), UV_RUN_NOWAIT);
  EXPECT_FALSE(called);
}

TEST_P(IoTest, SendsAndReceivesDatagramsWithTimeouts) {
  auto a = io_->udp();
  auto b = io_->udp();
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(a->bind(reinterpret_cast<sockaddr*>(&addr)), 0);
  int port = a->local_port();
  ASSERT_GT(port, 0);
  uv_ip4_addr("127.0.0.1", port, &addr);
  ASSERT_EQ(b->send("hello", 5, reinterpret_cast<sockaddr*>(&addr)), 0);
  std::optional<Datagram> got;
  IoOp* op = a->receive(GetParam(), 5, [&](Datagram d) { got = std::move(d); });
  for (int i = 0; i < 2000 && !got.has_value(); ++i) uv_run(loop_.get(), UV_RUN_ONCE);
  if (!GetParam()) EXPECT_EQ(op, nullptr);
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_EQ(got->data, "hello");
  EXPECT_EQ(got->ip, "127.0.0.1");
  EXPECT_EQ(got->port, b->local_port());
  // A caller that cannot wait: the timeout ends it, in both implementations.
  got.reset();
  EXPECT_EQ(a->receive(false, 0.05, [&](Datagram d) { got = std::move(d); }), nullptr);
  ASSERT_TRUE(got.has_value());
  EXPECT_STREQ(got->code, "Timeout");
}

TEST_P(IoTest, AnUnboundSocketHasNothingToReceiveOn) {
  auto u = io_->udp();
  std::optional<Datagram> got;
  EXPECT_EQ(u->receive(false, 0.05, [&](Datagram d) { got = std::move(d); }), nullptr);
  ASSERT_TRUE(got.has_value());
  EXPECT_STREQ(got->code, "NotBound");
}

TEST_P(IoTest, ClosingAUdpSocketEndsTheReceiveInFlight) {
  if (!GetParam()) GTEST_SKIP() << "a blocking receive cannot be in flight";
  auto u = io_->udp();
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(u->bind(reinterpret_cast<sockaddr*>(&addr)), 0);
  std::optional<Datagram> got;
  ASSERT_NE(u->receive(true, 0, [&](Datagram d) { got = std::move(d); }), nullptr);
  u->close();
  ASSERT_TRUE(got.has_value());
  EXPECT_STREQ(got->code, "Closed");
}

TEST_P(IoTest, ReadsWritesAndAppendsWholeFiles) {
  std::string path = ::testing::TempDir() + "/io_test_file_" + std::to_string(::getpid());
  auto run = [&](FileOp op, std::string data) {
    std::optional<FileResult> got;
    IoOp* op_in_flight =
        io_->file(op, path, std::move(data), GetParam(), [&](FileResult r) { got = std::move(r); });
    if (!GetParam()) EXPECT_EQ(op_in_flight, nullptr);
    for (int i = 0; i < 2000 && !got.has_value(); ++i) uv_run(loop_.get(), UV_RUN_ONCE);
    EXPECT_TRUE(got.has_value());
    return got.value_or(FileResult{});
  };
  EXPECT_TRUE(run(FileOp::Write, "hello ").ok());
  EXPECT_TRUE(run(FileOp::Append, "world").ok());
  FileResult r = run(FileOp::Read, "");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.data, "hello world");
  ::unlink(path.c_str());
  FileResult missing = run(FileOp::Read, "");
  EXPECT_EQ(missing.status, UV_ENOENT);
  EXPECT_EQ(missing.path, path);
}

TEST_P(IoTest, ACancelledFileJobNeverReports) {
  if (!GetParam()) GTEST_SKIP() << "a blocking file job is never in flight";
  bool called = false;
  IoOp* op = io_->file(FileOp::Read, "/etc/hostname", "", true, [&](FileResult) { called = true; });
  ASSERT_NE(op, nullptr);
  op->cancel();
  for (int i = 0; i < 200 && uv_loop_alive(loop_.get()) != 0; ++i) uv_run(loop_.get(), UV_RUN_ONCE);
  EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(BothImplementations, IoTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "Evented" : "Blocking");
                         });

}  // namespace
}  // namespace evo
