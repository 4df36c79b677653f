#include "lua/interrupt.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>

#include "core/handle.h"
#include "lua/luv_glue.h"
#include "lua/runtime.h"

namespace evo::interrupt {
namespace {

// Evo keeps its own libuv watcher on SIGINT for the whole run. libuv then owns
// the signal's disposition and never resets it to SIG_DFL while a script
// starts and stops watchers of its own, so Ctrl-C always comes back to Evo.
//
// libuv's signal handler only writes to a pipe, which the loop reads when it
// next polls. A script busy in Lua never polls, so Evo wraps libuv's handler:
// after passing the signal on, it asks LuaJIT to stop at the next interpreted
// instruction (a hook; hooks are VM-wide in LuaJIT), and exits at once on a
// second Ctrl-C while the first is still unhandled (JIT-compiled loops check
// no hooks).
class InterruptWatcher final : public NativeHandle {
 public:
  explicit InterruptWatcher(uv_loop_t* loop) { uv_signal_init(loop, &signal_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&signal_); }
  [[nodiscard]] bool internal() const override { return true; }
  int start() {
    int rc = uv_signal_start(&signal_, on_signal, SIGINT);
    uv_unref(uv_handle());  // never keeps the loop alive
    return rc;
  }

 private:
  static void on_signal(uv_signal_t* s, int signum);
  uv_signal_t signal_{};
};

volatile std::sig_atomic_t g_pending = 0;
volatile std::sig_atomic_t g_evaluating = 0;
InterruptWatcher* g_watcher = nullptr;
Runtime* g_runtime = nullptr;
lua_State* g_L = nullptr;
struct sigaction g_libuv_action {};
std::unique_ptr<std::function<void()>> g_repl_idle;

void clear_hook() {
  if (g_L != nullptr) lua_sethook(g_L, nullptr, 0, 0);
}

// Does the script watch SIGINT itself (an Evo Signal or a luv signal handle)?
bool script_watches_sigint() {
  bool found = false;
  uv_walk(
      g_watcher->uv_handle()->loop,
      [](uv_handle_t* h, void* arg) {
        if (h->type != UV_SIGNAL || uv_is_active(h) == 0 || h == g_watcher->uv_handle()) return;
        if (reinterpret_cast<uv_signal_t*>(h)->signum == SIGINT) *static_cast<bool*>(arg) = true;
      },
      &found);
  return found;
}

// Leaves with `code`: through the normal shutdown when this is Evo's own
// loop run, at once when the script is inside its own uv.run().
void leave(int code) {
  if (luv_glue::inside_script_run(g_L)) Runtime::exit_now(code);
  g_runtime->request_exit(code);
}

// Ctrl-C, handled in the loop's context (from the watcher).
void handle_interrupt() {
  g_pending = 0;
  clear_hook();
  if (script_watches_sigint()) return;  // the script's own watcher gets it
  if (g_repl_idle) {
    (*g_repl_idle)();
    return;
  }
  leave(130);
}

void InterruptWatcher::on_signal(uv_signal_t* /*s*/, int /*signum*/) {
  if (g_pending != 0) handle_interrupt();
}

// Runs at the next interpreted Lua instruction after a Ctrl-C.
void on_hook(lua_State* L, lua_Debug* /*ar*/) {
  lua_sethook(L, nullptr, 0, 0);
  if (g_pending == 0) return;
  if (g_repl_idle && g_evaluating != 0) {
    g_pending = 0;
    luaL_error(L, "interrupted!");
  }
  if (g_repl_idle || script_watches_sigint()) return;  // the watcher will deal with it
  Runtime::exit_now(130);
}

void on_sigint(int signum) {
  if (g_libuv_action.sa_handler != nullptr && g_libuv_action.sa_handler != SIG_DFL &&
      g_libuv_action.sa_handler != SIG_IGN) {
    g_libuv_action.sa_handler(signum);  // wakes the loop through libuv's pipe
  }
  if (g_pending != 0) _exit(130);  // the first one was never handled: Lua is stuck
  g_pending = 1;
  if (g_L != nullptr) lua_sethook(g_L, on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

// ---- SIGPIPE
//
// Evo's own writes (libuv streams, sendfile jobs, uv.fs_write) must get EPIPE
// rather than kill the process, so SIGPIPE is caught by a handler that does
// nothing. A caught signal, unlike an ignored one, is reset to the default by
// exec: children of io.popen, os.execute and uv.spawn start as they would
// from a shell (`yes | head -1` ends quietly).
void on_sigpipe(int /*signum*/) {}

// Lua's own writes to stdout behave as under luajit, where SIGPIPE kills: once
// a write to stdout fails with EPIPE (the reader of the pipe is gone),
// the process dies of SIGPIPE, silently, with the status a shell expects.
[[noreturn]] void die_of_sigpipe() {
  std::fflush(stderr);
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

// A wrapper of print, io.write, io.flush, file:write, file:flush (upvalue 1):
// calls it, then dies of SIGPIPE if stdout's error flag came on with EPIPE.
int stdout_guard(lua_State* L) {
  bool clean = std::ferror(stdout) == 0;
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  errno = 0;
  lua_call(L, n, LUA_MULTRET);
  if (clean && std::ferror(stdout) != 0 && errno == EPIPE) die_of_sigpipe();
  return lua_gettop(L);
}

void guard_field(lua_State* L, int table, const char* name) {
  lua_getfield(L, table, name);
  if (lua_isfunction(L, -1)) {
    lua_pushcclosure(L, stdout_guard, 1);
    lua_setfield(L, table, name);
  } else {
    lua_pop(L, 1);
  }
}

// Only a pipe or a socket can fail with EPIPE: with stdout on a terminal or a
// file, print and io.write stay LuaJIT's own (which the JIT compiles inline).
void guard_stdout_writes(lua_State* L) {
  struct stat st {};
  if (fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return;
  guard_field(L, LUA_GLOBALSINDEX, "print");
  lua_getglobal(L, "io");
  if (lua_istable(L, -1)) {
    int io = lua_gettop(L);
    guard_field(L, io, "write");
    guard_field(L, io, "flush");
  }
  lua_pop(L, 1);
  luaL_getmetatable(L, "FILE*");  // LuaJIT's file methods
  if (lua_istable(L, -1)) {
    int methods = lua_gettop(L);
    guard_field(L, methods, "write");
    guard_field(L, methods, "flush");
  }
  lua_pop(L, 1);
}

}  // namespace

void install(Runtime& rt) {
  struct sigaction pipe_action {};
  pipe_action.sa_handler = on_sigpipe;
  pipe_action.sa_flags = SA_RESTART;
  sigemptyset(&pipe_action.sa_mask);
  sigaction(SIGPIPE, &pipe_action, nullptr);
  guard_stdout_writes(rt.L());
  g_L = rt.L();
  g_runtime = &rt;
  g_watcher = NativeHandle::release_to_loop(std::make_unique<InterruptWatcher>(rt.loop()));
  if (g_watcher->start() != 0) return;  // no Ctrl-C handling beyond the default
  // libuv installed its handler when the watcher started; put ours in front.
  struct sigaction ours {};
  sigaction(SIGINT, nullptr, &g_libuv_action);
  ours = g_libuv_action;
  ours.sa_flags &= ~SA_SIGINFO;
  ours.sa_handler = on_sigint;
  sigaction(SIGINT, &ours, nullptr);
}

void uninstall() {
  if (g_watcher == nullptr) return;
  // Hand the disposition back to libuv before its watcher goes.
  sigaction(SIGINT, &g_libuv_action, nullptr);
  clear_hook();
  g_L = nullptr;
  g_watcher->close();
  g_watcher = nullptr;
  g_repl_idle.reset();
}

void set_repl_mode(std::function<void()> on_idle) {
  g_repl_idle = std::make_unique<std::function<void()>>(std::move(on_idle));
}

void evaluating(bool on) { g_evaluating = on ? 1 : 0; }

void exit_repl(int code) { leave(code); }

}  // namespace evo::interrupt
