#include "lua/interrupt.h"

#include <unistd.h>

#include <csignal>
#include <memory>

#include "core/handle.h"
#include "lua/runtime.h"

namespace evo::interrupt {
namespace {

// Wakes the loop from the signal handler (uv_async_send is async-signal-safe).
class InterruptWaker final : public NativeHandle {
 public:
  explicit InterruptWaker(uv_loop_t* loop) {
    uv_async_init(loop, &async_, on_wake);
    uv_unref(uv_handle());  // never keeps the loop alive
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&async_); }
  [[nodiscard]] bool internal() const override { return true; }
  void wake() { uv_async_send(&async_); }

 private:
  static void on_wake(uv_async_t* a);
  uv_async_t async_{};
};

volatile std::sig_atomic_t g_pending = 0;
volatile std::sig_atomic_t g_evaluating = 0;
InterruptWaker* g_waker = nullptr;
lua_State* g_L = nullptr;
std::function<void()>* g_repl_idle = nullptr;

void clear_hook() {
  if (g_L != nullptr) lua_sethook(g_L, nullptr, 0, 0);
}

// Runs at the next Lua instruction after a SIGINT (hooks are VM-wide in LuaJIT).
void on_hook(lua_State* L, lua_Debug* /*ar*/) {
  lua_sethook(L, nullptr, 0, 0);
  if (g_pending == 0) return;
  if (g_repl_idle != nullptr) {
    if (g_evaluating != 0) {
      g_pending = 0;
      luaL_error(L, "interrupted!");
    }
    return;  // at the prompt: the waker handles it
  }
  Runtime::exit_now(130);
}

void InterruptWaker::on_wake(uv_async_t* /*a*/) {
  clear_hook();
  if (g_pending == 0) return;
  g_pending = 0;
  if (g_repl_idle != nullptr) {
    (*g_repl_idle)();
    return;
  }
  Runtime::exit_now(130);
}

void on_sigint(int /*signum*/) {
  if (g_pending != 0) _exit(130);  // the first one was never handled: the loop is stuck
  g_pending = 1;
  if (g_L != nullptr) lua_sethook(g_L, on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (g_waker != nullptr) g_waker->wake();
}

std::unique_ptr<std::function<void()>> g_repl_idle_storage;

}  // namespace

void install(Runtime& rt) {
  std::signal(SIGPIPE, SIG_IGN);
  g_L = rt.L();
  g_waker = NativeHandle::release_to_loop(std::make_unique<InterruptWaker>(rt.loop()));
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

void uninstall() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  // Only restore the default if the handler is still ours (libuv may own it).
  struct sigaction current {};
  sigaction(SIGINT, nullptr, &current);
  if (current.sa_handler == on_sigint) sigaction(SIGINT, &sa, nullptr);
  clear_hook();
  g_L = nullptr;
  if (g_waker != nullptr) {
    g_waker->close();
    g_waker = nullptr;
  }
  g_repl_idle = nullptr;
  g_repl_idle_storage.reset();
}

void set_repl_mode(std::function<void()> on_idle) {
  g_repl_idle_storage = std::make_unique<std::function<void()>>(std::move(on_idle));
  g_repl_idle = g_repl_idle_storage.get();
}

void evaluating(bool on) { g_evaluating = on ? 1 : 0; }

}  // namespace evo::interrupt
