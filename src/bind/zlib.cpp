// evo.zlib: the native half of lib/zlib.lua (gzip, zlib, raw DEFLATE and
// Brotli, one-shot and streaming) over the engines of src/proto/compress.
// Argument checks with the user's function names live in lib/zlib.lua;
// these natives trust their arguments' types.
//
//   native.compress(format, data, level, window)       -> string | nil, err
//   native.decompress(format, data, maxOutput)         -> string | nil, err
//   native.encoder(format, level, window)              -> enc | nil
//   enc:write(data, flush)  (flush 0 none, 1 sync, 2 finish) -> string | nil, err
//   native.decoder(format, maxOutput)                  -> dec
//   dec:write(data) / dec:finish()                     -> string | nil, err
//   native.crc32(data [, crc])                         -> number
// err is an Evo error: code "BadData" or "TooLarge".
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "proto/compress.h"

namespace evo {
namespace {

namespace cz = proto::compress;

constexpr const char* kEncoderMeta = "evo.ZlibEncoder";
constexpr const char* kDecoderMeta = "evo.ZlibDecoder";

cz::Format check_format(lua_State* L, int idx) {
  size_t len = 0;
  const char* name = luaL_checklstring(L, idx, &len);
  cz::Format f{};
  if (!cz::parse_format(std::string_view(name, len), &f)) luaL_argerror(L, idx, "unknown format");
  return f;
}

// A bound given as a Lua number: math.huge (or anything past SIZE_MAX) is none.
size_t check_bound(lua_State* L, int idx) {
  lua_Number n = luaL_checknumber(L, idx);
  if (n < 0) luaL_argerror(L, idx, "maxOutput must not be negative");
  if (n >= static_cast<lua_Number>(SIZE_MAX)) return SIZE_MAX;
  return static_cast<size_t>(n);
}

std::string_view check_view(lua_State* L, int idx) {
  size_t len = 0;
  const char* data = luaL_checklstring(L, idx, &len);
  return {data, len};
}

int push_status_error(lua_State* L, cz::Status s, const std::string& why) {
  lua_pushnil(L);
  errors::push_error(L, cz::status_code(s), why);
  return 2;
}

int push_string(lua_State* L, const std::string& s) {
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

cz::EncoderOptions encoder_options(lua_State* L, int level_idx, int window_idx) {
  cz::EncoderOptions o;
  o.level = static_cast<int>(luaL_optinteger(L, level_idx, -1));
  o.window = static_cast<int>(luaL_optinteger(L, window_idx, 0));
  return o;
}

// compress(format, data, level, window)
int l_compress(lua_State* L) {
  cz::Format f = check_format(L, 1);
  std::string_view data = check_view(L, 2);
  auto enc = cz::make_encoder(f, encoder_options(L, 3, 4));
  if (!enc) return luaL_error(L, "invalid compression options");
  std::string out;
  if (!enc->write(data, cz::Flush::Finish, out))
    return push_status_error(L, cz::Status::BadData, enc->error());
  return push_string(L, out);
}

// decompress(format, data, maxOutput)
int l_decompress(lua_State* L) {
  cz::Format f = check_format(L, 1);
  std::string_view data = check_view(L, 2);
  size_t bound = check_bound(L, 3);
  auto dec = cz::make_decoder(f, bound);
  std::string out;
  // One allocation for the whole output where the gzip trailer tells its size
  // (+1: the byte that would show the bound passed). A trailer can lie, so
  // it is believed only up to 16 times the input (text compresses 3-10x;
  // beyond that, such as a bomb, the output grows as it comes).
  if (size_t hint = cz::gzip_size_hint(data); hint > 0) {
    out.reserve(std::min({hint, bound, data.size() * 16 + 65536}) + 1);
  }
  cz::Status s = dec->write(data, out);
  if (s == cz::Status::Ok || s == cz::Status::End) s = dec->finish(out);
  if (s != cz::Status::End) return push_status_error(L, s, dec->error());
  return push_string(L, out);
}

int l_encoder(lua_State* L) {
  cz::Format f = check_format(L, 1);
  auto enc = cz::make_encoder(f, encoder_options(L, 2, 3));
  if (!enc) return 0;
  Boxed<cz::Encoder>::push(L, std::move(enc), kEncoderMeta);
  return 1;
}

int l_decoder(lua_State* L) {
  cz::Format f = check_format(L, 1);
  Boxed<cz::Decoder>::push(L, cz::make_decoder(f, check_bound(L, 2)), kDecoderMeta);
  return 1;
}

// enc:write(data, flush)
int l_encoder_write(lua_State* L) {
  auto* enc = Boxed<cz::Encoder>::check(L, 1, kEncoderMeta);
  std::string_view data = check_view(L, 2);
  lua_Integer mode = luaL_optinteger(L, 3, 0);
  cz::Flush flush = mode == 2 ? cz::Flush::Finish : mode == 1 ? cz::Flush::Sync : cz::Flush::None;
  std::string out;
  if (!enc->write(data, flush, out)) return push_status_error(L, cz::Status::BadData, enc->error());
  return push_string(L, out);
}

// dec:write(data)
int l_decoder_write(lua_State* L) {
  auto* dec = Boxed<cz::Decoder>::check(L, 1, kDecoderMeta);
  std::string_view data = check_view(L, 2);
  std::string out;
  cz::Status s = dec->write(data, out);
  if (s != cz::Status::Ok && s != cz::Status::End) return push_status_error(L, s, dec->error());
  return push_string(L, out);
}

// dec:finish(): the rest, or an error when the stream did not end.
int l_decoder_finish(lua_State* L) {
  auto* dec = Boxed<cz::Decoder>::check(L, 1, kDecoderMeta);
  std::string out;
  cz::Status s = dec->finish(out);
  if (s != cz::Status::End) return push_status_error(L, s, dec->error());
  return push_string(L, out);
}

// dec:totalOut() -> bytes decompressed so far
int l_decoder_total(lua_State* L) {
  auto* dec = Boxed<cz::Decoder>::check(L, 1, kDecoderMeta);
  lua_pushnumber(L, static_cast<lua_Number>(dec->total_out()));
  return 1;
}

int l_crc32(lua_State* L) {
  std::string_view data = check_view(L, 1);
  auto crc = static_cast<uint32_t>(luaL_optnumber(L, 2, 0));
  lua_pushnumber(L, cz::crc32(crc, data));
  return 1;
}

void register_class(lua_State* L, const char* meta, const luaL_Reg* methods, lua_CFunction gc) {
  luaL_newmetatable(L, meta);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  luaL_register(L, nullptr, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

}  // namespace

int open_zlib(lua_State* L) {
  const luaL_Reg encoder_methods[] = {{"write", l_encoder_write}, {nullptr, nullptr}};
  const luaL_Reg decoder_methods[] = {{"write", l_decoder_write},
                                      {"finish", l_decoder_finish},
                                      {"totalOut", l_decoder_total},
                                      {nullptr, nullptr}};
  register_class(L, kEncoderMeta, encoder_methods, Boxed<cz::Encoder>::gc);
  register_class(L, kDecoderMeta, decoder_methods, Boxed<cz::Decoder>::gc);
  const luaL_Reg functions[] = {
      {"compress", l_compress}, {"decompress", l_decompress}, {"encoder", l_encoder},
      {"decoder", l_decoder},   {"crc32", l_crc32},           {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
