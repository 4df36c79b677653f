// evo.httpkit: the native halves of http's web-app kit (lib/http.lua):
// the Cookie header parser, cookie name/value checks and the streaming
// multipart/form-data parser (the engines are in src/proto).
//
//   native.parseCookies("a=1; b=x%20y")        -> {a = "1", b = "x y"}
//   native.cookieName(s), native.cookieValue(s) -> boolean
//   local p = native.multipart(boundary [, maxHeaderBytes]) -- or nil, err
//   p:feed(chunk) -> events | nil, err; p:finish() -> true | nil, err
// Events are one list per feed: a table {name, filename, contentType,
// headers} opens a part, a string is a piece of its body, false ends it.
#include <memory>
#include <string>
#include <string_view>

#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "proto/cookie.h"
#include "proto/multipart.h"

namespace evo {
namespace {

constexpr const char* kMultipartMeta = "evo.MultipartParser";

std::string_view check_sv(lua_State* L, int idx) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, idx, &n);
  return {s, n};
}

void set_string(lua_State* L, const char* key, std::string_view value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}

// parseCookies(header) -> {name = value}: the first of a repeated name wins
// (browsers send the cookie with the longest path first).
int l_parse_cookies(lua_State* L) {
  std::string_view header = lua_isnoneornil(L, 1) ? std::string_view() : check_sv(L, 1);
  lua_newtable(L);
  cookie::parse(header, [L](std::string_view name, std::string_view value) {
    lua_pushlstring(L, name.data(), name.size());
    lua_rawget(L, -2);
    bool seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen) return;
    lua_pushlstring(L, name.data(), name.size());
    if (value.find('%') == std::string_view::npos) {
      lua_pushlstring(L, value.data(), value.size());
    } else {
      std::string decoded = cookie::decode(value);
      lua_pushlstring(L, decoded.data(), decoded.size());
    }
    lua_rawset(L, -3);
  });
  return 1;
}

int l_cookie_name(lua_State* L) {
  lua_pushboolean(L, cookie::valid_name(check_sv(L, 1)) ? 1 : 0);
  return 1;
}

int l_cookie_value(lua_State* L) {
  lua_pushboolean(L, cookie::valid_value(check_sv(L, 1)) ? 1 : 0);
  return 1;
}

// Appends the parser's events to the table at the top of the stack.
class LuaSink : public multipart::Sink {
 public:
  explicit LuaSink(lua_State* L) : L_(L), table_(lua_gettop(L)) {}

  void on_part(const multipart::Part& part) override {
    lua_createtable(L_, 0, 4);
    set_string(L_, "name", part.name);
    if (part.has_filename) set_string(L_, "filename", part.filename);
    set_string(L_, "contentType", part.content_type);
    lua_createtable(L_, 0, static_cast<int>(part.headers.size()));
    for (const auto& [name, value] : part.headers) set_string(L_, name.c_str(), value);
    lua_setfield(L_, -2, "headers");
    lua_rawseti(L_, table_, ++n_);
  }
  void on_data(std::string_view bytes) override {
    lua_pushlstring(L_, bytes.data(), bytes.size());
    lua_rawseti(L_, table_, ++n_);
  }
  void on_part_end() override {
    lua_pushboolean(L_, 0);
    lua_rawseti(L_, table_, ++n_);
  }

 private:
  lua_State* L_;
  int table_;
  int n_ = 0;
};

int push_fail(lua_State* L, const std::string& why) {
  lua_pushnil(L);
  errors::push_error(L, "BadMultipart", why);
  return 2;
}

// multipart(boundary [, maxHeaderBytes]) -> parser | nil, err
int l_multipart(lua_State* L) {
  std::string_view boundary = check_sv(L, 1);
  if (!multipart::Parser::valid_boundary(boundary)) return push_fail(L, "invalid multipart boundary");
  multipart::Limits limits;
  if (!lua_isnoneornil(L, 2)) limits.max_header_bytes = static_cast<size_t>(luaL_checkinteger(L, 2));
  Boxed<multipart::Parser>::push(L, std::make_unique<multipart::Parser>(boundary, limits), kMultipartMeta);
  return 1;
}

multipart::Parser* check_parser(lua_State* L) {
  return Boxed<multipart::Parser>::check(L, 1, kMultipartMeta);
}

// parser:feed(chunk) -> events | nil, err
int l_feed(lua_State* L) {
  multipart::Parser* p = check_parser(L);
  std::string_view chunk = check_sv(L, 2);
  lua_newtable(L);
  LuaSink sink(L);
  if (!p->feed(chunk, sink)) return push_fail(L, p->error());
  return 1;
}

// parser:finish() -> true | nil, err
int l_finish(lua_State* L) {
  multipart::Parser* p = check_parser(L);
  if (!p->finish()) return push_fail(L, p->error());
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

int open_httpkit(lua_State* L) {
  luaL_newmetatable(L, kMultipartMeta);
  lua_pushcfunction(L, Boxed<multipart::Parser>::gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lua_pushcfunction(L, l_feed);
  lua_setfield(L, -2, "feed");
  lua_pushcfunction(L, l_finish);
  lua_setfield(L, -2, "finish");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"parseCookies", l_parse_cookies},
      {"cookieName", l_cookie_name},
      {"cookieValue", l_cookie_value},
      {"multipart", l_multipart},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
