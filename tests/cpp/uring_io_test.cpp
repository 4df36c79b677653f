// The uring Io (src/io/uring_io.cpp): whole-file jobs on the ring give the
// evented results; a cancelled job never reports, whatever step it is at;
// random sequences of starts and cancels leave every job reported exactly
// once or (cancelled) never, and nothing in flight at the Io's end (the
// ring drains; ASan checks the buffers the kernel wrote into).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/loop.h"
#include "io/io.h"
#include "io/uring_ring.h"

namespace evo {
namespace {

class UringIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = uring::probe(); !why.empty()) GTEST_SKIP() << why;
    std::string why;
    io_ = make_uring_io(loop_.get(), &why);
    ASSERT_NE(io_, nullptr) << why;
    path_ = ::testing::TempDir() + "/uring_io_test_" + std::to_string(::getpid());
  }
  void TearDown() override {
    io_.reset();  // drains the ring
    loop_.drain_closing();
    ::unlink(path_.c_str());
  }
  FileResult run(FileOp op, std::string data) {
    std::optional<FileResult> got;
    IoOp* in_flight = io_->file(op, path_, std::move(data), true, [&](FileResult r) { got = std::move(r); });
    EXPECT_NE(in_flight, nullptr);
    for (int i = 0; i < 2000 && !got.has_value(); ++i) loop_.run(UV_RUN_ONCE);
    EXPECT_TRUE(got.has_value());
    return got.value_or(FileResult{});
  }

  Loop loop_;
  std::unique_ptr<Io> io_;
  std::string path_;
};

TEST_F(UringIoTest, ReadsWritesAndAppendsWholeFiles) {
  EXPECT_STREQ(io_->name(), "uring");
  EXPECT_TRUE(run(FileOp::Write, "hello ").ok());
  EXPECT_TRUE(run(FileOp::Append, "world").ok());
  FileResult r = run(FileOp::Read, "");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.data, "hello world");
  std::string big(300 * 1024 + 7, 'x');
  EXPECT_TRUE(run(FileOp::Write, big).ok());
  EXPECT_EQ(run(FileOp::Read, "").data, big);
  ::unlink(path_.c_str());
  FileResult missing = run(FileOp::Read, "");
  EXPECT_EQ(missing.status, UV_ENOENT);
  EXPECT_EQ(missing.path, path_);
}

TEST_F(UringIoTest, ACallerThatCannotWaitIsAnsweredInsideTheCall) {
  std::optional<FileResult> got;
  IoOp* op =
      io_->file(FileOp::Read, "/proc/self/status", "", false, [&](FileResult r) { got = std::move(r); });
  EXPECT_EQ(op, nullptr);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->ok());
  EXPECT_NE(got->data.find("Pid:"), std::string::npos);
}

TEST_F(UringIoTest, RandomStartsAndCancelsReportOnceOrNever) {
  EXPECT_TRUE(run(FileOp::Write, std::string(20000, 'y')).ok());
  std::mt19937 rng(14);
  struct Job {
    IoOp* op = nullptr;
    int reports = 0;
    bool canceled = false;
  };
  std::vector<std::unique_ptr<Job>> jobs;
  for (int round = 0; round < 200; ++round) {
    // Start a few, cancel some of those in flight, turn the loop a little.
    for (int k = 0; k < 1 + static_cast<int>(rng() % 8); ++k) {
      auto job = std::make_unique<Job>();
      Job* j = job.get();
      FileOp op = rng() % 3 == 0 ? FileOp::Append : FileOp::Read;
      j->op = io_->file(op, path_, op == FileOp::Read ? "" : "z", true, [j](FileResult r) {
        ++j->reports;
        j->op = nullptr;
        EXPECT_TRUE(r.ok());
      });
      jobs.push_back(std::move(job));
    }
    for (auto& j : jobs) {
      if (j->op != nullptr && !j->canceled && rng() % 3 == 0) {
        j->canceled = true;
        j->op->cancel();
      }
    }
    for (int t = static_cast<int>(rng() % 3); t > 0; --t) loop_.run(UV_RUN_NOWAIT);
  }
  for (int i = 0; i < 5000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  for (auto& j : jobs) {
    if (j->canceled) {
      EXPECT_EQ(j->reports, 0);
    } else {
      EXPECT_EQ(j->reports, 1);
    }
  }
}

// ---------------------------------------------------- timers (Io::sleep)

void record(void* arg, uint32_t id) {
  auto* order = static_cast<std::vector<int>*>(arg);
  order->push_back(static_cast<int>(id));
}

struct Timed {
  uint64_t start = uv_hrtime();
  std::vector<std::pair<int, uint64_t>> fired;  // which, ns after start
};
void record_time(void* arg, uint32_t id) {
  auto* t = static_cast<Timed*>(arg);
  t->fired.emplace_back(static_cast<int>(id), uv_hrtime() - t->start);
}

TEST_F(UringIoTest, AShorterSleepMovesTheOneTimeoutEarlierAndEachFiresOnTime) {
  // 300 ms first, then 20 ms: the armed entry must move to the earlier
  // deadline (an update), not let the short sleep wait for the long one.
  Timed t;
  ASSERT_NE(io_->sleep(0.3, true, IoWake{record_time, &t, 1}), nullptr);
  ASSERT_NE(io_->sleep(0.02, true, IoWake{record_time, &t, 2}), nullptr);
  ASSERT_NE(io_->sleep(0.05, true, IoWake{record_time, &t, 3}), nullptr);
  for (int i = 0; i < 1000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  ASSERT_EQ(t.fired.size(), 3u);
  EXPECT_EQ(t.fired[0].first, 2);
  EXPECT_GE(t.fired[0].second, uint64_t{20'000'000});
  EXPECT_LT(t.fired[0].second, uint64_t{200'000'000});  // long before the 300 ms one
  EXPECT_EQ(t.fired[1].first, 3);
  EXPECT_GE(t.fired[1].second, uint64_t{50'000'000});
  EXPECT_EQ(t.fired[2].first, 1);
  EXPECT_GE(t.fired[2].second, uint64_t{300'000'000});
}

TEST_F(UringIoTest, CancellingTheLastSleeperLetsTheLoopEnd) {
  std::vector<int> order;
  IoOp* op = io_->sleep(10, true, IoWake{record, &order, 1});
  ASSERT_NE(op, nullptr);
  loop_.run(UV_RUN_NOWAIT);
  EXPECT_NE(uv_loop_alive(loop_.get()), 0);  // the armed timeout holds the loop
  op->cancel();
  uint64_t start = uv_hrtime();
  for (int i = 0; i < 1000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  EXPECT_EQ(uv_loop_alive(loop_.get()), 0);
  EXPECT_LT(uv_hrtime() - start, uint64_t{1'000'000'000});  // not after the 10 s
  EXPECT_TRUE(order.empty());
}

TEST_F(UringIoTest, SleepsFireOnceInDeadlineOrderAndNeverAfterCancel) {
  std::vector<int> order;
  uint64_t start = uv_hrtime();
  ASSERT_NE(io_->sleep(0.03, true, IoWake{record, &order, 1}), nullptr);
  ASSERT_NE(io_->sleep(0.01, true, IoWake{record, &order, 2}), nullptr);
  IoOp* doomed = io_->sleep(0.015, true, IoWake{record, &order, 3});
  ASSERT_NE(io_->sleep(0.02, true, IoWake{record, &order, 4}), nullptr);
  ASSERT_NE(doomed, nullptr);
  doomed->cancel();
  for (int i = 0; i < 1000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  EXPECT_EQ(order, (std::vector<int>{2, 4, 1}));
  EXPECT_GE(uv_hrtime() - start, uint64_t{30'000'000});  // never early
  EXPECT_EQ(uv_loop_alive(loop_.get()), 0);              // nothing left holding the loop
}

TEST_F(UringIoTest, ASleepThatCannotWaitSleepsInsideTheCall) {
  std::vector<int> order;
  uint64_t start = uv_hrtime();
  EXPECT_EQ(io_->sleep(0.01, false, IoWake{record, &order, 7}), nullptr);
  EXPECT_EQ(order, (std::vector<int>{7}));
  EXPECT_GE(uv_hrtime() - start, uint64_t{10'000'000});
}

// ---------------------------------------------- file handles (Io::fs)

class UringFsTest : public UringIoTest {
 protected:
  FsResult fs(FsRequest req) {
    std::optional<FsResult> got;
    IoOp* in_flight = io_->fs(std::move(req), true, [&](FsResult r) { got = std::move(r); });
    EXPECT_NE(in_flight, nullptr);
    for (int i = 0; i < 2000 && !got.has_value(); ++i) loop_.run(UV_RUN_ONCE);
    EXPECT_TRUE(got.has_value());
    return got.value_or(FsResult{});
  }
  static FsRequest req(FsOp op, int fd = -1) {
    FsRequest r;
    r.op = op;
    r.fd = fd;
    return r;
  }
};

TEST_F(UringFsTest, OpensWritesSyncsReadsStatsAndClosesAsLibuvDoes) {
  FsRequest open = req(FsOp::Open);
  open.path = path_;
  open.flags = O_RDWR | O_CREAT | O_TRUNC;
  open.mode = 0600;
  FsResult opened = fs(open);
  ASSERT_TRUE(opened.ok()) << uv_strerror(opened.status);
  int fd = static_cast<int>(opened.value);
  FsRequest write = req(FsOp::Write, fd);
  write.data = "hello, ring";
  write.offset = 0;
  EXPECT_EQ(fs(write).value, 11);
  EXPECT_TRUE(fs(req(FsOp::Fsync, fd)).ok());
  FsRequest read = req(FsOp::Read, fd);
  read.length = 64 * 1024;
  read.offset = 7;
  EXPECT_EQ(fs(read).data, "ring");
  FsResult st = fs(req(FsOp::Fstat, fd));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st.stat.st_size, 11u);
  // the same stat as libuv's own (statx) for the path
  FsRequest by_path = req(FsOp::Stat);
  by_path.path = path_;
  FsResult ring = fs(by_path);
  uv_fs_t want{};
  ASSERT_EQ(uv_fs_stat(nullptr, &want, path_.c_str(), nullptr), 0);
  EXPECT_EQ(ring.stat.st_ino, want.statbuf.st_ino);
  EXPECT_EQ(ring.stat.st_dev, want.statbuf.st_dev);
  EXPECT_EQ(ring.stat.st_mode, want.statbuf.st_mode);
  EXPECT_EQ(ring.stat.st_mtim.tv_nsec, want.statbuf.st_mtim.tv_nsec);
  EXPECT_EQ(ring.stat.st_blocks, want.statbuf.st_blocks);
  uv_fs_req_cleanup(&want);
  EXPECT_TRUE(fs(req(FsOp::Close, fd)).ok());
  EXPECT_EQ(fs(req(FsOp::Close, fd)).status, UV_EBADF);  // closed: its descriptor is gone
}

TEST_F(UringFsTest, FailuresCarryLibuvStatusesAndThePath) {
  FsRequest open = req(FsOp::Open);
  open.path = path_ + ".missing/x";
  FsResult r = fs(open);
  EXPECT_EQ(r.status, UV_ENOENT);
  EXPECT_EQ(r.path, open.path);
  FsRequest lstat = req(FsOp::Lstat);
  lstat.path = open.path;
  EXPECT_EQ(fs(lstat).status, UV_ENOENT);
  FsRequest read = req(FsOp::Read, 1'000'000);
  read.length = 10;
  EXPECT_EQ(fs(read).status, UV_EBADF);
  // a caller that cannot wait: answered inside the call, the same way
  std::optional<FsResult> got;
  EXPECT_EQ(io_->fs(open, false, [&](FsResult x) { got = std::move(x); }), nullptr);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, UV_ENOENT);
}

// Under each wait (EVO_URING_WAIT, read when the ring is made): a FIFO read
// that no writer ever completes. UV_RUN_NOWAIT returns at once though the
// read keeps the loop alive (the ring wait blocks in libuv's stead only when
// the loop's run mode lets libuv block: run_loop says it), and the read
// cancelled reports nothing and lets the loop end.
class UringWaitTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (std::string why = uring::probe(); !why.empty()) GTEST_SKIP() << why;
    const char* old = std::getenv("EVO_URING_WAIT");
    if (old != nullptr) saved_ = old;
    had_ = old != nullptr;
    ::setenv("EVO_URING_WAIT", GetParam(), 1);
    std::string why;
    io_ = make_uring_io(loop_.get(), &why);
    ASSERT_NE(io_, nullptr) << why;
    path_ = ::testing::TempDir() + "/uring_wait_test_" + std::to_string(::getpid()) + ".fifo";
  }
  void TearDown() override {
    io_.reset();
    loop_.drain_closing();
    ::unlink(path_.c_str());
    if (had_) {
      ::setenv("EVO_URING_WAIT", saved_.c_str(), 1);
    } else {
      ::unsetenv("EVO_URING_WAIT");
    }
  }
  FsResult fs(FsRequest req) {
    std::optional<FsResult> got;
    EXPECT_NE(io_->fs(std::move(req), true, [&](FsResult r) { got = std::move(r); }), nullptr);
    for (int i = 0; i < 2000 && !got.has_value(); ++i) loop_.run(UV_RUN_ONCE);
    EXPECT_TRUE(got.has_value());
    return got.value_or(FsResult{});
  }
  Loop loop_;
  std::unique_ptr<Io> io_;
  std::string path_;
  std::string saved_;
  bool had_ = false;
};

TEST_P(UringWaitTest, ACancelledReadStuckInTheKernelNeverReports) {
  ASSERT_EQ(::mkfifo(path_.c_str(), 0600), 0);
  FsRequest open;
  open.op = FsOp::Open;
  open.path = path_;
  FsResult opened = fs(open);  // io_uring opens a FIFO at once (nonblocking first)
  ASSERT_TRUE(opened.ok());
  int reports = 0;
  FsRequest read;
  read.op = FsOp::Read;
  read.fd = static_cast<int>(opened.value);
  read.length = 10;
  IoOp* op = io_->fs(read, true, [&](FsResult) { ++reports; });
  ASSERT_NE(op, nullptr);
  uint64_t start = uv_hrtime();
  for (int i = 0; i < 5; ++i) EXPECT_NE(loop_.run(UV_RUN_NOWAIT), 0);  // alive, and never blocks
  EXPECT_LT(uv_hrtime() - start, uint64_t{1'000'000'000});
  op->cancel();
  for (int i = 0; i < 1000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  EXPECT_EQ(uv_loop_alive(loop_.get()), 0);
  EXPECT_EQ(reports, 0);
  FsRequest close;
  close.op = FsOp::Close;
  close.fd = static_cast<int>(opened.value);
  EXPECT_TRUE(fs(close).ok());
}

INSTANTIATE_TEST_SUITE_P(BothWaits, UringWaitTest, ::testing::Values("ring", "epoll"),
                         [](const auto& info) { return std::string(info.param); });

TEST_F(UringFsTest, RandomSleepsAndFileOpsWithCancelsReportOnceOrNever) {
  EXPECT_TRUE(run(FileOp::Write, std::string(5000, 'q')).ok());
  std::mt19937 rng(1414);
  struct Job {
    IoOp* op = nullptr;
    int reports = 0;
    bool canceled = false;
    bool finished = false;
  };
  std::vector<std::unique_ptr<Job>> jobs;
  auto wake = [](void* arg, uint32_t /*id*/) {
    auto* j = static_cast<Job*>(arg);
    ++j->reports;
    j->finished = true;
  };
  for (int round = 0; round < 200; ++round) {
    for (int k = 0; k < 1 + static_cast<int>(rng() % 6); ++k) {
      auto job = std::make_unique<Job>();
      Job* j = job.get();
      if (rng() % 2 == 0) {
        j->op = io_->sleep(static_cast<double>(rng() % 5) * 0.001, true, IoWake{wake, j, 0});
      } else {
        FsRequest r = req(rng() % 2 == 0 ? FsOp::Stat : FsOp::Lstat);
        r.path = path_;
        j->op = io_->fs(r, true, [j](FsResult res) {
          ++j->reports;
          j->finished = true;
          EXPECT_TRUE(res.ok());
        });
      }
      jobs.push_back(std::move(job));
    }
    for (auto& j : jobs) {
      if (!j->finished && !j->canceled && rng() % 3 == 0) {
        j->canceled = true;
        j->op->cancel();
      }
    }
    for (int t = static_cast<int>(rng() % 3); t > 0; --t) loop_.run(UV_RUN_NOWAIT);
  }
  for (int i = 0; i < 5000 && uv_loop_alive(loop_.get()) != 0; ++i) loop_.run(UV_RUN_ONCE);
  for (auto& j : jobs) EXPECT_EQ(j->reports, j->canceled ? 0 : 1);
}

}  // namespace
}  // namespace evo
