#include "lua/interrupt.h"

#include <unistd.h>

#include <csignal>
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

}  // namespace

void install(Runtime& rt) {
  std::signal(SIGPIPE, SIG_IGN);
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
