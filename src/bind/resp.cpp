// evo.resp: the RESP engine (src/proto/resp.h) for Lua. lib/redis.lua moves
// the bytes between a parser and a net Stream, so the same client serves both
// Io modes.
//
//   local p = native.parser({maxDepth = n, maxBulk = n})
//   native.feed(p, bytes)
//   local tag, value = native.pop(p)   -- 1 reply, 2 error reply, 3 push; nil: need more;
//                                      -- false, message: the stream is not RESP
//   local wire = native.encode(...)    -- a command; nil, i, type: argument i is neither string nor number
//
// Replies become Lua values: bulk and simple strings, verbatim strings and
// big numbers -> string; integers -> number (a string beyond 2^53, where a
// double would round); doubles -> number; booleans; nulls -> native.null;
// arrays, sets and pushes -> arrays (a null element is native.null, so
// arrays stay dense); maps -> tables; error replies -> makeError(message)
// (the function given to native.setErrorMaker); attributes are skipped.
#include <lua.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "lua/boxed.h"
#include "proto/resp.h"

namespace evo {
namespace {

constexpr const char* kParserMeta = "evo.RespParser";
// Registry slots: the null sentinel and the error constructor.
char kNullKey;
char kErrorMakerKey;

resp::Parser* check(lua_State* L) { return Boxed<resp::Parser>::check(L, 1, kParserMeta); }

size_t opt_size(lua_State* L, int idx, const char* field, size_t fallback) {
  lua_getfield(L, idx, field);
  size_t v =
      lua_isnumber(L, -1) && lua_tonumber(L, -1) >= 1 ? static_cast<size_t>(lua_tonumber(L, -1)) : fallback;
  lua_pop(L, 1);
  return v;
}

// parser([opts]) -> parser
int l_parser(lua_State* L) {
  resp::Limits limits;
  if (lua_istable(L, 1)) {
    limits.max_depth = opt_size(L, 1, "maxDepth", limits.max_depth);
    limits.max_bulk = opt_size(L, 1, "maxBulk", limits.max_bulk);
    limits.max_line = opt_size(L, 1, "maxLine", limits.max_line);
  }
  Boxed<resp::Parser>::push(L, std::make_unique<resp::Parser>(limits), kParserMeta);
  return 1;
}

int l_feed(lua_State* L) {
  resp::Parser* p = check(L);
  size_t n = 0;
  const char* s = luaL_checklstring(L, 2, &n);
  p->feed(std::string_view(s, n));
  return 0;
}

void push_registry(lua_State* L, char* key) {
  lua_pushlightuserdata(L, key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

void push_error(lua_State* L, std::string_view message) {
  push_registry(L, &kErrorMakerKey);
  lua_pushlstring(L, message.data(), message.size());
  if (lua_isfunction(L, -2)) {
    lua_call(L, 1, 1);
  } else {
    lua_remove(L, -2);  // no maker: the message itself
  }
}

// An integer as a number when a double holds it exactly, else its digits.
void push_integer(lua_State* L, int64_t v) {
  constexpr int64_t kExact = int64_t{1} << 53;
  if (v >= -kExact && v <= kExact) {
    lua_pushnumber(L, static_cast<lua_Number>(v));
  } else {
    lua_pushstring(L, std::to_string(v).c_str());
  }
}

void push_value(lua_State* L, resp::Reader& r);

void push_aggregate(lua_State* L, resp::Reader& r, const resp::Item& item) {
  luaL_checkstack(L, 4, "RESP reply nests too deeply");
  if (item.type == resp::Type::Map) {
    lua_createtable(L, 0, static_cast<int>(std::min<int64_t>(item.integer, 1 << 20)));
    for (int64_t i = 0; i < item.integer; ++i) {
      push_value(L, r);
      if (lua_type(L, -1) == LUA_TNUMBER && std::isnan(lua_tonumber(L, -1))) {
        lua_pop(L, 1);
        lua_pushliteral(L, "nan");  // Lua tables refuse NaN keys
      }
      push_value(L, r);
      lua_rawset(L, -3);
    }
    return;
  }
  lua_createtable(L, static_cast<int>(std::min<int64_t>(item.integer, 1 << 20)), 0);
  for (int64_t i = 1; i <= item.integer; ++i) {
    push_value(L, r);
    lua_rawseti(L, -2, static_cast<int>(i));
  }
}

void skip_value(resp::Reader& r) {
  int64_t pending = 1;
  while (pending > 0) {
    resp::Item item = r.next();
    pending += item.children() - (item.type == resp::Type::Attribute ? 0 : 1);
  }
}

void push_value(lua_State* L, resp::Reader& r) {
  resp::Item item = r.next();
  while (item.type == resp::Type::Attribute) {  // metadata about the next value: dropped
    for (int64_t i = 0; i < item.children(); ++i) skip_value(r);
    item = r.next();
  }
  if (item.null) {
    push_registry(L, &kNullKey);
    return;
  }
  switch (item.type) {
    case resp::Type::Integer:
      push_integer(L, item.integer);
      return;
    case resp::Type::Double:
      lua_pushnumber(L, item.number);
      return;
    case resp::Type::Boolean:
      lua_pushboolean(L, item.integer != 0);
      return;
    case resp::Type::Error:
    case resp::Type::BlobError:
      push_error(L, item.text);
      return;
    case resp::Type::Array:
    case resp::Type::Set:
    case resp::Type::Push:
    case resp::Type::Map:
      push_aggregate(L, r, item);
      return;
    default:
      lua_pushlstring(L, item.text.data(), item.text.size());
      return;
  }
}

// pop(p) -> 1, value | 2, err (an error reply) | 3, array (a push) | nil | false, message
int l_pop(lua_State* L) {
  resp::Parser* p = check(L);
  switch (p->poll()) {
    case resp::Parser::Status::NeedMore:
      return 0;
    case resp::Parser::Status::Invalid:
      lua_pushboolean(L, 0);
      lua_pushstring(L, p->error().c_str());
      return 2;
    case resp::Parser::Status::Ready:
      break;
  }
  resp::Reader r = p->reply();
  // The top item's type picks the tag; push_value reads it again.
  resp::Reader peek = r;
  resp::Item top = peek.next();
  while (top.type == resp::Type::Attribute) {
    for (int64_t i = 0; i < top.children(); ++i) skip_value(peek);
    top = peek.next();
  }
  int tag = top.type == resp::Type::Error || top.type == resp::Type::BlobError ? 2
            : top.type == resp::Type::Push                                     ? 3
                                                                               : 1;
  lua_pushinteger(L, tag);
  push_value(L, r);
  p->consume();
  return 2;
}

// encode(...) -> the command's wire bytes | nil, index, typename
int l_encode(lua_State* L) {
  int n = lua_gettop(L);
  std::vector<std::string_view> parts;
  parts.reserve(static_cast<size_t>(n));
  for (int i = 1; i <= n; ++i) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      lua_pushnil(L);
      lua_pushinteger(L, i);
      lua_pushstring(L, lua_typename(L, t));
      return 3;
    }
    size_t len = 0;
    const char* s = lua_tolstring(L, i, &len);  // numbers become their text in place
    parts.emplace_back(s, len);
  }
  std::string out;
  resp::encode_command(out, parts);
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int l_buffered(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check(L)->buffered()));
  return 1;
}

int l_set_error_maker(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushlightuserdata(L, &kErrorMakerKey);
  lua_pushvalue(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 0;
}

int null_tostring(lua_State* L) {
  lua_pushliteral(L, "redis.null");
  return 1;
}

}  // namespace

int open_resp(lua_State* L) {
  if (luaL_newmetatable(L, kParserMeta)) {
    lua_pushcfunction(L, Boxed<resp::Parser>::gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  // The null sentinel: one per Lua state, made once, printed as "redis.null".
  push_registry(L, &kNullKey);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
    lua_pushlightuserdata(L, &kNullKey);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  const luaL_Reg fns[] = {
      {"parser", l_parser}, {"feed", l_feed},         {"pop", l_pop},
      {"encode", l_encode}, {"buffered", l_buffered}, {"setErrorMaker", l_set_error_maker},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, fns);
  lua_insert(L, -2);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace evo
