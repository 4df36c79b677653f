// evo: an asynchronous runtime for Lua. See README.md and docs/.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "lua/cli.h"

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
}  // namespace

int main(int argc, char** argv) {
  reserve_standard_fds();
  // As C programs do (and glibc by default): a line at a time to a terminal,
  // so output shows up as it is written; fully buffered to pipes and files.
  if (isatty(STDOUT_FILENO) != 0) std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  return evo::cli::main(argc, argv);
}
