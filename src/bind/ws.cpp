// evo.ws: the WebSocket protocol engine (src/proto/ws_protocol.h) for Lua.
// lib/ws.lua moves the bytes between a session and a net Stream, so the same
// code serves both Io modes, the server (after an HTTP upgrade) and the
// client, over TCP or TLS.
//
//   local s = native.session("server", {maxMessage = n}, deflateOptions|nil)
//   local ok, out = native.feed(s, bytes)      -- out: bytes to send now (pongs, close echo) or nil
//   local kind, data, extra = native.next(s)  -- "message"/"ping"/"pong"/"close", or nil: need more
//   local n = native.take(s, q)               -- every pending event into q[1..3n], as next() gives them
//   local frame = native.send(s, data, binary) -- the wire bytes, or nil when sending is over
//   native.sendTo(s, data, binary, stream, yieldable) -- the frame written to a net Stream
#include <deque>
#include <memory>
#include <string>

#include "io/stream.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "proto/ws_protocol.h"

namespace evo {
namespace {

constexpr const char* kSessionMeta = "evo.WsSession";

struct WsSession {
  ws::Session session;
  std::deque<ws::Event> events;
  std::vector<ws::Event> scratch;
  WsSession(ws::Role role, ws::Limits limits, const ws::DeflateOptions* deflate)
      : session(role, limits, deflate) {}
};

// The natives' upvalues (open_ws): the event kinds next() returns, pushed
// once per message without lua_pushliteral's interning of the name.
enum Upvalue : int { kMessageUp = 1, kPingUp, kPongUp, kCloseUp, kUpvalues = kCloseUp };

WsSession* check(lua_State* L) { return Boxed<WsSession>::check(L, 1, kSessionMeta); }

bool read_deflate(lua_State* L, int idx, ws::DeflateOptions* o) {
  if (!lua_istable(L, idx)) return false;
  lua_getfield(L, idx, "serverNoContextTakeover");
  o->server_no_context_takeover = lua_toboolean(L, -1) != 0;
  lua_getfield(L, idx, "clientNoContextTakeover");
  o->client_no_context_takeover = lua_toboolean(L, -1) != 0;
  lua_getfield(L, idx, "serverMaxWindowBits");
  if (lua_isnumber(L, -1)) o->server_max_window_bits = static_cast<int>(lua_tointeger(L, -1));
  lua_getfield(L, idx, "clientMaxWindowBits");
  if (lua_isnumber(L, -1)) o->client_max_window_bits = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 4);
  return true;
}

void push_deflate(lua_State* L, const ws::DeflateOptions& o) {
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, o.server_no_context_takeover ? 1 : 0);
  lua_setfield(L, -2, "serverNoContextTakeover");
  lua_pushboolean(L, o.client_no_context_takeover ? 1 : 0);
  lua_setfield(L, -2, "clientNoContextTakeover");
  lua_pushinteger(L, o.server_max_window_bits);
  lua_setfield(L, -2, "serverMaxWindowBits");
  lua_pushinteger(L, o.client_max_window_bits);
  lua_setfield(L, -2, "clientMaxWindowBits");
}

// session(role, opts, deflate) -> session
int l_session(lua_State* L) {
  std::string role = luaL_checkstring(L, 1);
  ws::Limits limits;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "maxMessage");
    if (lua_isnumber(L, -1)) limits.max_message = static_cast<size_t>(lua_tonumber(L, -1));
    lua_getfield(L, 2, "maxFrame");
    if (lua_isnumber(L, -1)) limits.max_frame = static_cast<size_t>(lua_tonumber(L, -1));
    lua_pop(L, 2);
  }
  ws::DeflateOptions deflate;
  bool with_deflate = read_deflate(L, 3, &deflate);
  Boxed<WsSession>::push(L,
                         std::make_unique<WsSession>(role == "client" ? ws::Role::Client : ws::Role::Server,
                                                     limits, with_deflate ? &deflate : nullptr),
                         kSessionMeta);
  return 1;
}

// Pushes the session's pending output, or nil when there is none. The
// output buffer is cleared, not taken, so it keeps its capacity.
void push_output(lua_State* L, WsSession* s) {
  if (!s->session.has_output()) {
    lua_pushnil(L);
    return;
  }
  std::string_view out = s->session.output();
  lua_pushlstring(L, out.data(), out.size());
  s->session.clear_output();
}

// feed(s, bytes) -> ok, output|nil
int l_feed(lua_State* L) {
  WsSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  s->scratch.clear();
  bool ok = s->session.feed(std::string_view(data, n), &s->scratch);
  for (auto& e : s->scratch) s->events.push_back(std::move(e));
  lua_pushboolean(L, ok ? 1 : 0);
  push_output(L, s);
  return 2;
}

// Pushes an event as next() returns it: kind, data, and binary|code (nil
// for a ping or a pong).
void push_event(lua_State* L, const ws::Event& e) {
  switch (e.kind) {
    case ws::Event::Kind::Message:
      lua_pushvalue(L, lua_upvalueindex(kMessageUp));
      break;
    case ws::Event::Kind::Ping:
      lua_pushvalue(L, lua_upvalueindex(kPingUp));
      break;
    case ws::Event::Kind::Pong:
      lua_pushvalue(L, lua_upvalueindex(kPongUp));
      break;
    case ws::Event::Kind::Close:
      lua_pushvalue(L, lua_upvalueindex(kCloseUp));
      break;
  }
  lua_pushlstring(L, e.data.data(), e.data.size());
  if (e.kind == ws::Event::Kind::Message) {
    lua_pushboolean(L, e.binary ? 1 : 0);
  } else if (e.kind == ws::Event::Kind::Close) {
    lua_pushinteger(L, e.close_code);
  } else {
    lua_pushnil(L);
  }
}

// next(s) -> kind, data, binary|code   or nothing
int l_next(lua_State* L) {
  WsSession* s = check(L);
  if (s->events.empty()) return 0;
  push_event(L, s->events.front());
  s->events.pop_front();
  return 3;
}

// take(s, q) -> n: moves the pending events into q[1..3n], each as next()
// returns it (kind, data, binary|code). conn:receive's path: one native call
// per read instead of one per message (each native call splits the Lua
// trace around it), the messages then taken from q on trace.
int l_take(lua_State* L) {
  WsSession* s = check(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int slot = 0;
  for (const ws::Event& e : s->events) {
    push_event(L, e);
    lua_rawseti(L, 2, slot + 3);
    lua_rawseti(L, 2, slot + 2);
    lua_rawseti(L, 2, slot + 1);
    slot += 3;
  }
  s->events.clear();
  lua_pushinteger(L, slot / 3);
  return 1;
}

// send(s, data, binary) -> bytes | nil
int l_send(lua_State* L) {
  WsSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  if (!s->session.send_message(std::string_view(data, n), lua_toboolean(L, 3) != 0)) return 0;
  push_output(L, s);
  return 1;
}

// sendTo(s, data, binary, stream, yieldable) -> the stream write's answer:
// (true, true | nil, err), (false) when cancelled, or a suspend; (true,
// false) when sending is over. conn:send's path: the frame goes from the
// session's buffer to the stream's without a Lua string or a second native
// call (each native call splits the Lua trace around it).
int l_send_to(lua_State* L) {
  WsSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  Stream* stream = check_stream(L, 4);
  if (!s->session.send_message(std::string_view(data, n), lua_toboolean(L, 3) != 0)) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 0);
    return 2;
  }
  // Cleared however the write ends (a Lua error unwinds through here too).
  struct ClearOutput {
    ws::Session& session;
    ~ClearOutput() { session.clear_output(); }
  } clear{s->session};
  return stream->write(L, s->session.output(), 5);
}

int l_ping(lua_State* L) {
  WsSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_optlstring(L, 2, "", &n);
  if (!s->session.send_ping(std::string_view(data, n))) return 0;
  push_output(L, s);
  return 1;
}

// close(s, code, reason) -> bytes | nil
int l_close(lua_State* L) {
  WsSession* s = check(L);
  auto code = static_cast<uint16_t>(luaL_optinteger(L, 2, 1000));
  size_t n = 0;
  const char* reason = luaL_optlstring(L, 3, "", &n);
  if (!s->session.send_close(code, std::string_view(reason, n))) return 0;
  push_output(L, s);
  return 1;
}

// state(s) -> closeSent, closeReceived, closed, failureCode|nil, failureReason|nil
int l_state(lua_State* L) {
  WsSession* s = check(L);
  lua_pushboolean(L, s->session.close_sent() ? 1 : 0);
  lua_pushboolean(L, s->session.close_received() ? 1 : 0);
  lua_pushboolean(L, s->session.closed() ? 1 : 0);
  if (!s->session.failed()) return 3;
  lua_pushinteger(L, s->session.failure_code());
  lua_pushstring(L, s->session.failure_reason().c_str());
  return 5;
}

int l_accept_key(lua_State* L) {
  size_t n = 0;
  const char* key = luaL_checklstring(L, 1, &n);
  std::string v = ws::accept_key(std::string_view(key, n));
  lua_pushlstring(L, v.data(), v.size());
  return 1;
}

int l_client_key(lua_State* L) {
  std::string v = ws::make_client_key();
  lua_pushlstring(L, v.data(), v.size());
  return 1;
}

int l_valid_key(lua_State* L) {
  size_t n = 0;
  const char* key = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, ws::valid_client_key(std::string_view(key, n)) ? 1 : 0);
  return 1;
}

// negotiateDeflate(offerHeader) -> responseValue, options | nil
int l_negotiate(lua_State* L) {
  size_t n = 0;
  const char* offer = luaL_checklstring(L, 1, &n);
  ws::DeflateOptions o;
  std::string response;
  if (!ws::negotiate_deflate(std::string_view(offer, n), &o, &response)) return 0;
  lua_pushlstring(L, response.data(), response.size());
  push_deflate(L, o);
  return 2;
}

int l_client_offer(lua_State* L) {
  std::string v = ws::client_deflate_offer();
  lua_pushlstring(L, v.data(), v.size());
  return 1;
}

// parseDeflateResponse(header) -> options | nil
int l_parse_response(lua_State* L) {
  size_t n = 0;
  const char* h = luaL_checklstring(L, 1, &n);
  ws::DeflateOptions o;
  if (!ws::parse_deflate_response(std::string_view(h, n), &o)) return 0;
  push_deflate(L, o);
  return 1;
}

}  // namespace

int open_ws(lua_State* L) {
  luaL_newmetatable(L, kSessionMeta);
  lua_pushcfunction(L, Boxed<WsSession>::gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"session", l_session},
      {"feed", l_feed},
      {"next", l_next},
      {"take", l_take},
      {"send", l_send},
      {"sendTo", l_send_to},
      {"ping", l_ping},
      {"close", l_close},
      {"state", l_state},
      {"acceptKey", l_accept_key},
      {"clientKey", l_client_key},
      {"validKey", l_valid_key},
      {"negotiateDeflate", l_negotiate},
      {"clientDeflateOffer", l_client_offer},
      {"parseDeflateResponse", l_parse_response},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  lua_pushliteral(L, "message");
  lua_pushliteral(L, "ping");
  lua_pushliteral(L, "pong");
  lua_pushliteral(L, "close");
  luaL_setfuncs(L, functions, kUpvalues);
  return 1;
}

}  // namespace evo
