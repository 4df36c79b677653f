#include "lua/events.h"

#include <algorithm>
#include <string>

#include "lua/errors.h"
#include "lua/lua_util.h"
#include "lua/runtime.h"

namespace evo::events {

namespace {
const char kDefaultHandlerKey = 0;

std::string class_name(lua_State* L, int obj) {
  std::string name = "object";
  if (lua_getmetatable(L, obj)) {
    lua_getfield(L, -1, "__name");
    if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1);
    lua_pop(L, 2);
  }
  return name;
}
}  // namespace

void set_default_handler(lua_State* L, int idx) {
  lua_pushvalue(L, idx);
  rawsetp(L, LUA_REGISTRYINDEX, &kDefaultHandlerKey);
}

bool valid_name(std::string_view name) {
  auto allowed = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; };
  return !name.empty() && name[0] >= 'A' && name[0] <= 'Z' && std::ranges::all_of(name, allowed);
}

namespace {
// Looks up object[event] (through its class) in protected mode: a class may
// define __index functions, and an error there must be reported, not panic.
int lookup_handler(lua_State* L) {
  lua_gettable(L, 1);
  return 1;
}
}  // namespace

bool begin(lua_State* L, int object_ref, const char* event) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, object_ref);  // object
  lua_pushcfunction(L, lookup_handler);
  lua_pushvalue(L, -2);
  lua_pushstring(L, event);
  if (!errors::pcall_traceback(L, 2, 1)) {
    errors::report_uncaught(L, "error looking up the " + std::string(event) + " handler of " +
                                   class_name(L, -2) + ": " + lua_tostring(L, -1));
    lua_pop(L, 2);
    return false;
  }
  if (lua_isnil(L, -1)) {
    // An event its class did not declare: the default handler still reports it.
    lua_pop(L, 1);
    rawgetp(L, LUA_REGISTRYINDEX, &kDefaultHandlerKey);
  }
  rawgetp(L, LUA_REGISTRYINDEX, &kDefaultHandlerKey);
  bool is_default = lua_rawequal(L, -1, -2) != 0;
  lua_pop(L, 1);
  if ((is_default && !Runtime::from(L).debug()) || lua_isnil(L, -1)) {
    lua_pop(L, 2);
    return false;
  }
  lua_insert(L, -2);  // handler, object
  lua_pushstring(L, event);
  return true;
}

void finish(lua_State* L, const char* event) {
  // Stack: handler, object, event, payload. Keep the object below them, to
  // name its class only if the handler fails.
  lua_pushvalue(L, -3);
  lua_insert(L, -5);
  if (!errors::pcall_traceback(L, 3, 0)) {
    std::string text = lua_tostring(L, -1);
    std::string name = class_name(L, -2);
    errors::report_uncaught(L, "error in " + name + ":" + event + " handler: " + text);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

}  // namespace evo::events
