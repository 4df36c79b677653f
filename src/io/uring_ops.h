// Timers and file-handle operations on the ring (--io=uring): the uring
// Io's Io::sleep and Io::fs for a caller that can wait (src/io/uring_ops.cpp).
#pragma once

#include <functional>

#include "io/io.h"
#include "io/uring_ring.h"

namespace evo::uring {

// An IORING_OP_TIMEOUT with an absolute CLOCK_MONOTONIC deadline, taken
// now (so the time until the batch is submitted counts); cancel() submits
// IORING_OP_TIMEOUT_REMOVE and done is never called then.
IoOp* start_timer(Ring& ring, double seconds, IoWake done);

// One entry: OPENAT, READ, WRITE, FSYNC, STATX or CLOSE. A cancelled
// operation's completion is dropped (a descriptor it opened anyway is
// closed); its buffers live until then.
IoOp* start_fs(Ring& ring, FsRequest req, std::function<void(FsResult)> done);

}  // namespace evo::uring
