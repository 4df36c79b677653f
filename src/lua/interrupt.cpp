#include "lua/interrupt.h"

#include <unistd.h>

#include <atomic>
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
//
// SIGTERM is handled the same way (a watcher, the hook) and exits with status
// 143 after the same clean shutdown, so buffered output is flushed. Since a
// process manager sends it once, an alarm (SIGALRM) ends the process itself
// (flushing stdout if it can) when neither the loop nor the hook has taken
// the signal within a second: Lua is in a JIT-compiled loop or a blocking call.
class InterruptWatcher final : public NativeHandle {
 public:
  explicit InterruptWatcher(uv_loop_t* loop) { uv_signal_init(loop, &signal_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&signal_); }
  [[nodiscard]] bool internal() const override { return true; }
  int start(int signum) {
    int rc = uv_signal_start(&signal_, on_signal, signum);
    uv_unref(uv_handle());  // never keeps the loop alive
    return rc;
  }

 private:
  static void on_signal(uv_signal_t* s, int signum);
  uv_signal_t signal_{};
};

volatile std::sig_atomic_t g_pending = 0;
volatile std::sig_atomic_t g_evaluating = 0;
volatile std::sig_atomic_t g_term_pending = 0;
// SIGTERMs received, and taken by the main thread (lock-free: signal-safe).
std::atomic<unsigned> g_term_count{0};
std::atomic<unsigned> g_term_taken{0};
unsigned g_term_alarm_count = 0;  // the SIGTERM the pending alarm is for
InterruptWatcher* g_watcher = nullptr;
InterruptWatcher* g_term_watcher = nullptr;
Runtime* g_runtime = nullptr;
lua_State* g_L = nullptr;
struct sigaction g_libuv_action {};
struct sigaction g_libuv_term_action {};
std::unique_ptr<std::function<void()>> g_repl_idle;
std::unique_ptr<std::function<void(int)>> g_stop;  // a worker's graceful stop
volatile std::sig_atomic_t g_stop_requested = 0;

void clear_hook() {
  if (g_L != nullptr) lua_sethook(g_L, nullptr, 0, 0);
}

// Does the script watch `signum` itself (an Evo Signal or a luv signal handle)?
bool script_watches(int signum) {
  struct Query {
    int signum;
    bool found;
  } q{signum, false};
  uv_walk(
      g_watcher->uv_handle()->loop,
      [](uv_handle_t* h, void* arg) {
        auto* q = static_cast<Query*>(arg);
        if (h->type != UV_SIGNAL || uv_is_active(h) == 0 || h == g_watcher->uv_handle() ||
            (g_term_watcher != nullptr && h == g_term_watcher->uv_handle()))
          return;
        if (reinterpret_cast<uv_signal_t*>(h)->signum == q->signum) q->found = true;
      },
      &q);
  return q.found;
}
bool script_watches_sigint() { return script_watches(SIGINT); }

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
  if (g_stop) return (*g_stop)(SIGINT);
  if (script_watches_sigint()) return;  // the script's own watcher gets it
  if (g_repl_idle) {
    (*g_repl_idle)();
    return;
  }
  leave(130);
}

// SIGTERM, handled in the loop's context (from its watcher).
void handle_terminate() {
  g_term_pending = 0;
  g_term_taken.store(g_term_count.load());
  if (g_pending == 0) clear_hook();
  if (g_stop) return (*g_stop)(SIGTERM);
  if (script_watches(SIGTERM)) return;  // the script's own watcher gets it
  leave(128 + SIGTERM);
}

void InterruptWatcher::on_signal(uv_signal_t* /*s*/, int signum) {
  if (signum == SIGTERM) {
    handle_terminate();
    return;
  }
  if (g_pending != 0) handle_interrupt();
}

// Runs at the next interpreted Lua instruction after a Ctrl-C or a SIGTERM.
void on_hook(lua_State* L, lua_Debug* /*ar*/) {
  lua_sethook(L, nullptr, 0, 0);
  if (g_term_pending != 0) {
    g_term_taken.store(g_term_count.load());  // the alarm may stand down
    if (!g_stop && !script_watches(SIGTERM)) Runtime::exit_now(128 + SIGTERM);
  }
  if (g_pending == 0) return;
  if (g_repl_idle && g_evaluating != 0) {
    g_pending = 0;
    luaL_error(L, "interrupted!");
  }
  if (g_repl_idle || g_stop || script_watches_sigint()) return;  // the watcher will deal with it
  Runtime::exit_now(130);
}

void on_sigint(int signum) {
  if (g_libuv_action.sa_handler != nullptr && g_libuv_action.sa_handler != SIG_DFL &&
      g_libuv_action.sa_handler != SIG_IGN) {
    g_libuv_action.sa_handler(signum);  // wakes the loop through libuv's pipe
  }
  if (g_pending != 0) _exit(130);  // the first one was never handled: Lua is stuck
  g_pending = 1;
  g_stop_requested = 1;
  if (g_L != nullptr) lua_sethook(g_L, on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void arm_term_alarm();

void on_sigterm(int signum) {
  if (g_libuv_term_action.sa_handler != nullptr && g_libuv_term_action.sa_handler != SIG_DFL &&
      g_libuv_term_action.sa_handler != SIG_IGN) {
    g_libuv_term_action.sa_handler(signum);  // wakes the loop through libuv's pipe
  }
  if (g_term_pending != 0 && g_term_taken.load() != g_term_count.load())
    _exit(128 + SIGTERM);  // a second one
  g_term_pending = 1;
  g_stop_requested = 1;
  g_term_alarm_count = g_term_count.fetch_add(1) + 1;
  arm_term_alarm();
  if (g_L != nullptr) lua_sethook(g_L, on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

// Ends the process when a SIGTERM stays untaken for a second (see above):
// an alarm armed from the SIGTERM handler (alarm and sigaction are
// async-signal-safe), not a thread — a second thread would put the whole
// process on glibc's multi-threaded paths for good (~15% on a task hop).
void on_term_alarm(int /*signum*/) {
  if (static_cast<int>(g_term_taken.load() - g_term_alarm_count) >= 0) return;
  // Flushing is safe only when no stdio call was interrupted holding stdout.
  if (ftrylockfile(stdout) == 0) {
    fflush_unlocked(stdout);
    funlockfile(stdout);
  }
  _exit(128 + SIGTERM);
}

void arm_term_alarm() {
  struct sigaction action {};
  action.sa_handler = on_term_alarm;
  sigemptyset(&action.sa_mask);
  sigaction(SIGALRM, &action, nullptr);
  alarm(1);
}

// Puts `handler` in front of the one libuv installed for `signum`.
void wrap_libuv_handler(int signum, void (*handler)(int), struct sigaction* saved) {
  struct sigaction ours {};
  sigaction(signum, nullptr, saved);
  ours = *saved;
  ours.sa_flags &= ~SA_SIGINFO;
  ours.sa_handler = handler;
  sigaction(signum, &ours, nullptr);
}

// ---- SIGPIPE
//
// Evo's own writes (libuv streams, sendfile jobs, uv.fs_write) must get EPIPE
// rather than kill the process, so SIGPIPE is caught by a handler that does
// nothing. A caught signal, unlike an ignored one, is reset to the default by
// exec: children of io.popen, os.execute and uv.spawn start as they would
// from a shell (`yes | head -1` ends quietly). (Writes to stdout through C's
// stdio die of SIGPIPE, as under luajit: see src/main.cpp.)
void on_sigpipe(int /*signum*/) {}

}  // namespace

void install(Runtime& rt) {
  struct sigaction pipe_action {};
  pipe_action.sa_handler = on_sigpipe;
  pipe_action.sa_flags = SA_RESTART;
  sigemptyset(&pipe_action.sa_mask);
  sigaction(SIGPIPE, &pipe_action, nullptr);
  g_L = rt.L();
  g_runtime = &rt;
  g_watcher = NativeHandle::release_to_loop(std::make_unique<InterruptWatcher>(rt.loop()));
  // libuv installs its handler when a watcher starts; ours goes in front.
  if (g_watcher->start(SIGINT) == 0) wrap_libuv_handler(SIGINT, on_sigint, &g_libuv_action);
  g_term_watcher = NativeHandle::release_to_loop(std::make_unique<InterruptWatcher>(rt.loop()));
  if (g_term_watcher->start(SIGTERM) == 0) {
    wrap_libuv_handler(SIGTERM, on_sigterm, &g_libuv_term_action);
  }
}

void uninstall() {
  if (g_watcher == nullptr) return;
  // Hand the dispositions back to libuv before its watchers go.
  if (g_libuv_action.sa_handler != nullptr) sigaction(SIGINT, &g_libuv_action, nullptr);
  if (g_libuv_term_action.sa_handler != nullptr) sigaction(SIGTERM, &g_libuv_term_action, nullptr);
  clear_hook();
  g_L = nullptr;
  g_watcher->close();
  g_watcher = nullptr;
  g_term_watcher->close();
  g_term_watcher = nullptr;
  g_repl_idle.reset();
  g_stop.reset();
}

void set_repl_mode(std::function<void()> on_idle) {
  g_repl_idle = std::make_unique<std::function<void()>>(std::move(on_idle));
}

void evaluating(bool on) { g_evaluating = on ? 1 : 0; }

void exit_repl(int code) { leave(code); }

void set_stop_handler(std::function<void(int)> stop) {
  g_stop = std::make_unique<std::function<void(int)>>(std::move(stop));
}

bool stop_requested() { return g_stop_requested != 0; }

}  // namespace evo::interrupt
