// evo.stdio: the process's standard streams as Streams (process.stdin,
// process.stdout, process.stderr in lib/process.lua). See src/bind/stdio.cpp.
#pragma once

#include <cstddef>

// open_stdio ("evo.stdio") is declared with the other modules in lua/modules.h.

namespace evo::stdio {

// For C's stdio on fd 1 and 2 (main.cpp): while process.stdout (stderr) has
// output queued behind a write in flight, `data` joins that queue, so that
// print() after process.stdout:write() keeps its place; true then. False:
// write it yourself (no such stream, or nothing queued).
bool divert(int fd, const char* data, size_t size);

// Ends the process by SIGPIPE, as a write to a closed pipe ends a C program:
// `evo script.lua | head -1` stops (Evo itself catches SIGPIPE, so a write
// only returns EPIPE; print and process.stdout:write then call this).
[[noreturn]] void die_of_sigpipe();

}  // namespace evo::stdio
