// Timers and file-handle operations on the ring (see uring_ops.h).
#include "io/uring_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <ctime>
#include <memory>
#include <string>
#include <utility>

#include "io/fs_ops.h"

namespace evo::uring {
namespace {

// ------------------------------------------------------------------ timers

class RingTimer final : public RingOp, public IoOp {
 public:
  RingTimer(Ring& ring, IoWake done) : ring_(ring), done_(done) {}

  void begin(double seconds) {
    // Absolute: the deadline is the caller's now + seconds, not the
    // submission's (the batch goes out at the loop's next prepare).
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    double whole = std::floor(seconds);
    int64_t sec = now.tv_sec + static_cast<int64_t>(whole);
    int64_t nsec = now.tv_nsec + std::llround((seconds - whole) * 1e9);
    sec += nsec / 1000000000;
    ts_.tv_sec = sec;
    ts_.tv_nsec = nsec % 1000000000;
    io_uring_prep_timeout(ring_.sqe(this, kTimeout), &ts_, 0, IORING_TIMEOUT_ABS);
    armed_ = true;
  }

  void cancel() override {
    canceled_ = true;
    done_ = IoWake{};
    ring_.remove_timeout(this, kTimeout);
  }
  [[nodiscard]] bool finished() const override { return !armed_; }

  void on_cqe(uint8_t /*tag*/, int res, uint32_t /*flags*/) override {
    armed_ = false;
    if (canceled_ || ring_.closing()) return;
    // -ETIME: it expired. Anything else (a kernel that refused the entry)
    // wakes the sleeper too rather than leave it asleep for ever.
    (void)res;
    IoWake done = done_;
    done_ = IoWake{};
    done();
  }

 private:
  static constexpr uint8_t kTimeout = 0;
  Ring& ring_;
  IoWake done_;
  __kernel_timespec ts_{};  // the kernel reads it at submission
  bool armed_ = false;
  bool canceled_ = false;
};

// ---------------------------------------------------------------- fs calls

constexpr unsigned kStatMask = STATX_BASIC_STATS | STATX_BTIME;  // what libuv asks for

class RingFsOp final : public RingOp, public IoOp {
 public:
  RingFsOp(Ring& ring, FsRequest req, std::function<void(FsResult)> done)
      : ring_(ring), in_(std::move(req)), done_(std::move(done)) {}

  void begin() {
    io_uring_sqe* s = ring_.sqe(this, 0);
    auto offset = static_cast<uint64_t>(in_.offset);  // -1: the file position
    switch (in_.op) {
      case FsOp::Open:
        return io_uring_prep_openat(s, AT_FDCWD, in_.path.c_str(), in_.flags | O_CLOEXEC,
                                    static_cast<mode_t>(in_.mode));
      case FsOp::Read:
        buf_ = std::make_unique_for_overwrite<char[]>(in_.length);  // no zero fill of 64 KiB per read
        return io_uring_prep_read(s, in_.fd, buf_.get(), static_cast<unsigned>(in_.length), offset);
      case FsOp::Write:
        return io_uring_prep_write(s, in_.fd, in_.data.data(), static_cast<unsigned>(in_.data.size()),
                                   offset);
      case FsOp::Fsync:
        return io_uring_prep_fsync(s, in_.fd, 0);
      case FsOp::Fstat:
        return io_uring_prep_statx(s, in_.fd, "", AT_EMPTY_PATH, kStatMask, &stx_);
      case FsOp::Stat:
        return io_uring_prep_statx(s, AT_FDCWD, in_.path.c_str(), 0, kStatMask, &stx_);
      case FsOp::Lstat:
        return io_uring_prep_statx(s, AT_FDCWD, in_.path.c_str(), AT_SYMLINK_NOFOLLOW, kStatMask, &stx_);
      case FsOp::Close:
        return io_uring_prep_close(s, in_.fd);
    }
  }

  void cancel() override {
    canceled_ = true;
    done_ = nullptr;
    ring_.cancel(this, 0);
  }
  [[nodiscard]] bool finished() const override { return done_at_; }

  void on_cqe(uint8_t /*tag*/, int res, uint32_t /*flags*/) override {
    done_at_ = true;
    if (canceled_ || ring_.closing()) {
      if (in_.op == FsOp::Open && res >= 0) ::close(res);  // opened anyway: nobody's
      return;
    }
    std::function<void(FsResult)> done = std::move(done_);
    done(result(res));
  }

 private:
  FsResult result(int res) {
    FsResult r;
    if (in_.op == FsOp::Open || in_.op == FsOp::Stat || in_.op == FsOp::Lstat) r.path = std::move(in_.path);
    if (res < 0) {
      r.status = uv_translate_sys_error(-res);
      return r;
    }
    r.value = res;
    if (in_.op == FsOp::Read) {
      r.data.assign(buf_.get(), static_cast<size_t>(res));
    } else if (in_.op == FsOp::Fstat || in_.op == FsOp::Stat || in_.op == FsOp::Lstat) {
      stat_from_statx(stx_, &r.stat);
    }
    return r;
  }

  Ring& ring_;
  FsRequest in_;
  std::function<void(FsResult)> done_;
  std::unique_ptr<char[]> buf_;  // what a read reads into: the kernel's until the completion
  struct statx stx_ {};
  bool canceled_ = false;
  bool done_at_ = false;
};

}  // namespace

IoOp* start_timer(Ring& ring, double seconds, IoWake done) {
  auto op = std::make_unique<RingTimer>(ring, done);
  RingTimer* t = op.get();
  ring.adopt(std::move(op));
  t->begin(seconds);
  return t;
}

IoOp* start_fs(Ring& ring, FsRequest req, std::function<void(FsResult)> done) {
  auto op = std::make_unique<RingFsOp>(ring, std::move(req), std::move(done));
  RingFsOp* f = op.get();
  ring.adopt(std::move(op));
  f->begin();
  return f;
}

}  // namespace evo::uring
