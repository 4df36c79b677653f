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

#include <string_view>
#include <type_traits>

namespace evo {
class Runtime;

namespace events {

// Remembers the shared default handler (lib/events.lua registers it).
void set_default_handler(lua_State* L, int idx);

// Fills the payload table on top of the stack.
using FillFn = void (*)(lua_State* L, void* arg);

// Delivers `event` to the object held at registry ref `object_ref`: looks up
// its handler, and when the handler is the silent default and debugging is
// off, returns without building the payload. Otherwise builds the payload with
// fill(L, arg) and calls object:EVENT(EVENT, payload) in a protected call on
// the main state. An error (in the handler, or in a class's __index function)
// is reported once with its traceback and goes no further: one bad handler
// never stops the loop. The lookup walks the class chain with raw accesses
// (nothing can raise there), so an event nobody listens to costs no call.
// `event` is a string literal (names are interned by its address: it must
// name one event for the runtime's life); `fields` is how many fields fill
// sets, the room the payload table is made with (a table sized to its
// fields is no rehash and less for the collector).
void emit_raw(Runtime& rt, int object_ref, const char* event, FillFn fill, void* arg, int fields);

template <class Fill>
void emit(Runtime& rt, int object_ref, const char* event, Fill&& fill, int fields = 4) {
  using F = std::remove_reference_t<Fill>;
  emit_raw(
      rt, object_ref, event, [](lua_State* L, void* arg) { (*static_cast<F*>(arg))(L); },
      const_cast<void*>(static_cast<const void*>(&fill)), fields);
}

// Like emit, but the handler runs in a task of its own (a pooled one:
// TaskSystem::spawn_pooled), so it may suspend (sleep, I/O, await) without
// holding up the loop: runner(object, handler, EVENT, payload) is called in
// the task and must not raise (it calls the handler in a protected call and
// reports its error). The lookup is emit's: an event nobody listens to
// spawns no task and builds no payload. From a libuv callback the task runs
// at once, up to its first suspension; from inside a task it is queued.
// Without a runner (LUA_NOREF), in the blocking Io mode or once the tasks
// are closed, it is emit.
void emit_task_raw(Runtime& rt, int object_ref, const char* event, int runner_ref, FillFn fill, void* arg,
                   int fields);

template <class Fill>
void emit_task(Runtime& rt, int object_ref, const char* event, int runner_ref, Fill&& fill, int fields = 8) {
  using F = std::remove_reference_t<Fill>;
  emit_task_raw(
      rt, object_ref, event, runner_ref, [](lua_State* L, void* arg) { (*static_cast<F*>(arg))(L); },
      const_cast<void*>(static_cast<const void*>(&fill)), fields);
}

// Like emit_task, with the payload made in Lua: push(L) pushes the
// payload's values and returns how many (at most 6), and
// values_runner(object, handler, values...) makes the payload table itself
// (it knows the event from its values) and runs the handler as runner
// would: a table constructor with constant keys costs less than setting
// each field from C. Wherever emit_task would not start a task
// (blocking Io mode, no runner, tasks closed) or without a values runner,
// it is emit_task with fill.
using PushFn = int (*)(lua_State* L, void* arg);
void emit_task_values_raw(Runtime& rt, int object_ref, const char* event, int values_runner_ref, PushFn push,
                          int runner_ref, FillFn fill, void* arg, int fields);

namespace detail {
// The *_values forms' push and fill callables behind their one void* arg.
template <class Push, class Fill>
struct PushFill {
  std::remove_reference_t<Push>* push;
  std::remove_reference_t<Fill>* fill;
  static int push_fn(lua_State* L, void* arg) { return (*static_cast<PushFill*>(arg)->push)(L); }
  static void fill_fn(lua_State* L, void* arg) { (*static_cast<PushFill*>(arg)->fill)(L); }
};
}  // namespace detail

template <class Push, class Fill>
void emit_task_values(Runtime& rt, int object_ref, const char* event, int values_runner_ref, Push&& push,
                      int runner_ref, Fill&& fill, int fields) {
  using Both = detail::PushFill<Push, Fill>;
  Both both{&push, &fill};
  emit_task_values_raw(rt, object_ref, event, values_runner_ref, Both::push_fn, runner_ref, Both::fill_fn,
                       &both, fields);
}

// Like emit, with the handler looked up and the payload made in Lua:
// deliver(object, debugging, values...), the Lua function at `deliver_ref`,
// is called in a protected call on the main state with the values push(L,
// arg) pushes (at most 6; `debugging` a boolean) and tail-calls
// handler(object, EVENT, payload), its payload made by a table constructor
// (compiled with the handler: less than a table filled through the C API),
// or returns when nobody listens. The tail call leaves no frame, so a
// handler's error and traceback read as emit's, and are reported as emit
// reports them. Whatever deliver does not know how to find or call as emit
// would (events.rawHandler: an __index function, a deep class chain, a
// handler that is not a function), it hands back by returning itself: the
// event then goes through emit with fill, as if deliver were not there.
void emit_values_raw(Runtime& rt, int object_ref, const char* event, int deliver_ref, PushFn push,
                     FillFn fill, void* arg, int fields);

template <class Push, class Fill>
void emit_values(Runtime& rt, int object_ref, const char* event, int deliver_ref, Push&& push, Fill&& fill,
                 int fields) {
  using Both = detail::PushFill<Push, Fill>;
  Both both{&push, &fill};
  emit_values_raw(rt, object_ref, event, deliver_ref, Both::push_fn, Both::fill_fn, &both, fields);
}

// Payload helpers: set a field of the table on top of the stack. While emit
// fills a payload, the field's name is interned (Runtime::push_interned: no
// hashing of the name per event) and set with a raw set (the table is new);
// elsewhere they are lua_setfield.
bool push_field_key(lua_State* L, const char* key);  // pushes it and says so while filling

template <class Push>
void set_field(lua_State* L, const char* key, Push&& push) {
  if (push_field_key(L, key)) {
    push();
    lua_rawset(L, -3);
  } else {
    push();
    lua_setfield(L, -2, key);
  }
}
inline void field(lua_State* L, const char* key, double value) {
  set_field(L, key, [&] { lua_pushnumber(L, value); });
}
inline void field(lua_State* L, const char* key, std::string_view value) {
  set_field(L, key, [&] { lua_pushlstring(L, value.data(), value.size()); });
}
inline void field(lua_State* L, const char* key, const char* value) {
  field(L, key, std::string_view(value));
}
inline void field(lua_State* L, const char* key, bool value) {
  set_field(L, key, [&] { lua_pushboolean(L, value ? 1 : 0); });
}

// True when `name` follows the convention: [A-Z][A-Z0-9_]*.
bool valid_name(std::string_view name);

}  // namespace events
}  // namespace evo
