// Small helpers over the Lua 5.1 C API as LuaJIT provides it.
#pragma once

#include <lua.hpp>

namespace evo {

// registry-or-table access by a C address used as a unique key
inline void rawgetp(lua_State* L, int idx, const void* key) {
  idx = (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
  lua_pushlightuserdata(L, const_cast<void*>(key));
  lua_rawget(L, idx);
}

inline void rawsetp(lua_State* L, int idx, const void* key) {  // value on top
  idx = (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
  lua_pushlightuserdata(L, const_cast<void*>(key));
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

inline int absindex(lua_State* L, int idx) {
  return (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
}

}  // namespace evo
