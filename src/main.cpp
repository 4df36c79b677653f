// evo: an asynchronous runtime for Lua. See README.md and docs/.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "bind/stdio.h"
#include "cli/cli.h"

namespace {
// A standard stream the parent closed (`evo <&-`) would let the next open()
// take its number: libuv's loop would then own fd 0, 1 or 2 and abort when it
// closes it, and a script's file could receive what print() writes. Open
// /dev/null onto each closed one first, as setuid programs do.
void reserve_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  // the lowest free number: fd
    if (got != -1 && got != fd) {
      dup2(got, fd);
      close(got);
    }
  }
}

// Writes to stdout through C's stdio (print, io.write, printf) end the process
// the way they end luajit, by SIGPIPE, once the reader of a stdout pipe is
// gone: `evo -e 'while true do print(1) end' | head -1` stops. Evo catches
// SIGPIPE for its own writes (interrupt.cpp), so a write only returns EPIPE;
// on a pipe or socket, stdout is therefore a stream whose write function
// dies of SIGPIPE on EPIPE. (It also waits out EAGAIN, should something make
// fd 1 non-blocking, where a plain stdout would drop the output.)
//
// The same write function keeps print() in order with process.stdout:write
// (src/bind/stdio.cpp): while that stream has output queued, what C's stdio
// writes joins the queue. stderr on a pipe goes through it too (unbuffered,
// and an EPIPE is returned, not fatal, as before).
ssize_t write_std(void* cookie, const char* data, size_t size) {
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(cookie));
  if (evo::stdio::divert(fd, data, size)) return static_cast<ssize_t>(size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno == EPIPE && fd == STDOUT_FILENO) {
      evo::stdio::die_of_sigpipe();
    } else if (errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, -1);
    } else if (errno != EINTR) {
      return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
  }
  return static_cast<ssize_t>(done);
}

int seek_std(void* /*cookie*/, off64_t* /*pos*/, int /*whence*/) {
  errno = ESPIPE;  // a pipe or a socket: "Illegal seek", as a plain stdout says
  return -1;
}

// Replaces `stream` (stdout or stderr) by a stream over write_std, before the
// VM opens its io library, which keeps the FILE*.
void route(int fd, FILE*& stream, int buffering) {
  cookie_io_functions_t io{nullptr, write_std, seek_std, nullptr};
  FILE* f = fopencookie(reinterpret_cast<void*>(static_cast<intptr_t>(fd)), "w", io);
  if (f == nullptr) return;
  std::setvbuf(f, nullptr, buffering, buffering == _IONBF ? 0 : BUFSIZ);
  stream = f;
}

void route_std_streams() {
  struct stat st {};
  if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    route(STDOUT_FILENO, stdout, _IOFBF);
  }
  // stderr needs it only where process.stderr can be evented: a pipe.
  if (fstat(STDERR_FILENO, &st) == 0 && S_ISFIFO(st.st_mode)) route(STDERR_FILENO, stderr, _IONBF);
}
}  // namespace

int main(int argc, char** argv) {
  // No OpenSSL clean-up at exit: a thread-pool thread may still be deriving
  // a key (a task that timed out does not stop its job), and OpenSSL's atexit
  // handler would free the thread-local state under it. The process is
  // ending; its memory goes with it.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  reserve_standard_fds();
  // As C programs do (and glibc by default): a line at a time to a terminal,
  // so output shows up as it is written; fully buffered to pipes and files.
  if (isatty(STDOUT_FILENO) != 0) std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  route_std_streams();
  return evo::cli::main(argc, argv);
}
