#include "lua/errors.h"

#include <uv.h>

#include <cstdio>
#include <cstring>

namespace evo::errors {

namespace {
// tostring() of the value at 1, through __tostring: runs protected, since a
// __tostring may itself raise.
int tostring_meta(lua_State* L) {
  if (luaL_callmeta(L, 1, "__tostring") == 0) lua_pushnil(L);
  return 1;
}

// pretty.format(value at 1): a table error value without __tostring. The
// traceback a task records in a table it fails with (tasks.cpp) is left out:
// it is printed below the message anyway.
int pretty_format(lua_State* L) {
  lua_getfield(L, 1, "traceback");
  const char* tb = lua_tostring(L, -1);
  if (tb != nullptr && std::strncmp(tb, "stack traceback:", 16) == 0) {
    lua_newtable(L);  // a shallow copy without it
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    lua_pushnil(L);
    lua_setfield(L, -2, "traceback");
    lua_replace(L, 1);
  }
  lua_settop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "pretty");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "format");
  lua_pushvalue(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, 4);
  lua_setfield(L, -2, "depth");
  lua_call(L, 2, 1);
  return 1;
}
}  // namespace

std::string describe(lua_State* L, int idx) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  if (luaL_getmetafield(L, idx, "__tostring") != 0) {
    lua_pop(L, 1);
    lua_pushcfunction(L, tostring_meta);
    lua_pushvalue(L, idx);
    std::string s = "(error object whose __tostring failed)";
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_isstring(L, -1)) s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
  }
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) return lua_tostring(L, idx);
  if (lua_isnil(L, idx)) return "nil";
  if (lua_istable(L, idx)) {  // raised as error({code = ..., ...}): show what it holds
    lua_pushcfunction(L, pretty_format);
    lua_pushvalue(L, idx);
    std::string s;
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_isstring(L, -1)) s = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!s.empty()) return s;
  }
  return std::string("(error object is a ") + luaL_typename(L, idx) + " value)";
}

int traceback_handler(lua_State* L) {
  std::string msg = describe(L, 1);
  luaL_traceback(L, L, msg.c_str(), 1);
  return 1;
}

std::string describe_with_traceback(lua_State* L, lua_State* co, int idx) {
  std::string msg = describe(co, idx);
  luaL_traceback(L, co, msg.c_str(), 0);
  std::string out = lua_tostring(L, -1);
  lua_pop(L, 1);
  return out;
}

void report(const std::string& text) {
  std::fflush(stdout);  // keep the script's own output in order before the error
  std::fprintf(stderr, "evo: %s\n", text.c_str());
  std::fflush(stderr);
}

namespace {
const char kTracebackKey = 0;

// The message handler, created once per VM and kept in the registry:
// lua_pushcfunction would allocate a new closure on every call.
void push_traceback_handler(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kTracebackKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushcfunction(L, traceback_handler);
    lua_pushlightuserdata(L, const_cast<char*>(&kTracebackKey));
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
}
}  // namespace

bool pcall_traceback(lua_State* L, int nargs, int nresults) {
  int func = lua_gettop(L) - nargs;
  push_traceback_handler(L);
  lua_insert(L, func);
  int rc = lua_pcall(L, nargs, nresults, func);
  lua_remove(L, func);
  if (rc != 0 && !lua_isstring(L, -1)) {  // e.g. out of memory inside the handler
    std::string text = describe(L, -1);
    lua_pop(L, 1);
    lua_pushstring(L, text.c_str());
  }
  return rc == 0;
}

bool deliver_to_uncaught_handler(lua_State* L, const std::string& text) {
  lua_getfield(L, LUA_REGISTRYINDEX, kUncaughtHandlerKey);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  lua_pushlstring(L, text.data(), text.size());
  call_and_report(L, 1, 0, "uncaught error handler");
  return true;
}

void report_uncaught(lua_State* L, const std::string& text) {
  if (!deliver_to_uncaught_handler(L, text)) report(text);
}

void push_error(lua_State* L, const char* code, const std::string& message) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "evo.errors");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_remove(L, -2);
  lua_pushstring(L, code);
  lua_pushlstring(L, message.data(), message.size());
  lua_call(L, 2, 1);
}

void push_uv_error(lua_State* L, int status, const std::string& detail) {
  std::string message = uv_strerror(status);
  if (!detail.empty()) message += ": " + detail;
  push_error(L, uv_err_name(status), message);
}

bool call_and_report(lua_State* L, int nargs, int nresults, const char* context) {
  if (pcall_traceback(L, nargs, nresults)) return true;
  std::string text = lua_tostring(L, -1);
  lua_pop(L, 1);
  report(context != nullptr ? std::string(context) + ": " + text : text);
  return false;
}

}  // namespace evo::errors
