// evo.encoding: the native half of the base64, hex and uuid modules (their
// text forms; src/proto/encoding.*). Pure computation, so it loads in worker
// states too. Arguments are checked by the Lua wrappers (lib/base64.lua,
// lib/hex.lua, lib/uuid.lua), which name the function as the user called it;
// the checks here only keep a direct call from crashing.
#include <string>
#include <string_view>

#include "lua/errors.h"
#include "lua/modules.h"
#include "proto/encoding.h"

namespace evo {
namespace {

std::string_view check_view(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, idx, &len);
  return {s, len};
}

int push_string(lua_State* L, const std::string& s) {
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

// nil, err {code, message, position}: the position is 1-based, as in the message.
int push_decode_error(lua_State* L, const char* code, const char* what, const encoding::DecodeError& e) {
  lua_pushnil(L);
  errors::push_error(L, code, e.message(what));
  lua_pushinteger(L, static_cast<lua_Integer>(e.offset) + 1);
  lua_setfield(L, -2, "position");
  return 2;
}

// b64encode(s, url) -> text
int l_b64encode(lua_State* L) {
  std::string out;
  encoding::base64_encode(check_view(L, 1), lua_toboolean(L, 2) != 0, &out);
  return push_string(L, out);
}

// b64decode(text, url) -> bytes | nil, err
int l_b64decode(lua_State* L) {
  std::string out;
  encoding::DecodeError e;
  if (!encoding::base64_decode(check_view(L, 1), lua_toboolean(L, 2) != 0, &out, &e))
    return push_decode_error(L, "BadBase64", "base64", e);
  return push_string(L, out);
}

int l_hexencode(lua_State* L) {
  std::string out;
  encoding::hex_encode(check_view(L, 1), &out);
  return push_string(L, out);
}

int l_hexdecode(lua_State* L) {
  std::string out;
  encoding::DecodeError e;
  if (!encoding::hex_decode(check_view(L, 1), &out, &e)) return push_decode_error(L, "BadHex", "hex", e);
  return push_string(L, out);
}

// uuidParse(text) -> 16 bytes | nil
int l_uuid_parse(lua_State* L) {
  uint8_t bytes[16];
  if (!encoding::uuid_parse(check_view(L, 1), bytes)) return 0;
  lua_pushlstring(L, reinterpret_cast<const char*>(bytes), sizeof(bytes));
  return 1;
}

// uuidFormat(bytes) -> text (bytes must be 16 long: the wrapper checks)
int l_uuid_format(lua_State* L) {
  std::string_view b = check_view(L, 1);
  if (b.size() != 16) return luaL_argerror(L, 1, "16 bytes expected");
  char text[36];
  encoding::uuid_format(reinterpret_cast<const uint8_t*>(b.data()), text);
  lua_pushlstring(L, text, sizeof(text));
  return 1;
}

}  // namespace

int open_encoding(lua_State* L) {
  const luaL_Reg functions[] = {
      {"b64encode", l_b64encode}, {"b64decode", l_b64decode},  {"hexEncode", l_hexencode},
      {"hexDecode", l_hexdecode}, {"uuidParse", l_uuid_parse}, {"uuidFormat", l_uuid_format},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
