// evo.task's Io-backed natives: task.sleep on the run's Io (Io::sleep: a
// pooled libuv timer, nanosleep, or the ring's one timeout), so the task
// layer (src/lua/tasks.cpp) never knows which Io runs. open_task_io is
// "evo.task": the task natives plus these.
#include <cmath>

#include "io/io.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

void cancel_sleep(Task* /*t*/, void* arg) {
  if (arg != nullptr) static_cast<IoOp*>(arg)->cancel();
}

void wake_sleeper(void* task, uint32_t id) { TaskSystem::wake_plain(static_cast<Task*>(task), id); }

// sleep(seconds, yieldable) -> true, or false when cancelled (the caller
// raises). task.sleep(0) is task.yield (lib/task.lua); here 0 is a timer.
int task_io_sleep(lua_State* L) {
  double seconds = luaL_checknumber(L, 1);
  luaL_argcheck(L, seconds >= 0 && std::isfinite(seconds), 1, "seconds must be a finite number >= 0");
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 2);
  if (t != nullptr && sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  Io* io = sys.runtime().io();  // made at start; io_of makes it for an embedder's runtime
  if (io == nullptr) io = &io_of(sys);
  if (t == nullptr) {
    io->sleep(seconds, false, IoWake{});
    lua_pushboolean(L, 1);
    return 1;
  }
  uint32_t id = sys.begin_wait(t, cancel_sleep, nullptr);
  IoOp* op = io->sleep(seconds, true, IoWake{wake_sleeper, t, id});
  sys.set_cancel_arg(t, op);
  return sys.suspend(L, t);
}

}  // namespace

int open_task_io(lua_State* L) {
  open_task(L);
  lua_pushcfunction(L, task_io_sleep);
  lua_setfield(L, -2, "sleep");
  return 1;
}

}  // namespace evo
