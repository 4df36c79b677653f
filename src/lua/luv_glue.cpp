#include "lua/luv_glue.h"

// luv's headers declare C functions without extern "C".
extern "C" {
#include <lhandle.h>
#include <luv.h>
}

#include <mutex>
#include <string>
#include <vector>

#include "core/handle.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"

namespace evo {
namespace luv_glue {
namespace {

bool g_callback_errors_fatal = true;

// luv calls this for every callback. luv's own version prints and exits with
// -1 on error; Evo reports the error in its usual format (message and
// traceback) and exits with 1, as an uncaught error anywhere else does.
int callback_pcall(lua_State* L, int nargs, int nresults, int flags) {
  int base = lua_gettop(L) - nargs - 1;
  if (errors::pcall_traceback(L, nargs, nresults)) {
    return nresults == LUA_MULTRET ? lua_gettop(L) - base : nresults;
  }
  if ((flags & LUVF_CALLBACK_NOEXIT) == 0) {
    // The test runner installs a handler to fail the running test instead.
    std::string text = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (errors::deliver_to_uncaught_handler(L, text)) return -LUA_ERRRUN;
    errors::report(text);
    if (g_callback_errors_fatal) Runtime::exit_now(1);
    return -LUA_ERRRUN;
  }
  if ((flags & LUVF_CALLBACK_NOERRMSG) == 0) errors::report(lua_tostring(L, -1));
  lua_pop(L, 1);
  return -LUA_ERRRUN;
}

// States for uv.new_thread and uv.new_work: the standard libraries, Evo's
// module loader (built-ins that need no runtime), and luv on its own loop,
// loaded up front so handles passed as arguments find their metatables.
lua_State* acquire_worker_vm() {
  lua_State* L = luaL_newstate();
  if (L == nullptr) return nullptr;
  luaL_openlibs(L);
  modules::install(L, "", /*worker=*/true);
  lua_pushcfunction(L, open_uv);
  lua_call(L, 0, 0);
  return L;
}

void release_worker_vm(lua_State* L) { lua_close(L); }

// The blocking mode's task.work runs its jobs on the calling thread, but in
// a worker state of their own, so a job sees exactly what it would on the
// thread pool (same script, same results): one state, made at first use.
lua_State* g_inline_vm = nullptr;

luv_handle_t* luv_data(uv_handle_t* h) { return static_cast<luv_handle_t*>(h->data); }

// uv.walk as luv defines it, but over luv's handles only: Evo's own handles
// share the loop and are not luv userdata. (Debian's luv 1.44 predates luv's
// own skipping of foreign handles.)
int walk(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  // Collect the handles' userdata first: the callback may close handles and
  // even run the loop, after which luv's registry references are gone.
  lua_newtable(L);
  uv_walk(
      Runtime::from(L).loop(),
      [](uv_handle_t* h, void* arg) {
        if (NativeHandle::from(h) != nullptr || h->data == nullptr) return;
        auto* Ls = static_cast<lua_State*>(arg);
        lua_rawgeti(Ls, LUA_REGISTRYINDEX, luv_data(h)->ref);
        lua_rawseti(Ls, -2, static_cast<int>(lua_objlen(Ls, -2)) + 1);
      },
      L);
  int n = static_cast<int>(lua_objlen(L, -1));
  for (int i = 1; i <= n; ++i) {
    lua_pushvalue(L, 1);
    lua_rawgeti(L, -2, i);
    lua_call(L, 1, 0);
  }
  return 0;
}

}  // namespace

void set_callback_errors_fatal(bool fatal) { g_callback_errors_fatal = fatal; }

bool inside_script_run(lua_State* L) { return luv_context(L)->mode != -1; }
bool inside_script_run(lua_State* L, uv_run_mode mode) {
  return luv_context(L)->mode == static_cast<int>(mode);
}
const int* script_run_mode(lua_State* L) { return &luv_context(L)->mode; }

void setup(lua_State* L, uv_loop_t* loop) {
  luv_set_loop(L, loop);
  luv_set_callback(L, callback_pcall);
  static std::once_flag once;
  std::call_once(once, [] { luv_set_thread_cb(acquire_worker_vm, release_worker_vm); });
}

void close_handles(lua_State* L, uv_loop_t* loop) {
  std::vector<int> refs;
  uv_walk(
      loop,
      [](uv_handle_t* h, void* arg) {
        if (NativeHandle::from(h) == nullptr && h->data != nullptr && !uv_is_closing(h)) {
          static_cast<std::vector<int>*>(arg)->push_back(luv_data(h)->ref);
        }
      },
      &refs);
  for (int ref : refs) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);  // the luv handle userdata
    lua_getfield(L, -1, "close");
    lua_insert(L, -2);
    errors::call_and_report(L, 1, 0, "closing a uv handle at exit");
  }
}

lua_State* inline_worker_vm() {
  if (g_inline_vm == nullptr) g_inline_vm = acquire_worker_vm();
  return g_inline_vm;
}

void close_inline_worker_vm() {
  if (g_inline_vm != nullptr) release_worker_vm(g_inline_vm);
  g_inline_vm = nullptr;
}

}  // namespace luv_glue

int open_uv(lua_State* L) {
  // "uv" and "luv" are one module.
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  for (const char* alias : {"uv", "luv"}) {
    lua_getfield(L, -1, alias);
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
  }
  luaopen_luv(L);
  if (!lua_istable(L, -1)) return 1;
  if (Runtime::find(L) != nullptr) {  // the main state, not a thread's
    lua_pushcfunction(L, luv_glue::walk);
    lua_setfield(L, -2, "walk");
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "uv");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "luv");
  return 1;
}

}  // namespace evo
