#include "bind/int64.h"

#include <cstring>

namespace evo {

namespace {

constexpr int64_t kExact = int64_t{1} << 53;  // the last integer a double holds exactly
const char kCtypeKey = 0;                     // registry: ffi.typeof("int64_t"), made on first use

}  // namespace

void push_int64(lua_State* L, int64_t i) {
  if (i >= -kExact && i <= kExact) return lua_pushnumber(L, static_cast<double>(i));
  lua_pushlightuserdata(L, const_cast<char*>(&kCtypeKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "ffi");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "typeof");
    lua_remove(L, -2);
    lua_pushliteral(L, "int64_t");
    lua_call(L, 1, 1);
    lua_pushlightuserdata(L, const_cast<char*>(&kCtypeKey));
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_call(L, 0, 1);  // a zeroed int64_t, filled in place
  std::memcpy(const_cast<void*>(lua_topointer(L, -1)), &i, sizeof i);
}

}  // namespace evo
