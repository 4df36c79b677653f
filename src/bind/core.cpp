// evo.core: runtime internals used by Evo's Lua library (lib/). Not a public
// API; scripts use the modules built on it (events, Timer, Signal, ...).
#include <string>

#include "lua/errors.h"
#include "lua/events.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/version.h"

namespace evo {
namespace {

int core_debug(lua_State* L) {
  lua_pushboolean(L, Runtime::from(L).debug() ? 1 : 0);
  return 1;
}

int core_set_debug(lua_State* L) {
  Runtime::from(L).set_debug(lua_toboolean(L, 1) != 0);
  return 0;
}

int core_set_default_handler(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  events::set_default_handler(L, 1);
  return 0;
}

int core_report_error(lua_State* L) {
  errors::report(errors::describe(L, 1));
  return 0;
}

// An error in a Lua event handler: to the uncaught-error handler (evo test)
// when one is installed, else reported.
int core_report_handler_error(lua_State* L) {
  errors::report_uncaught(L, errors::describe(L, 1));
  return 0;
}

int core_set_exit_code(lua_State* L) {
  Runtime::from(L).set_exit_code(static_cast<int>(luaL_checkinteger(L, 1)));
  return 0;
}

int core_exit_code(lua_State* L) {
  lua_pushinteger(L, Runtime::from(L).exit_code());
  return 1;
}

int core_is_event_name(lua_State* L) {
  size_t len = 0;
  const char* s = lua_tolstring(L, 1, &len);
  lua_pushboolean(L, s != nullptr && events::valid_name(std::string_view(s, len)) ? 1 : 0);
  return 1;
}

// Closes every handle a script opened (luv's and Evo's), as happens at exit.
// The test runner uses it so that a test that leaks a handle cannot keep the
// run alive.
int core_close_handles(lua_State* L) {
  Runtime::from(L).close_script_handles();
  return 0;
}

int core_set_uncaught_handler(lua_State* L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, errors::kUncaughtHandlerKey);
  return 0;
}

// core.setIdleHandler(fn | nil): fn() runs when the loop runs out of work
// (the test runner fails a test that waits on nothing that could wake it).
int core_set_idle_handler(lua_State* L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, errors::kIdleHandlerKey);
  return 0;
}

int core_versions(lua_State* L) {
  auto list = versions();
  lua_createtable(L, 0, static_cast<int>(list.size()));
  for (const auto& [name, value] : list) events::field(L, name.c_str(), value);
  return 1;
}

// Monotonic time in seconds, sub-millisecond (uv_hrtime).
int core_hrtime(lua_State* L) {
  lua_pushnumber(L, static_cast<double>(uv_hrtime()) / 1e9);
  return 1;
}

}  // namespace

int open_core(lua_State* L) {
  const luaL_Reg functions[] = {
      {"debug", core_debug},
      {"setDebug", core_set_debug},
      {"setDefaultHandler", core_set_default_handler},
      {"reportError", core_report_error},
      {"reportHandlerError", core_report_handler_error},
      {"setExitCode", core_set_exit_code},
      {"exitCode", core_exit_code},
      {"isEventName", core_is_event_name},
      {"closeHandles", core_close_handles},
      {"setUncaughtHandler", core_set_uncaught_handler},
      {"setIdleHandler", core_set_idle_handler},
      {"versions", core_versions},
      {"hrtime", core_hrtime},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
