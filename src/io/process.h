// Child processes for both Io implementations (src/io/process.cpp).
#pragma once

#include <uv.h>

#include "io/io.h"

namespace evo {

// uv_spawn: the exit comes through libuv's SIGCHLD handling, pipes are
// libuv streams.
Spawned spawn_evented(uv_loop_t* loop, const SpawnSpec& spec);
// posix_spawn: plain pipes, waitpid().
Spawned spawn_blocking(const SpawnSpec& spec);

}  // namespace evo
