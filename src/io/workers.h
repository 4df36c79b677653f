// The worker side of `evo --workers N` (src/cli/supervisor.cpp is the other
// side; docs/workers.md has the model).
//
// A worker is `evo` re-executed by the supervisor with EVO_WORKER set to
// "id,count,fd,grace": its slot (1..count), the number of slots, the
// descriptor of its end of a SOCK_SEQPACKET socketpair to the supervisor,
// and the grace period in seconds. In a worker, every TCP or Unix-socket
// listener is the supervisor's: blocking::listen asks it for the socket of
// this slot and that address (one SO_REUSEPORT socket per slot; one shared
// socket for a Unix path), which both Io modes use. The supervisor keeps its
// own copy, so a worker closing its listener never drops the connections
// queued on it: the next worker of the slot accepts them.
//
// A graceful stop (SIGTERM, SIGINT) calls every drain hook registered here:
// servers stop accepting and finish what is in flight.
#pragma once

#include <sys/socket.h>

#include <functional>

namespace evo::workers {

// Reads and removes EVO_WORKER (children of a worker are not workers). Call
// once, first thing. False when this process is not a worker.
bool init_from_env();

[[nodiscard]] bool active();
[[nodiscard]] int id();        // 1..count; 0 when not a worker
[[nodiscard]] int count();     // 0 when not a worker
[[nodiscard]] double grace();  // seconds a graceful stop may take

// The listening socket for this address (or Unix path) from the supervisor,
// in *fd (close-on-exec). 0 or a libuv error status.
int listen(const sockaddr* addr, socklen_t len, const char* path, int backlog, int* fd);

// Tells the supervisor that the script's main chunk has run (its listeners
// made at the top level exist): the supervisor's readiness test during a
// rolling reload (see supervisor.cpp).
void started();

// Graceful stop: `drain` runs for every registered key, once, when the
// worker is told to stop. A key is forgotten when its owner goes.
void on_drain(const void* key, std::function<void()> drain);
void forget(const void* key);
// Runs the drain hooks (each one once); true the first time.
bool drain_all();
[[nodiscard]] bool draining();

}  // namespace evo::workers
