// Boxed<T>: a Lua userdata that owns a C++ object through std::unique_ptr.
// The object is destroyed when Lua collects the userdata (Boxed<T>::gc as
// the metatable's __gc), so it lives exactly as long as script code can
// reach it. Streams, listeners, UDP sockets and child processes use it.
#pragma once

#include <lua.hpp>

#include <memory>
#include <new>

namespace evo {

template <class T>
struct Boxed {
  std::unique_ptr<T> object;

  static void push(lua_State* L, std::unique_ptr<T> obj, const char* meta) {
    new (lua_newuserdata(L, sizeof(Boxed))) Boxed{std::move(obj)};
    luaL_getmetatable(L, meta);
    lua_setmetatable(L, -2);
  }

  static T* check(lua_State* L, int idx, const char* meta) {
    return static_cast<Boxed*>(luaL_checkudata(L, idx, meta))->object.get();
  }

  // The same for a native that holds the metatable at `meta_idx` (an
  // upvalue): a pointer comparison instead of luaL_checkudata's registry
  // lookup by name, which costs a string interning per call. A mismatch
  // goes to luaL_checkudata for its error.
  static T* check(lua_State* L, int idx, const char* meta, int meta_idx) {
    void* p = lua_touserdata(L, idx);
    if (p != nullptr && lua_getmetatable(L, idx) != 0) {
      bool same = lua_rawequal(L, -1, meta_idx) != 0;
      lua_pop(L, 1);
      if (same) return static_cast<Boxed*>(p)->object.get();
    }
    return check(L, idx, meta);
  }

  static int gc(lua_State* L) {
    static_cast<Boxed*>(lua_touserdata(L, 1))->~Boxed();
    return 0;
  }
};

}  // namespace evo
