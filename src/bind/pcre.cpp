// evo.pcre: the natives behind ngx.re (lib/ngx/re.lua) on src/proto/regex.
// Only compiling and matching are native; captures tables, ctx.pos, the
// replacement templates and iteration are Lua, where LuaJIT makes them cheap.
#include "proto/regex.h"

#include <lua.hpp>

#include <string>
#include <vector>

#include "lua/boxed.h"

namespace evo {

namespace {

namespace rx = proto::regex;
constexpr const char* kRegexMeta = "evo.Regex";

// compile(pattern, flags) -> regex | nil, err (a bad pattern) | false, err
// (an unknown option letter: the caller raises it, as OpenResty does).
int l_compile(lua_State* L) {
  size_t plen = 0, flen = 0;
  const char* pattern = luaL_checklstring(L, 1, &plen);
  const char* flags = luaL_optlstring(L, 2, "", &flen);
  rx::Options opts;
  std::string err;
  if (!rx::parse_options({flags, flen}, &opts, &err)) {
    lua_pushboolean(L, 0);
    lua_pushlstring(L, err.data(), err.size());
    return 2;
  }
  auto re = rx::Regex::compile({pattern, plen}, opts, &err);
  if (!re) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 2;
  }
  Boxed<rx::Regex>::push(L, std::move(re), kRegexMeta);
  return 1;
}

// exec(re, subject, offset, out) -> pairs | 0 (no match) | nil, err.
// out[2i+1], out[2i+2] get group i's 0-based start and end (-1 when unset):
// one reused table instead of a table per match.
int l_exec(lua_State* L) {
  auto* re = Boxed<rx::Regex>::check(L, 1, kRegexMeta);
  size_t len = 0;
  const char* s = luaL_checklstring(L, 2, &len);
  lua_Integer offset = luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (offset < 0) offset = 0;
  thread_local std::vector<size_t> ovec;
  std::string err;
  int pairs = re->match({s, len}, static_cast<size_t>(offset), &ovec, &err);
  if (pairs < 0) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 2;
  }
  for (int i = 0; i < pairs * 2; ++i) {
    size_t v = ovec[static_cast<size_t>(i)];
    lua_pushnumber(L, v == rx::Regex::npos ? -1 : static_cast<lua_Number>(v));
    lua_rawseti(L, 4, i + 1);
  }
  lua_pushinteger(L, pairs);
  return 1;
}

// info(re) -> captures, names ({name = {group, ...}} or nil), utf
int l_info(lua_State* L) {
  auto* re = Boxed<rx::Regex>::check(L, 1, kRegexMeta);
  lua_pushinteger(L, re->captures());
  auto names = re->names();
  if (names.empty()) {
    lua_pushnil(L);
  } else {
    lua_newtable(L);
    for (const auto& [name, group] : names) {
      lua_getfield(L, -1, name.c_str());
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name.c_str());
      }
      lua_pushinteger(L, group);
      lua_rawseti(L, -2, static_cast<int>(lua_objlen(L, -2)) + 1);
      lua_pop(L, 1);
    }
  }
  lua_pushboolean(L, re->utf() ? 1 : 0);
  return 3;
}

}  // namespace

int open_pcre(lua_State* L) {
  luaL_newmetatable(L, kRegexMeta);
  lua_pushcfunction(L, Boxed<rx::Regex>::gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"compile", l_compile}, {"exec", l_exec}, {"info", l_info}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  // ngx.null is OpenResty's NULL light userdata, the same value as
  // lua-cjson's cjson.null, so the two compare equal. Lua cannot make one.
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace evo
