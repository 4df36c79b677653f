// Runtime, events and module loading, driven from C++.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "lua/errors.h"
#include "lua/events.h"
#include "lua/modules.h"
#include "lua/runtime.h"

namespace evo {
namespace {

// Runs a chunk on the runtime's main state; fails the test on a Lua error.
void run(Runtime& rt, const std::string& code) {
  lua_State* L = rt.L();
  ASSERT_EQ(luaL_loadstring(L, code.c_str()), 0) << lua_tostring(L, -1);
  ASSERT_TRUE(errors::call_and_report(L, 0, 0, "test chunk"));
}

bool global_bool(Runtime& rt, const char* name) {
  lua_getglobal(rt.L(), name);
  bool v = lua_toboolean(rt.L(), -1) != 0;
  lua_pop(rt.L(), 1);
  return v;
}

double global_number(Runtime& rt, const char* name) {
  lua_getglobal(rt.L(), name);
  double v = lua_tonumber(rt.L(), -1);
  lua_pop(rt.L(), 1);
  return v;
}

TEST(Events, ValidNames) {
  EXPECT_TRUE(events::valid_name("TIMER_FIRED"));
  EXPECT_TRUE(events::valid_name("A1_B2"));
  EXPECT_FALSE(events::valid_name(""));
  EXPECT_FALSE(events::valid_name("timer_fired"));
  EXPECT_FALSE(events::valid_name("Timer"));
  EXPECT_FALSE(events::valid_name("_X"));
  EXPECT_FALSE(events::valid_name("1X"));
}

// Builds an object of a class declaring DOOR_OPENED and keeps a registry ref.
int make_door(Runtime& rt, const char* handler_code) {
  run(rt, std::string("local events = require('events')\n"
                      "local Door = events.class('Door', {'DOOR_OPENED'})\n"
                      "door = Door()\n") +
              handler_code);
  lua_getglobal(rt.L(), "door");
  return luaL_ref(rt.L(), LUA_REGISTRYINDEX);
}

TEST(Events, EmitCallsTheHandlerMethodWithNameAndPayload) {
  Runtime rt({});
  int ref = make_door(rt,
                      "function door:DOOR_OPENED(event, payload)\n"
                      "  got_self = (self == door); got_event = event; got_by = payload.by\n"
                      "end\n");
  int top = lua_gettop(rt.L());
  events::emit(rt, ref, "DOOR_OPENED", [](lua_State* L) { events::field(L, "by", "alice"); });
  EXPECT_EQ(lua_gettop(rt.L()), top) << "emit must leave the stack balanced";
  EXPECT_TRUE(global_bool(rt, "got_self"));
  run(rt, "assert(got_event == 'DOOR_OPENED', got_event); assert(got_by == 'alice', got_by)");
}

TEST(Events, DefaultHandlerIsSkippedWithoutBuildingThePayloadUnlessDebugging) {
  Runtime rt({});
  int ref = make_door(rt, "");
  bool built = false;
  events::emit(rt, ref, "DOOR_OPENED", [&](lua_State*) { built = true; });
  EXPECT_FALSE(built);
  rt.set_debug(true);
  events::emit(rt, ref, "DOOR_OPENED", [&](lua_State*) { built = true; });
  EXPECT_TRUE(built) << "with debugging on the default handler prints the payload";
}

TEST(Events, AnErrorInAHandlerIsReportedAndDoesNotPropagate) {
  Runtime rt({});
  int ref = make_door(rt,
                      "calls = 0\n"
                      "function door:DOOR_OPENED() calls = calls + 1; error('boom') end\n");
  int top = lua_gettop(rt.L());
  events::emit(rt, ref, "DOOR_OPENED", [](lua_State*) {});
  events::emit(rt, ref, "DOOR_OPENED", [](lua_State*) {});
  EXPECT_EQ(lua_gettop(rt.L()), top);
  EXPECT_EQ(global_number(rt, "calls"), 2);
}

int global_ref(Runtime& rt, const char* name) {
  lua_getglobal(rt.L(), name);
  return luaL_ref(rt.L(), LUA_REGISTRYINDEX);
}

// issue 8 item 12: servers run their event handlers in pooled tasks.
TEST(Events, EmitTaskRunsTheHandlerInATaskThatMaySuspend) {
  Runtime rt({});
  int ref = make_door(rt,
                      "local task = require('task')\n"
                      "function door:DOOR_OPENED(event, payload)\n"
                      "  in_task = task.current() ~= nil; got_by = payload.by == 'bob'\n"
                      "  task.sleep(0.01)\n"
                      "  after_sleep = true\n"
                      "end\n"
                      "runner = function(obj, handler, event, payload)\n"
                      "  runner_args = obj == door and event == 'DOOR_OPENED'\n"
                      "  handler(obj, event, payload)\n"
                      "end\n");
  int runner = global_ref(rt, "runner");
  int top = lua_gettop(rt.L());
  events::emit_task(rt, ref, "DOOR_OPENED", runner, [](lua_State* L) { events::field(L, "by", "bob"); });
  EXPECT_EQ(lua_gettop(rt.L()), top) << "emit_task must leave the stack balanced";
  EXPECT_TRUE(global_bool(rt, "runner_args"));
  EXPECT_TRUE(global_bool(rt, "in_task")) << "the handler runs at once, in a task";
  EXPECT_TRUE(global_bool(rt, "got_by"));
  EXPECT_FALSE(global_bool(rt, "after_sleep")) << "the handler suspended; emit_task returned";
  rt.run_loop();
  EXPECT_TRUE(global_bool(rt, "after_sleep"));
}

TEST(Events, EmitTaskStartsNoTaskWhenNobodyListens) {
  Runtime rt({});
  int ref = make_door(rt, "runs = 0\nrunner = function() runs = runs + 1 end\n");
  int runner = global_ref(rt, "runner");
  bool built = false;
  events::emit_task(rt, ref, "DOOR_OPENED", runner, [&](lua_State*) { built = true; });
  EXPECT_FALSE(built);
  EXPECT_EQ(global_number(rt, "runs"), 0);
  rt.set_debug(true);
  events::emit_task(rt, ref, "DOOR_OPENED", runner, [&](lua_State*) { built = true; });
  EXPECT_TRUE(built) << "with debugging on the default handler runs (and prints)";
  EXPECT_EQ(global_number(rt, "runs"), 1);
}

TEST(Modules, UvAndLuvAreOneModuleOnTheRuntimesLoop) {
  Runtime rt({});
  run(rt,
      "local uv, luv = require('uv'), require('luv')\n"
      "same = rawequal(uv, luv)\n"
      "local t = uv.new_timer(); fired = false\n"
      "t:start(1, 0, function() fired = true; t:close() end)\n");
  EXPECT_TRUE(global_bool(rt, "same"));
  rt.run_loop();
  EXPECT_TRUE(global_bool(rt, "fired")) << "luv timer did not run on the runtime's loop";
}

TEST(Modules, BuiltinsWinOverFilesOfTheSameName) {
  char dir_template[] = "/tmp/evo-modules-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::ofstream(dir + "/events.lua") << "return 'the file'";
  std::ofstream(dir + "/mine.lua") << "return 'mine'";
  RuntimeOptions options;
  options.script_dir = dir;
  {
    Runtime rt(options);
    run(rt,
        "is_builtin = type(require('events')) == 'table'\n"
        "mine_found = require('mine') == 'mine'\n");
    EXPECT_TRUE(global_bool(rt, "is_builtin"));
    EXPECT_TRUE(global_bool(rt, "mine_found")) << "the script directory is searched";
  }
  std::remove((dir + "/events.lua").c_str());
  std::remove((dir + "/mine.lua").c_str());
  rmdir(dir.c_str());
}

TEST(Modules, BuiltinNamesAreListed) {
  auto names = modules::builtin_names();
  for (const char* expected : {"uv", "luv", "events", "Timer", "Signal", "assert", "pretty", "evo.test"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
}

TEST(Runtime, ShutdownClosesLuvAndEvoHandlesLeftOpen) {
  Runtime rt({});
  run(rt,
      "local uv = require('uv')\n"
      "local t = uv.new_timer(); t:start(100000, 0, function() end)\n"
      "local Timer = require('Timer'); local e = Timer(); e:start(100000)\n"
      "local Signal = require('Signal'); local s = Signal(); s:start('SIGUSR2')\n");
  rt.shutdown();  // must not hang on the active handles, nor leak them (ASan)
  SUCCEED();
}

TEST(Runtime, MainTaskErrorSetsExitCodeOne) {
  Runtime rt({});
  lua_State* L = rt.L();
  ASSERT_EQ(luaL_loadstring(L, "error('main failed')"), 0);
  EXPECT_FALSE(rt.start_main_task(0));
  EXPECT_EQ(rt.exit_code(), 1);
}

TEST(Runtime, MainTaskMayYieldAndBeResumedFromACallback) {
  Runtime rt({});
  lua_State* L = rt.L();
  const char* code =
      "local uv = require('uv')\n"
      "local co = coroutine.running()\n"
      "local t = uv.new_timer()\n"
      "t:start(1, 0, function() t:close(); coroutine.resume(co, 42) end)\n"
      "resumed_with = coroutine.yield()\n";
  ASSERT_EQ(luaL_loadstring(L, code), 0);
  EXPECT_TRUE(rt.start_main_task(0));
  EXPECT_EQ(global_number(rt, "resumed_with"), 0);
  rt.run_loop();
  EXPECT_EQ(global_number(rt, "resumed_with"), 42);
}

}  // namespace
}  // namespace evo
