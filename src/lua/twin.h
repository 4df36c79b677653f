// TwinHandle: a NativeHandle with a Lua twin.
//
// The twin is the Lua object script code holds: a table whose class (built by
// lib/events.lua) declares the events and their default handlers. The native
// object keeps a registry reference to the twin from creation until its handle
// is closed, the same rule luv follows for its handles: an open handle is never
// collected under a pending callback, and close() releases it. The twin finds
// its native object through a per-class key, so a Timer method given a Signal
// fails with a clear "bad argument" error instead of misbehaving.
#pragma once

#include <lua.hpp>

#include "core/handle.h"
#include "lua/events.h"

namespace evo {
class Runtime;

class TwinHandle : public NativeHandle {
 public:
  [[nodiscard]] lua_State* L() const { return L_; }

  // Finds the live native object of a class inside the twin at `idx`, or
  // raises "bad argument #idx to 'f' (Timer expected, got table)" /
  // "Timer is closed" (with allow_closed, returns nullptr for a closed one).
  static TwinHandle* check(lua_State* L, int idx, const void* class_key, const char* class_name,
                           bool allow_closed = false);

 protected:
  // Binds to the table at `twin_index`, storing this object under
  // `class_key`. `deliver_index`, when it holds a function (the class's
  // events.deliverer), is kept for emit_values; 0 or anything else: none.
  TwinHandle(lua_State* L, int twin_index, const void* class_key, int deliver_index = 0);

  template <class Fill>
  void emit(const char* event, Fill&& fill, int fields = 4) {
    if (twin_ref_ != LUA_NOREF) events::emit(*rt_, twin_ref_, event, static_cast<Fill&&>(fill), fields);
  }

  // events::emit_values for this object's twin through its deliver
  // function; emit with `fill` for a twin opened without one.
  template <class Push, class Fill>
  void emit_values(const char* event, Push&& push, Fill&& fill, int fields) {
    if (twin_ref_ == LUA_NOREF) return;
    if (deliver_ref_ == LUA_NOREF) {
      events::emit(*rt_, twin_ref_, event, fill, fields);
    } else {
      events::emit_values(*rt_, twin_ref_, event, deliver_ref_, push, fill, fields);
    }
  }

  ~TwinHandle() override;
  void on_closed() override;

 private:
  void unbind();
  void remember(lua_State* L, const void* table, const void* class_key);

  Runtime* rt_;
  lua_State* L_;
  int twin_ref_ = LUA_NOREF;
  int deliver_ref_ = LUA_NOREF;
  const void* class_key_;
};

// Typed access: T declares `static const char kClassKey` and `kClassName`.
template <class T>
T* check_twin(lua_State* L, int idx, bool allow_closed = false) {
  return static_cast<T*>(TwinHandle::check(L, idx, &T::kClassKey, T::kClassName, allow_closed));
}

}  // namespace evo
