#include "lua/tasks.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/handle.h"
#include "lua/errors.h"
#include "lua/runtime.h"
#include "lua/workctl.h"

namespace evo {

namespace {
constexpr const char* kFutureMeta = "evo.Future";
// The task system of the runtime on this thread. (luv's thread and work
// states run on other threads, and cannot load the task natives anyway.)
thread_local TaskSystem* g_system = nullptr;
}  // namespace

// A task and its Future: the userdata script code holds.
struct Task : Schedulable {
  enum class State : uint8_t { Ready, Running, Suspended, Done };
  using CancelHook = void (*)(Task* t, void* arg);

  TaskSystem* sys = nullptr;
  lua_State* co = nullptr;      // nullptr for a future completed inline
  int co_ref = LUA_NOREF;       // anchors the coroutine; after it ends its stack holds the results
  int self_ref = LUA_NOREF;     // anchors this Future while the task is unfinished
  int results_ref = LUA_NOREF;  // results packed in a table {n = k, ...} (inline or external finish)
  int nresults = 0;             // otherwise: results are co's stack [1..nresults]
  State state = State::Ready;
  bool failed = false;
  bool observed = false;
  bool cancel_requested = false;
  bool cancel_delivered = false;
  bool exposed = false;  // its Future reached Lua (a pooled task is reused only if not)
  bool is_main = false;  // a main chunk (-e chunk, script, test runner): run_main
  int shield = 0;
  uint32_t wait_id = 0;      // the current suspension; a wake must carry it
  int resume_nargs = 0;      // values pushed onto co for the next resume
  bool resume_true = false;  // resume with a single true (after yield())
  // How to abandon the operation the task is suspended in, if cancelled.
  CancelHook c_hook = nullptr;
  void* c_hook_arg = nullptr;
  int lua_hook_ref = LUA_NOREF;
  int lua_hook_arg_ref = LUA_NOREF;
  std::vector<std::pair<Task*, uint32_t>> waiters;  // tasks awaiting this one
  std::shared_ptr<Waker> waker;                     // the far end of the current wait, if shared
  int early_ref = LUA_NOREF;  // a wake that came before the task suspended: {n = k, ...}
  int group_ref = LUA_NOREF;  // a group's done list: {waiter = Future, id = n, f1, f2...} (see join)
  // What the job needs alive while it runs (a request's exchange: see
  // TaskSystem::hold), let go when the job of a pooled task is over.
  std::shared_ptr<void> held;

  [[nodiscard]] bool cancel_due() const { return cancel_requested && !cancel_delivered && shield == 0; }
};

namespace {

// A Future argument, checked against the cached metatable (luaL_checkudata
// would look the metatable up by name on every call).
Task* check_future(lua_State* L, int idx) {
  auto* t = static_cast<Task*>(lua_touserdata(L, idx));
  if (t != nullptr && lua_getmetatable(L, idx) != 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, TaskSystem::from(L).future_meta_ref);
    bool same = lua_rawequal(L, -1, -2) != 0;
    lua_pop(L, 2);
    if (same) return t;
  }
  luaL_typerror(L, idx, "Future");
  return nullptr;
}

void set_future_metatable(lua_State* L, TaskSystem& sys) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, sys.future_meta_ref);
  lua_setmetatable(L, -2);
}

void push_future(lua_State* L, Task* t) {
  t->exposed = true;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
}

}  // namespace

void forget_waker(Task* t) {
  if (t->waker == nullptr) return;
  t->waker->task_ = nullptr;
  t->waker.reset();
}

namespace {

void drop_early_wake(lua_State* L, Task* t) {
  luaL_unref(L, LUA_REGISTRYINDEX, t->early_ref);
  t->early_ref = LUA_NOREF;
}

void clear_hooks(lua_State* L, Task* t) {
  forget_waker(t);
  t->c_hook = nullptr;
  t->c_hook_arg = nullptr;
  // (Runs several times per task; most never had a Lua hook.)
  if (t->lua_hook_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->lua_hook_ref);
    t->lua_hook_ref = LUA_NOREF;
  }
  if (t->lua_hook_arg_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->lua_hook_arg_ref);
    t->lua_hook_arg_ref = LUA_NOREF;
  }
}

// A wake for the wait a running task is about to suspend in (the operation
// completed before the task got to suspend()): kept, and suspend() returns
// the values at once instead of yielding.
// bare: suspend() returns the values without the leading true (wake_results).
bool keep_early_wake(lua_State* L, Task* t, int nvalues, bool bare = false) {
  ++t->wait_id;
  clear_hooks(L, t);
  lua_createtable(L, nvalues, 2);
  lua_insert(L, -(nvalues + 1));
  for (int i = nvalues; i >= 1; --i) lua_rawseti(L, -(i + 1), i);
  lua_pushinteger(L, nvalues);
  lua_setfield(L, -2, "n");
  if (bare) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "bare");
  }
  luaL_unref(L, LUA_REGISTRYINDEX, t->early_ref);
  t->early_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return true;
}

// suspend() after an early wake: pushes (true, values...), or the bare
// values of wake_results, and returns their count.
int take_early_wake(lua_State* L, Task* t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->early_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->early_ref);
  t->early_ref = LUA_NOREF;
  lua_getfield(L, -1, "n");
  int n = static_cast<int>(lua_tointeger(L, -1));
  lua_getfield(L, -2, "bare");
  bool bare = lua_toboolean(L, -1) != 0;
  lua_pop(L, 2);
  lua_checkstack(L, n + 2);
  if (!bare) lua_pushboolean(L, 1);
  int lead = bare ? 0 : 1;
  for (int i = 1; i <= n; ++i) lua_rawgeti(L, -(i + lead), i);
  lua_remove(L, -(n + lead + 1));  // the table
  return n + lead;
}

// Resumes a suspended task with (true, values...): the values are on top of
// L's stack (nvalues of them) and are moved onto the task's coroutine.
// bare: without the leading true (wake_results). now: resumed at once
// instead of queued.
bool wake_with(lua_State* L, Task* t, uint32_t id, int nvalues, bool bare = false, bool now = false) {
  if (t->state == Task::State::Running && t->wait_id == id && t->co != nullptr) {
    return keep_early_wake(L, t, nvalues, bare);
  }
  if (!TaskSystem::waits_in(t, id)) {
    lua_pop(L, nvalues);  // late, duplicate or foreign: dropped
    return false;
  }
  ++t->wait_id;  // this suspension is over: later wakes for it are ignored
  clear_hooks(L, t);
  lua_checkstack(t->co, nvalues + 2);
  if (!bare) lua_pushboolean(t->co, 1);
  lua_xmove(L, t->co, nvalues);
  t->resume_nargs = nvalues + (bare ? 0 : 1);
  t->state = Task::State::Ready;
  if (now) {
    t->sys->resume(t);
  } else {
    t->sys->scheduler().make_ready(t);
  }
  return true;
}

// Marks the cancellation delivered and abandons the operation the task waits
// in (its hook stops a timer, cancels a request...). A late completion of
// that operation no longer matches the task's wait id and is dropped.
void abandon_wait(lua_State* L, Task* t) {
  t->cancel_delivered = true;
  ++t->wait_id;
  if (t->c_hook != nullptr) t->c_hook(t, t->c_hook_arg);
  if (t->lua_hook_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->lua_hook_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->lua_hook_arg_ref);
    push_future(L, t);
    errors::call_and_report(L, 2, 0, "cancelling a pending operation");
  }
  clear_hooks(L, t);
}

// Delivers cancellation to a suspended task: abandons its operation and
// resumes it with (false).
void deliver_cancel(lua_State* L, Task* t) {
  abandon_wait(L, t);
  lua_checkstack(t->co, 2);
  lua_pushboolean(t->co, 0);
  t->resume_nargs = 1;
  t->state = Task::State::Ready;
  t->sys->scheduler().make_ready(t);
}

// The task that may suspend here, or nullptr: not in a task, blocking mode,
// or inside a call that cannot yield (a table.sort comparator, a gsub
// callback, a module's top level under require). A native called from Lua
// sees its caller's yieldability (lua_isyieldable: the same C frame as the
// caller's coroutine.isyieldable()), so the Lua wrappers pass true at
// `yieldable_idx`, or false where they must not wait (a blocking client):
// coroutine.isyieldable() there cost ~180 instructions a call, a function
// LuaJIT cannot compile.
Task* suspendable(lua_State* L, TaskSystem& sys, int yieldable_idx) {
  if (sys.blocking() || lua_toboolean(L, yieldable_idx) == 0 || lua_isyieldable(L) == 0) return nullptr;
  Task* t = sys.task_of(L);
  if (t == nullptr) return nullptr;
  // A task that yielded with coroutine.yield (Luvit-style code) and was
  // resumed with coroutine.resume is running again: it is the caller.
  if (t->state == Task::State::Suspended && t->lua_hook_ref == LUA_NOREF && t->c_hook == nullptr) {
    t->state = Task::State::Running;
  }
  return t->state == Task::State::Running ? t : nullptr;
}

// Pushes the results of a finished task (copies: awaiting is idempotent).
int push_results(lua_State* L, Task* t) {
  if (t->results_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->results_ref);
    lua_getfield(L, -1, "n");
    int n = static_cast<int>(lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; ++i) lua_rawgeti(L, -i, i);
    lua_remove(L, -(n + 1));
    return n;
  }
  int n = t->nresults;
  if (n == 0) return 0;  // (a pooled task's coroutine has moved on)
  luaL_checkstack(L, n, "too many results");
  lua_checkstack(t->co, n);
  for (int i = 1; i <= n; ++i) lua_pushvalue(t->co, i);
  lua_xmove(t->co, L, n);
  return n;
}

// Packs the values on top of L (n of them) into a results table.
int pack_results(lua_State* L, int n) {
  lua_createtable(L, n, 1);
  lua_insert(L, -(n + 1));  // table, v1..vn
  for (int i = n; i >= 1; --i) lua_rawseti(L, -(i + 1), i);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

// ------------------------------------------------------------------ natives

// The message handler of a task's xpcall: keeps the error value (so code
// checks such as err.code still work) and records where it happened.
// A traceback of L without the last two frames, which are always the task
// body's xpcall and the body itself.
void push_task_traceback(lua_State* L, const char* msg) {
  luaL_traceback(L, L, msg, 1);
  std::string tb = lua_tostring(L, -1);
  lua_pop(L, 1);
  for (int i = 0; i < 2; ++i) {
    size_t nl = tb.rfind('\n');
    if (nl == std::string::npos) break;
    std::string last = tb.substr(nl + 1);
    if (last.find("[evo task]") == std::string::npos && last.find("function 'xpcall'") == std::string::npos &&
        last.find("[builtin#") == std::string::npos)  // xpcall at the base of a main task
      break;
    tb.erase(nl);
  }
  lua_pushlstring(L, tb.data(), tb.size());
}

int capture_error(lua_State* L) {
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "traceback");
    bool has = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!has) {
      push_task_traceback(L, nullptr);
      lua_setfield(L, 1, "traceback");
    }
    lua_settop(L, 1);
    return 1;
  }
  std::string msg = errors::describe(L, 1);
  push_task_traceback(L, msg.c_str());
  return 1;
}

// The message handler of a main task, whose coroutine runs xpcall(fn,
// capture_main_error, ...) itself (run_main). error(nil) stays nil: like luajit,
// Evo then prints nothing.
int capture_main_error(lua_State* L) {
  if (lua_isnil(L, 1)) {
    lua_settop(L, 1);
  } else {
    capture_error(L);
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.task_of(L);
  if (t != nullptr && t->is_main && sys.resuming != t && t->state != Task::State::Done) {
    // It fails inside someone else's coroutine.resume (Luvit-style code), who
    // will not report it: finish it here.
    lua_pushvalue(L, -1);
    t->results_ref = pack_results(L, 1);
    t->failed = true;
    t->state = Task::State::Done;
    sys.finished(t);
  }
  return 1;
}

// finish(ok, ...): the last call of every task body.
int task_finish(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.task_of(L);
  bool ok = lua_toboolean(L, 1) != 0;
  lua_remove(L, 1);
  int n = lua_gettop(L);
  if (t == nullptr) return n;
  t->failed = !ok;
  t->nresults = n;  // the values stay on this coroutine's stack as its results
  if (sys.resuming != t) {
    // Finished inside someone else's coroutine.resume (Luvit-style code): the
    // values go to that resumer, so keep copies.
    for (int i = 1; i <= n; ++i) lua_pushvalue(L, i);
    t->results_ref = pack_results(L, n);
  }
  t->state = Task::State::Done;
  sys.finished(t);
  return n;
}

int task_spawn(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  TaskSystem::from(L).spawn(L, lua_gettop(L) - 1);
  return 1;
}

// inline(fn, ...): runs fn now, here, and returns its finished Future (the
// blocking Io mode's async, and what async may do anyway).
int task_inline(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  TaskSystem& sys = TaskSystem::from(L);
  int nargs = lua_gettop(L) - 1;
  lua_pushcfunction(L, capture_error);
  lua_insert(L, 1);
  bool ok = lua_pcall(L, nargs, LUA_MULTRET, 1) == 0;
  int n = lua_gettop(L) - 1;
  // Placement new into Lua-owned memory: the userdata's __gc destroys it.
  auto* t = new (lua_newuserdata(L, sizeof(Task))) Task();  // NOLINT(cppcoreguidelines-owning-memory)
  set_future_metatable(L, sys);
  lua_insert(L, 2);  // handler, future, results...
  t->sys = &sys;
  t->failed = !ok;
  t->state = Task::State::Done;
  t->results_ref = pack_results(L, n);
  return 1;
}

int task_current(lua_State* L) {
  Task* t = TaskSystem::from(L).task_of(L);
  if (t == nullptr) return 0;
  push_future(L, t);
  return 1;
}

// prepare(yieldable) -> future, id: the current task may suspend; start the operation
// and pass `id` to wake(). -> nil: block instead. -> false: cancellation is
// due (now delivered): raise Canceled without starting anything.
int task_prepare(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = suspendable(L, sys, 1);
  if (t == nullptr) return 0;
  if (t->cancel_due()) {
    t->cancel_delivered = true;
    lua_pushboolean(L, 0);
    return 1;
  }
  drop_early_wake(L, t);
  push_future(L, t);
  lua_pushinteger(L, ++t->wait_id);
  return 2;
}

// suspend([hook, hookArg]): yields the current task until wake() (returns
// true, values...) or cancellation (runs hook(hookArg, future), returns false).
int task_suspend(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.task_of(L);
  if (t == nullptr || t->state != Task::State::Running)
    return luaL_error(L, "suspend() outside a running task");
  clear_hooks(L, t);
  if (!lua_isnoneornil(L, 1)) {
    lua_pushvalue(L, 1);
    t->lua_hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    t->lua_hook_arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (t->cancel_due()) {  // due already: do not wait at all
    abandon_wait(L, t);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (t->early_ref != LUA_NOREF) return take_early_wake(L, t);
  t->state = Task::State::Suspended;
  lua_settop(L, 0);
  return lua_yield(L, 0);
}

// wake(future, id, ...) -> accepted
int task_wake(lua_State* L) {
  Task* t = check_future(L, 1);
  auto id = static_cast<uint32_t>(luaL_checkinteger(L, 2));
  int n = lua_gettop(L) - 2;
  lua_pushboolean(L, wake_with(L, t, id, n) ? 1 : 0);
  return 1;
}

// yield(yieldable): lets every other ready task and the loop run once;
// returns true, or false when cancellation is due.
int task_yield(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = suspendable(L, sys, 1);
  if (t == nullptr) {
    lua_pushboolean(L, 1);  // nothing else can run: a no-op
    return 1;
  }
  if (t->cancel_due()) {
    t->cancel_delivered = true;
    lua_pushboolean(L, 0);
    return 1;
  }
  ++t->wait_id;
  t->state = Task::State::Ready;
  t->resume_true = true;  // yield() returns true when the task runs again
  sys.scheduler().defer(t);
  lua_settop(L, 0);
  return lua_yield(L, 0);
}

}  // namespace

// -------------------------------------------------------------- sleeping
//
// task.sleep is the Io's timer (Io::sleep), bound in src/bind/task_io.cpp:
// the scheduler never knows which Io runs.

namespace {

// -------------------------------------------------------------- futures

// notify(f, waiter, id): when f finishes, wake(waiter, id, f).
int task_notify(lua_State* L) {
  Task* f = check_future(L, 1);
  Task* w = check_future(L, 2);
  auto id = static_cast<uint32_t>(luaL_checkinteger(L, 3));
  if (f->state == Task::State::Done) {
    lua_pushvalue(L, 1);
    wake_with(L, w, id, 1);
  } else {
    f->waiters.emplace_back(w, id);
  }
  return 0;
}

void unnotify_hook(Task* t, void* arg) {
  auto* f = static_cast<Task*>(arg);
  std::erase_if(f->waiters, [t](const auto& p) { return p.first == t; });
}

// await(f, yieldable): true when f is done (now, or after suspending);
// false when cancelled while waiting; nil when the caller cannot wait here.
int task_await(lua_State* L) {
  Task* f = check_future(L, 1);
  if (f->state == Task::State::Done) {
    lua_pushboolean(L, 1);
    return 1;
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = suspendable(L, sys, 2);
  if (t == nullptr) return 0;
  if (t->cancel_due()) {
    t->cancel_delivered = true;
    lua_pushboolean(L, 0);
    return 1;
  }
  uint32_t id = sys.begin_wait(t, unnotify_hook, f);
  f->waiters.emplace_back(t, id);
  return sys.suspend(L, t);
}

// unnotify(f, waiter): forgets waiter's registrations on f.
int task_unnotify(lua_State* L) {
  Task* f = check_future(L, 1);
  Task* w = check_future(L, 2);
  std::erase_if(f->waiters, [w](const auto& p) { return p.first == w; });
  return 0;
}

// Appends the finished task's Future (on top of L's stack) to the done list
// just below it, pops both, and wakes the list's waiter, if one is suspended
// on it. Raw accesses only: this runs inside finished(), where nothing may
// raise.
void append_done(lua_State* L) {
  int list = lua_gettop(L) - 1;
  lua_rawseti(L, list, static_cast<int>(lua_objlen(L, list)) + 1);
  lua_pushliteral(L, "waiter");
  lua_rawget(L, list);
  lua_pushliteral(L, "id");
  lua_rawget(L, list);
  Task* w = lua_isuserdata(L, -2) != 0 ? static_cast<Task*>(lua_touserdata(L, -2)) : nullptr;
  auto id = static_cast<uint32_t>(lua_tointeger(L, -1));
  lua_pop(L, 2);
  if (w != nullptr) {
    lua_pushliteral(L, "waiter");
    lua_pushnil(L);
    lua_rawset(L, list);
    wake_with(L, w, id, 0);
  }
  lua_settop(L, list - 1);
}

// join(f, list): when f finishes (now, if it has), it is appended to the
// list table, and list.waiter (a Future, with list.id) is woken: a group
// waits for any number of tasks in one suspension, in the order they end.
int task_join(lua_State* L) {
  Task* f = check_future(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (f->state == Task::State::Done) {  // (an inline Future has no self_ref: use the argument)
    lua_pushvalue(L, 1);
    append_done(L);
    return 0;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, f->group_ref);
  f->group_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int task_is_done(lua_State* L) {
  lua_pushboolean(L, check_future(L, 1)->state == Task::State::Done ? 1 : 0);
  return 1;
}

// results(f): f's results, or raises its error. Marks the outcome observed.
int task_results(lua_State* L) {
  Task* t = check_future(L, 1);
  if (t->state != Task::State::Done) return luaL_error(L, "the task has not finished");
  t->observed = true;
  int n = push_results(L, t);
  if (t->failed) {
    lua_settop(L, lua_gettop(L) - n + 1);
    return lua_error(L);
  }
  return n;
}

// outcome(f): true, results... or false, error (without raising).
int task_outcome(lua_State* L) {
  Task* t = check_future(L, 1);
  if (t->state != Task::State::Done) return luaL_error(L, "the task has not finished");
  t->observed = true;
  lua_pushboolean(L, t->failed ? 0 : 1);
  return push_results(L, t) + 1;
}

// requestCancel(f): asks f's task to stop; delivered now if it is suspended,
// else at its next blocking call.
int task_request_cancel(lua_State* L) {
  TaskSystem::from(L).cancel(check_future(L, 1));
  return 0;
}

// cancelDue(): for checkCancel(): true (and delivered) when the current task
// has a cancellation to receive.
int task_cancel_due(lua_State* L) {
  Task* t = TaskSystem::from(L).task_of(L);
  if (t != nullptr && t->cancel_due()) {
    t->cancel_delivered = true;
    lua_pushboolean(L, 1);
  } else {
    lua_pushboolean(L, 0);
  }
  return 1;
}

int task_shield_enter(lua_State* L) {
  if (Task* t = TaskSystem::from(L).task_of(L)) ++t->shield;
  return 0;
}

int task_shield_leave(lua_State* L) {
  Task* t = TaskSystem::from(L).task_of(L);
  if (t != nullptr && t->shield > 0) --t->shield;
  return 0;
}

int task_mode(lua_State* L) {
  lua_pushstring(L, TaskSystem::from(L).blocking() ? "blocking" : "evented");
  return 1;
}

// ----------------------------------------------------------- Future object

int future_gc(lua_State* L) {
  auto* t = static_cast<Task*>(lua_touserdata(L, 1));
  if (t->state == Task::State::Done && t->failed && !t->observed) {
    // A task failed and nobody awaited it: say so, once. A cancelled task
    // that ended with Canceled is not news.
    push_results(L, t);
    bool canceled = false;
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "code");
      canceled = lua_isstring(L, -1) && std::strcmp(lua_tostring(L, -1), "Canceled") == 0;
      lua_pop(L, 1);
    }
    if (!canceled) {
      errors::report("error in a task nobody awaited: " + errors::describe(L, -1));
      if (t->sys != nullptr) t->sys->runtime().note_unhandled_task_error();
    }
    lua_pop(L, 1);
  }
  if (t->sys != nullptr) t->sys->forget(t);
  luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->results_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->group_ref);
  clear_hooks(L, t);
  drop_early_wake(L, t);
  t->~Task();
  return 0;
}

int future_tostring(lua_State* L) {
  Task* t = check_future(L, 1);
  const char* state = t->state == Task::State::Done ? (t->failed ? "failed" : "done") : "running";
  lua_pushfstring(L, "Future (%s): %p", state, static_cast<void*>(t));
  return 1;
}

// os.exit, wrapped: task.work jobs still running Lua on the thread pool are
// stopped first (their threads would otherwise run on while exit() tears the
// process down, and libuv's exit handler joins them: a crash or a hang). A job
// stuck in one C call cannot be stopped; then the process leaves with
// _exit, after flushing stdout and stderr.
int os_exit(lua_State* L) {
  // Output corked by tasks goes first, as it would have gone at once.
  if (g_system != nullptr) g_system->scheduler().flush_corked();
  if (workctl::stop_all() > 0) {
    constexpr int kPolls = 200;  // up to 1 s
    for (int i = 0; i < kPolls && workctl::running() > 0; ++i) uv_sleep(5);
    if (workctl::running() > 0) {
      int code = EXIT_SUCCESS;
      if (lua_isboolean(L, 1)) {
        code = lua_toboolean(L, 1) != 0 ? EXIT_SUCCESS : EXIT_FAILURE;
      } else if (!lua_isnoneornil(L, 1)) {
        code = static_cast<int>(luaL_checkinteger(L, 1));
      }
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(code);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));  // LuaJIT's os.exit
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void resume_cb(Schedulable* s, void* ctx) { static_cast<TaskSystem*>(ctx)->resume(static_cast<Task*>(s)); }

// The Lua function every task runs: fn's results, or its error, go to finish().
constexpr const char kBodySource[] =
    "local xpcall, finish, capture = ...\n"
    "return function(fn, ...) return finish(xpcall(fn, capture, ...)) end\n";

// The Lua function a pooled coroutine runs: job after job, each fn(a, b, c)
// (up to 8 arguments; fn must not raise: the HTTP server's runner catches
// everything), then
// recycle() parks the coroutine until the next job's values arrive. The
// last job's values are let go first (one KNIL): a parked coroutine would
// otherwise keep them alive, a closed server's handler among them.
constexpr const char kWorkerSource[] =
    "local recycle = ...\n"
    "return function(fn, a, b, c, d, e, f, g, h)\n"
    "  while fn do\n"
    "    fn(a, b, c, d, e, f, g, h)\n"
    "    fn, a, b, c, d, e, f, g, h = nil\n"
    "    fn, a, b, c, d, e, f, g, h = recycle()\n"
    "  end\n"
    "end\n";

// recycle(): the job of a pooled task is over. Its Future completes (no
// results), and its coroutine goes back to the pool and yields; or, with the
// pool full, returns nothing so the worker ends as a plain finished task.
int task_recycle(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.task_of(L);
  if (t == nullptr) return 0;
  lua_settop(L, 0);
  t->held.reset();
  t->failed = false;
  t->nresults = 0;
  t->state = Task::State::Done;
  // A Future nobody ever saw can serve the next job too: no new userdata,
  // no finalizer, less garbage per request.
  bool keep = !t->exposed && t->waiters.empty() && t->results_ref == LUA_NOREF && t != sys.main_task;
  if (keep) {
    sys.retire(t);  // (its coroutine stays mapped to it: they are parked together)
    clear_hooks(L, t);
  } else {
    sys.finished(t);
  }
  if (!sys.park_worker(L, t->co_ref, keep ? t : nullptr)) {
    if (keep) sys.finished(t);
    return 0;
  }
  if (!keep) {
    t->co = nullptr;
    t->co_ref = LUA_NOREF;
  }
  return lua_yield(L, 0);
}

}  // namespace

// ---------------------------------------------------------------- TaskSystem

TaskSystem::TaskSystem(Runtime& rt, bool blocking)
    : rt_(rt), blocking_(blocking), scheduler_(rt.loop(), resume_cb, this) {
  lua_State* L = rt.L();
  g_system = this;

  luaL_newmetatable(L, kFutureMeta);
  lua_pushcfunction(L, future_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, future_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);  // methods, filled in by lib/task.lua
  lua_setfield(L, -2, "__index");
  future_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  luaL_loadbuffer(L, kBodySource, sizeof(kBodySource) - 1, "=[evo task]");
  lua_getglobal(L, "xpcall");
  lua_pushcfunction(L, task_finish);
  lua_pushcfunction(L, capture_error);
  lua_call(L, 3, 1);
  body_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, "xpcall");
  xpcall_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);

  luaL_loadbuffer(L, kWorkerSource, sizeof(kWorkerSource) - 1, "=[evo worker]");
  lua_pushcfunction(L, task_recycle);
  lua_call(L, 1, 1);
  worker_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_getglobal(L, "os");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "exit");
    lua_pushcclosure(L, os_exit, 1);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 1);
}

TaskSystem::~TaskSystem() {
  close();
  if (g_system == this) g_system = nullptr;
}

void TaskSystem::close() {
  closed_ = true;
  scheduler_.close();
}

TaskSystem& TaskSystem::from(lua_State* L) {
  if (g_system == nullptr)
    luaL_error(L, "tasks need the main Evo runtime (not available in a thread or work state)");
  return *g_system;
}

Task* TaskSystem::task_of(lua_State* L) const { return by_thread_.find(L); }

// A Task and its coroutine for fn (stack: fn, args... -> future, the values
// moved onto the coroutine behind the function at runner_ref).
Task* TaskSystem::new_task(lua_State* L, int nargs, int runner_ref) {
  // Placement new into Lua-owned memory: the userdata's __gc destroys it.
  auto* t = new (lua_newuserdata(L, sizeof(Task))) Task();  // NOLINT(cppcoreguidelines-owning-memory)
  t->sys = this;
  set_future_metatable(L, *this);
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_insert(L, -(nargs + 2));  // future, fn, args...
  t->co = lua_newthread(L);
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(t->co, LUA_REGISTRYINDEX, runner_ref);
  lua_xmove(L, t->co, nargs + 1);  // runner, fn, args...
  return t;
}

Task* TaskSystem::spawn(lua_State* L, int nargs, bool queue) {
  // Stack: fn, args... -> future
  Task* t = new_task(L, nargs, body_ref);
  t->resume_nargs = nargs + 1;
  by_thread_.insert(t->co, t);
  if (queue) scheduler_.make_ready(t);
  return t;
}

void TaskSystem::run_now(Task* t) { resume(t); }

// A new Task userdata, anchored by its self_ref (nothing left on the stack).
Task* TaskSystem::new_task_object(lua_State* L) {
  // Placement new into Lua-owned memory: the userdata's __gc destroys it.
  auto* t = new (lua_newuserdata(L, sizeof(Task))) Task();  // NOLINT(cppcoreguidelines-owning-memory)
  t->sys = this;
  set_future_metatable(L, *this);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return t;
}

Task* TaskSystem::spawn_pooled(lua_State* L, int nargs, bool queue) {
  // Stack: fn, args... (moved to the task's coroutine)
  Task* t = nullptr;
  if (!idle_workers_.empty()) {
    // A parked worker: the values become the results of its recycle().
    IdleWorker w = idle_workers_.back();
    idle_workers_.pop_back();
    if (w.task != nullptr) {
      t = w.task;
      int self_ref = t->self_ref;
      uint32_t wait_id = t->wait_id;
      t->~Task();
      new (t) Task();
      t->sys = this;
      t->self_ref = self_ref;
      t->wait_id = wait_id + 1;  // a stale wake for the last job can never match
      t->co = w.co;
      t->co_ref = w.co_ref;  // (by_thread_ still maps the coroutine to t: see retire)
    } else {
      t = new_task_object(L);
      t->co = w.co;
      t->co_ref = w.co_ref;
      by_thread_.insert(t->co, t);
    }
  } else {
    t = new_task_object(L);
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(t->co, LUA_REGISTRYINDEX, worker_ref_);
    by_thread_.insert(t->co, t);
  }
  lua_xmove(L, t->co, nargs + 1);
  t->resume_nargs = nargs + 1;
  if (queue) scheduler_.make_ready(t);
  return t;
}

void TaskSystem::hold(Task* t, std::shared_ptr<void> what) { t->held = std::move(what); }

bool TaskSystem::can_take_next_job(const Task* t) {
  return !t->exposed && !t->cancel_requested && t->waiters.empty() && t->results_ref == LUA_NOREF;
}

bool TaskSystem::park_worker(lua_State* co, int co_ref, Task* task) {
  if (closed_ || idle_workers_.size() >= kMaxIdleCoroutines || co_ref == LUA_NOREF) return false;
  idle_workers_.push_back(IdleWorker{co, co_ref, task});
  return true;
}

bool TaskSystem::run_main(int nargs, bool& failed_now) {
  lua_State* L = rt_.L();
  // Stack: fn, args... The coroutine runs xpcall(fn, capture_main_error, args...)
  // with no Lua frame below fn, as luajit runs a main chunk from C: the idiom
  // `if pcall(debug.getlocal, 4, 1) then (required) else (main) end` works.
  Task* t = new_task(L, nargs, xpcall_ref_);  // xpcall, fn, args...
  t->is_main = true;
  lua_pushcfunction(t->co, capture_main_error);
  lua_insert(t->co, 3);  // xpcall, fn, handler, args...
  t->resume_nargs = nargs + 2;
  by_thread_.insert(t->co, t);
  main_tasks_.push_back(t);
  scheduler_.make_ready(t);
  main_task = t;
  lua_pushvalue(L, -1);
  int keep = luaL_ref(L, LUA_REGISTRYINDEX);  // hold the future while we look at it
  lua_pop(L, 1);
  scheduler_.drain();
  failed_now = t->state == Task::State::Done && t->failed;
  luaL_unref(L, LUA_REGISTRYINDEX, keep);
  return !failed_now;
}

void TaskSystem::resume(Task* t) {
  if (t->state != Task::State::Ready || t->co == nullptr) return;
  t->state = Task::State::Running;
  Task* outer = resuming;
  resuming = t;
  int nargs = t->resume_nargs;
  t->resume_nargs = 0;
  if (t->resume_true) {
    t->resume_true = false;
    lua_pushboolean(t->co, 1);
    nargs = 1;
  }
  lua_State* co = t->co;
  int status = lua_resume(co, nargs);
  resuming = outer;
  if (status == LUA_YIELD) {
    lua_settop(co, 0);             // whatever was yielded is not for the scheduler
    if (t->co == nullptr) return;  // a pooled task whose coroutine was parked
    // Yielded by Evo's primitives (state already Suspended/Ready), or by
    // coroutine.yield in Luvit-style code, which resumes it itself.
    if (t->state == Task::State::Running) t->state = Task::State::Suspended;
    return;
  }
  if (status == 0) {
    if (t->is_main && t->state != Task::State::Done) {  // xpcall returned: ok, results... / false, err
      t->failed = lua_toboolean(co, 1) == 0;
      lua_remove(co, 1);
      t->nresults = lua_gettop(co);
      t->state = Task::State::Done;
      finished(t);
      return;
    }
    t->nresults = lua_gettop(t->co);
    return;
  }
  // An error escaped the body's xpcall: only a failure of the error machinery.
  errors::report("internal error in a task: " + errors::describe(t->co, -1));
  if (t->state != Task::State::Done) {
    t->failed = true;
    t->nresults = 1;
    lua_settop(t->co, 0);
    lua_pushstring(t->co, "internal error in a task");
    t->state = Task::State::Done;
    finished(t);
  }
}

void TaskSystem::finished(Task* t) {
  lua_State* L = rt_.L();
  by_thread_.erase(t->co);
  clear_hooks(L, t);
  auto waiters = std::move(t->waiters);
  t->waiters.clear();
  for (auto& [w, id] : waiters) {
    push_future(L, t);
    wake_with(L, w, id, 1);
  }
  if (t->group_ref != LUA_NOREF) {
    int ref = t->group_ref;
    t->group_ref = LUA_NOREF;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    push_future(L, t);
    append_done(L);
  }
  if (t == main_task) main_task = nullptr;
  if (t->is_main) {
    std::erase(main_tasks_, t);
    if (t->failed) {
      t->observed = true;
      push_results(L, t);
      bool silent = lua_isnil(L, -1);  // error(nil): luajit prints nothing either
      std::string text = errors::describe(L, -1);
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "traceback");
        if (lua_isstring(L, -1)) text += std::string("\n") + lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
      if (!silent) errors::report(text);
      rt_.request_exit(1);
    }
  }
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);  // now only script references keep it
  t->self_ref = LUA_NOREF;
}

void TaskSystem::forget(Task* t) {
  if (t->is_main) std::erase(main_tasks_, t);
  scheduler_.forget(t);
  if (t->co != nullptr) by_thread_.erase(t->co);
}

// A pooled task whose job is over and whose coroutine is parked with it: off
// the run queue, but still found by its coroutine, so that the next job on
// this pair needs no map update (two hash operations per request saved).
void TaskSystem::retire(Task* t) { scheduler_.forget(t); }

namespace {
bool is_evo_source(const char* source) {
  return std::strncmp(source, "@[evo]", 6) == 0 || std::strncmp(source, "=[evo", 5) == 0;
}
}  // namespace

std::string TaskSystem::unfinished_main() {
  lua_State* L = rt_.L();
  for (Task* t : main_tasks_) {
    lua_State* co = t->co;
    lua_Debug ar{};
    if (t->state == Task::State::Done || co == nullptr) continue;
    // Returned through someone else's coroutine.resume (Luvit-style code).
    if (lua_status(co) == 0 && lua_getstack(co, 0, &ar) == 0) continue;
    // What it waits in: coroutine.yield itself, or the call the script made
    // (the frame above its innermost own frame, skipping Evo's library).
    bool yielded = false;
    if (lua_getstack(co, 0, &ar) != 0 && lua_getinfo(co, "f", &ar) != 0) {
      lua_xmove(co, L, 1);
      lua_getglobal(L, "coroutine");
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "yield");
        yielded = lua_rawequal(L, -1, -3) != 0;
        lua_pop(L, 1);
      }
      lua_pop(L, 2);
    }
    std::string callee;
    std::string where;
    for (int level = 0; lua_getstack(co, level, &ar) != 0; ++level) {
      lua_getinfo(co, "Sl", &ar);
      if (std::strcmp(ar.what, "C") == 0) continue;
      std::string here = std::string(ar.short_src) + ":" + std::to_string(ar.currentline);
      if (where.empty()) where = here;  // the innermost Lua frame, if the script has none
      if (is_evo_source(ar.source)) continue;
      where = here;
      lua_Debug called{};
      if (level > 0 && lua_getstack(co, level - 1, &called) != 0 && lua_getinfo(co, "n", &called) != 0 &&
          called.name != nullptr) {
        callee = std::string(called.name) + "()";
      }
      break;
    }
    std::string what = yielded ? "coroutine.yield()" : callee.empty() ? "a wait" : callee;
    std::string text = "the main task never finished: it waits in " + what;
    if (!where.empty()) text += " at " + where;
    text += " (nothing left that could wake it)";
    luaL_traceback(L, co, text.c_str(), 0);
    text = lua_tostring(L, -1);
    lua_pop(L, 1);
    size_t nl = text.rfind('\n');
    if (nl != std::string::npos && text.find("[builtin#", nl) != std::string::npos) text.erase(nl);
    return text;
  }
  return {};
}

Task* TaskSystem::waiter(lua_State* L, int yieldable_idx) { return suspendable(L, *this, yieldable_idx); }

// (Members, not statics: the wait protocol is a TaskSystem's, used as sys.x(...).)
bool TaskSystem::take_cancel(Task* t) {  // NOLINT(readability-convert-member-functions-to-static)
  if (!t->cancel_due()) return false;
  t->cancel_delivered = true;
  return true;
}

void TaskSystem::cancel(Task* t) {
  if (t->state == Task::State::Done || t->cancel_requested) return;
  t->cancel_requested = true;
  if (t->state == Task::State::Suspended && t->cancel_due()) deliver_cancel(rt_.L(), t);
}

std::shared_ptr<Waker> TaskSystem::begin_shared_wait(Task* t, CancelHook hook, void* arg) {
  auto w = std::make_shared<Waker>(*this);
  w->id_ = begin_wait(t, hook, arg);
  w->task_ = t;
  t->waker = w;
  return w;
}

bool Waker::wake(int nvalues) {
  if (task_ == nullptr) {
    lua_pop(sys_.L(), nvalues);
    return false;
  }
  return sys_.wake(task_, id_, nvalues);  // clears task_ (clear_hooks)
}

bool Waker::wake_error(const char* code, const std::string& message) {
  if (task_ == nullptr) return false;
  return sys_.wake_error(task_, id_, code, message);
}

uint32_t TaskSystem::begin_wait(Task* t, CancelHook hook, void* arg) {
  clear_hooks(rt_.L(), t);
  drop_early_wake(rt_.L(), t);  // one left by a wait that never suspended
  t->c_hook = hook;
  t->c_hook_arg = arg;
  return ++t->wait_id;
}

// NOLINTNEXTLINE(readability-convert-member-functions-to-static)
void TaskSystem::set_cancel_arg(Task* t, void* arg) { t->c_hook_arg = arg; }

int TaskSystem::anchor(Task* t) {
  if (t->self_ref == LUA_NOREF) return LUA_NOREF;
  lua_State* L = rt_.L();
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void TaskSystem::unanchor(int ref) { luaL_unref(rt_.L(), LUA_REGISTRYINDEX, ref); }

bool TaskSystem::wake_plain(Task* t, uint32_t id) { return t->sys->wake(t, id, 0); }

int TaskSystem::suspend(lua_State* L, Task* t) {  // NOLINT(readability-convert-member-functions-to-static)
  if (t->early_ref != LUA_NOREF) return take_early_wake(L, t);  // the wake came first
  t->state = Task::State::Suspended;
  lua_settop(L, 0);
  return lua_yield(L, 0);
}

bool TaskSystem::wake(Task* t, uint32_t id, int nvalues) {
  if (closed_) {  // shutting down: tasks are abandoned (and being collected)
    lua_pop(rt_.L(), nvalues);
    return false;
  }
  return wake_with(rt_.L(), t, id, nvalues);
}

bool TaskSystem::waits_in(const Task* t, uint32_t id) {
  return t->state == Task::State::Suspended && t->wait_id == id && t->co != nullptr;
}

bool TaskSystem::wake_results(Task* t, uint32_t id, int nvalues, bool now) {
  if (closed_) {  // (as wake)
    lua_pop(rt_.L(), nvalues);
    return false;
  }
  return wake_with(rt_.L(), t, id, nvalues, true, now);
}

bool TaskSystem::wake_error(Task* t, uint32_t id, const char* code, const std::string& message) {
  if (closed_) return false;
  lua_State* L = rt_.L();
  lua_pushnil(L);
  errors::push_error(L, code, message);
  return wake_with(L, t, id, 2);
}

lua_State* TaskSystem::L() const { return rt_.L(); }

int open_task(lua_State* L) {
  const luaL_Reg functions[] = {
      {"spawn", task_spawn},
      {"inline", task_inline},
      {"current", task_current},
      {"prepare", task_prepare},
      {"suspend", task_suspend},
      {"wake", task_wake},
      {"yield", task_yield},
      {"await", task_await},
      {"notify", task_notify},
      {"unnotify", task_unnotify},
      {"join", task_join},
      {"isDone", task_is_done},
      {"results", task_results},
      {"outcome", task_outcome},
      {"requestCancel", task_request_cancel},
      {"cancelDue", task_cancel_due},
      {"shieldEnter", task_shield_enter},
      {"shieldLeave", task_shield_leave},
      {"mode", task_mode},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_rawgeti(L, LUA_REGISTRYINDEX, TaskSystem::from(L).future_meta_ref);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Future");  // the methods table of futures
  lua_pop(L, 1);
  return 1;
}

}  // namespace evo
