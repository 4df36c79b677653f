// evo.zlib: streaming inflate and deflate with zlib, for the HTTP client's
// Content-Encoding (gzip, deflate) and for scripts (require("zlib")).
//
//   local z = native.inflater("gzip")      -- "gzip", "zlib", "raw" or "auto"
//   local out, err = z:update(chunk)       -- as much as decodes so far
//   local rest = z:finish()                -- "" and checks the stream ended
// Output is bounded (maxOutput, 64 MiB by default) so a small compressed body
// cannot expand without limit.
#include <zlib.h>

#include <memory>
#include <string>

#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"

namespace evo {
namespace {

constexpr const char* kCodecMeta = "evo.ZlibCodec";

int window_bits(lua_State* L, int idx, bool inflate) {
  const char* format = luaL_optstring(L, idx, inflate ? "auto" : "gzip");
  std::string f(format);
  if (f == "gzip") return 15 + 16;
  if (f == "zlib") return 15;
  if (f == "raw") return -15;
  if (f == "auto" && inflate) return 15 + 32;  // gzip or zlib, by the header
  luaL_argerror(L, idx, R"(format must be "gzip", "zlib", "raw" or "auto")");
  return 0;
}

class Codec {
 public:
  Codec(bool inflate, int bits, int level, size_t max_output) : inflate_(inflate), max_output_(max_output) {
    ok_ = (inflate ? inflateInit2(&z_, bits)
                   : deflateInit2(&z_, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY)) == Z_OK;
  }
  ~Codec() {
    if (!ok_) return;
    if (inflate_) {
      inflateEnd(&z_);
    } else {
      deflateEnd(&z_);
    }
  }
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  // Runs the codec over input; false with error() on corrupt data or when
  // the output would pass the bound.
  bool run(const char* data, size_t len, int flush, std::string* out) {
    if (!ok_) return fail("zlib could not start");
    if (ended_) return len == 0 || fail("data after the end of the compressed stream");
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(len);
    char buf[16384];
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof(buf);
      int rc = inflate_ ? ::inflate(&z_, flush) : ::deflate(&z_, flush);
      size_t produced = sizeof(buf) - z_.avail_out;
      total_ += produced;
      if (total_ > max_output_) return fail("the decompressed data is larger than the limit");
      out->append(buf, produced);
      if (rc == Z_STREAM_END) {
        ended_ = true;
        return true;
      }
      if (rc == Z_BUF_ERROR) return true;  // needs more input (or output is flushed)
      if (rc != Z_OK) return fail(z_.msg != nullptr ? z_.msg : "corrupt compressed data");
      if (z_.avail_out != 0 && z_.avail_in == 0) return true;
    }
  }
  [[nodiscard]] bool ended() const { return ended_; }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& why) {
    error_ = why;
    return false;
  }
  z_stream z_{};
  bool inflate_;
  bool ok_ = false;
  bool ended_ = false;
  size_t max_output_;
  size_t total_ = 0;
  std::string error_;
};

int push_fail(lua_State* L, const std::string& why) {
  lua_pushnil(L);
  errors::push_error(L, "ZlibError", why);
  return 2;
}

// inflater([format [, maxOutput]]) -> object
int l_inflater(lua_State* L) {
  int bits = window_bits(L, 1, true);
  auto max = static_cast<size_t>(luaL_optnumber(L, 2, 64.0 * 1024 * 1024));
  Boxed<Codec>::push(L, std::make_unique<Codec>(true, bits, 0, max), kCodecMeta);
  return 1;
}

// deflater([format [, level]]) -> object
int l_deflater(lua_State* L) {
  int bits = window_bits(L, 1, false);
  int level = static_cast<int>(luaL_optinteger(L, 2, Z_DEFAULT_COMPRESSION));
  Boxed<Codec>::push(L, std::make_unique<Codec>(false, bits, level, SIZE_MAX), kCodecMeta);
  return 1;
}

Codec* check_codec(lua_State* L) { return Boxed<Codec>::check(L, 1, kCodecMeta); }

// codec:update(data) -> output | nil, err
int l_update(lua_State* L) {
  Codec* c = check_codec(L);
  size_t len = 0;
  const char* data = luaL_checklstring(L, 2, &len);
  std::string out;
  if (!c->run(data, len, Z_NO_FLUSH, &out)) return push_fail(L, c->error());
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// codec:finish() -> the rest | nil, err (an inflater whose stream did not end)
int l_finish(lua_State* L) {
  Codec* c = check_codec(L);
  std::string out;
  if (!c->run("", 0, Z_FINISH, &out)) return push_fail(L, c->error());
  if (!c->ended()) return push_fail(L, "the compressed data ended early");
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

}  // namespace

int open_zlib(lua_State* L) {
  {
    luaL_newmetatable(L, kCodecMeta);
    lua_pushcfunction(L, Boxed<Codec>::gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, l_update);
    lua_setfield(L, -2, "update");
    lua_pushcfunction(L, l_finish);
    lua_setfield(L, -2, "finish");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
  }
  const luaL_Reg functions[] = {
      {"inflater", l_inflater},
      {"deflater", l_deflater},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
