#include "lua/twin.h"

#include "lua/lua_util.h"
#include "lua/runtime.h"

namespace evo {

namespace {

// The twins whose natives were found last, by table address: a method call
// (timer:start in a TIMER_FIRED handler) then costs one lua_topointer
// instead of a lightuserdata key's lookup. An entry lives only while its
// handle holds its twin (the registry reference keeps the table, so no other
// table can take its address) and unbind removes it.
struct TwinCacheEntry {
  const void* table = nullptr;
  TwinHandle* handle = nullptr;
  const void* class_key = nullptr;
};
constexpr size_t kTwinCacheSize = 16;
thread_local TwinCacheEntry g_twin_cache[kTwinCacheSize];

TwinCacheEntry& cache_slot(const void* table) {
  auto bits = reinterpret_cast<uintptr_t>(table);
  return g_twin_cache[(bits >> 6) % kTwinCacheSize];  // tables are at least 64-byte apart
}

}  // namespace

// Events are delivered on the main state, never on the coroutine that
// happened to create the object (it may be suspended or dead by then).
TwinHandle::TwinHandle(lua_State* L, int twin_index, const void* class_key, int deliver_index)
    : rt_(&Runtime::from(L)), L_(rt_->L()), class_key_(class_key) {
  twin_index = absindex(L, twin_index);
  if (deliver_index != 0) deliver_index = absindex(L, deliver_index);
  rawgetp(L, twin_index, class_key);
  bool bound = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (bound) luaL_error(L, "this object already has a native handle (init called twice?)");
  lua_pushvalue(L, twin_index);
  twin_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, this);
  rawsetp(L, twin_index, class_key);
  if (deliver_index != 0 && lua_type(L, deliver_index) == LUA_TFUNCTION) {
    lua_pushvalue(L, deliver_index);
    deliver_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

TwinHandle::~TwinHandle() {
  if (twin_ref_ != LUA_NOREF) unbind();  // never handed to libuv (its init failed)
}

void TwinHandle::on_closed() { unbind(); }

void TwinHandle::unbind() {
  for (TwinCacheEntry& e : g_twin_cache) {
    if (e.handle == this) e = TwinCacheEntry{};
  }
  // Mark the twin closed (false, not nil: its methods then say "is closed").
  lua_rawgeti(L_, LUA_REGISTRYINDEX, twin_ref_);
  lua_pushboolean(L_, 0);
  rawsetp(L_, -2, class_key_);
  lua_pop(L_, 1);
  luaL_unref(L_, LUA_REGISTRYINDEX, twin_ref_);
  luaL_unref(L_, LUA_REGISTRYINDEX, deliver_ref_);  // (LUA_NOREF: nothing)
  deliver_ref_ = LUA_NOREF;
  twin_ref_ = LUA_NOREF;
}

// Only the twin itself is remembered (a copy of its fields finds the native
// too, but nothing keeps the copy's address from being reused).
void TwinHandle::remember(lua_State* L, const void* table, const void* class_key) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, twin_ref_);
  bool twin = lua_topointer(L, -1) == table;
  lua_pop(L, 1);
  if (twin) cache_slot(table) = {table, this, class_key};
}

TwinHandle* TwinHandle::check(lua_State* L, int idx, const void* class_key, const char* class_name,
                              bool allow_closed) {
  const void* table = lua_topointer(L, idx);
  if (table != nullptr) {
    const TwinCacheEntry& e = cache_slot(table);
    if (e.table == table && e.class_key == class_key && !e.handle->closing()) return e.handle;
  }
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
    if (self != nullptr) {
      if (self->twin_ref_ != LUA_NOREF) self->remember(L, table, class_key);
      return self;
    }
  }
  const char* msg = lua_pushfstring(L, "%s expected, got %s", class_name, luaL_typename(L, idx));
  luaL_argerror(L, idx, msg);
  return nullptr;
}

}  // namespace evo
