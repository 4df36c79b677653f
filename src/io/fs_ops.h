// Timers and file-handle operations for the Io implementations (Io::sleep,
// Io::fs): the evented forms on libuv's loop, the blocking forms as plain
// calls (src/io/fs_ops.cpp). The uring Io has its own ring forms
// (src/io/uring_ops.cpp) and uses these for a caller that cannot wait.
#pragma once

#include <sys/stat.h>
#include <uv.h>

#include <functional>
#include <memory>

#include "io/io.h"

namespace evo {

// Sleeps here (nanosleep, again after a signal for what is left).
void sleep_here(double seconds);

// The evented Io's timers: pooled libuv timers (sleeping allocates nothing
// in the steady state), hidden from uv.walk, referenced while they run.
class SleepTimers {
 public:
  explicit SleepTimers(uv_loop_t* loop);
  ~SleepTimers();
  SleepTimers(const SleepTimers&) = delete;
  SleepTimers& operator=(const SleepTimers&) = delete;
  // done() after seconds (libuv's millisecond timer), from the loop.
  IoOp* start(double seconds, IoWake done);

  struct Pool;

 private:
  uv_loop_t* loop_;
  std::shared_ptr<Pool> pool_;  // shared with the timers: they may outlive this
};

// The operation as libuv's synchronous fs call (the form luv's calls
// without a callback take): loop may be nullptr.
FsResult fs_here(uv_loop_t* loop, const FsRequest& req);
// The operation as a libuv fs request on loop; done from the loop. A
// cancelled one that opened a file anyway closes it.
IoOp* fs_on_loop(uv_loop_t* loop, FsRequest req, std::function<void(FsResult)> done);

// statx's answer as libuv's stat (what libuv itself fills from statx).
void stat_from_statx(const struct statx& x, uv_stat_t* out);

}  // namespace evo
