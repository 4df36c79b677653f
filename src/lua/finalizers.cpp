#include "lua/finalizers.h"

#include <cstring>
#include <string>

#include "lua/errors.h"

namespace evo::finalizers {
namespace {

const char kGuardKey = 0;  // registry[&kGuardKey] = the metatable of guarded metatables

// A script's finalizer (upvalue 1) run protected: its error is reported and
// goes no further.
int guarded_gc(lua_State* L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (!errors::pcall_traceback(L, nargs, 0)) {
    std::string text = lua_tostring(L, -1);
    lua_pop(L, 1);
    errors::report_uncaught(L, "error in __gc metamethod: " + text);
  }
  return 0;
}

// Replaces the finalizer on top of the stack with its guarded version.
void guard_top(lua_State* L) {
  if (lua_isnil(L, -1) || lua_tocfunction(L, -1) == guarded_gc) return;
  lua_pushcclosure(L, guarded_gc, 1);
}

// __newindex of a guarded metatable: mt.__gc = f stores f guarded.
int guard_newindex(lua_State* L) {
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING && std::strcmp(lua_tostring(L, 2), "__gc") == 0) guard_top(L);
  lua_rawset(L, 1);
  return 0;
}

// Guards the metatable at `mt` (absolute index): its __gc now, and a __gc
// set later (through the guard, unless the table has a metatable already).
void guard_metatable(lua_State* L, int mt) {
  lua_pushliteral(L, "__gc");
  lua_rawget(L, mt);
  if (!lua_isnil(L, -1) && lua_tocfunction(L, -1) != guarded_gc) {
    guard_top(L);
    lua_pushliteral(L, "__gc");
    lua_insert(L, -2);
    lua_rawset(L, mt);
  } else {
    lua_pop(L, 1);
  }
  if (lua_getmetatable(L, mt) != 0) {
    lua_pop(L, 1);
    return;
  }
  lua_pushlightuserdata(L, const_cast<char*>(&kGuardKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_setmetatable(L, mt);
}

// newproxy(...) with upvalue 1 the original.
int guarded_newproxy(lua_State* L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, 1);
  if (lua_getmetatable(L, -1) != 0) {
    guard_metatable(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  return 1;
}

// debug.setmetatable(o, mt) with upvalue 1 the original.
int guarded_setmetatable(lua_State* L) {
  if (lua_type(L, 1) == LUA_TUSERDATA && lua_istable(L, 2)) guard_metatable(L, 2);
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

// ffi.gc(cdata, finalizer) with upvalue 1 the original.
int guarded_ffi_gc(lua_State* L) {
  if (lua_gettop(L) >= 2) {
    lua_settop(L, 2);
    guard_top(L);
  }
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

// table[name] = guard(table[name]) for the table on top, when a function
// not guarded yet.
void wrap_field(lua_State* L, const char* name, lua_CFunction guard) {
  lua_getfield(L, -1, name);
  if (lua_isfunction(L, -1) && lua_tocfunction(L, -1) != guard) {
    lua_pushcclosure(L, guard, 1);
    lua_setfield(L, -2, name);
  } else {
    lua_pop(L, 1);
  }
}

// package.preload.ffi with upvalue 1 the original: guards the module's gc.
int guarded_ffi_loader(lua_State* L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, 1);
  if (lua_istable(L, -1)) wrap_field(L, "gc", guarded_ffi_gc);
  return 1;
}

}  // namespace

void install(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kGuardKey));
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, guard_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_pushvalue(L, LUA_GLOBALSINDEX);
  wrap_field(L, "newproxy", guarded_newproxy);
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "debug");
    if (lua_istable(L, -1)) wrap_field(L, "setmetatable", guarded_setmetatable);
    lua_pop(L, 1);
    lua_getfield(L, -1, "ffi");  // loaded already, or else loaded later through package.preload
    if (lua_istable(L, -1)) wrap_field(L, "gc", guarded_ffi_gc);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "preload");
    if (lua_istable(L, -1)) wrap_field(L, "ffi", guarded_ffi_loader);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

}  // namespace evo::finalizers
