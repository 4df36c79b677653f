// evo.http: the Lua side of the HTTP server engine (lib/http.lua and
// lib/HttpServer.lua are the public modules).
//
// A task handler gets `req`, a table (method, path, query; headers built on
// first use) and `res`, a userdata holding the request's Exchange. The event
// style names exchanges by request id instead.
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bind/tls.h"
#include "http/server.h"
#include "io/stream.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"
#include "proto/packed_fields.h"

namespace evo::http {
namespace {

constexpr const char* kServerMeta = "evo.HttpServerCore";
constexpr const char* kResMeta = "evo.HttpResponse";

// The metatable of res (lib/http.lua sets it up once per VM; one VM per
// runtime thread).
thread_local int g_res_meta_ref = LUA_NOREF;

struct ServerBox {
  static constexpr uint64_t kMagic = 0x5652535f6f7665ULL;  // "evo_SRV"
  uint64_t magic = kMagic;
  std::shared_ptr<Server> server;
};

// A res is a Lua table, {ref} with Response's metatable, made in Lua
// (lib/http.lua's newResponse) from the number next() gives (or the FFI's
// next_request, which keeps a batch of pipelined requests on one looping
// trace: a C function returning a userdata would end the trace at every
// request). The number is the exchange's ExchangeRef, slot * 2^32 +
// generation (exact in a double below 2^21 slots, two million exchanges
// alive at once), so no finalizer: the handler's task holds the exchange
// while the handler runs (TaskSystem::hold).
double ref_number(Exchange& ex) {
  ExchangeRef r = ExchangeRef::of(ex);
  return static_cast<double>(r.slot) * 4294967296.0 + r.gen;
}

ExchangeRef ref_of(double n) {
  if (!(n >= 0 && n < 9007199254740992.0)) return {};  // (NaN too) slot 0 names nothing
  auto v = static_cast<uint64_t>(n);
  return ExchangeRef{static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
}

// What a res whose exchange is gone (kept after its handler returned, its
// connection long closed) stands for: a response over, with no request data.
thread_local Exchange g_gone;

Exchange& gone_exchange() {
  Exchange& gone = g_gone;  // set again each time: a caller may have written to it
  *gone.req = Request();
  gone.conn = nullptr;
  gone.handler = nullptr;
  gone.headers_sent = true;
  gone.finished = true;
  gone.body_done = true;
  gone.body.clear();
  gone.head.clear();
  gone.trailers.clear();
  return gone;
}

bool is_gone(const Exchange& ex) { return &ex == &g_gone; }

// req.headers and req.remoteAddress... are read from the exchange when first
// asked for: after the handler has returned it may be gone.
Exchange& check_request_data(lua_State* L, Exchange& ex, const char* field) {
  if (is_gone(ex)) luaL_error(L, "req.%s: the request is over (its handler has returned)", field);
  return ex;
}

Exchange& exchange_of(ExchangeRef ref) {
  Exchange* ex = ref.get();
  return ex != nullptr ? *ex : gone_exchange();
}

// A server core argument. The event style's natives take one per call: a
// full userdata of ServerBox's size with its magic number is one (as
// check_res tells a res), without luaL_checkudata's lookup of the metatable
// by name; anything else gets luaL_checkudata's own check and message.
Server* check_server(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TUSERDATA && lua_objlen(L, idx) == sizeof(ServerBox)) {
    auto* box = static_cast<ServerBox*>(lua_touserdata(L, idx));
    if (box->magic == ServerBox::kMagic) return box->server.get();
  }
  return static_cast<ServerBox*>(luaL_checkudata(L, idx, kServerMeta))->server.get();
}

// Whether the value at idx (> 0) is a res: a table with Response's
// metatable and a number at [1], its ref.
bool res_ref(lua_State* L, int idx, ExchangeRef* out) {
  if (lua_type(L, idx) != LUA_TTABLE || lua_getmetatable(L, idx) == 0) return false;
  lua_rawgeti(L, LUA_REGISTRYINDEX, g_res_meta_ref);
  bool is = lua_rawequal(L, -1, -2) != 0;
  lua_pop(L, 2);
  if (!is) return false;
  lua_rawgeti(L, idx, 1);
  bool number = lua_type(L, -1) == LUA_TNUMBER;
  if (number) *out = ref_of(lua_tonumber(L, -1));
  lua_pop(L, 1);
  return number;
}

// A res argument (see res_ref).
Exchange& check_res(lua_State* L, int idx) {
  ExchangeRef ref;
  if (res_ref(L, idx, &ref)) return exchange_of(ref);
  luaL_typerror(L, idx, "HttpResponse");
  std::abort();  // not reached: luaL_typerror raises
}

int push_closed(lua_State* L) {
  lua_pushnil(L);
  errors::push_error(L, "Closed", "the connection was closed");
  return 2;
}

std::string_view arg_string(lua_State* L, int idx) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, idx, &n);
  return {s, n};
}

// Raises "bad argument #n to 'fname' (msg)" with the public method's name
// and its argument's number as the user counts it: luaL_argerror cannot name
// a method called through pcall or a Lua wrapper ('?'), and counts self.
// (The types are checked in lib/, with evo.args, before the natives run.)
// level: 2 for a native behind a Lua wrapper, 1 for one called directly.
[[noreturn]] void arg_error(lua_State* L, int n, const char* fname, const char* msg, int level = 2) {
  luaL_where(L, level);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", n, fname, msg);
  lua_concat(L, 2);
  lua_error(L);
  std::abort();  // not reached: lua_error raises
}

// res:send is the native itself (no Lua wrapper on the hot path), so it
// checks its own arguments, numbered as the user counts them (self is not
// counted) and blaming the caller's line: "bad argument #2 to 'send'
// (string expected, got table)".
[[noreturn]] void send_type_error(lua_State* L, int idx, const char* expected) {
  luaL_where(L, 1);
  lua_pushfstring(L, "bad argument #%d to 'send' (%s expected, got %s)", idx - 1, expected,
                  lua_typename(L, lua_type(L, idx) == LUA_TNONE ? LUA_TNIL : lua_type(L, idx)));
  lua_concat(L, 2);
  lua_error(L);
  std::abort();  // not reached: lua_error raises
}

// The status at idx, which the user passed as argument #n of fname.
int check_status(lua_State* L, int idx, int n, const char* fname, int level = 2) {
  lua_Integer code = luaL_checkinteger(L, idx);
  if (code < 100 || code > 999) arg_error(L, n, fname, "status must be 100..999", level);
  return static_cast<int>(code);
}

// A response may be changed only before its head is sent.
void check_head_open(lua_State* L, const Exchange& ex, const char* fn) {
  if (ex.finished) luaL_error(L, "%s: the response was already sent", fn);
  if (ex.headers_sent) luaL_error(L, "%s: the headers were already sent", fn);
}

// What a refused header call must leave as it found: the head so far and
// the fields header lines set.
struct HeadMark {
  size_t head_len = 0;
  bool has_length = false;
  uint64_t length = 0;
  bool close_after = false;
  HeadMark() = default;
  explicit HeadMark(const Exchange& ex)
      : head_len(ex.head.size()), has_length(ex.has_length), length(ex.length), close_after(ex.close_after) {}
  void restore(Exchange& ex) const {
    ex.head.resize(head_len);
    ex.has_length = has_length;
    ex.length = length;
    ex.close_after = close_after;
  }
};

// Adds the header at name_idx with the value at value_idx: a string, or a
// list of strings (one line each, as set-cookie needs). Each line is checked
// as it is added; a refused one puts the exchange back to `mark` and raises,
// so a refused call adds nothing.
void add_header_lines(lua_State* L, Exchange& ex, int name_idx, int value_idx, const HeadMark& mark) {
  std::string_view name = arg_string(L, name_idx);
  auto add = [&](int idx) {
    size_t len = 0;
    const char* v = lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER
                        ? lua_tolstring(L, idx, &len)
                        : nullptr;
    if (v != nullptr && ex.add_header_if_valid(name, std::string_view(v, len))) return;
    std::string error = v == nullptr ? "header '" + std::string(name) + "': values must be strings"
                                     : Exchange::header_error(name, std::string_view(v, len));
    mark.restore(ex);
    luaL_error(L, "%s", error.c_str());
  };
  if (lua_type(L, value_idx) != LUA_TTABLE) {
    add(value_idx);
    return;
  }
  size_t n = lua_objlen(L, value_idx);
  for (size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L, value_idx, static_cast<int>(i));
    add(lua_gettop(L));
    lua_pop(L, 1);
  }
}

void add_header_or_raise(lua_State* L, Exchange& ex, int name_idx, int value_idx) {
  add_header_lines(L, ex, name_idx, value_idx, HeadMark(ex));
}

// ------------------------------------------------------------ server

double opt_number(lua_State* L, int idx, const char* key, double dflt) {
  lua_getfield(L, idx, key);
  double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

// serve(object, opts, handler|nil, runner|nil, requestRunner|nil) -> server | nil, err
// Task style: runner(handler, res, method, path, query) runs each request's
// handler in a pooled task. Event style (no handler): runner(object,
// handler, EVENT, payload) runs each event handler in a pooled task
// (events::emit_task); without a runner the handlers are called straight
// from the engine's callbacks. requestRunner(object, handler, id, method,
// path, query [, headers, body]) runs HTTP_REQUEST_STARTED's (four values)
// and HTTP_REQUEST_FINISHED's handlers, making their payloads in Lua.
int l_serve(lua_State* L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  ServerConfig cfg;
  cfg.limits.max_header_bytes = static_cast<size_t>(opt_number(L, 2, "maxHeaderBytes", 16 * 1024));
  cfg.limits.max_uri = static_cast<size_t>(opt_number(L, 2, "maxUriBytes", 8 * 1024));
  cfg.limits.max_body = static_cast<size_t>(opt_number(L, 2, "maxBodyBytes", 8 * 1024 * 1024));
  cfg.header_timeout = opt_number(L, 2, "headerTimeout", 10);
  cfg.idle_timeout = opt_number(L, 2, "idleTimeout", 5);
  cfg.body_timeout = opt_number(L, 2, "bodyTimeout", 60);
  cfg.send_timeout = opt_number(L, 2, "sendTimeout", 60);
  cfg.events = lua_isnoneornil(L, 3);
  lua_getfield(L, 2, "host");
  std::string host = lua_isnil(L, -1) ? "127.0.0.1" : luaL_checkstring(L, -1);
  lua_pop(L, 1);
  int port = static_cast<int>(opt_number(L, 2, "port", 0));
  int backlog = static_cast<int>(opt_number(L, 2, "backlog", 511));
  lua_getfield(L, 2, "tlsContext");
  if (!lua_isnil(L, -1)) cfg.tls = check_tls_context(L, lua_gettop(L));
  lua_pop(L, 1);
  // http2: true/false, or a table of limits; default on under TLS (ALPN
  // decides per connection), off on cleartext (prior knowledge, h2c).
  lua_getfield(L, 2, "http2");
  cfg.http2 = lua_isnil(L, -1) ? cfg.tls != nullptr : lua_toboolean(L, -1) != 0;
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    auto u32 = [&](const char* key, uint32_t dflt) {
      double v = opt_number(L, t, key, dflt);
      if (v < 1 || v > 2147483647.0) luaL_error(L, "serve: http2.%s must be a positive integer", key);
      return static_cast<uint32_t>(v);
    };
    cfg.h2.max_concurrent_streams = u32("maxConcurrentStreams", cfg.h2.max_concurrent_streams);
    cfg.h2.max_header_list_size = u32("maxHeaderListSize", cfg.h2.max_header_list_size);
    cfg.h2.max_frame_size = u32("maxFrameSize", cfg.h2.max_frame_size);
    cfg.h2.initial_window_size = u32("initialWindowSize", cfg.h2.initial_window_size);
  }
  lua_pop(L, 1);

  Runtime& rt = Runtime::from(L);
  auto server = std::make_shared<Server>(rt, cfg);
  int rc = server->listen(host.c_str(), port, backlog);
  if (rc != 0) {
    lua_pushnil(L);
    errors::push_uv_error(L, rc, host + ":" + std::to_string(port));
    return 2;
  }
  lua_pushvalue(L, 1);
  server->object_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!cfg.events) {
    lua_pushvalue(L, 3);
    server->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (lua_isfunction(L, 4)) {  // the event style's runner: its handlers run as tasks
    lua_pushvalue(L, 4);
    server->runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (cfg.events && lua_isfunction(L, 5)) {
      lua_pushvalue(L, 5);
      server->request_runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  new (lua_newuserdata(L, sizeof(ServerBox))) ServerBox{ServerBox::kMagic, std::move(server)};
  luaL_getmetatable(L, kServerMeta);
  lua_setmetatable(L, -2);
  return 1;
}

int l_server_gc(lua_State* L) {
  static_cast<ServerBox*>(lua_touserdata(L, 1))->~ServerBox();
  return 0;
}

int l_port(lua_State* L) {
  lua_pushinteger(L, check_server(L, 1)->port());
  return 1;
}

int l_connections(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_server(L, 1)->connection_count()));
  return 1;
}

// close(server, yieldable) -> true, or yields until every connection is done
int l_close(lua_State* L) {
  Server* server = check_server(L, 1);
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 2);
  if (t == nullptr || server->connection_count() == 0) {
    server->stop(nullptr);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;  // (true, true): done now, and the result
  }
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (server->runs_handler(t)) {
    // Called from one of its own handlers: waiting for every request to be
    // answered would wait for this one. Stop accepting and return; this
    // request is answered, then its connection closes.
    server->stop(nullptr);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }
  std::shared_ptr<Waker> waker = sys.begin_shared_wait(t);
  server->stop([waker]() {
    lua_pushboolean(waker->system().L(), 1);
    waker->wake(1);
  });
  return sys.suspend(L, t);
}

// ------------------------------------------------------------ responses

ExchangeIo* live(Exchange& ex) { return ex.finished ? nullptr : ex.conn; }

// send(res, status, body, headers) -> true | nil, err
int l_send(lua_State* L) {
  ExchangeRef ref;
  if (!res_ref(L, 1, &ref)) {
    luaL_where(L, 1);
    lua_pushfstring(L, "bad argument #1 to 'send' (Response expected, got %s)", luaL_typename(L, 1));
    lua_concat(L, 2);
    lua_error(L);
  }
  Exchange& ex = exchange_of(ref);
  if (lua_type(L, 2) != LUA_TNUMBER) send_type_error(L, 2, "number");
  int t3 = lua_type(L, 3);
  if (t3 != LUA_TSTRING && t3 != LUA_TNUMBER && t3 > LUA_TNIL) send_type_error(L, 3, "string");
  int t4 = lua_type(L, 4);
  if (t4 != LUA_TTABLE && t4 > LUA_TNIL) send_type_error(L, 4, "table");
  check_head_open(L, ex, "send");
  int status = check_status(L, 2, 1, "send", 1);
  size_t len = 0;
  const char* body = t3 > LUA_TNIL ? lua_tolstring(L, 3, &len) : "";
  if (t4 == LUA_TTABLE) {
    HeadMark mark(ex);  // a refused table adds nothing
    lua_pushnil(L);
    while (lua_next(L, 4) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        mark.restore(ex);
        luaL_error(L, "send: header names must be strings");
      }
      add_header_lines(L, ex, lua_gettop(L) - 1, lua_gettop(L), mark);
      lua_pop(L, 1);
    }
  }
  ex.status = status;
  ExchangeIo* c = live(ex);
  if (c == nullptr) return push_closed(L);
  c->send_whole(ex, std::string_view(body, len));
  lua_pushboolean(L, 1);
  return 1;
}

// status(res, code [, reason])
int l_status(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  check_head_open(L, ex, "status");
  ex.status = check_status(L, 2, 1, "status");
  if (!lua_isnoneornil(L, 3)) {
    std::string_view reason = arg_string(L, 3);
    if (!valid_header_value(reason)) arg_error(L, 2, "status", "the reason must not contain CR, LF or NUL");
    ex.reason = std::string(reason);
  }
  lua_settop(L, 1);
  return 1;
}

// header(res, name, value | {values})
int l_header(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  check_head_open(L, ex, "header");
  luaL_checkstring(L, 2);
  if (lua_type(L, 3) != LUA_TTABLE) luaL_checkstring(L, 3);
  add_header_or_raise(L, ex, 2, 3);
  lua_settop(L, 1);
  return 1;
}

// Adds the trailer at name_idx with the value at value_idx (a string, or a
// list: one field each), all checked first: a refused call adds nothing.
void add_trailer_fields(lua_State* L, Exchange& ex, int name_idx, int value_idx) {
  std::string_view name = arg_string(L, name_idx);
  size_t mark = ex.trailers.size();
  auto add = [&](int idx) {
    size_t len = 0;
    const char* v = lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER
                        ? lua_tolstring(L, idx, &len)
                        : nullptr;
    std::string error = v == nullptr ? "trailer '" + std::string(name) + "': values must be strings"
                                     : Exchange::trailer_error(name, std::string_view(v, len));
    if (!error.empty()) {
      ex.trailers.resize(mark);
      luaL_error(L, "%s", error.c_str());
    }
    ex.trailers.emplace_back(std::string(name), std::string(v, len));
  };
  if (lua_type(L, value_idx) != LUA_TTABLE) {
    add(value_idx);
    return;
  }
  size_t n = lua_objlen(L, value_idx);
  for (size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L, value_idx, static_cast<int>(i));
    add(lua_gettop(L));
    lua_pop(L, 1);
  }
}

// trailer(res, name, value | {values}): sent after the body when the
// response ends. Before the head goes out, it also makes the body chunked
// (HTTP/1.1) and is declared in a Trailer header.
int l_trailer(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  if (ex.finished) luaL_error(L, "trailer: the response was already finished");
  luaL_checkstring(L, 2);
  if (lua_type(L, 3) != LUA_TTABLE) luaL_checkstring(L, 3);
  add_trailer_fields(L, ex, 2, 3);
  lua_settop(L, 1);
  return 1;
}

// The header lines of an informational response from the table at idx
// (name -> value or list), validated as res:header's; the framing fields
// are left out (a 1xx has no body).
bool framing_field(std::string_view name) {
  return equals_ignoring_case(name, "content-length") || equals_ignoring_case(name, "transfer-encoding") ||
         equals_ignoring_case(name, "connection");
}

std::string informational_lines(lua_State* L, int idx) {
  std::string lines;
  if (lua_isnoneornil(L, idx)) return lines;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "inform: header names must be strings");
    std::string_view name = arg_string(L, -2);
    auto add = [&](int vidx) {
      size_t len = 0;
      const char* v = lua_type(L, vidx) == LUA_TSTRING || lua_type(L, vidx) == LUA_TNUMBER
                          ? lua_tolstring(L, vidx, &len)
                          : nullptr;
      std::string error = v == nullptr ? "header '" + std::string(name) + "': values must be strings"
                                       : Exchange::header_error(name, std::string_view(v, len));
      if (!error.empty()) luaL_error(L, "%s", error.c_str());
      if (!framing_field(name)) append_header(lines, name, std::string_view(v, len));
    };
    if (lua_type(L, -1) == LUA_TTABLE) {
      int list = lua_gettop(L);
      size_t n = lua_objlen(L, list);
      for (size_t i = 1; i <= n; ++i) {
        lua_rawgeti(L, list, static_cast<int>(i));
        add(lua_gettop(L));
        lua_pop(L, 1);
      }
    } else {
      add(lua_gettop(L));
    }
    lua_pop(L, 1);
  }
  return lines;
}

// The status of an informational response: 100..199, not 101 (a protocol
// switch is res:upgrade's).
int check_informational(lua_State* L, int idx, int n, const char* fname) {
  lua_Integer code = luaL_checkinteger(L, idx);
  if (code < 100 || code > 199 || code == 101) arg_error(L, n, fname, "status must be 1xx other than 101");
  return static_cast<int>(code);
}

// inform(res, status, headers|nil) -> true | nil, err: a 1xx (103 Early
// Hints...) before the response; skipped for an HTTP/1.0 client.
int l_inform(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  check_head_open(L, ex, "inform");
  int status = check_informational(L, 2, 1, "inform");
  std::string lines = informational_lines(L, 3);
  ExchangeIo* c = live(ex);
  if (c == nullptr) return push_closed(L);
  c->send_informational(ex, status, lines);
  lua_pushboolean(L, 1);
  return 1;
}

// Suspends t (whose call pushed `true` last) until the connection's output
// is below the high-water mark, or all written (drain_all); or answers
// (false) when a cancellation is due.
int wait_for_output(lua_State* L, TaskSystem& sys, Task* t, ExchangeIo* c, bool drain_all) {
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pop(L, 1);
  uint32_t id = sys.begin_wait(
      t, [](Task*, void* arg) { static_cast<ExchangeIo*>(arg)->cancel_wait_writable(); }, c);
  if (drain_all && c->http1() != nullptr) {
    c->http1()->wait_drained(t, id);
  } else {
    c->wait_writable(t, id);
  }
  return sys.suspend(L, t);
}

// Writes a piece of the body (after `true` was pushed) and answers (true,
// true) at once, or waits in a task while the output is over the mark.
int write_and_wait(lua_State* L, ExchangeIo* c, Exchange& ex, std::string_view chunk, int yieldable_idx) {
  c->write_body(ex, chunk);
  c->flush();
  if (!c->congested()) {
    lua_pushboolean(L, 1);
    return 2;
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, yieldable_idx);
  if (t == nullptr) {  // cannot wait here: the data is queued anyway
    lua_pushboolean(L, 1);
    return 2;
  }
  return wait_for_output(L, sys, t, c, false);
}

// write(res, chunk, yieldable) -> (true, true) | (true, nil, err) | (false) | yields
int l_write(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  std::string_view chunk = arg_string(L, 2);
  if (ex.finished) return luaL_error(L, "write: the response was already finished");
  ExchangeIo* c = ex.conn;
  lua_pushboolean(L, 1);
  if (c == nullptr) return 1 + push_closed(L);
  if (!ex.headers_sent) c->send_head(ex);
  if (ex.has_length && !ex.head_request() && ex.written + chunk.size() > ex.length) {
    return luaL_error(L, "write: more bytes than the Content-Length set (%d)", static_cast<int>(ex.length));
  }
  return write_and_wait(L, c, ex, chunk, 3);
}

// finish(res [, chunk]) -> true | nil, err
int l_finish(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  if (ex.finished) return luaL_error(L, "finish: the response was already finished");
  ExchangeIo* c = ex.conn;
  if (c == nullptr) return push_closed(L);
  if (!lua_isnoneornil(L, 2)) {
    std::string_view chunk = arg_string(L, 2);
    if (!ex.headers_sent) {
      if (!ex.has_length && ex.trailers.empty()) {  // (trailers need a chunked body)
        ex.has_length = true;
        ex.length = chunk.size();
      }
      c->send_head(ex);
    }
    c->write_body(ex, chunk);
  }
  c->finish(ex);
  lua_pushboolean(L, 1);
  return 1;
}

// sendFile(res, path, offset, length|nil, yieldable) -> (true, true) | (true, nil, err) | yields
int l_send_file(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  const char* path = luaL_checkstring(L, 2);
  auto offset = static_cast<int64_t>(luaL_optnumber(L, 3, 0));
  check_head_open(L, ex, "sendFile");
  lua_pushboolean(L, 1);
  ExchangeIo* c = ex.conn;
  if (c == nullptr) return 1 + push_closed(L);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = fd < 0 ? uv_translate_sys_error(errno) : UV_EISDIR;
    if (fd >= 0) ::close(fd);
    lua_pushnil(L);
    errors::push_uv_error(L, err, path);
    return 3;
  }
  auto size = static_cast<int64_t>(st.st_size);
  if (offset < 0 || offset > size) offset = size;
  int64_t length = lua_isnoneornil(L, 4) ? size - offset : static_cast<int64_t>(lua_tonumber(L, 4));
  if (length < 0 || offset + length > size) length = size - offset;
  ex.has_length = true;
  ex.length = static_cast<uint64_t>(length);
  c->send_head(ex);
  if (length == 0 || ex.head_request()) {
    ::close(fd);
    c->finish(ex);
    lua_pushboolean(L, 1);
    return 2;
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 5);
  if (t != nullptr && sys.take_cancel(t)) {
    ::close(fd);
    lua_pushboolean(L, 0);
    return 1;
  }
  // The file goes out behind the head (sendfile(2) in chunks as the socket
  // takes them; read and encrypted under TLS). Where the caller cannot wait,
  // it is queued and the response finishes when it is out.
  std::shared_ptr<Exchange> keep = ex.shared_from_this();
  auto waiting = std::make_shared<std::shared_ptr<Waker>>();  // set once the send is pending
  auto done = [keep, waiting](int status) {
    if (status != 0) {
      // The body is cut short: what is still queued cannot make it whole.
      if (keep->conn != nullptr) keep->conn->close();
    } else {
      keep->written = keep->length;
      if (keep->conn != nullptr) keep->conn->finish(*keep);
    }
    std::shared_ptr<Waker> waker = *waiting;
    if (waker == nullptr) return;
    lua_State* ML = waker->system().L();
    if (status != 0) {
      lua_pushnil(ML);
      errors::push_uv_error(ML, status);
      waker->wake(2);
    } else {
      lua_pushboolean(ML, 1);
      waker->wake(1);
    }
  };
  int64_t r = c->send_file(fd, offset, length, done);
  if (r == Transport::kPending) {
    if (t == nullptr) {
      lua_pushboolean(L, 1);
      return 2;
    }
    // Cancelled, the rest of the file stays unsent (and the response cut).
    *waiting = sys.begin_shared_wait(
        t, [](Task*, void* arg) { static_cast<ExchangeIo*>(arg)->cancel_file(); }, c);
    return sys.suspend(L, t);
  }
  auto status = static_cast<int>(r);
  if (status != 0) {
    c->close_soon();
    lua_pushnil(L);
    errors::push_uv_error(L, status);
    return 3;
  }
  ex.written = ex.length;
  c->finish(ex);
  lua_pushboolean(L, 1);
  return 2;
}

// ------------------------------------------------------------ requests

// read(res, yieldable) -> (true, chunk) | (true, nil) at the end | (true, nil, err) | yields
int l_read(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  lua_pushboolean(L, 1);
  if (!ex.body.empty()) {
    lua_pushlstring(L, ex.body.data(), ex.body.size());
    ex.body.clear();
    if (ex.conn != nullptr) ex.conn->body_consumed();
    return 2;
  }
  if (ex.body_error_status != 0) {
    lua_pushnil(L);
    errors::push_error(L, body_error_code(ex.body_error_status), ex.body_error);
    lua_pushinteger(L, ex.body_error_status);
    lua_setfield(L, -2, "status");
    return 3;
  }
  if (ex.body_done) return 1;  // true, (nil): the end
  if (ex.conn == nullptr) return 1 + push_closed(L);
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 2);
  if (t == nullptr)
    return luaL_error(L, "req:read() must wait for the body here, and cannot (not in a task)");
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pop(L, 1);
  ex.conn->send_continue(ex);
  ex.body_reader = t;
  ex.body_reader_id = sys.begin_wait(
      t, [](Task*, void* arg) { static_cast<Exchange*>(arg)->body_reader = nullptr; }, &ex);
  return sys.suspend(L, t);
}

int l_headers(lua_State* L) {
  push_headers(L, *check_request_data(L, check_res(L, 1), "headers").req);
  return 1;
}

// trailers(res) -> the request's trailers (a table like headers) once its
// body has arrived whole, else nil.
int l_req_trailers(lua_State* L) {
  Exchange& ex = check_request_data(L, check_res(L, 1), "trailers");
  if (!ex.body_done) return 0;
  push_fields(L, ex.req->trailers);
  return 1;
}

// info(res) -> remoteAddress, remotePort, httpVersion, id
int l_info(lua_State* L) {
  Exchange& ex = check_request_data(L, check_res(L, 1), luaL_optstring(L, 2, "remoteAddress"));
  lua_pushlstring(L, ex.remote_ip.data(), ex.remote_ip.size());
  lua_pushinteger(L, ex.remote_port);
  lua_pushfstring(L, "%d.%d", ex.req->version_major, ex.req->version_minor);
  lua_pushinteger(L, ex.id);
  return 4;
}

int l_state(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  lua_pushboolean(L, ex.headers_sent ? 1 : 0);
  lua_pushboolean(L, ex.finished ? 1 : 0);
  lua_pushinteger(L, ex.status);  // for access logs: the status and body bytes so far
  lua_pushnumber(L, static_cast<lua_Number>(ex.written));
  return 4;
}

// done(res, ok, err): after the handler. A handler that raised gets a 500
// (or the error's `status`, e.g. 413 from req:body()); one that returned
// without answering has its response finished as it stands.
// True when the value at idx is the Canceled error.
bool is_canceled(lua_State* L, int idx) {
  if (!lua_istable(L, idx)) return false;
  lua_getfield(L, idx, "code");
  bool yes = lua_isstring(L, -1) && std::strcmp(lua_tostring(L, -1), "Canceled") == 0;
  lua_pop(L, 1);
  return yes;
}

int l_done(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  ex.handler = nullptr;  // its task goes back to the pool
  bool ok = lua_toboolean(L, 2) != 0;
  if (!ok && is_canceled(L, 3) && (live(ex) == nullptr || live(ex)->closed())) return 0;  // its client left
  if (!ok) {
    int status = 500;
    if (lua_istable(L, 3)) {
      lua_getfield(L, 3, "status");
      if (lua_isnumber(L, -1)) status = static_cast<int>(lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
    if (status == 500) errors::report("http handler error: " + errors::describe(L, 3));
    ExchangeIo* c = live(ex);
    if (c == nullptr) return 0;
    if (ex.headers_sent) {
      c->cut(ex);  // no proper end: the client sees the response cut short
      return 0;
    }
    ex.head.clear();
    ex.trailers.clear();
    ex.status = status < 400 || status > 599 ? 500 : status;
    ex.reason.clear();
    ex.close_after = ex.close_after || status != 500;
    std::string body = std::to_string(ex.status) + " " + std::string(reason_phrase(ex.status)) + "\n";
    ex.head = "Content-Type: text/plain; charset=utf-8\r\n";
    c->send_whole(ex, body);
    return 0;
  }
  ExchangeIo* c = live(ex);
  if (c != nullptr && (c->http1() == nullptr || c->http1()->state() != Connection::State::Upgraded))
    c->finish(ex);
  return 0;
}

// next() -> ref: the next request of the connection whose handler task
// calls it, parsed from the same read (the runner of lib/http.lua serves a
// batch of pipelined requests on one coroutine), as the number its res is
// made of (push_request). When the read has none, the runner may wait here
// as its server's parked runner for the first request of a later read
// (park_batch_runner): its ref, or nothing once the server stops (false if
// the wait is cancelled).
// Nothing when there is none and it may not wait.
int l_next(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  std::shared_ptr<Exchange> ex = next_batch_request(sys);
  if (ex == nullptr) return park_batch_runner(sys) ? sys.suspend(L, sys.resuming) : 0;
  push_request(L, ex);
  return 1;
}

// nextEvent() -> id, method, path, query, headers, body: the same for the
// event style's batch (HttpServer's request runner): the next whole request
// of the read, as its values; or, as next(), the first of a later read after
// waiting as the server's parked runner; nothing when there is none.
int l_next_event(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  std::shared_ptr<Exchange> ex = next_event_request(sys);
  if (ex == nullptr) return park_batch_runner(sys) ? sys.suspend(L, sys.resuming) : 0;
  return push_request_values(L, *ex, true);
}

// upgrade(res, yieldable) -> (true, stream) | (true, nil, err) | yields until
// earlier output is written. Takes the connection over (see detach_to_stream).
int l_upgrade(lua_State* L) {
  Exchange& ex = check_res(L, 1);
  check_head_open(L, ex, "upgrade");
  ExchangeIo* io = live(ex);
  lua_pushboolean(L, 1);
  if (io == nullptr) return 1 + push_closed(L);
  Connection* c = io->http1();
  if (c == nullptr) {  // HTTP/2 has no Upgrade (RFC 8441's extended CONNECT is not supported)
    lua_pushnil(L);
    errors::push_error(L, "NotSupported", "upgrade: the request came over HTTP/2");
    return 3;
  }
  if (!c->drained()) {
    TaskSystem& sys = TaskSystem::from(L);
    Task* t = sys.waiter(L, 2);
    if (t == nullptr) return luaL_error(L, "upgrade: earlier responses are still being written");
    return wait_for_output(L, sys, t, c, true);
  }
  push_stream(L, c->detach_to_stream(ex));
  return 2;
}

// ------------------------------------------------------------ event style

Exchange* pending_exchange(lua_State* L, Server* server, int idx) {
  return server->pending.find(static_cast<uint32_t>(luaL_checkinteger(L, idx)));
}

// writeStatus(server, id, "404 Not Found" | 404) -> true | nil, err
int l_ev_status(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  if (ex == nullptr) return push_closed(L);
  check_head_open(L, *ex, "WriteStatus");
  if (lua_type(L, 3) == LUA_TNUMBER) {
    ex->status = check_status(L, 3, 2, "WriteStatus");
  } else {
    std::string_view line = arg_string(L, 3);
    size_t sp = line.find(' ');
    std::string code(line.substr(0, sp));
    char* end = nullptr;
    long n = std::strtol(code.c_str(), &end, 10);
    if (code.empty() || *end != '\0' || n < 100 || n > 999)
      arg_error(L, 2, "WriteStatus", "expected a status like \"404 Not Found\"");
    ex->status = static_cast<int>(n);
    std::string_view reason = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (!valid_header_value(reason))
      arg_error(L, 2, "WriteStatus", "the reason must not contain CR, LF or NUL");
    ex->reason = std::string(reason);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int l_ev_header(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  if (ex == nullptr) return push_closed(L);
  check_head_open(L, *ex, "WriteHeader");
  luaL_checkstring(L, 3);
  if (lua_type(L, 4) != LUA_TTABLE) luaL_checkstring(L, 4);
  add_header_or_raise(L, *ex, 3, 4);
  lua_pushboolean(L, 1);
  return 1;
}

// writeTrailer(server, id, name, value | {values}) -> true | nil, err
int l_ev_trailer(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  if (ex == nullptr || ex->finished) return push_closed(L);
  luaL_checkstring(L, 3);
  if (lua_type(L, 4) != LUA_TTABLE) luaL_checkstring(L, 4);
  add_trailer_fields(L, *ex, 3, 4);
  lua_pushboolean(L, 1);
  return 1;
}

// writeInformational(server, id, status, headers|nil) -> true | nil, err
int l_ev_inform(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  if (ex == nullptr) return push_closed(L);
  check_head_open(L, *ex, "WriteInformational");
  int status = check_informational(L, 3, 2, "WriteInformational");
  std::string lines = informational_lines(L, 4);
  ExchangeIo* c = live(*ex);
  if (c == nullptr) return push_closed(L);
  c->send_informational(*ex, status, lines);
  lua_pushboolean(L, 1);
  return 1;
}

// writeResponse(server, id, chunk, yieldable) -> (true, true) | (true, nil, err)
// | (false) | yields: streams (chunked unless a length was set). In a task it
// suspends while the connection's output is over the high-water mark, as
// res:write does; elsewhere the chunk is queued and it returns at once.
int l_ev_write(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  std::string_view chunk = arg_string(L, 3);
  lua_pushboolean(L, 1);
  if (ex == nullptr || ex->conn == nullptr) return 1 + push_closed(L);
  ExchangeIo* c = ex->conn;
  if (!ex->headers_sent) c->send_head(*ex);
  return write_and_wait(L, c, *ex, chunk, 4);
}

// pending(server, id) -> whether the request waits for its response (not
// answered, its client not gone).
int l_ev_pending(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  lua_pushboolean(L, ex != nullptr && live(*ex) != nullptr ? 1 : 0);
  return 1;
}

// fail(server, id) -> true when it answered: an event handler of the
// request raised. 500 if the head was not sent yet (the connection is kept),
// else the response is cut (the client sees it incomplete), as the task
// style's done() does.
int l_ev_fail(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  ExchangeIo* c = ex == nullptr ? nullptr : live(*ex);
  if (c == nullptr || (c->http1() != nullptr && c->http1()->state() == Connection::State::Upgraded)) return 0;
  std::shared_ptr<Exchange> keep = server->pending[ex->id];  // finish() drops it from the table
  if (ex->headers_sent) {
    c->cut(*ex);
    lua_pushboolean(L, 1);
    return 1;
  }
  ex->head.clear();
  ex->trailers.clear();
  ex->status = 500;
  ex->reason.clear();
  ex->head = "Content-Type: text/plain; charset=utf-8\r\n";
  server->note_answered(ex->id);
  c->send_whole(*ex, "500 Internal Server Error\n");
  lua_pushboolean(L, 1);
  return 1;
}

// nil, err for a request that does not wait for its response: AlreadySent
// when the id at `idx` is one answered lately (Server::answered), else Closed.
int push_not_pending(lua_State* L, Server* server, int idx) {
  lua_Number n = lua_tonumber(L, idx);
  bool answered = n >= 1 && n <= 4294967295.0 && n == static_cast<lua_Number>(static_cast<uint32_t>(n)) &&
                  server->answered(static_cast<uint32_t>(n));
  if (!answered) return push_closed(L);
  lua_pushnil(L);
  lua_pushvalue(L, idx);
  std::string message = "the response to request ";
  message += lua_tostring(L, -1);  // as Lua's tostring writes the number
  message += " was already sent";
  lua_pop(L, 1);
  errors::push_error(L, "AlreadySent", message);
  return 2;
}

// sendResponse(server, id, body) -> true | nil, err: the whole body (or the
// last chunk) and the end. err.code: AlreadySent (answered lately), Closed.
int l_ev_send(lua_State* L) {
  Server* server = check_server(L, 1);
  Exchange* ex = pending_exchange(L, server, 2);
  size_t len = 0;
  const char* body = lua_isnoneornil(L, 3) ? "" : luaL_checklstring(L, 3, &len);
  if (ex == nullptr || ex->conn == nullptr) return push_not_pending(L, server, 2);
  server->note_answered(ex->id);
  std::shared_ptr<Exchange> keep = server->pending[ex->id];  // finish() drops it from the table
  if (!ex->headers_sent) {
    ex->conn->send_whole(*ex, std::string_view(body, len));
  } else {
    ex->conn->write_body(*ex, std::string_view(body, len));
    ex->conn->finish(*ex);
  }
  lua_pushboolean(L, 1);
  return 1;
}

// ------------------------------------------------------------ event style, the FFI path

// WriteStatus, WriteHeader and SendResponse (lib/HttpServer.lua) call these
// through the FFI when their arguments are plain (an integral id, a status
// number or line, string header values, a string body): compiled Lua calls
// them in its trace, where a C function of the Lua API costs a trace exit
// and a stitch each (three per hello-world response). Each returns 1 when it
// did the work, 0 when anything is not the common case (no such request, a
// head already sent, a refused value, an answer that would run Lua): the
// Lua side then calls the native above, which answers, fails or raises as
// it always did. Nothing here touches Lua: a C function called from a trace
// must not run Lua code nor allocate in the Lua heap.
namespace fast {

Exchange* pending_of(Server* server, double id) {
  if (!(id >= 1 && id <= 4294967295.0) || id != static_cast<double>(static_cast<uint32_t>(id)))
    return nullptr;
  return server->pending.find(static_cast<uint32_t>(id));
}

bool head_open(const Exchange* ex) { return ex != nullptr && !ex->finished && !ex->headers_sent; }

int status_code(Server* server, double id, double code) {
  Exchange* ex = pending_of(server, id);
  if (!head_open(ex) || !(code >= 100 && code <= 999) || code != static_cast<double>(static_cast<int>(code)))
    return 0;
  ex->status = static_cast<int>(code);
  return 1;
}

// "404 Not Found": three digits, then a space and the reason, or nothing
// (any other form is the native's to parse or refuse).
int status_line(Server* server, double id, const char* line, size_t len) {
  Exchange* ex = pending_of(server, id);
  if (!head_open(ex)) return 0;
  if (std::string_view(line, len) == "200 OK") {  // (the usual line: nothing to parse nor keep)
    ex->status = 200;
    ex->reason.clear();
    return 1;
  }
  if (len < 3 || (len > 3 && line[3] != ' ')) return 0;
  int code = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (line[i] < '0' || line[i] > '9') return 0;
    code = code * 10 + (line[i] - '0');
  }
  std::string_view reason = len > 3 ? std::string_view(line + 4, len - 4) : std::string_view();
  if (code < 100 || !valid_header_value(reason)) return 0;
  ex->status = code;
  // The standard phrase is what an empty reason writes: "200 OK" then takes
  // send_head's shortest status line and copies no string.
  if (reason == reason_phrase(code)) {
    ex->reason.clear();
  } else {
    ex->reason.assign(reason);
  }
  return 1;
}

// 0 refused (the head as it was), 1 added, 2 added as its own line (see
// add_header_if_valid's as_line: lib/evo/checkedheaders.lua may keep it).
int add_event_header(Server* server, double id, std::string_view name, std::string_view value, bool checked) {
  Exchange* ex = pending_of(server, id);
  if (!head_open(ex)) return 0;
  // The check and the copy in one pass, as res:send's headers.
  bool as_line = false;
  if (!ex->add_header_if_valid(name, value, checked, &as_line)) return 0;
  return as_line ? 2 : 1;
}

int header(Server* server, double id, const char* name, size_t name_len, const char* value,
           size_t value_len) {
  return add_event_header(server, id, std::string_view(name, name_len), std::string_view(value, value_len),
                          false);
}

// A pair lib/evo/checkedheaders.lua has seen accepted (see send_checked_header).
int checked_header(Server* server, double id, const char* name, size_t name_len, const char* value,
                   size_t value_len) {
  return add_event_header(server, id, std::string_view(name, name_len), std::string_view(value, value_len),
                          true);
}

// A pair's whole line, as send_line (lib/evo/checkedheaders.lua's lines).
int header_line(Server* server, double id, const char* line, size_t len) {
  Exchange* ex = pending_of(server, id);
  if (!head_open(ex)) return 0;
  ex->head.append(line, len);
  return 1;
}

int send(Server* server, double id, const char* body, size_t len) {
  Exchange* ex = pending_of(server, id);
  if (ex == nullptr || ex->conn == nullptr) return 0;
  Connection* c = ex->conn->http1();
  if (c == nullptr || !c->answers_quietly(*ex)) return 0;
  server->note_answered(ex->id);
  std::shared_ptr<Exchange> keep = ex->shared_from_this();  // finish() drops it from the table
  c->send_whole(*ex, std::string_view(body, len));
  return 1;
}

// res:send and the end of a request (lib/http.lua's batch loop) call these
// through the same FFI table, so a handler's request stays on the compiled
// trace of the batch loop: a classic C function ends the trace and pays for
// its arguments through the C API. They answer only what cannot
// call back into Lua (an FFI call must not): an HTTP/1.1 exchange of a
// connection inside its read callback's parse loop, whose response finishing
// starts nothing. Anything else, and every error, is -1: the caller takes
// the classic native (send, done), which does it all and raises the errors
// with their usual messages.

// The response send_begin opened, until send_end or send_abort.
struct FastSend {
  Exchange* ex = nullptr;
  int status = 0;
  HeadMark mark;
};
thread_local FastSend g_fast;

// ex (a res's exchange, or nullptr when gone) when the FFI path can answer
// it: an HTTP/1 connection inside its read, not closing; else nullptr.
Exchange* fast_exchange(Exchange* ex) {
  if (ex == nullptr || ex->conn == nullptr || ex->close_after) return nullptr;
  Connection* c = ex->conn->http1();
  if (c == nullptr || !c->in_advance() || c->closed() || c->state() == Connection::State::Upgraded)
    return nullptr;
  return ex;
}

// res:send(status, ...) begins: 0, or -1 (take the classic native).
// res: a res's ref (lib/http.lua checked its metatable and took res[1]).
int send_begin(double res, double status) {
  g_fast.ex = nullptr;
  if (!(status >= 100 && status < 1000)) return -1;  // (NaN too)
  Exchange* ex = fast_exchange(ref_of(res).get());
  if (ex == nullptr || ex->finished || ex->headers_sent) return -1;
  g_fast.ex = ex;
  g_fast.status = static_cast<int>(status);  // truncated, as luaL_checkinteger does
  g_fast.mark = HeadMark(*ex);
  return 0;
}

// One header of the table: 0, 1 when it went as its own line (see
// add_header_if_valid's as_line: lib/evo/checkedheaders.lua may keep it),
// or -1 with the head as it was before begin. checked: a pair accepted
// before (see add_header_if_valid).
int add_header(const char* name, size_t nlen, const char* value, size_t vlen, bool checked) {
  Exchange* ex = g_fast.ex;
  if (ex == nullptr) return -1;
  bool as_line = false;
  if (!ex->add_header_if_valid(std::string_view(name, nlen), std::string_view(value, vlen), checked,
                               &as_line)) {
    g_fast.mark.restore(*ex);
    g_fast.ex = nullptr;
    return -1;
  }
  return as_line ? 1 : 0;
}

int send_header(const char* name, size_t nlen, const char* value, size_t vlen) {
  return add_header(name, nlen, value, vlen, false);
}

// A pair lib/evo/checkedheaders.lua has seen accepted: the same name and
// value strings (interned, and kept alive by its table of them).
int send_checked_header(const char* name, size_t nlen, const char* value, size_t vlen) {
  return add_header(name, nlen, value, vlen, true);
}

// A whole header line ("name: value\r\n") lib/evo/checkedheaders.lua
// made of a pair the engine added as its own line: appended as it is.
int send_line(const char* line, size_t len) {
  Exchange* ex = g_fast.ex;
  if (ex == nullptr) return -1;
  ex->head.append(line, len);
  return 0;
}

// The headers were not all plain strings: back to the head before begin.
void send_abort() {
  if (g_fast.ex != nullptr) g_fast.mark.restore(*g_fast.ex);
  g_fast.ex = nullptr;
}

// The status line, head and body go out: 0, or -1 when begin was refused.
int send_end(const char* body, size_t len) {
  Exchange* ex = g_fast.ex;
  if (ex == nullptr) return -1;
  g_fast.ex = nullptr;
  ex->status = g_fast.status;
  ex->conn->send_whole(*ex, std::string_view(body, len));
  return 0;
}

// done(res, true): 0 when the handler's response is over now (finished as
// it stands if it was not), -1 to take the classic done.
int done(double res) {
  Exchange* ex = ref_of(res).get();
  if (ex == nullptr) return 0;  // gone: nothing to end
  if (ex->finished) {
    ex->handler = nullptr;
    return 0;
  }
  if (fast_exchange(ex) == nullptr) return -1;
  ex->handler = nullptr;
  ex->conn->finish(*ex);
  return 0;
}

// The next request of the batch's read for http.serve's runner (lib/http.lua's
// nextRequest): its ref, or 0 to take the classic next() (which also waits
// as the server's parked runner). An FFI call, so the batch's loop stays one
// compiled trace.
double next_request() {
  std::shared_ptr<Exchange> ex = pull_request_fast();
  return ex != nullptr ? ref_number(*ex) : 0;
}

// req.method, req.path or req.query (which: 0, 1, 2) of a res's request,
// read when a handler first asks for it (lib/http.lua's requestIndex): the
// length, *out pointing at the bytes inside the exchange (the caller copies
// them at once), or -1 when the request is over (its exchange is gone). A
// handler that never reads them pays for no string: next() returns only res's ref.
int request_part(double res, int which, const char** out) {
  const Exchange* ex = ref_of(res).get();
  if (ex == nullptr) return -1;
  std::string_view part = ex->req->method;
  if (which != 0) {
    // (An absolute-form target was reduced to its path by the parser.)
    std::string_view target(ex->req->target);
    size_t q = target.find('?');
    if (which == 1) {
      part = target.substr(0, q);
    } else {
      part = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    }
  }
  *out = part.data();
  return static_cast<int>(part.size());
}

// The next whole request of the read for HttpServer's batch loop, as
// nextEvent's values: pointer and length pairs into the exchange (method,
// path, query) and into buffers reused from call to call (the packed
// headers, the body), which the caller copies at once. 1, 0 (none: as
// nextEvent's nothing) or -1 (take the classic nextEvent). Never reaches
// Lua: pull_event_fast refuses whatever would.
struct EventOut {
  double id;
  const char* part[5];  // method, path, query, packed headers, body
  size_t len[5];
};

int next_event(Server* server, EventOut* out) {
  std::shared_ptr<Exchange> ex;
  int got = pull_event_fast(*server, &ex);
  if (got != 1) return got;
  // (The server's pending map holds the exchange until it is answered.)
  thread_local std::string headers;
  thread_local std::string body;
  pack_fields(ex->req->headers, headers);
  body.clear();
  body.swap(ex->body);  // (as push_request_values, the exchange keeps none)
  std::string_view target(ex->req->target);
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  const std::string_view parts[5] = {ex->req->method, path, query, headers, body};
  out->id = static_cast<double>(ex->id);
  for (int i = 0; i < 5; ++i) {
    out->part[i] = parts[i].data();
    out->len[i] = parts[i].size();
  }
  return 1;
}

// lib/evo/httpfast.lua's ffi.cdef mirrors this struct. A table of function
// pointers rather than exported symbols: evo exports only the Lua and luv C
// API (tools/evo-exports.list), and an embedding needs nothing exported.
struct Api {
  int (*status_code)(Server*, double, double);
  int (*status_line)(Server*, double, const char*, size_t);
  int (*header)(Server*, double, const char*, size_t, const char*, size_t);
  int (*send)(Server*, double, const char*, size_t);
  int (*send_begin)(double, double);
  int (*send_header)(const char*, size_t, const char*, size_t);
  void (*send_abort)();
  int (*send_end)(const char*, size_t);
  int (*done)(double);
  int (*request_part)(double, int, const char**);
  int (*next_event)(Server*, EventOut*);
  double (*next_request)();
  int (*send_checked_header)(const char*, size_t, const char*, size_t);
  int (*checked_header)(Server*, double, const char*, size_t, const char*, size_t);
  int (*send_line)(const char*, size_t);
  int (*header_line)(Server*, double, const char*, size_t);
};
const Api kApi = {status_code,         status_line,    header,    send,         send_begin, send_header,
                  send_abort,          send_end,       done,      request_part, next_event, next_request,
                  send_checked_header, checked_header, send_line, header_line};

}  // namespace fast

// fastServer(core) -> the Server of a server core as a light userdata, for
// the FFI path (valid while the core is: lib/HttpServer.lua keys it by the
// core, weakly).
int l_ev_fast_server(lua_State* L) {
  lua_pushlightuserdata(L, check_server(L, 1));
  return 1;
}

// setup(resMetatable): the metatable of res objects.
int l_setup(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, kResMeta);
  lua_pushvalue(L, 1);
  g_res_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

}  // namespace

namespace {

// The fields when a name repeats: joined in strings (linear time however
// many repeats), then copied into the table.
void push_joined_fields(lua_State* L, const HeaderList& headers) {
  std::vector<std::pair<std::string_view, std::string>> fields;
  std::unordered_map<std::string_view, size_t> index;
  std::vector<std::string_view> set_cookies;
  for (const auto& [name, value] : headers) {
    if (name == "set-cookie") {
      set_cookies.emplace_back(value);
      continue;
    }
    auto [it, fresh] = index.emplace(name, fields.size());
    if (fresh) {
      fields.emplace_back(name, value);
    } else {
      std::string& joined = fields[it->second].second;
      joined += name == "cookie" ? "; " : ", ";
      joined += value;
    }
  }
  lua_createtable(L, 0, static_cast<int>(fields.size() + (set_cookies.empty() ? 0 : 1)));
  for (const auto& [name, value] : fields) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, -3);
  }
  if (!set_cookies.empty()) {
    lua_createtable(L, static_cast<int>(set_cookies.size()), 0);
    for (size_t i = 0; i < set_cookies.size(); ++i) {
      lua_pushlstring(L, set_cookies[i].data(), set_cookies[i].size());
      lua_rawseti(L, -2, static_cast<int>(i + 1));
    }
    lua_setfield(L, -2, "set-cookie");
  }
}

}  // namespace

void push_headers(lua_State* L, const Request& req) { push_fields(L, req.headers); }

void push_fields(lua_State* L, const HeaderList& headers) {
  // A repeated header becomes one value, joined as RFC 9110 5.3 allows
  // (cookies with "; "), each value appended once; set-cookie is a list.
  // Usually no name repeats: the table is filled straight away, nothing
  // allocated but it; at the first repeat it is built again by joining.
  lua_createtable(L, 0, static_cast<int>(headers.size()));
  const int t = lua_gettop(L);
  for (const auto& [name, value] : headers) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    if (!lua_isnil(L, -1) || name == "set-cookie") {
      lua_settop(L, t - 1);
      push_joined_fields(L, headers);
      return;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, t);
  }
}

// The headers packed (proto/packed_fields.h): one reused buffer and one
// string per request of the event style; unpacked only when a handler reads
// payload.headers.
void push_packed_headers(lua_State* L, const Request& req) {
  thread_local std::string buf;  // (reused: no allocation per request)
  pack_fields(req.headers, buf);
  lua_pushlstring(L, buf.data(), buf.size());
}

namespace {

// unpackHeaders(packed) -> the header table (push_headers') of a packed
// string (push_packed_headers). A string that is not one raises.
int l_unpack_headers(lua_State* L) {
  size_t len = 0;
  const char* p = luaL_checklstring(L, 1, &len);
  std::optional<HeaderList> fields = unpack_fields(std::string_view(p, len));
  if (!fields) return luaL_argerror(L, 1, "not packed headers");
  push_fields(L, *fields);
  return 1;
}

}  // namespace

// The request's ref, of which Lua makes its res (see ref_number); its
// method, path and query are read when first asked for
// (fast::request_part), so a handler that never reads them makes no string.
void push_request(lua_State* L, const std::shared_ptr<Exchange>& ex) { lua_pushnumber(L, ref_number(*ex)); }

int open_http(lua_State* L) {
  luaL_newmetatable(L, kServerMeta);
  lua_pushcfunction(L, l_server_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"setup", l_setup},
      {"serve", l_serve},
      {"port", l_port},
      {"connections", l_connections},
      {"close", l_close},
      {"send", l_send},
      {"status", l_status},
      {"header", l_header},
      {"trailer", l_trailer},
      {"inform", l_inform},
      {"trailers", l_req_trailers},
      {"write", l_write},
      {"finish", l_finish},
      {"sendFile", l_send_file},
      {"read", l_read},
      {"headers", l_headers},
      {"info", l_info},
      {"state", l_state},
      {"done", l_done},
      {"next", l_next},
      {"nextEvent", l_next_event},
      {"upgrade", l_upgrade},
      {"writeStatus", l_ev_status},
      {"writeHeader", l_ev_header},
      {"writeTrailer", l_ev_trailer},
      {"writeInformational", l_ev_inform},
      {"writeResponse", l_ev_write},
      {"sendResponse", l_ev_send},
      {"pending", l_ev_pending},
      {"unpackHeaders", l_unpack_headers},
      {"fail", l_ev_fail},
      {"fastServer", l_ev_fast_server},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_pushlightuserdata(L, const_cast<fast::Api*>(&fast::kApi));
  lua_setfield(L, -2, "fastApi");
  return 1;
}

}  // namespace evo::http
