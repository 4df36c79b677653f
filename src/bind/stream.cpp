// The Lua face of Stream (src/io/stream.h): the natives lib/net.lua wraps.
#include "io/stream.h"
#include "bind/tls.h"

#include <poll.h>

#include <cstring>

#include "lua/boxed.h"
#include "lua/errors.h"

namespace evo {

// ------------------------------------------------------------ Lua binding

namespace {

constexpr const char* kStreamMeta = "evo.Stream";

ReadRequest::Kind kind_of(const char* s) {
  if (std::strcmp(s, "line") == 0) return ReadRequest::Kind::Line;
  if (std::strcmp(s, "until") == 0) return ReadRequest::Kind::Until;
  if (std::strcmp(s, "all") == 0) return ReadRequest::Kind::All;
  if (std::strcmp(s, "exactly") == 0) return ReadRequest::Kind::Exactly;
  return ReadRequest::Kind::Chunk;
}

// read(s, kind, arg, yieldable): kind "chunk" (arg: max bytes or nil),
// "exactly" (arg: n), "line", "until" (arg: delimiter), "all".
int s_read(lua_State* L) {
  Stream* s = check_stream(L, 1);
  ReadRequest req;
  req.kind = kind_of(luaL_checkstring(L, 2));
  switch (req.kind) {
    case ReadRequest::Kind::Chunk:
      req.n = lua_isnoneornil(L, 3) ? 0 : static_cast<size_t>(luaL_checkinteger(L, 3));
      break;
    case ReadRequest::Kind::Exactly: {
      lua_Integer n = luaL_checkinteger(L, 3);
      luaL_argcheck(L, n >= 0, 1, "byte count must be >= 0");
      req.n = static_cast<size_t>(n);
      break;
    }
    case ReadRequest::Kind::Line:
      req.delim = "\n";
      break;
    case ReadRequest::Kind::Until: {
      size_t len = 0;
      const char* d = luaL_checklstring(L, 3, &len);
      luaL_argcheck(L, len > 0, 1, "delimiter must not be empty");
      req.delim.assign(d, len);
      break;
    }
    case ReadRequest::Kind::All:
    case ReadRequest::Kind::Handshake:
      break;
  }
  return s->read(L, std::move(req), 4);
}

// write(s, yieldable, ...)
int s_write(lua_State* L) {
  Stream* s = check_stream(L, 1);
  int top = lua_gettop(L);
  if (top < 3) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }
  return s->write(L, 3, top, 2);
}

int s_flush(lua_State* L) { return check_stream(L, 1)->flush(L, 2); }
int s_shutdown(lua_State* L) { return check_stream(L, 1)->shutdown(L, 2); }

int s_close(lua_State* L) {
  check_stream(L, 1)->close();
  return 0;
}

int s_settimeout(lua_State* L) {
  Stream* s = check_stream(L, 1);
  double r = luaL_optnumber(L, 2, 0);
  double w = luaL_optnumber(L, 3, r);
  s->set_timeouts(r, w);
  return 0;
}

int s_set_high_water(lua_State* L) {
  Stream* s = check_stream(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n > 0, 2, "must be > 0");
  s->set_high_water(static_cast<size_t>(n));
  return 0;
}

int s_is_closed(lua_State* L) {
  lua_pushboolean(L, check_stream(L, 1)->closed() ? 1 : 0);
  return 1;
}

int s_fileno(lua_State* L) {
  lua_pushinteger(L, check_stream(L, 1)->fd());
  return 1;
}

// drainBoth(a, b) -> everything a and b carry until both end, read
// together with poll() so a writer filling one pipe never stalls on the
// other. Blocking; for process.exec in the blocking Io mode.
int s_drain_both(lua_State* L) {
  Stream* s[2] = {check_stream(L, 1), check_stream(L, 2)};
  while (!s[0]->at_end() || !s[1]->at_end()) {
    pollfd pfd[2];
    nfds_t n = 0;
    Stream* which[2];
    for (Stream* x : s) {
      if (!x->at_end()) {
        pfd[n] = pollfd{x->fd(), POLLIN, 0};
        which[n++] = x;
      }
    }
    if (::poll(pfd, n, -1) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) which[i]->read_available_blocking();
    }
  }
  for (Stream* x : s) {
    std::string all = x->take_buffer();
    lua_pushlstring(L, all.data(), all.size());
  }
  return 2;
}

// sendfile(s, fd, offset, length, yieldable)
int s_sendfile(lua_State* L) {
  Stream* s = check_stream(L, 1);
  int fd = static_cast<int>(luaL_checkinteger(L, 2));
  lua_Integer offset = luaL_checkinteger(L, 3);
  lua_Integer length = luaL_checkinteger(L, 4);
  luaL_argcheck(L, offset >= 0 && length >= 0, 3, "offset and length must be >= 0");
  return s->sendfile(L, fd, offset, length, 5);
}

// starttls(s, context, servername|nil): a client session when servername is
// given (or the context is a client's), else a server session.
int s_starttls(lua_State* L) {
  Stream* s = check_stream(L, 1);
  std::shared_ptr<tls::Context> ctx = check_tls_context(L, 2);
  if (s->tls() != nullptr) return luaL_error(L, "starttls: the stream already has TLS");
  std::unique_ptr<tls::Session> session =
      ctx->is_server() ? tls::Session::accept(ctx) : tls::Session::connect(ctx, luaL_optstring(L, 3, ""));
  if (session->failed()) {
    lua_pushnil(L);
    errors::push_error(L, "TLSError", session->error());
    return 2;
  }
  s->start_tls(std::move(session));
  lua_pushboolean(L, 1);
  return 1;
}

// handshake(s, yieldable) -> (true, true) | (true, nil, err) | (false) | yields
int s_handshake(lua_State* L) { return check_stream(L, 1)->handshake(L, 2); }

// tlsInfo(s) -> {alpn, servername} | nil
int s_tls_info(lua_State* L) {
  tls::Session* t = check_stream(L, 1)->tls();
  if (t == nullptr) return 0;
  lua_createtable(L, 0, 2);
  std::string alpn = t->alpn_selected();
  lua_pushlstring(L, alpn.data(), alpn.size());
  lua_setfield(L, -2, "alpn");
  std::string name = t->servername();
  lua_pushlstring(L, name.data(), name.size());
  lua_setfield(L, -2, "servername");
  return 1;
}

// setRef(s, on): whether the stream keeps the process alive (an idle pooled
// client connection must not; libuv's handle ref).
int s_set_ref(lua_State* L) {
  check_stream(L, 1)->set_ref(lua_toboolean(L, 2) != 0);
  return 0;
}

int s_buffered(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_stream(L, 1)->buffered()));
  return 1;
}

}  // namespace

void push_stream(lua_State* L, std::unique_ptr<Stream> stream) {
  Boxed<Stream>::push(L, std::move(stream), kStreamMeta);
}

Stream* check_stream(lua_State* L, int idx) { return Boxed<Stream>::check(L, idx, kStreamMeta); }

int open_stream_natives(lua_State* L) {
  if (luaL_newmetatable(L, kStreamMeta) != 0) {
    lua_pushcfunction(L, Boxed<Stream>::gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);  // methods, filled in by lib/net.lua
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "Stream");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"read", s_read},
      {"write", s_write},
      {"flush", s_flush},
      {"shutdown", s_shutdown},
      {"close", s_close},
      {"settimeout", s_settimeout},
      {"setHighWater", s_set_high_water},
      {"isClosed", s_is_closed},
      {"fileno", s_fileno},
      {"buffered", s_buffered},
      {"drainBoth", s_drain_both},
      {"sendfile", s_sendfile},
      {"starttls", s_starttls},
      {"handshake", s_handshake},
      {"tlsInfo", s_tls_info},
      {"setRef", s_set_ref},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  luaL_getmetatable(L, kStreamMeta);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "methods");
  lua_pop(L, 1);
  return 1;
}

}  // namespace evo
