// The one path by which native objects deliver events to Lua.
//
// Evo's convention: an object reports what happens as an event with a
// CAPITALISED name; the handler is the object's method of that name and is
// called as object:NAME(NAME, payload), payload a table. Every class declares
// its events with a default handler (lib/events.lua) that only prints when
// debugging is on. Native callbacks (timers, signals, sockets...) call
// events::emit straight from their libuv callback: no queue, no polling.
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <string_view>

namespace evo::events {

// Remembers the shared default handler (lib/events.lua registers it).
void set_default_handler(lua_State* L, int idx);

// Pushes handler, object and event name for delivering `event` to the object
// held at registry ref `object_ref`, and returns true. Returns false, with the
// stack unchanged, when nothing would observe the event: the handler is the
// silent default and debugging is off. Then the payload is never built.
bool begin(lua_State* L, int object_ref, const char* event);

// Calls the handler pushed by begin() with the payload table on top of the
// stack. An error in the handler is reported once, with its traceback, and
// does not propagate: one bad handler never stops the loop.
void finish(lua_State* L, const char* event);

template <class Fill>
void emit(lua_State* L, int object_ref, const char* event, Fill&& fill) {
  if (!begin(L, object_ref, event)) return;
  lua_createtable(L, 0, 4);
  fill(L);
  finish(L, event);
}

// Payload helpers: set a field of the table on top of the stack.
inline void field(lua_State* L, const char* key, double value) {
  lua_pushnumber(L, value);
  lua_setfield(L, -2, key);
}
inline void field(lua_State* L, const char* key, std::string_view value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}
inline void field(lua_State* L, const char* key, const char* value) {
  field(L, key, std::string_view(value));
}
inline void field(lua_State* L, const char* key, bool value) {
  lua_pushboolean(L, value ? 1 : 0);
  lua_setfield(L, -2, key);
}

// True when `name` follows the convention: [A-Z][A-Z0-9_]*.
bool valid_name(std::string_view name);

}  // namespace evo::events
