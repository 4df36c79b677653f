// The uring Io (src/io/uring_io.cpp): whole-file jobs on the ring give the
// evented results; a cancelled job never reports, whatever step it is at;
// random sequences of starts and cancels leave every job reported exactly
// once or (cancelled) never, and nothing in flight at the Io's end (the
// ring drains; ASan checks the buffers the kernel wrote into).
#include <gtest/gtest.h>
#include <unistd.h>

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
    for (int i = 0; i < 2000 && !got.has_value(); ++i) uv_run(loop_.get(), UV_RUN_ONCE);
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
    for (int t = static_cast<int>(rng() % 3); t > 0; --t) uv_run(loop_.get(), UV_RUN_NOWAIT);
  }
  for (int i = 0; i < 5000 && uv_loop_alive(loop_.get()) != 0; ++i) uv_run(loop_.get(), UV_RUN_ONCE);
  for (auto& j : jobs) {
    if (j->canceled) {
      EXPECT_EQ(j->reports, 0);
    } else {
      EXPECT_EQ(j->reports, 1);
    }
  }
}

}  // namespace
}  // namespace evo
