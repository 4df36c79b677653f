#include "lua/twin.h"

#include "lua/lua_util.h"
#include "lua/runtime.h"

namespace evo {

// Events are delivered on the main state, never on the coroutine that
// happened to create the object (it may be suspended or dead by then).
TwinHandle::TwinHandle(lua_State* L, int twin_index, const void* class_key)
    : rt_(&Runtime::from(L)), L_(rt_->L()), class_key_(class_key) {
  twin_index = absindex(L, twin_index);
  rawgetp(L, twin_index, class_key);
  bool bound = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (bound) luaL_error(L, "this object already has a native handle (init called twice?)");
  lua_pushvalue(L, twin_index);
  twin_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, this);
  rawsetp(L, twin_index, class_key);
}

TwinHandle::~TwinHandle() {
  if (twin_ref_ != LUA_NOREF) unbind();  // never handed to libuv (its init failed)
}

void TwinHandle::on_closed() { unbind(); }

void TwinHandle::unbind() {
  // Mark the twin closed (false, not nil: its methods then say "is closed").
  lua_rawgeti(L_, LUA_REGISTRYINDEX, twin_ref_);
  lua_pushboolean(L_, 0);
  rawsetp(L_, -2, class_key_);
  lua_pop(L_, 1);
  luaL_unref(L_, LUA_REGISTRYINDEX, twin_ref_);
  twin_ref_ = LUA_NOREF;
}

TwinHandle* TwinHandle::check(lua_State* L, int idx, const void* class_key, const char* class_name,
                              bool allow_closed) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    rawgetp(L, idx, class_key);
    void* p = lua_touserdata(L, -1);
    bool closed = lua_type(L, -1) == LUA_TBOOLEAN;
    lua_pop(L, 1);
    auto* self = static_cast<TwinHandle*>(p);
    if (closed || (self != nullptr && self->closing())) {
      if (allow_closed) return nullptr;
      luaL_error(L, "%s is closed", class_name);
    }
    if (self != nullptr) return self;
  }
  const char* msg = lua_pushfstring(L, "%s expected, got %s", class_name, luaL_typename(L, idx));
  luaL_argerror(L, idx, msg);
  return nullptr;
}

}  // namespace evo
