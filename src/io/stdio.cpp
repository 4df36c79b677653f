// The process's standard streams as transports (Io::adopt_stdio), as in
// Node on POSIX:
//
//   a pipe (and stdin on a terminal or socket), evented Io:
//       a libuv stream: reads and writes suspend only the calling task.
//   a file, /dev/null, a terminal being written, a socket being written,
//   and everything in the blocking Io:
//       the descriptor itself: plain read(2)/write(2) (a regular file cannot
//       be polled, and a terminal takes output at once).
//
// libuv needs O_NONBLOCK. Set on fd 0, 1 or 2 itself it would reach every
// holder of the same open file description: C's stdio (print would drop
// output on EAGAIN), children started with "inherit", the shell after Evo
// exits. So an evented stream opens a description of its own of the same
// pipe or terminal (/proc/self/fd/N). A socket cannot be reopened: stdin on
// a socket shares the description, and its flags are put back later.
#include "io/stdio.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/handle.h"
#include "io/transport.h"

namespace evo {
namespace {

// A private description of the pipe or terminal on fd (see the top).
int reopen(int fd) {
  char path[32];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  const int flags = (fd == 0 ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  int own = -1;
  do {
    own = ::open(path, flags);
  } while (own < 0 && errno == EINTR);
  return own;
}

void put_back(int fd, int* shared_flags) {
  if (*shared_flags >= 0) ::fcntl(fd, F_SETFL, *shared_flags);
  *shared_flags = -1;
}

}  // namespace

std::unique_ptr<Transport> stdio_plain(int fd) {
  auto t = std::make_unique<Transport>(fd);
  t->set_owns_fd(false);
  return t;
}

std::unique_ptr<Transport> stdio_evented(uv_loop_t* loop, int fd, int* shared_flags) {
  *shared_flags = -1;
  const uv_handle_type type = uv_guess_handle(fd);
  const bool input = fd == 0;
  if (type != UV_NAMED_PIPE && type != UV_TCP && !(type == UV_TTY && input)) return stdio_plain(fd);
  int own = reopen(fd);
  if (own < 0) {
    if (!input) return stdio_plain(fd);  // output to a socket: written directly
    own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) return stdio_plain(fd);
    *shared_flags = ::fcntl(fd, F_GETFL);
  }
  using Kind = UvStreamHandle::Kind;
  const Kind kind = type == UV_TTY ? Kind::Tty : type == UV_TCP ? Kind::Tcp : Kind::Pipe;
  int status = 0;
  auto h = std::make_unique<UvStreamHandle>(loop, kind, &status, own);
  if (status != 0) {  // uv_tty_init failed before registering anything
    ::close(own);
    put_back(fd, shared_flags);
    return stdio_plain(fd);
  }
  if (kind == Kind::Pipe) status = uv_pipe_open(h->pipe(), own);
  if (kind == Kind::Tcp) status = uv_tcp_open(h->tcp(), own);
  UvStreamHandle* handle = NativeHandle::release_to_loop(std::move(h));
  if (status != 0) {
    handle->close();
    ::close(own);
    put_back(fd, shared_flags);
    return stdio_plain(fd);
  }
  return std::make_unique<Transport>(handle);
}

}  // namespace evo
