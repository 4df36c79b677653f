// The task system's wait protocol: a task is resumed exactly once per
// completion; stale or duplicate wakes are dropped; cancellation wins over a
// late completion.
#include <gtest/gtest.h>

#include <string>

#include "lua/errors.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

// Starts `code` as the main task (it suspends in native.suspend()), and
// returns the task and the wait id it published in globals `me` and `id`.
struct Suspended {
  Task* task;
  uint32_t id;
};

Suspended start(Runtime& rt, const std::string& code) {
  lua_State* L = rt.L();
  EXPECT_EQ(luaL_loadstring(L, code.c_str()), 0) << lua_tostring(L, -1);
  EXPECT_TRUE(rt.start_main_task(0));
  lua_getglobal(L, "me");
  auto* t = static_cast<Task*>(lua_touserdata(L, -1));
  lua_getglobal(L, "id");
  auto id = static_cast<uint32_t>(lua_tointeger(L, -1));
  lua_pop(L, 2);
  return {t, id};
}

int global_int(Runtime& rt, const char* name) {
  lua_getglobal(rt.L(), name);
  int v = static_cast<int>(lua_tointeger(rt.L(), -1));
  lua_pop(rt.L(), 1);
  return v;
}

const char* kWaitOnce =
    "local native = require('evo.task')\n"
    "me, id = native.prepare(true)\n"
    "resumes = 0\n"
    "local ok, value = native.suspend()\n"
    "resumes = resumes + 1\n"
    "resumed_ok, resumed_value = ok, value\n";

TEST(TaskWaits, ATaskIsResumedExactlyOncePerCompletion) {
  Runtime rt({});
  Suspended s = start(rt, kWaitOnce);
  ASSERT_NE(s.task, nullptr);
  TaskSystem& sys = rt.tasks();
  lua_pushinteger(rt.L(), 7);
  EXPECT_TRUE(sys.wake(s.task, s.id, 1));
  lua_pushinteger(rt.L(), 8);
  EXPECT_FALSE(sys.wake(s.task, s.id, 1)) << "a second wake for the same wait must be dropped";
  int top = lua_gettop(rt.L());
  rt.run_loop();
  EXPECT_EQ(lua_gettop(rt.L()), top);
  EXPECT_EQ(global_int(rt, "resumes"), 1);
  EXPECT_EQ(global_int(rt, "resumed_value"), 7);
}

TEST(TaskWaits, AWakeWithAnotherWaitIdIsDropped) {
  Runtime rt({});
  Suspended s = start(rt, kWaitOnce);
  lua_pushinteger(rt.L(), 1);
  EXPECT_FALSE(rt.tasks().wake(s.task, s.id + 1, 1));
  lua_pushinteger(rt.L(), 2);
  EXPECT_TRUE(rt.tasks().wake(s.task, s.id, 1));
  rt.run_loop();
  EXPECT_EQ(global_int(rt, "resumes"), 1);
  EXPECT_EQ(global_int(rt, "resumed_value"), 2);
}

TEST(TaskWaits, CancellationWinsOverALateCompletion) {
  Runtime rt({});
  Suspended s = start(rt, kWaitOnce);
  lua_State* L = rt.L();
  // cancel the task (as future:cancel() does), then let the operation complete late
  ASSERT_EQ(luaL_loadstring(L, "require('evo.task').requestCancel(me)"), 0);
  ASSERT_TRUE(errors::call_and_report(L, 0, 0, "cancel"));
  lua_pushinteger(L, 99);
  EXPECT_FALSE(rt.tasks().wake(s.task, s.id, 1)) << "the completion arrived after the cancellation";
  rt.run_loop();
  EXPECT_EQ(global_int(rt, "resumes"), 1);
  lua_getglobal(L, "resumed_ok");
  EXPECT_TRUE(lua_isboolean(L, -1) && lua_toboolean(L, -1) == 0) << "resumed with false: cancelled";
  lua_pop(L, 1);
}

TEST(TaskWaits, ReadyTasksRunInTheOrderTheyWereWoken) {
  Runtime rt({});
  lua_State* L = rt.L();
  const char* code =
      "local native = require('evo.task')\n"
      "order = {}\n"
      "waits = {}\n"
      "for i = 1, 3 do\n"
      "  native.spawn(function()\n"
      "    local me, id = native.prepare(true)\n"
      "    waits[i] = {me, id}\n"
      "    native.suspend()\n"
      "    order[#order + 1] = i\n"
      "  end)\n"
      "end\n";
  ASSERT_EQ(luaL_loadstring(L, code), 0);
  ASSERT_TRUE(rt.start_main_task(0));
  rt.tasks().scheduler().drain();  // the three tasks run up to their suspend
  for (int i : {3, 1, 2}) {
    ASSERT_EQ(luaL_loadstring(L, ("local w = waits[" + std::to_string(i) +
                                  "] return require('evo.task').wake(w[1], w[2])")
                                     .c_str()),
              0);
    ASSERT_TRUE(errors::call_and_report(L, 0, 1, "wake"));
    EXPECT_TRUE(lua_toboolean(L, -1));
    lua_pop(L, 1);
  }
  rt.run_loop();
  ASSERT_EQ(luaL_loadstring(L, "return table.concat(order, ',')"), 0);
  ASSERT_TRUE(errors::call_and_report(L, 0, 1, "order"));
  EXPECT_STREQ(lua_tostring(L, -1), "3,1,2");
}

// The wait contract (issue 8): a completion that arrives before the task
// suspends (the operation finished at once, on the way to suspend()) is kept,
// and suspend() returns its values without yielding.
// kBare: through wake_results (the values without the leading true).
template <bool kBare>
int early_wake_then_suspend(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 1);
  if (t == nullptr) return luaL_error(L, "not in a task");
  uint32_t id = sys.begin_wait(t, nullptr, nullptr);
  lua_pushinteger(sys.L(), 42);
  lua_pushliteral(sys.L(), "early");
  bool kept = kBare ? sys.wake_results(t, id, 2, true) : sys.wake(t, id, 2);
  if (!kept) return luaL_error(L, "the early wake was refused");
  return sys.suspend(L, t);
}

TEST(TaskWaits, AWakeBeforeSuspendIsKept) {
  Runtime rt({});
  lua_register(rt.L(), "wake_then_suspend", early_wake_then_suspend<false>);
  lua_State* L = rt.L();
  ASSERT_EQ(luaL_loadstring(L,
                            "local ok, a, b = wake_then_suspend(true)\n"
                            "result = tostring(ok) .. ' ' .. tostring(a) .. ' ' .. tostring(b)\n"
                            "local ok2, c = wake_then_suspend(true)\n"
                            "second = c\n"),
            0);
  ASSERT_TRUE(rt.start_main_task(0));
  rt.run_loop();
  lua_getglobal(L, "result");
  EXPECT_STREQ(lua_tostring(L, -1), "true 42 early");
  lua_getglobal(L, "second");
  EXPECT_EQ(lua_tointeger(L, -1), 42) << "a second wait works the same";
  lua_pop(L, 2);
}

// wake_results: a native's own results, without the leading true (the HTTP
// server's next() for its parked runner), kept like any wake when it comes
// before the task suspends, and given at once (now) when it comes after.
Task* g_results_task = nullptr;
uint32_t g_results_id = 0;

int suspend_for_results(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 1);
  if (t == nullptr) return luaL_error(L, "not in a task");
  g_results_task = t;
  g_results_id = sys.begin_wait(t, nullptr, nullptr);
  return sys.suspend(L, t);
}

TEST(TaskWaits, WakeResultsGivesTheBareValuesEarlyOrLate) {
  Runtime rt({});
  lua_register(rt.L(), "results_then_suspend", early_wake_then_suspend<true>);
  lua_register(rt.L(), "suspend_for_results", suspend_for_results);
  lua_State* L = rt.L();
  ASSERT_EQ(luaL_loadstring(L,
                            "local a, b = results_then_suspend(true)\n"
                            "early = tostring(a) .. ' ' .. tostring(b)\n"
                            "local c, d = suspend_for_results(true)\n"
                            "late = tostring(c) .. ' ' .. tostring(d)\n"),
            0);
  ASSERT_TRUE(rt.start_main_task(0));
  ASSERT_NE(g_results_task, nullptr);
  TaskSystem& sys = rt.tasks();
  EXPECT_TRUE(TaskSystem::waits_in(g_results_task, g_results_id));
  lua_pushinteger(L, 7);
  EXPECT_TRUE(sys.wake_results(g_results_task, g_results_id, 1, true));
  lua_pushinteger(L, 8);
  EXPECT_FALSE(sys.wake_results(g_results_task, g_results_id, 1, true)) << "one wake per wait";
  rt.run_loop();
  lua_getglobal(L, "early");
  EXPECT_STREQ(lua_tostring(L, -1), "42 early");
  lua_getglobal(L, "late");
  EXPECT_STREQ(lua_tostring(L, -1), "7 nil");
  lua_pop(L, 2);
}

std::shared_ptr<Waker> g_held_waker;

int shared_wait(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 1);
  if (t == nullptr) return luaL_error(L, "not in a task");
  g_held_waker = sys.begin_shared_wait(t);
  return sys.suspend(L, t);
}

// A completion that holds a Waker may come after its task was cancelled and
// collected: it wakes nothing and touches nothing.
TEST(TaskWaits, AWakerOutlivesItsCancelledAndCollectedTask) {
  Runtime rt({});
  lua_State* L = rt.L();
  lua_register(L, "shared_wait", shared_wait);
  ASSERT_EQ(luaL_loadstring(L,
                            "local task = require('task')\n"
                            "local f = task.async(function() return shared_wait(true) end)\n"
                            "task.yield()\n"
                            "f:cancel()\n"
                            "outcome = tostring(f:await())  -- (false): cancelled in the wait\n"),
            0);
  ASSERT_TRUE(rt.start_main_task(0));
  rt.run_loop();
  lua_getglobal(L, "outcome");
  EXPECT_STREQ(lua_tostring(L, -1), "false");
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  ASSERT_NE(g_held_waker, nullptr);
  EXPECT_FALSE(g_held_waker->waiting());
  int top = lua_gettop(L);
  lua_pushinteger(L, 1);
  EXPECT_FALSE(g_held_waker->wake(1));
  EXPECT_EQ(lua_gettop(L), top) << "the value was dropped";
  g_held_waker.reset();
}

}  // namespace
// Pooled tasks (the HTTP server's request tasks): a job's coroutine is
// parked and serves the next job; so is its Task, unless its Future reached
// Lua (task.current()), which then stays that job's, done.
void spawn_job(Runtime& rt, const char* fn_global) {
  lua_State* L = rt.L();
  lua_getglobal(L, fn_global);
  Task* t = rt.tasks().spawn_pooled(L, 0, /*queue=*/false);
  rt.tasks().run_now(t);
}

TEST(TaskPool, ReusesCoroutineAndTaskOfJobsNobodyWatched) {
  Runtime rt({});
  lua_State* L = rt.L();
  ASSERT_EQ(luaL_dostring(L,
                          "seen = {}\n"
                          "function job() seen[#seen + 1] = tostring(coroutine.running()) end\n"
                          "function watched() taken = require('evo.task').current(); job() end\n"),
            0);
  spawn_job(rt, "job");
  spawn_job(rt, "job");
  ASSERT_EQ(luaL_dostring(L, "return seen[1] == seen[2], #seen"), 0);
  EXPECT_TRUE(lua_toboolean(L, -2)) << "the second job ran on the parked coroutine";
  EXPECT_EQ(lua_tointeger(L, -1), 2);
  lua_pop(L, 2);

  // A job whose Future was taken: the Future stays done, the next job gets
  // another Task (its coroutine is still reused).
  spawn_job(rt, "watched");
  ASSERT_EQ(luaL_dostring(L, "first = taken; return require('evo.task').isDone(taken)"), 0);
  EXPECT_TRUE(lua_toboolean(L, -1));
  lua_pop(L, 1);
  spawn_job(rt, "watched");
  ASSERT_EQ(
      luaL_dostring(
          L,
          "local native = require('evo.task')\n"
          "return rawequal(first, taken), native.isDone(first), native.isDone(taken), seen[3] == seen[4]"),
      0);
  EXPECT_FALSE(lua_toboolean(L, -4)) << "a watched job's Task is not reused";
  EXPECT_TRUE(lua_toboolean(L, -3));
  EXPECT_TRUE(lua_toboolean(L, -2));
  EXPECT_TRUE(lua_toboolean(L, -1)) << "its coroutine is";
  lua_pop(L, 4);
}

TEST(TaskPool, AJobThatSuspendsKeepsItsCoroutineUntilDone) {
  Runtime rt({});
  lua_State* L = rt.L();
  ASSERT_EQ(
      luaL_dostring(L,
                    "order = {}\n"
                    "function slow()\n"
                    "  slowco = coroutine.running(); order[#order + 1] = 'slow starts'\n"
                    "  require('task').sleep(0.01)\n"
                    "  order[#order + 1] = 'slow ends on its own coroutine: ' .. "
                    "tostring(coroutine.running() == slowco)\n"
                    "end\n"
                    "function quick() quickco = coroutine.running(); order[#order + 1] = 'quick' end\n"),
      0);
  spawn_job(rt, "slow");   // suspends in sleep
  spawn_job(rt, "quick");  // must not take the sleeping job's coroutine
  rt.run_loop();
  ASSERT_EQ(luaL_dostring(L, "return table.concat(order, ', '), quickco ~= slowco"), 0);
  EXPECT_STREQ(lua_tostring(L, -2), "slow starts, quick, slow ends on its own coroutine: true");
  EXPECT_TRUE(lua_toboolean(L, -1)) << "the quick job ran on another coroutine";
  lua_pop(L, 2);
}

}  // namespace evo
