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
#include <unordered_map>

#include "lua/workctl.h"

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
      {"new", w_new}, {"cancel", w_cancel}, {"forget", w_forget}, {"run", w_run}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
