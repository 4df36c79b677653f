// The UDP sockets of the two Io implementations (src/io/udp.cpp).
#pragma once

#include <uv.h>

#include <memory>

#include "io/io.h"

namespace evo {

std::unique_ptr<IoUdp> make_evented_udp(uv_loop_t* loop);
std::unique_ptr<IoUdp> make_blocking_udp();

}  // namespace evo
