// Timers and file-handle operations of the evented and blocking Ios (see
// fs_ops.h).
#include "io/fs_ops.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/handle.h"

namespace evo {

void sleep_here(double seconds) {
  if (!(seconds > 0)) return;
  timespec left{};
  left.tv_sec = static_cast<time_t>(seconds);
  left.tv_nsec = static_cast<long>(std::llround((seconds - static_cast<double>(left.tv_sec)) * 1e9));
  if (left.tv_nsec >= 1000000000L) {
    ++left.tv_sec;
    left.tv_nsec -= 1000000000L;
  }
  while (::nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

// ------------------------------------------------------------------ timers

namespace {
class SleepTimer;
}

// Idle timers; each knows its place (closing one at exit removes it in
// O(1): the exit sweep closes every timer, a thousand idle ones included).
struct SleepTimers::Pool {
  std::vector<SleepTimer*> idle;
  void put(SleepTimer* t);
  SleepTimer* take();
  void remove(SleepTimer* t);
};

namespace {

class SleepTimer final : public NativeHandle, public IoOp {
 public:
  SleepTimer(uv_loop_t* loop, std::shared_ptr<SleepTimers::Pool> pool) : pool_(std::move(pool)) {
    uv_timer_init(loop, &timer_);
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  [[nodiscard]] bool internal() const override { return true; }

  void start(uint64_t ms, IoWake done) {
    done_ = done;
    uv_timer_start(&timer_, on_fire, ms, 0);
  }
  void cancel() override {
    uv_timer_stop(&timer_);
    done_ = IoWake{};
    pool_->put(this);
  }

  static constexpr size_t kNotIdle = SIZE_MAX;
  size_t idle_at = kNotIdle;  // its index in the pool's idle list

 protected:
  void on_closed() override { pool_->remove(this); }

 private:
  static void on_fire(uv_timer_t* h) {
    auto* self = static_cast<SleepTimer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(h)));
    // Back in the pool before done runs: done may start the next sleep.
    IoWake done = self->done_;
    self->done_ = IoWake{};
    self->pool_->put(self);
    done();
  }

  uv_timer_t timer_{};
  std::shared_ptr<SleepTimers::Pool> pool_;
  IoWake done_;
};

}  // namespace

void SleepTimers::Pool::put(SleepTimer* t) {
  t->idle_at = idle.size();
  idle.push_back(t);
}

SleepTimer* SleepTimers::Pool::take() {
  if (idle.empty()) return nullptr;
  SleepTimer* t = idle.back();
  idle.pop_back();
  t->idle_at = SleepTimer::kNotIdle;
  return t;
}

void SleepTimers::Pool::remove(SleepTimer* t) {
  if (t->idle_at == SleepTimer::kNotIdle) return;
  SleepTimer* last = idle.back();
  idle[t->idle_at] = last;
  last->idle_at = t->idle_at;
  idle.pop_back();
  t->idle_at = SleepTimer::kNotIdle;
}

SleepTimers::SleepTimers(uv_loop_t* loop) : loop_(loop), pool_(std::make_shared<Pool>()) {}

SleepTimers::~SleepTimers() {
  // The idle timers close with their owner; running ones finish (their
  // task's cancel or the runtime's exit sweep closes them).
  while (SleepTimer* t = pool_->take()) t->close();
}

IoOp* SleepTimers::start(double seconds, IoWake done) {
  SleepTimer* timer = pool_->take();
  if (timer == nullptr) timer = NativeHandle::release_to_loop(std::make_unique<SleepTimer>(loop_, pool_));
  // libuv counts a timer from the loop's cached time, which is as old as
  // the work done since the loop last polled (a slow start-up, a busy
  // handler): from it a sleep would end that much early. The ring's and
  // the blocking sleeps count from now, and so does this one (a vDSO
  // clock read).
  uv_update_time(loop_);
  timer->start(static_cast<uint64_t>(std::llround(seconds * 1000.0)), done);
  return timer;
}

// ---------------------------------------------------------------- fs calls

void stat_from_statx(const struct statx& x, uv_stat_t* out) {
  *out = uv_stat_t{};
  out->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  out->st_mode = x.stx_mode;
  out->st_nlink = x.stx_nlink;
  out->st_uid = x.stx_uid;
  out->st_gid = x.stx_gid;
  out->st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  out->st_ino = x.stx_ino;
  out->st_size = x.stx_size;
  out->st_blksize = x.stx_blksize;
  out->st_blocks = x.stx_blocks;
  out->st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  out->st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  out->st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
  out->st_birthtim = {x.stx_btime.tv_sec, x.stx_btime.tv_nsec};
}

namespace {

// One libuv fs request: started with a callback (on the loop) or without
// (done inside the call). Owns the buffers the request reads into or
// writes from.
class FsCall final : public IoOp {
 public:
  FsCall(FsRequest req, std::function<void(FsResult)> done) : in_(std::move(req)), done_(std::move(done)) {
    req_.data = this;
  }
  ~FsCall() { uv_fs_req_cleanup(&req_); }
  FsCall(const FsCall&) = delete;
  FsCall& operator=(const FsCall&) = delete;

  // The libuv status of starting it (with cb) or its result (without).
  int start(uv_loop_t* loop, uv_fs_cb cb) {
    switch (in_.op) {
      case FsOp::Open:
        return uv_fs_open(loop, &req_, in_.path.c_str(), in_.flags, in_.mode, cb);
      case FsOp::Read:
        buf_ = std::make_unique_for_overwrite<char[]>(in_.length);  // no zero fill of 64 KiB per read
        iov_ = uv_buf_init(buf_.get(), static_cast<unsigned>(in_.length));
        return uv_fs_read(loop, &req_, in_.fd, &iov_, 1, in_.offset, cb);
      case FsOp::Write:
        iov_ = uv_buf_init(in_.data.data(), static_cast<unsigned>(in_.data.size()));
        return uv_fs_write(loop, &req_, in_.fd, &iov_, 1, in_.offset, cb);
      case FsOp::Fsync:
        return uv_fs_fsync(loop, &req_, in_.fd, cb);
      case FsOp::Fstat:
        return uv_fs_fstat(loop, &req_, in_.fd, cb);
      case FsOp::Stat:
        return uv_fs_stat(loop, &req_, in_.path.c_str(), cb);
      case FsOp::Lstat:
        return uv_fs_lstat(loop, &req_, in_.path.c_str(), cb);
      case FsOp::Close:
        return uv_fs_close(loop, &req_, in_.fd, cb);
    }
    return UV_EINVAL;
  }

  FsResult result() {
    FsResult r;
    auto res = static_cast<int64_t>(req_.result);
    if (res < 0) r.status = static_cast<int>(res);
    if (in_.op == FsOp::Open || in_.op == FsOp::Stat || in_.op == FsOp::Lstat) r.path = std::move(in_.path);
    if (res < 0) return r;
    r.value = res;
    if (in_.op == FsOp::Read) {
      r.data.assign(buf_.get(), static_cast<size_t>(res));
    } else if (in_.op == FsOp::Fstat || in_.op == FsOp::Stat || in_.op == FsOp::Lstat) {
      r.stat = req_.statbuf;
    }
    return r;
  }

  // Refused at once: done hears it now.
  void refused(int status) {
    FsResult r;
    r.status = status;
    if (in_.op == FsOp::Open || in_.op == FsOp::Stat || in_.op == FsOp::Lstat) r.path = std::move(in_.path);
    std::function<void(FsResult)> done = std::move(done_);
    done(std::move(r));
  }

  void cancel() override {
    canceled_ = true;  // on_done frees it, whether or not uv_cancel wins
    uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
  }

  static void on_done(uv_fs_t* req) {
    std::unique_ptr<FsCall> self(static_cast<FsCall*>(req->data));
    if (self->canceled_) {
      // The caller has moved on: a descriptor opened anyway is nobody's.
      if (self->in_.op == FsOp::Open && req->result >= 0) {
        uv_fs_t close_req{};
        uv_fs_close(nullptr, &close_req, static_cast<uv_file>(req->result), nullptr);
        uv_fs_req_cleanup(&close_req);
      }
      return;
    }
    std::function<void(FsResult)> done = std::move(self->done_);
    done(self->result());
  }

 private:
  uv_fs_t req_{};
  FsRequest in_;
  std::function<void(FsResult)> done_;
  std::unique_ptr<char[]> buf_;  // what a read reads into
  uv_buf_t iov_{};
  bool canceled_ = false;
};

}  // namespace

FsResult fs_here(uv_loop_t* loop, const FsRequest& req) {
  FsCall call(req, nullptr);
  call.start(loop, nullptr);
  return call.result();
}

IoOp* fs_on_loop(uv_loop_t* loop, FsRequest req, std::function<void(FsResult)> done) {
  auto call = std::make_unique<FsCall>(std::move(req), std::move(done));
  int status = call->start(loop, FsCall::on_done);
  if (status < 0) {  // refused at once (libuv's argument checks)
    call->refused(status);
    return nullptr;
  }
  return call.release();  // on_done takes it back
}

}  // namespace evo
