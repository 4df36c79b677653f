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

#include "core/handle.h"
#include "io/fs_ops.h"

namespace evo::uring {
namespace {

// ------------------------------------------------------------------ timers

uint64_t now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace

class RingTimers::Sleep final : public IoOp {
 public:
  Sleep(RingTimers* owner, IoWake done) : owner_(owner), done_(done) {}
  void cancel() override { owner_->cancel(this); }  // frees this
  [[nodiscard]] IoWake done() const { return done_; }
  std::multimap<uint64_t, std::unique_ptr<Sleep>>::iterator at;

 private:
  RingTimers* owner_;
  IoWake done_;
};

// The one timeout entry; it lives as long as the RingTimers (then the
// ring frees it after its last completion).
class RingTimers::Alarm final : public RingOp {
 public:
  Alarm(Ring& ring, RingTimers* owner) : ring_(ring), owner_(owner) {}

  // The entry fires at `deadline` at the latest from now on.
  void set(uint64_t deadline) {
    if (armed_ && deadline >= deadline_) return;
    deadline_ = deadline;
    // Read by the kernel when the batch is submitted, for either entry.
    ts_.tv_sec = static_cast<int64_t>(deadline / 1000000000ULL);
    ts_.tv_nsec = static_cast<long long>(deadline % 1000000000ULL);
    if (armed_) return ring_.update_timeout(this, kTimeout, &ts_, IORING_TIMEOUT_ABS);
    io_uring_prep_timeout(ring_.sqe(this, kTimeout), &ts_, 0, IORING_TIMEOUT_ABS);
    armed_ = true;
  }
  // Nobody sleeps: the entry is taken back (it holds the loop meanwhile).
  void clear() {
    if (armed_) ring_.remove_timeout(this, kTimeout);
  }
  void orphan() {
    owner_ = nullptr;
    clear();
    ring_.release(this);
  }
  [[nodiscard]] bool finished() const override { return owner_ == nullptr; }

  void on_cqe(uint8_t /*tag*/, int /*res*/, uint32_t /*flags*/) override {
    // -ETIME (expired) or -ECANCELED (removed): either way the entry is
    // gone; what is due wakes, the next deadline is armed.
    armed_ = false;
    if (owner_ != nullptr && !ring_.closing()) owner_->fired();
  }

 private:
  static constexpr uint8_t kTimeout = 0;
  Ring& ring_;
  RingTimers* owner_;
  __kernel_timespec ts_{};
  uint64_t deadline_ = 0;
  bool armed_ = false;
};

// An unstarted libuv timer whose only use is to be closed by the runtime's
// exit sweep (every Evo handle is), which tells the timers the run is over.
class RingTimers::Sentinel final : public NativeHandle {
 public:
  Sentinel(uv_loop_t* loop, RingTimers* owner) : owner(owner) { uv_timer_init(loop, &timer_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  [[nodiscard]] bool internal() const override { return true; }  // not between tests: at the end
  RingTimers* owner;

 protected:
  void on_closed() override {
    if (owner != nullptr) owner->abandon();
  }

 private:
  uv_timer_t timer_{};
};

RingTimers::RingTimers(Ring& ring, uv_loop_t* loop) : ring_(ring), loop_(loop) {}

RingTimers::~RingTimers() {
  sleeps_.clear();  // the run is over: nobody is woken
  if (alarm_ != nullptr) alarm_->orphan();
  if (sentinel_ != nullptr) {
    sentinel_->owner = nullptr;
    sentinel_->close();
  }
}

// The runtime is ending: its tasks are abandoned, their sleeps dropped, the
// entry taken back so it holds the loop no longer.
void RingTimers::abandon() {
  sentinel_ = nullptr;
  sleeps_.clear();
  if (alarm_ != nullptr) alarm_->clear();
}

IoOp* RingTimers::start(double seconds, IoWake done) {
  if (alarm_ == nullptr) {
    auto alarm = std::make_unique<Alarm>(ring_, this);
    alarm_ = alarm.get();
    ring_.adopt(std::move(alarm));
  }
  if (sentinel_ == nullptr)
    sentinel_ = NativeHandle::release_to_loop(std::make_unique<Sentinel>(loop_, this));
  uint64_t deadline = now_ns() + static_cast<uint64_t>(std::llround(seconds * 1e9));
  auto sleep = std::make_unique<Sleep>(this, done);
  Sleep* s = sleep.get();
  s->at = sleeps_.emplace(deadline, std::move(sleep));
  alarm_->set(deadline);
  return s;
}

void RingTimers::cancel(Sleep* s) {
  sleeps_.erase(s->at);
  if (sleeps_.empty()) alarm_->clear();
}

void RingTimers::fired() {
  uint64_t now = now_ns();
  std::vector<IoWake> due = std::move(due_);
  due.clear();
  while (!sleeps_.empty() && sleeps_.begin()->first <= now) {
    due.push_back(sleeps_.begin()->second->done());
    sleeps_.erase(sleeps_.begin());
  }
  if (!sleeps_.empty()) alarm_->set(sleeps_.begin()->first);
  // Last: a woken task may sleep again (it only runs later, from the
  // scheduler, but a wake must find the set consistent).
  for (const IoWake& w : due) w();
  due_ = std::move(due);
}

namespace {

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

IoOp* start_fs(Ring& ring, FsRequest req, std::function<void(FsResult)> done) {
  auto op = std::make_unique<RingFsOp>(ring, std::move(req), std::move(done));
  RingFsOp* f = op.get();
  ring.adopt(std::move(op));
  f->begin();
  return f;
}

}  // namespace evo::uring
