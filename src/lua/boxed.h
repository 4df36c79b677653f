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
  // A magic number that says "a Boxed<T>": the address of this T's kTag.
  // With the userdata's size it identifies the box without luaL_checkudata,
  // whose lookup of the metatable by name interns the name on every call
  // (~130 instructions, paid by every native call on a stream).
  const void* tag = &kTag;
  std::unique_ptr<T> object;
  static inline char kTag = 0;  // not const: a constant could share its address with another's

  static void push(lua_State* L, std::unique_ptr<T> obj, const char* meta) {
    new (lua_newuserdata(L, sizeof(Boxed))) Boxed{&kTag, std::move(obj)};
    luaL_getmetatable(L, meta);
    lua_setmetatable(L, -2);
  }

  // Anything but a Boxed<T> gets luaL_checkudata's own check and message.
  static T* check(lua_State* L, int idx, const char* meta) {
    // (A light userdata's length is 0: its pointer is not read.)
    auto* box = static_cast<Boxed*>(lua_touserdata(L, idx));
    if (box != nullptr && lua_objlen(L, idx) == sizeof(Boxed) && box->tag == &kTag) return box->object.get();
    return static_cast<Boxed*>(luaL_checkudata(L, idx, meta))->object.get();
  }

  static int gc(lua_State* L) {
    static_cast<Boxed*>(lua_touserdata(L, 1))->~Boxed();
    return 0;
  }
};

}  // namespace evo
