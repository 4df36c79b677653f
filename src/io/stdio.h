// The standard streams for both Io implementations (src/io/stdio.cpp).
#pragma once

#include <uv.h>

#include <memory>

namespace evo {

class Transport;

// The descriptor itself (never closed by the transport).
std::unique_ptr<Transport> stdio_plain(int fd);
// A libuv stream where fd can be polled (see Io::adopt_stdio), else plain.
std::unique_ptr<Transport> stdio_evented(uv_loop_t* loop, int fd, int* shared_flags);

}  // namespace evo
