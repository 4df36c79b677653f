// Timers and file-handle operations on the ring (--io=uring): the uring
// Io's Io::sleep and Io::fs for a caller that can wait (src/io/uring_ops.cpp).
#pragma once

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
// A cancelled sleep leaves the set and is never called.
class RingTimers {
 public:
  explicit RingTimers(Ring& ring);
  ~RingTimers();
  RingTimers(const RingTimers&) = delete;
  RingTimers& operator=(const RingTimers&) = delete;

  IoOp* start(double seconds, IoWake done);

  class Sleep;
  class Alarm;

 private:
  friend class Sleep;
  friend class Alarm;
  void cancel(Sleep* s);
  void fired();

  Ring& ring_;
  std::multimap<uint64_t, std::unique_ptr<Sleep>> sleeps_;  // by deadline (ns)
  Alarm* alarm_ = nullptr;                                  // the ring's; made at the first sleep
  std::vector<IoWake> due_;                                 // reused by fired()
};

// One entry: OPENAT, READ, WRITE, FSYNC, STATX or CLOSE. A cancelled
// operation's completion is dropped (a descriptor it opened anyway is
// closed); its buffers live until then.
IoOp* start_fs(Ring& ring, FsRequest req, std::function<void(FsResult)> done);

}  // namespace evo::uring
