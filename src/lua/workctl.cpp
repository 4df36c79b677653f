// evo.workctl: stopping task.work jobs that run Lua on the thread pool.
//
// A job's Lua code runs in a worker state on another thread, where the main
// thread cannot reach it by the task protocol. The main thread makes a slot
// per job (new), the worker runs the job's function through run(slot, fn,
// ...), and cancel(slot) sets a count hook in the worker's state (lua_sethook
// may be called from another thread, as LuaJIT's own interrupt handler does
// from a signal handler); the hook raises an error while the job's function
// runs, and keeps raising at its next instructions if the function catches
// it, until run() returns. Code that stays inside one C call (os.execute, a
// long string.rep) is stopped only when it comes back to Lua; LuaJIT checks
// hooks when it leaves compiled code, so compiled loops are not reached.
// stop_all() cancels every job, for os.exit.
#include <lua.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "lua/workctl.h"

#include "lua/luv_glue.h"

namespace evo {
namespace {

struct Slot {
  lua_State* L = nullptr;  // the worker state running the job, while it runs
  bool cancel = false;
};

std::mutex g_mu;
std::unordered_map<lua_Integer, Slot> g_slots;  // guarded by g_mu
lua_Integer g_next = 0;                         // guarded by g_mu
std::atomic<bool> g_stop_all{false};
std::atomic<int> g_running{0};
thread_local lua_Integer t_slot = 0;  // the job this thread runs
thread_local bool t_in_job = false;   // inside the job's function
constexpr const char kCanceled[] = "task.work: the job was canceled";
constexpr int kHookMask = LUA_MASKCOUNT;
constexpr int kHookCount = 1000;

bool canceled_locked(lua_Integer slot) {
  if (g_stop_all.load()) return true;
  auto it = g_slots.find(slot);
  return it != g_slots.end() && it->second.cancel;
}

void cancel_hook(lua_State* L, lua_Debug* /*ar*/) {
  if (!t_in_job) return;  // the job's own frames are over; run() removes the hook
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    cancel = canceled_locked(t_slot);
  }
  if (cancel) luaL_error(L, kCanceled);
}

void set_hook_locked(Slot& s) {
  if (s.L != nullptr) lua_sethook(s.L, cancel_hook, kHookMask, kHookCount);
}

// new() -> slot
int w_new(lua_State* L) {
  std::lock_guard<std::mutex> lock(g_mu);
  lua_Integer id = ++g_next;
  g_slots[id] = Slot{};
  lua_pushinteger(L, id);
  return 1;
}

// cancel(slot): the job stops at its next Lua instructions (or never starts).
int w_cancel(lua_State* L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_slots.find(id);
  if (it == g_slots.end()) return 0;  // over already
  it->second.cancel = true;
  set_hook_locked(it->second);
  return 0;
}

// forget(slot): a job that never ran (its state was never handed a slot).
int w_forget(lua_State* L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  std::lock_guard<std::mutex> lock(g_mu);
  g_slots.erase(id);
  return 0;
}

// run(slot, fn, ...) -> pcall(fn, ...), cancellable through the slot. In a
// worker state. slot 0: a plain pcall (the blocking mode's inline job).
int w_run(lua_State* L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  lua_remove(L, 1);
  int nargs = lua_gettop(L) - 1;
  if (id != 0) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_slots.find(id);
    if (it == g_slots.end() || canceled_locked(id)) {
      g_slots.erase(id);
      lua_pushboolean(L, 0);
      lua_pushstring(L, kCanceled);
      return 2;
    }
    it->second.L = L;
    t_slot = id;
    t_in_job = true;
    g_running.fetch_add(1);
  }
  int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  if (id != 0) {
    // Nothing runs between the pcall's end and this: no hook can fire outside
    // the job's function.
    t_in_job = false;
    t_slot = 0;
    std::lock_guard<std::mutex> lock(g_mu);
    lua_sethook(L, nullptr, 0, 0);
    g_slots.erase(id);
    g_running.fetch_sub(1);
  }
  lua_pushboolean(L, status == 0 ? 1 : 0);
  lua_insert(L, 1);
  return lua_gettop(L);
}

// inline(main, code, payload) -> ok, encoded: runs task.work's worker main
// (bytecode) with (0, code, payload) in the inline worker state, on this
// thread (the blocking mode, or a caller that cannot wait).
int w_inline(lua_State* L) {
  size_t mlen = 0;
  size_t clen = 0;
  size_t plen = 0;
  const char* main = luaL_checklstring(L, 1, &mlen);
  const char* code = luaL_checklstring(L, 2, &clen);
  const char* payload = luaL_checklstring(L, 3, &plen);
  lua_State* W = luv_glue::inline_worker_vm();
  if (W == nullptr) return luaL_error(L, "task.work: not enough memory for a worker state");
  int top = lua_gettop(W);
  int status = luaL_loadbuffer(W, main, mlen, "=[evo task.work]");
  if (status == 0) {
    lua_pushinteger(W, 0);
    lua_pushlstring(W, code, clen);
    lua_pushlstring(W, payload, plen);
    status = lua_pcall(W, 3, 3, 0);
  }
  if (status != 0) {  // the worker main catches everything; this is out of memory
    std::string msg = lua_isstring(W, -1) != 0 ? lua_tostring(W, -1) : "error in the worker state";
    lua_settop(W, top);
    return luaL_error(L, "task.work: %s", msg.c_str());
  }
  lua_pushboolean(L, lua_toboolean(W, top + 2));
  size_t elen = 0;
  const char* encoded = lua_tolstring(W, top + 3, &elen);
  lua_pushlstring(L, encoded != nullptr ? encoded : "", elen);
  lua_settop(W, top);
  return 2;
}

}  // namespace

namespace workctl {

int stop_all() {
  g_stop_all.store(true);
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& [id, s] : g_slots) set_hook_locked(s);
  return g_running.load();
}

int running() { return g_running.load(); }

}  // namespace workctl

int open_workctl(lua_State* L) {
  const luaL_Reg functions[] = {
      {"new", w_new},   {"cancel", w_cancel}, {"forget", w_forget},
      {"run", w_run},   {"inline", w_inline}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
