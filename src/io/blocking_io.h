// The blocking Io's system calls, also used by the evented Io for a call
// whose caller cannot wait (it then adopts the descriptor into libuv).
// Each returns 0 or a libuv error status; "Timeout" is UV_ETIMEDOUT.
#pragma once

#include <sys/socket.h>

#include <string>

namespace evo::blocking {

// Waits until fd is ready (POLLIN or POLLOUT); false on timeout (<= 0: none).
bool wait_fd(int fd, bool writable, double timeout);

// A connected, non-blocking TCP socket (TCP_NODELAY) in *fd.
int connect_tcp(const std::string& host, int port, double timeout, int* fd);
int connect_pipe(const std::string& path, int* fd);
// A listening socket in *fd.
int listen(const sockaddr* addr, socklen_t len, const char* path, int backlog, int* fd);
// One connection from a listening socket, non-blocking (its reads and writes
// wait in poll(), where their timeouts apply, never inside the kernel).
int accept(int listen_fd, bool tcp, double timeout, int* client);

}  // namespace evo::blocking
