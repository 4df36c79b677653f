// evo.stdio: the process's standard streams as Streams, for lib/process.lua
// (process.stdin, process.stdout, process.stderr), created on first use over
// the Io's standard-stream transports (Io::adopt_stdio: what each one is
// depends on what the descriptor is, as in Node on POSIX).
//
// fd 0, 1 and 2 themselves are never closed. Output still queued is written
// out (blocking) when the stream closes — at the end of the run, by os.exit
// or process.exit (an atexit handler), or by Runtime::exit_now.
#include "bind/stdio.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "io/io.h"
#include "io/stream.h"
#include "io/transport.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

struct Slot {
  Stream* stream = nullptr;  // open, and not yet closed
  int saved_flags = -1;      // fd's flags before a shared description became non-blocking
  // The stream finish_all finished at exit. The Lua state that owns it is
  // never closed on that path (exit() from inside a call): kept here it stays
  // reachable, so a leak checker at exit does not report it.
  Stream* at_exit = nullptr;
};
Slot g_slots[3];
pthread_t g_main_thread;
const uint64_t g_started = uv_hrtime();  // at load: the process's start, near enough

void restore_flags(int fd) {
  Slot& slot = g_slots[fd];
  if (slot.saved_flags >= 0) ::fcntl(fd, F_SETFL, slot.saved_flags);
  slot.saved_flags = -1;
}

// exit() (os.exit, process.exit, the end of main) and Runtime::exit_now:
// what the streams still hold goes out, and flags are put back.
void finish_all() {
  for (int fd = 0; fd < 3; ++fd) {
    Stream* s = g_slots[fd].stream;
    g_slots[fd].stream = nullptr;  // C's stdio, flushed after this, writes directly
    g_slots[fd].at_exit = s;
    if (s != nullptr) s->finish_writes();
    restore_flags(fd);
  }
}

// open(fd) -> Stream: a new stream over fd 0, 1 or 2 (lib/process.lua keeps it).
int stdio_open(lua_State* L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 2, 1, "0, 1 or 2 expected");
  const int fd = static_cast<int>(n);
  TaskSystem& sys = TaskSystem::from(L);
  auto s = std::make_unique<Stream>(sys, io_of(sys).adopt_stdio(fd, &g_slots[fd].saved_flags));
  FILE* file = fd == 1 ? stdout : fd == 2 ? stderr : nullptr;
  // Writes to a closed stdout end the process, as print's do (main.cpp);
  // stderr's return EPIPE, as io.stderr:write's do.
  s->set_stdio(file, fd == 1 ? stdio::die_of_sigpipe : nullptr, [fd] {
    g_slots[fd].stream = nullptr;
    restore_flags(fd);
  });
  if (fd == 0) s->set_read_on_demand(true);
  static bool hooked = false;
  if (!hooked) {
    hooked = true;
    g_main_thread = pthread_self();
    std::atexit(finish_all);
    Runtime::before_exit_now = finish_all;
  }
  g_slots[fd].stream = s.get();
  push_stream(L, std::move(s));
  return 1;
}

// uptime() -> seconds since the process started
int stdio_uptime(lua_State* L) {
  lua_pushnumber(L, static_cast<double>(uv_hrtime() - g_started) / 1e9);
  return 1;
}

}  // namespace

namespace stdio {

bool divert(int fd, const char* data, size_t size) {
  if (fd < 1 || fd > 2 || g_slots[fd].stream == nullptr) return false;
  if (pthread_equal(pthread_self(), g_main_thread) == 0) return false;  // a luv thread's print
  return g_slots[fd].stream->queue_if_busy(std::string_view(data, size));
}

void die_of_sigpipe() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGPIPE, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  raise(SIGPIPE);
  _exit(128 + SIGPIPE);
}

}  // namespace stdio

int open_stdio(lua_State* L) {
  open_stream_natives(L);  // the Stream metatable
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"open", stdio_open},
      {"uptime", stdio_uptime},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
