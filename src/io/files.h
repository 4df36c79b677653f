// Thread-pool work for the Io implementations, and whole-file jobs on it
// (src/io/files.cpp).
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "io/io.h"

namespace evo {

// Runs job on libuv's thread pool, then done on the loop: the operation in
// flight (or nullptr after running both here, when the pool refused it).
IoOp* work_on_pool(uv_loop_t* loop, std::function<void()> job, std::function<void()> done);

}  // namespace evo
