// Timers and file-handle operations on the ring (--io=uring): the uring
// Io's Io::sleep and Io::fs for a caller that can wait (src/io/uring_ops.cpp).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "io/io.h"
#include "io/uring_ring.h"

namespace evo::uring {

// The uring Io's sleeps: a user-space ordered set of deadlines (absolute,
// CLOCK_MONOTONIC, taken when the sleep is asked for) and one
// IORING_OP_TIMEOUT entry armed for the earliest, moved earlier with
// IORING_TIMEOUT_UPDATE and taken back with IORING_OP_TIMEOUT_REMOVE when
// nobody sleeps. Its expiry wakes every sleep that is due (never one
// early) and arms the next: one kernel timer for all of them, as libuv keeps
// one heap under epoll's timeout, instead of a kernel timer per sleep.
// A cancelled sleep leaves the set and is never called. When the runtime
// ends (its exit sweep closes every Evo handle, a sentinel of these timers
// among them) the sleeps of its abandoned tasks are dropped and the entry
// taken back, as the evented Io's timers are closed: a 20 s sleep left in a
// task must not hold the exit for 20 s.
class RingTimers {
 public:
  RingTimers(Ring& ring, uv_loop_t* loop);
  ~RingTimers();
  RingTimers(const RingTimers&) = delete;
  RingTimers& operator=(const RingTimers&) = delete;

  IoOp* start(double seconds, IoWake done);

  class Sleep;
  class Alarm;
  class Sentinel;

 private:
  friend class Sleep;
  friend class Alarm;
  friend class Sentinel;
  void cancel(Sleep* s);
  void fired();
  void abandon();

  Ring& ring_;
  uv_loop_t* loop_;
  Sentinel* sentinel_ = nullptr;                            // libuv's (a NativeHandle); made with the alarm
  std::multimap<uint64_t, std::unique_ptr<Sleep>> sleeps_;  // by deadline (ns)
  Alarm* alarm_ = nullptr;                                  // the ring's; made at the first sleep
  std::vector<IoWake> due_;                                 // reused by fired()
};

// One entry: OPENAT, READ, WRITE, FSYNC, STATX or CLOSE. A cancelled
// operation's completion is dropped (a descriptor it opened anyway is
// closed); its buffers live until then.
IoOp* start_fs(Ring& ring, FsRequest req, std::function<void(FsResult)> done);

}  // namespace evo::uring
