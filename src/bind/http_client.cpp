// evo.httpresponse: the HTTP/1 response parser (src/proto/http_response_parser.h)
// for Lua. lib/evo/httpclient.lua and ws.connect (lib/ws.lua) feed it what
// they read from a net Stream and pull events:
//
//   local p = native.parser(isHead [, maxHeaderBytes])
//   native.feed(p, bytes)              -- what stream:read() returned
//   native.finish(p)                   -- stream:read() returned nil: the connection ended
//   local kind, a, b = native.next(p)  -- one event, or nothing: feed more
//     "head", {status, reason, version, headers, keepAlive, framing, contentLength, upgrade}
//     "body", bytes                    -- the body as it is parsed (the transfer coding removed)
//     "done", rest, trailers           -- the response is over; rest: the bytes after it;
//                                      -- trailers: a chunked body's (a table like headers), or nil
//     "error", message, eof            -- eof: the connection ended too early
//
// headers: lower-case names; repeated ones joined with ", ", set-cookie a list.
// framing: "none", "length", "chunked" or "eof" (the body runs until the end).
#include <memory>
#include <string>

#include "bind/http_client.h"
#include "lua/boxed.h"
#include "proto/http_response_parser.h"

namespace evo {
namespace {

constexpr const char* kParserMeta = "evo.HttpResponseParser";

struct LuaParser {
  http::ResponseParser parser;
  std::string rest;  // bytes fed after the end of the response
  bool head_reported = false;
  explicit LuaParser(http::ResponseLimits limits) : parser(limits) {}
};

LuaParser* check(lua_State* L) { return Boxed<LuaParser>::check(L, 1, kParserMeta); }

// parser(isHead [, maxHeaderBytes]) -> parser
int l_parser(lua_State* L) {
  bool head = lua_toboolean(L, 1) != 0;
  http::ResponseLimits limits;
  if (!lua_isnoneornil(L, 2)) {
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 1, 2, "a positive byte count expected");
    limits.max_header_bytes = static_cast<size_t>(n);
  }
  auto p = std::make_unique<LuaParser>(limits);
  p->parser.reset(head);
  Boxed<LuaParser>::push(L, std::move(p), kParserMeta);
  return 1;
}

// feed(parser, bytes)
int l_feed(lua_State* L) {
  LuaParser* p = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  std::string_view bytes(data, n);
  if (p->parser.complete()) {
    p->rest.append(bytes);
    return 0;
  }
  size_t used = 0;
  if (p->parser.feed(bytes, &used) == http::ResponseParser::Result::Complete) {
    p->rest.append(bytes.substr(used));
  }
  return 0;
}

// finish(parser): the connection ended.
int l_finish(lua_State* L) {
  check(L)->parser.finish();
  return 0;
}

const char* framing_name(http::Framing f) {
  switch (f) {
    case http::Framing::None:
      return "none";
    case http::Framing::Length:
      return "length";
    case http::Framing::Chunked:
      return "chunked";
    case http::Framing::UntilEof:
      return "eof";
  }
  return "none";
}

void push_head(lua_State* L, const http::Response& r) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r.reason.data(), r.reason.size());
  lua_setfield(L, -2, "reason");
  lua_pushfstring(L, "%d.%d", r.version_major, r.version_minor);
  lua_setfield(L, -2, "version");
  push_response_headers(L, r.headers);
  lua_setfield(L, -2, "headers");
  lua_pushboolean(L, r.keep_alive ? 1 : 0);
  lua_setfield(L, -2, "keepAlive");
  lua_pushboolean(L, r.upgrade ? 1 : 0);
  lua_setfield(L, -2, "upgrade");
  lua_pushstring(L, framing_name(r.framing));
  lua_setfield(L, -2, "framing");
  if (r.framing == http::Framing::Length) {
    lua_pushnumber(L, static_cast<lua_Number>(r.content_length));
    lua_setfield(L, -2, "contentLength");
  }
}

// next(parser) -> kind, ... | nothing
int l_next(lua_State* L) {
  LuaParser* p = check(L);
  http::ResponseParser& parser = p->parser;
  if (parser.headers_done() && !p->head_reported) {
    p->head_reported = true;
    lua_pushliteral(L, "head");
    push_head(L, parser.response());
    return 2;
  }
  if (!parser.body().empty()) {
    lua_pushliteral(L, "body");
    lua_pushlstring(L, parser.body().data(), parser.body().size());
    parser.body().clear();
    return 2;
  }
  if (!parser.error().empty()) {
    lua_pushliteral(L, "error");
    lua_pushlstring(L, parser.error().data(), parser.error().size());
    lua_pushboolean(L, parser.eof() ? 1 : 0);
    return 3;
  }
  if (parser.complete()) {
    lua_pushliteral(L, "done");
    lua_pushlstring(L, p->rest.data(), p->rest.size());
    p->rest.clear();
    if (parser.trailers().empty()) return 2;
    push_response_headers(L, parser.trailers());
    parser.trailers().clear();
    return 3;
  }
  return 0;
}

}  // namespace

// A response's headers as the HTTP/1.1 and HTTP/2 clients give them: one
// field per name, repeated ones joined with ", ", set-cookie as a list.
void push_response_headers(lua_State* L, const http::HeaderList& headers) {
  lua_createtable(L, 0, static_cast<int>(headers.size()));
  for (const auto& [name, value] : headers) {
    lua_pushlstring(L, name.data(), name.size());
    lua_rawget(L, -2);
    bool cookie = name == "set-cookie";
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, name.data(), name.size());
      if (cookie) {
        lua_createtable(L, 1, 0);
        lua_pushlstring(L, value.data(), value.size());
        lua_rawseti(L, -2, 1);
      } else {
        lua_pushlstring(L, value.data(), value.size());
      }
      lua_rawset(L, -3);
    } else if (cookie) {
      lua_pushlstring(L, value.data(), value.size());
      lua_rawseti(L, -2, static_cast<int>(lua_objlen(L, -2)) + 1);
      lua_pop(L, 1);
    } else {
      size_t len = 0;
      const char* old = lua_tolstring(L, -1, &len);
      std::string joined(old, len);
      lua_pop(L, 1);
      joined += ", ";
      joined += value;
      lua_pushlstring(L, name.data(), name.size());
      lua_pushlstring(L, joined.data(), joined.size());
      lua_rawset(L, -3);
    }
  }
}

int open_httpresponse(lua_State* L) {
  luaL_newmetatable(L, kParserMeta);
  lua_pushcfunction(L, Boxed<LuaParser>::gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"parser", l_parser}, {"feed", l_feed}, {"finish", l_finish}, {"next", l_next}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
