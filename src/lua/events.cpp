#include "lua/events.h"

#include <algorithm>
#include <string>

#include "lua/errors.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo::events {
namespace {

// The runtime whose payload emit is filling (field names are interned then).
thread_local Runtime* g_filling = nullptr;

// Runs fill(L, arg) with g_filling set.
void fill_payload(Runtime& rt, FillFn fill, void* arg) {
  Runtime* outer = g_filling;
  g_filling = &rt;
  fill(rt.L(), arg);
  g_filling = outer;
}

std::string class_name(lua_State* L, int obj) {
  std::string name = "object";
  if (lua_getmetatable(L, obj)) {
    lua_getfield(L, -1, "__name");
    if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1);
    lua_pop(L, 2);
  }
  return name;
}

// object[key] for the object at `obj` with the key at `key`, walking the
// class chain with raw lookups, which cannot raise. Returns false (stack
// unchanged) when the chain has an __index function: then only a protected
// lookup is safe.
bool raw_lookup(lua_State* L, int obj, int key, int index_name_ref) {
  lua_pushvalue(L, obj);
  for (int depth = 0; depth < 32; ++depth) {  // the table to search is on top
    lua_pushvalue(L, key);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1) || lua_getmetatable(L, -2) == 0) {
      lua_remove(L, -2);  // the value found, or nil at the end of the chain
      return true;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, index_name_ref);
    lua_rawget(L, -2);  // table, nil, metatable, metatable.__index
    if (lua_istable(L, -1)) {
      lua_replace(L, -4);
      lua_pop(L, 2);
      continue;
    }
    if (lua_isnil(L, -1)) {
      lua_pop(L, 3);
      lua_pushnil(L);
      return true;
    }
    break;
  }
  lua_settop(L, key);
  return false;
}

int protected_lookup(lua_State* L) {
  lua_gettable(L, 1);
  return 1;
}

// Reports an error of the handler of `event` of the object at `obj`; the
// message is on top of the stack and is popped.
void report_handler_error(lua_State* L, int obj, const char* event) {
  std::string text = lua_isstring(L, -1) ? lua_tostring(L, -1) : errors::describe(L, -1);
  lua_pop(L, 1);
  errors::report_uncaught(L, "error in " + class_name(L, obj) + ":" + event + " handler: " + text);
}

}  // namespace

void set_default_handler(lua_State* L, int idx) {
  lua_pushvalue(L, idx);
  const void* fn = lua_topointer(L, -1);
  Runtime::from(L).set_default_handler_ref(luaL_ref(L, LUA_REGISTRYINDEX), fn);
}

bool push_field_key(lua_State* L, const char* key) {
  if (g_filling == nullptr || g_filling->L() != L) return false;
  g_filling->push_interned(key);
  return true;
}

bool valid_name(std::string_view name) {
  auto allowed = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; };
  return !name.empty() && name[0] >= 'A' && name[0] <= 'Z' && std::ranges::all_of(name, allowed);
}

namespace {

// Pushes the message handler (base+1), the object (base+2), the event name
// (base+3) and its handler (base+4) and returns true; or, when nobody listens
// (the silent default with debugging off) or the lookup failed (reported),
// restores the stack to base and returns false. Every event takes this path,
// so it makes as few C API calls as it can: most handlers are found on the
// object itself (function obj:EVENT), the default by its identity.
bool find_handler(Runtime& rt, int object_ref, const char* event, int base) {
  lua_State* L = rt.L();
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt.traceback_ref());  // base+1: message handler
  lua_rawgeti(L, LUA_REGISTRYINDEX, object_ref);          // base+2: object
  rt.push_interned(event);                                // base+3: event name
  const int obj = base + 2;
  const int key = base + 3;
  lua_pushvalue(L, key);
  lua_rawget(L, obj);  // the object's own field first
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (!raw_lookup(L, obj, key, rt.index_name_ref())) {
      lua_pushcfunction(L, protected_lookup);
      lua_pushvalue(L, obj);
      lua_pushvalue(L, key);
      if (lua_pcall(L, 2, 1, base + 1) != 0) {
        report_handler_error(L, obj, event);
        lua_settop(L, base);
        return false;
      }
    }
  }
  // base+4: handler. An event the class did not declare gets the default too.
  const void* handler = lua_topointer(L, -1);
  if ((handler != nullptr && handler == rt.default_handler()) || lua_isnil(L, -1)) {
    // Nobody listens: no payload, no call (unless debugging prints it).
    if (!rt.debug() || rt.default_handler() == nullptr) {
      lua_settop(L, base);
      return false;
    }
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt.default_handler_ref());
  }
  return true;
}

// The error of a call whose object is no longer on the stack.
void report_handler_error_of(lua_State* L, int object_ref, const char* event) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, object_ref);
  lua_insert(L, -2);  // object, message
  report_handler_error(L, lua_gettop(L) - 1, event);
}

}  // namespace

void emit_raw(Runtime& rt, int object_ref, const char* event, FillFn fill, void* arg, int fields) {
  lua_State* L = rt.L();
  int base = lua_gettop(L);
  if (!find_handler(rt, object_ref, event, base)) return;
  lua_insert(L, base + 2);  // message handler, handler, object, event name
  lua_createtable(L, 0, fields);
  fill_payload(rt, fill, arg);
  if (lua_pcall(L, 3, 0, base + 1) != 0) report_handler_error_of(L, object_ref, event);
  lua_settop(L, base);
}

void emit_values_raw(Runtime& rt, int object_ref, const char* event, int deliver_ref, PushFn push,
                     FillFn fill, void* arg, int fields) {
  lua_State* L = rt.L();
  int base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt.traceback_ref());  // base+1: message handler
  lua_rawgeti(L, LUA_REGISTRYINDEX, deliver_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, object_ref);
  lua_pushboolean(L, rt.debug() ? 1 : 0);
  int n = push(L, arg);
  bool handed_back = false;
  if (lua_pcall(L, 2 + n, 1, base + 1) != 0) {
    report_handler_error_of(L, object_ref, event);
  } else if (lua_type(L, -1) == LUA_TFUNCTION) {  // a handler's result, or deliver itself
    lua_rawgeti(L, LUA_REGISTRYINDEX, deliver_ref);
    handed_back = lua_rawequal(L, -1, -2) != 0;
  }
  lua_settop(L, base);
  if (handed_back) emit_raw(rt, object_ref, event, fill, arg, fields);
}

void emit_task_raw(Runtime& rt, int object_ref, const char* event, int runner_ref, FillFn fill, void* arg,
                   int fields) {
  TaskSystem& sys = rt.tasks();
  if (runner_ref == LUA_NOREF || sys.blocking() || sys.closed()) {
    emit_raw(rt, object_ref, event, fill, arg, fields);
    return;
  }
  lua_State* L = rt.L();
  int base = lua_gettop(L);
  if (!find_handler(rt, object_ref, event, base)) return;
  lua_insert(L, base + 3);  // message handler, object, handler, event name
  lua_rawgeti(L, LUA_REGISTRYINDEX, runner_ref);
  lua_insert(L, base + 2);        // message handler, runner, object, handler, event name
  lua_createtable(L, 0, fields);  // room for the fields: no rehash as they are set
  fill_payload(rt, fill, arg);
  // From a libuv callback the handler runs at once, up to its first
  // suspension (an answer given at once goes out with the others of this
  // read); from inside a task it is queued like any new task.
  bool now = sys.resuming == nullptr;
  Task* t = sys.spawn_pooled(L, 4, !now);
  lua_settop(L, base);
  if (now) sys.run_now(t);
}

void emit_task_values_raw(Runtime& rt, int object_ref, const char* event, int values_runner_ref, PushFn push,
                          int runner_ref, FillFn fill, void* arg, int fields) {
  TaskSystem& sys = rt.tasks();
  if (values_runner_ref == LUA_NOREF || sys.blocking() || sys.closed()) {
    emit_task_raw(rt, object_ref, event, runner_ref, fill, arg, fields);
    return;
  }
  lua_State* L = rt.L();
  int base = lua_gettop(L);
  if (!find_handler(rt, object_ref, event, base)) return;
  lua_replace(L, base + 3);  // message handler, object, handler
  lua_rawgeti(L, LUA_REGISTRYINDEX, values_runner_ref);
  lua_insert(L, base + 2);  // message handler, runner, object, handler
  int n = push(L, arg);
  bool now = sys.resuming == nullptr;  // as emit_task_raw
  Task* t = sys.spawn_pooled(L, 2 + n, !now);
  lua_settop(L, base);
  if (now) sys.run_now(t);
}

}  // namespace evo::events
