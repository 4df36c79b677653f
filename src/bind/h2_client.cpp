// evo.h2native: the client side of the HTTP/2 engine (src/proto/h2_session.h)
// for Lua, sans I/O. lib/evo/h2client.lua owns the socket: it feeds what it
// reads to receive(), writes what takeOutput() gives, and pulls the events
// the session recorded (lib/evo/h2client.lua is its only user):
//
//   local s = native.session([upgrade])  -- upgrade: h2c by Upgrade (see upgrade())
//   native.receive(s, bytes)          -- false: the session reads no more
//   local out = native.takeOutput(s)  -- "" when nothing is ready
//   local id = native.request(s, method, scheme, authority, path, {name, value, ...}, endStream)
//   native.write(s, id, bytes); native.finish(s, id); native.consume(s, id, n)
//   native.trailers(s, id, {name, value, ...})   -- ends the body with trailers
//   native.buffered(s, id); native.reset(s, id, code); native.goaway(s, code)
//   native.wantWrite(s); native.finished(s); native.streams(s)
//   native.peerSettings(s) -> received, maxConcurrentStreams  -- the server's SETTINGS
//   native.settingsHeader()  -- the HTTP2-Settings value of an Upgrade: h2c request
//   native.upgrade(s, isHead)  -- after the 101: stream 1 is the upgrade request
//   local kind, id, a, b = native.next(s)   -- one event, or nothing
//     "response", id, status, headers  -- headers: lower-case names, repeats joined
//                                       -- with ", ", set-cookie a list (as HTTP/1.1)
//     "data", id, bytes                 -- counted against the windows until consume()
//     "trailers", id, headers           -- the response's trailers (before its "end")
//     "end", id                         -- the server finished the stream
//     "close", id, code                 -- the stream is gone (0: NO_ERROR)
//     "progress", id, buffered          -- queued request body went out
//     "goaway", lastStreamId, code, debug
//
// Handler callbacks only record events: Lua runs between calls, never
// inside nghttp2 (no re-entry).
#include <deque>
#include <memory>
#include <string>

#include "bind/http_client.h"
#include "lua/boxed.h"
#include "proto/h2_session.h"

namespace evo {
namespace {

constexpr const char* kSessionMeta = "evo.H2ClientSession";

struct Event {
  enum Kind : uint8_t { Response, Data, End, Close, Progress, Goaway, Trailers } kind;
  int32_t stream = 0;
  uint32_t number = 0;  // status, code, buffered bytes
  std::string bytes;    // data, goaway debug
  h2::HeaderList headers;
};

class LuaSession : public h2::Handler {
 public:
  // upgrade: h2c by Upgrade, our SETTINGS sent by upgrade() after the 101.
  explicit LuaSession(bool upgrade) : session_(h2::Role::Client, *this, options(upgrade)) {}

  h2::Session& session() { return session_; }
  std::deque<Event>& events() { return events_; }

  // The client's receive window per stream: a response body the caller
  // does not read holds the server after this much.
  static h2::Options options(bool upgrade = false) {
    h2::Options o;
    o.client_upgrade = upgrade;
    o.initial_window_size = 1024 * 1024;
    o.connection_window_size = 16 * 1024 * 1024;
    return o;
  }

  void on_response(int32_t stream, h2::ResponseHead&& head, bool end_stream) override {
    Event e{Event::Response, stream, static_cast<uint32_t>(head.status), {}, std::move(head.headers)};
    events_.push_back(std::move(e));
    if (end_stream) events_.push_back(Event{Event::End, stream});
  }
  void on_data(int32_t stream, std::string_view data) override {
    // Consecutive pieces of one stream are merged: fewer Lua strings.
    if (!events_.empty() && events_.back().kind == Event::Data && events_.back().stream == stream) {
      events_.back().bytes.append(data);
      return;
    }
    events_.push_back(Event{Event::Data, stream, 0, std::string(data)});
  }
  void on_trailers(int32_t stream, h2::HeaderList&& trailers) override {
    events_.push_back(Event{Event::Trailers, stream, 0, {}, std::move(trailers)});
  }
  void on_end_stream(int32_t stream) override { events_.push_back(Event{Event::End, stream}); }
  void on_stream_close(int32_t stream, uint32_t code) override {
    events_.push_back(Event{Event::Close, stream, code});
  }
  void on_send_progress(int32_t stream, size_t buffered) override {
    events_.push_back(Event{Event::Progress, stream, static_cast<uint32_t>(buffered)});
  }
  void on_goaway(uint32_t code, int32_t last_stream_id, std::string_view debug) override {
    events_.push_back(Event{Event::Goaway, last_stream_id, code, std::string(debug)});
  }

 private:
  h2::Session session_;
  std::deque<Event> events_;
};

LuaSession* check(lua_State* L) { return Boxed<LuaSession>::check(L, 1, kSessionMeta); }

int32_t check_stream(lua_State* L, int idx) { return static_cast<int32_t>(luaL_checkinteger(L, idx)); }

int l_session(lua_State* L) {
  Boxed<LuaSession>::push(L, std::make_unique<LuaSession>(lua_toboolean(L, 1) != 0), kSessionMeta);
  return 1;
}

int l_receive(lua_State* L) {
  LuaSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, s->session().receive(data, n) ? 1 : 0);
  return 1;
}

int l_take_output(lua_State* L) {
  std::string out;
  check(L)->session().take_output(out);
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// The {name, value, ...} list at idx as header fields.
h2::HeaderList field_list(lua_State* L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  h2::HeaderList fields;
  int n = static_cast<int>(lua_objlen(L, idx));
  for (int i = 1; i + 1 <= n; i += 2) {
    lua_rawgeti(L, idx, i);
    lua_rawgeti(L, idx, i + 1);
    size_t nl = 0;
    size_t vl = 0;
    const char* name = luaL_checklstring(L, -2, &nl);
    const char* value = luaL_checklstring(L, -1, &vl);
    fields.emplace_back(std::string(name, nl), std::string(value, vl));
    lua_pop(L, 2);
  }
  return fields;
}

// request(s, method, scheme, authority, path, {name, value, ...}, endStream) -> id (-1: refused)
int l_request(lua_State* L) {
  LuaSession* s = check(L);
  h2::RequestHead head;
  head.method = luaL_checkstring(L, 2);
  head.scheme = luaL_checkstring(L, 3);
  head.authority = luaL_checkstring(L, 4);
  head.path = luaL_checkstring(L, 5);
  head.headers = field_list(L, 6);
  lua_pushinteger(L, s->session().submit_request(head, lua_toboolean(L, 7) != 0));
  return 1;
}

int l_write(lua_State* L) {
  LuaSession* s = check(L);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 3, &n);
  lua_pushboolean(L, s->session().write(check_stream(L, 2), std::string_view(data, n)) ? 1 : 0);
  return 1;
}

int l_finish(lua_State* L) {
  lua_pushboolean(L, check(L)->session().end(check_stream(L, 2)) ? 1 : 0);
  return 1;
}

// trailers(s, id, {name, value, ...}) -> ok: ends the request body with them
int l_trailers(lua_State* L) {
  LuaSession* s = check(L);
  int32_t id = check_stream(L, 2);
  lua_pushboolean(L, s->session().submit_trailers(id, field_list(L, 3)) ? 1 : 0);
  return 1;
}

int l_consume(lua_State* L) {
  check(L)->session().consume(check_stream(L, 2), static_cast<size_t>(luaL_checkinteger(L, 3)));
  return 0;
}

int l_buffered(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check(L)->session().buffered(check_stream(L, 2))));
  return 1;
}

int l_reset(lua_State* L) {
  check(L)->session().reset_stream(check_stream(L, 2),
                                   static_cast<uint32_t>(luaL_optinteger(L, 3, h2::Cancel)));
  return 0;
}

int l_goaway(lua_State* L) {
  check(L)->session().goaway(static_cast<uint32_t>(luaL_optinteger(L, 2, h2::NoError)));
  return 0;
}

int l_want_write(lua_State* L) {
  lua_pushboolean(L, check(L)->session().want_write() ? 1 : 0);
  return 1;
}

int l_finished(lua_State* L) {
  lua_pushboolean(L, check(L)->session().finished() ? 1 : 0);
  return 1;
}

int l_streams(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check(L)->session().stream_count()));
  return 1;
}

// peerSettings(s) -> received, maxConcurrentStreams (what the pool needs
// to decide whether a connection has room for one more stream)
int l_peer_settings(lua_State* L) {
  const h2::Session& s = check(L)->session();
  lua_pushboolean(L, s.peer_settings_received() ? 1 : 0);
  lua_pushnumber(L, static_cast<lua_Number>(s.peer_max_concurrent_streams()));
  return 2;
}

int l_settings_header(lua_State* L) {
  std::string value = h2::Session::settings_header(LuaSession::options());
  lua_pushlstring(L, value.data(), value.size());
  return 1;
}

// upgrade(s, isHead) -> ok: the server answered 101 to our Upgrade: h2c
// request; it is stream 1 now, and its response comes as HTTP/2.
int l_upgrade(lua_State* L) {
  lua_pushboolean(L, check(L)->session().upgrade_client(lua_toboolean(L, 2) != 0) ? 1 : 0);
  return 1;
}

const char* kind_name(Event::Kind k) {
  switch (k) {
    case Event::Response:
      return "response";
    case Event::Data:
      return "data";
    case Event::End:
      return "end";
    case Event::Close:
      return "close";
    case Event::Progress:
      return "progress";
    case Event::Goaway:
      return "goaway";
    case Event::Trailers:
      return "trailers";
  }
  return "?";
}

// next(s) -> kind, id, a, b | nothing
int l_next(lua_State* L) {
  auto& events = check(L)->events();
  if (events.empty()) return 0;
  Event e = std::move(events.front());
  events.pop_front();
  lua_pushstring(L, kind_name(e.kind));
  lua_pushinteger(L, e.stream);
  switch (e.kind) {
    case Event::Response:
      lua_pushinteger(L, e.number);
      push_response_headers(L, e.headers);
      return 4;
    case Event::Data:
      lua_pushlstring(L, e.bytes.data(), e.bytes.size());
      return 3;
    case Event::Trailers:
      push_response_headers(L, e.headers);
      return 3;
    case Event::Goaway:
      lua_pushinteger(L, e.number);
      lua_pushlstring(L, e.bytes.data(), e.bytes.size());
      return 4;
    case Event::Close:
    case Event::Progress:
      lua_pushinteger(L, e.number);
      return 3;
    case Event::End:
      return 2;
  }
  return 2;
}

int l_error_name(lua_State* L) {
  lua_pushstring(L, h2::error_name(static_cast<uint32_t>(luaL_checkinteger(L, 1))));
  return 1;
}

}  // namespace

int open_h2client(lua_State* L) {
  luaL_newmetatable(L, kSessionMeta);
  lua_pushcfunction(L, Boxed<LuaSession>::gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"session", l_session}, {"receive", l_receive}, {"takeOutput", l_take_output}, {"request", l_request},
      {"write", l_write},     {"finish", l_finish},   {"consume", l_consume},        {"buffered", l_buffered},
      {"reset", l_reset},     {"goaway", l_goaway},   {"wantWrite", l_want_write},   {"finished", l_finished},
      {"streams", l_streams}, {"next", l_next},       {"errorName", l_error_name},   {"trailers", l_trailers},
      {nullptr, nullptr},
  };
  // The pool (a connection per stream limit) and h2c's Upgrade.
  const luaL_Reg pool_functions[] = {
      {"peerSettings", l_peer_settings},
      {"settingsHeader", l_settings_header},
      {"upgrade", l_upgrade},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  luaL_register(L, nullptr, pool_functions);
  return 1;
}

}  // namespace evo
