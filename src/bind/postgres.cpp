// evo.postgres: libpq connections driven by Evo's loop, the natives behind
// lib/postgres.lua.
//
// libpq does the protocol, authentication (SCRAM) and TLS; this file drives
// its non-blocking API: PQconnectStartParams/PQconnectPoll to connect,
// pipeline mode (PQsendQueryParams / PQsendQueryPrepared + PQpipelineSync
// per query) to send, PQconsumeInput/PQgetResult to read. Waiting for the
// socket follows the wait contract (src/lua/tasks.h): a task that can yield
// in the evented Io waits on a uv_poll handle and suspends; anything else
// blocks in poll(2). The queue of waiting tasks and the pipelining policy
// live in Lua (lib/postgres.lua); this file keeps, per connection, the list
// of queries in flight so it can tell which results end which query.
//
// Results use the text format and are decoded by column type (OID) straight
// into Lua tables: int2/int4/oid/float4/float8 -> number, int8 -> number when
// exact else int64_t cdata, bool -> boolean, bytea -> bytes, json/jsonb ->
// json.decode, arrays of those -> Lua arrays, NULL -> the light userdata NULL
// (postgres.null, the same value as json.null), everything else -> the text
// the server sent (numeric, uuid, dates, timestamps...).
//
// libpq is not linked: bind/libpq.h loads it with dlopen at the first
// connection (start), and every call goes through its table, pq().
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bind/int64.h"
#include "bind/libpq.h"
#include "core/handle.h"
#include "io/io.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"
#include "proto/pg_text.h"

namespace evo {
namespace {

constexpr const char* kConnMeta = "evo.postgres.Connection";
constexpr int kLuaTypeCdata = 10;     // LuaJIT's type tag for FFI cdata
const char kHelpersKey = 0;           // registry: {json.decode, json.encode, bytea meta}
constexpr size_t kMaxPrepared = 200;  // named statements kept per connection

// libpq's functions. Everything below that calls them holds a PGconn,
// PGresult or PGcancel, made after l_start loaded the library.
inline const libpq::Api& pq() { return libpq::api(); }

// ------------------------------------------------------------ RAII

struct PGconnDeleter {
  void operator()(PGconn* c) const { pq().PQfinish(c); }
};
struct PGresultDeleter {
  void operator()(PGresult* r) const { pq().PQclear(r); }
};
struct PGcancelDeleter {
  void operator()(PGcancel* c) const { pq().PQfreeCancel(c); }
};
using ResultPtr = std::unique_ptr<PGresult, PGresultDeleter>;
using SharedResult = std::shared_ptr<PGresult>;

// ------------------------------------------------------------ waiting

// A uv_poll handle on the connection's socket, plus a timer for a wait's
// deadline. Active only while a task waits; owned by the loop (NativeHandle)
// and detached from its Conn when the connection closes.
class SocketWait;

class WaitTimer final : public NativeHandle {
 public:
  explicit WaitTimer(uv_loop_t* loop) { uv_timer_init(loop, &timer_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  void release() override;  // the sweep at exit or between tests
  uv_timer_t timer_{};
  SocketWait* owner = nullptr;
};

class SocketWait final : public NativeHandle {
 public:
  SocketWait(uv_loop_t* loop, int fd, SocketWait** slot) : fd(fd), slot_(slot) {
    uv_poll_init(loop, &poll_, fd);
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&poll_); }
  // The sweep at exit or between tests: the waiting task learns the wait
  // ended, and the connection makes a new handle at its next wait.
  void release() override { shut(); }
  void drop_timer() { timer_ = nullptr; }

  void start(TaskSystem& sys, Task* t, int events, double timeout) {
    sys_ = &sys;
    task_ = t;
    id_ = sys.begin_wait(t, on_cancel, this);
    // uv_poll_start re-registers the descriptor with epoll (a DEL and an
    // ADD) even for the same events: a reader that waits again for what it
    // waited for last keeps the registration (finish() leaves it on).
    if (events != events_) {
      uv_poll_start(&poll_, events, on_poll);
      events_ = events;
    }
    if (timeout >= 0) {
      if (timer_ == nullptr) {
        timer_ = release_to_loop(std::make_unique<WaitTimer>(poll_.loop));
        timer_->owner = this;
      }
      uv_timer_start(&timer_->timer_, on_timer, static_cast<uint64_t>(std::llround(timeout * 1000.0)), 0);
    }
  }
  // Wakes a waiting task with `what` (nil: the connection went away). The
  // poll stays on for the task's next wait; on_poll turns it off if the
  // socket is ready again before anyone waits.
  void finish(const char* what) {
    if (timer_ != nullptr) uv_timer_stop(&timer_->timer_);
    if (task_ == nullptr) return;
    Task* t = task_;
    task_ = nullptr;
    lua_State* L = sys_->L();
    if (what != nullptr) {
      lua_pushstring(L, what);
    } else {
      lua_pushboolean(L, 0);
    }
    sys_->wake(t, id_, 1);
  }
  void shut() {
    if (slot_ != nullptr) *slot_ = nullptr;
    slot_ = nullptr;
    finish(nullptr);
    stop();
    if (timer_ != nullptr) {
      timer_->owner = nullptr;
      timer_->close();
      timer_ = nullptr;
    }
    close();
  }
  int fd;

 private:
  void stop() {
    if (events_ != 0) uv_poll_stop(&poll_);
    events_ = 0;
    if (timer_ != nullptr) uv_timer_stop(&timer_->timer_);
  }
  static void on_poll(uv_poll_t* p, int status, int events) {
    auto* self = static_cast<SocketWait*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(p)));
    if (status < 0) self->events_ = 0;  // libuv stopped the poll itself
    if (self->task_ == nullptr) {  // ready with nobody waiting (level-triggered): off until the next wait
      self->stop();
      return;
    }
    // An error (the peer reset) reads as readiness: libpq then finds it.
    if (status < 0) events = UV_READABLE | UV_WRITABLE;
    const char* what = (events & UV_READABLE) && (events & UV_WRITABLE) ? "rw"
                       : (events & UV_READABLE)                         ? "r"
                                                                        : "w";
    self->finish(what);
  }
  static void on_timer(uv_timer_t* h) {
    auto* t = static_cast<WaitTimer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(h)));
    if (t->owner != nullptr) t->owner->finish("timeout");
  }
  static void on_cancel(Task* /*t*/, void* arg) {
    auto* self = static_cast<SocketWait*>(arg);
    self->task_ = nullptr;
    self->stop();
  }

  uv_poll_t poll_{};
  int events_ = 0;     // what the poll is started for (0: stopped)
  SocketWait** slot_;  // the connection's pointer to this handle
  WaitTimer* timer_ = nullptr;
  TaskSystem* sys_ = nullptr;
  Task* task_ = nullptr;
  uint32_t id_ = 0;
};

void WaitTimer::release() {
  if (owner != nullptr) owner->drop_timer();
  owner = nullptr;
  close();
}

// ------------------------------------------------------------ connection

// A prepared statement of this connection (named "evo_N").
struct Stmt {
  std::string name;
  SharedResult failure;  // its Parse failed: the queries sent after it report this
};

// A query in flight, in the order libpq will return its results.
struct Sent {
  bool pipelined = true;  // ends at PGRES_PIPELINE_SYNC; else (simple protocol) at a NULL result
  bool prepare = false;   // a Parse result comes first
  bool prepared = false;  // the Parse result came
  std::shared_ptr<Stmt> stmt;
  ResultPtr result;   // the query's result (an error one wins over later ones)
  bool copy = false;  // a COPY is in progress (simple protocol)
};

struct Conn {
  std::unique_ptr<PGconn, PGconnDeleter> pg;
  std::shared_ptr<PGcancel> cancel;
  SocketWait* wait = nullptr;
  std::deque<Sent> sent;
  std::unordered_map<std::string, std::shared_ptr<Stmt>> stmts;
  uint64_t next_stmt = 0;
  uint64_t flushes = 0;  // batches: flushes that completed with new queries in them
  uint64_t queries = 0;
  uint64_t reads = 0;  // PQconsumeInput calls
  bool connected = false;
  bool corked = false;
  bool unflushed = false;  // queries sent since the last complete flush
  int nulls = 0;           // consecutive NULL results (no more now)
  // Parameter buffers, reused from call to call.
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<std::string> scratch;

  void close_wait() {
    if (wait != nullptr) wait->shut();  // clears `wait`
  }
  void close() {
    close_wait();
    pg.reset();
    cancel.reset();
    sent.clear();
    stmts.clear();
  }
};

Conn* check_conn(lua_State* L, int idx = 1) { return static_cast<Conn*>(luaL_checkudata(L, idx, kConnMeta)); }

// The connection, open; raises when closed.
PGconn* open_pg(lua_State* L, Conn* c) {
  if (!c->pg) luaL_error(L, "the postgres connection is closed");
  return c->pg.get();
}

int l_conn_gc(lua_State* L) {
  auto* c = static_cast<Conn*>(luaL_checkudata(L, 1, kConnMeta));
  c->close();
  c->~Conn();
  return 0;
}

// ------------------------------------------------------------ errors

// libpq's message without its trailing newline and "FATAL:  " prefix.
std::string clean_message(const char* m) {
  std::string s = m != nullptr ? m : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (const char* p : {"FATAL:  ", "ERROR:  "}) {
    if (s.rfind(p, 0) == 0) s.erase(0, std::strlen(p));
  }
  return s;
}

// The code for a failed connection attempt, from libpq's message (libpq keeps
// the server's SQLSTATE to itself at that stage).
const char* connect_code(const std::string& m) {
  struct Pattern {
    const char* text;
    const char* code;
  };
  static constexpr Pattern kPatterns[] = {
      {"password authentication failed", "28P01"},
      {"no password supplied", "28P01"},
      {"no pg_hba.conf entry", "28000"},
      {"does not exist", "3D000"},
      {"Connection refused", "ECONNREFUSED"},
      {"timeout expired", "Timeout"},
      {"could not translate host name", "EAI_NONAME"},
      {"SSL", "08P01"},
      {"too many clients", "53300"},
      {"the database system is starting up", "57P03"},
      {"the database system is shutting down", "57P03"},
  };
  for (const auto& p : kPatterns) {
    if (m.find(p.text) != std::string::npos) {
      // "role ... does not exist" is 28000 (invalid authorization).
      if (std::strcmp(p.code, "3D000") == 0 && m.find("role \"") != std::string::npos) return "28000";
      return p.code;
    }
  }
  return "08001";  // sqlclient_unable_to_establish_sqlconnection
}

void set_field(lua_State* L, const char* name, const char* value) {
  if (value == nullptr || value[0] == '\0') return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
}

// An error object from a failed result: code = SQLSTATE, and the server's
// fields. A result without a SQLSTATE (libpq's own) is a connection failure.
void push_result_error(lua_State* L, const PGresult* r, PGconn* pg) {
  const char* state = pq().PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary = pq().PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  std::string message = primary != nullptr ? primary : clean_message(pq().PQresultErrorMessage(r));
  if (message.empty() && pg != nullptr) message = clean_message(pq().PQerrorMessage(pg));
  errors::push_error(L, state != nullptr ? state : "08006", message);
  set_field(L, "severity", pq().PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED));
  set_field(L, "detail", pq().PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
  set_field(L, "hint", pq().PQresultErrorField(r, PG_DIAG_MESSAGE_HINT));
  set_field(L, "position", pq().PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION));
  set_field(L, "where", pq().PQresultErrorField(r, PG_DIAG_CONTEXT));
  set_field(L, "schema", pq().PQresultErrorField(r, PG_DIAG_SCHEMA_NAME));
  set_field(L, "table", pq().PQresultErrorField(r, PG_DIAG_TABLE_NAME));
  set_field(L, "column", pq().PQresultErrorField(r, PG_DIAG_COLUMN_NAME));
  set_field(L, "constraint", pq().PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME));
}

// The connection's own failure (libpq's error message): code 08006.
void push_conn_error(lua_State* L, PGconn* pg, const char* code = "08006") {
  std::string m = pg != nullptr ? clean_message(pq().PQerrorMessage(pg)) : "the connection is closed";
  if (m.empty()) m = "the connection to the server was lost";
  errors::push_error(L, code, m);
}

// nil, err for a failed libpq call: the natives' one failure answer.
int conn_failure(lua_State* L, PGconn* pg) {
  lua_pushnil(L);
  push_conn_error(L, pg);
  return 2;
}

// ------------------------------------------------------------ helpers

void push_helpers(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kHelpersKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
}

void push_null(lua_State* L) { lua_pushlightuserdata(L, nullptr); }

// ------------------------------------------------------------ decoding

enum class Kind : uint8_t { Text, Int, Float, Bool, Bytea, Json };

struct TypeInfo {
  Kind kind = Kind::Text;
  bool array = false;
};

TypeInfo type_of(Oid oid) {
  switch (oid) {
    case 21:
    case 23:
    case 20:
    case 26:
      return {Kind::Int, false};  // int2 int4 int8 oid
    case 700:
    case 701:
      return {Kind::Float, false};
    case 16:
      return {Kind::Bool, false};
    case 17:
      return {Kind::Bytea, false};
    case 114:
    case 3802:
      return {Kind::Json, false};
    case 1005:
    case 1007:
    case 1016:
    case 1028:
      return {Kind::Int, true};
    case 1021:
    case 1022:
      return {Kind::Float, true};
    case 1000:
      return {Kind::Bool, true};
    case 1001:
      return {Kind::Bytea, true};
    case 199:
    case 3807:
      return {Kind::Json, true};
    // text, varchar, bpchar, name, numeric, uuid, date, time, timestamp(tz),
    // interval, inet, cidr, xml arrays: elements as text
    case 1009:
    case 1015:
    case 1014:
    case 1003:
    case 1231:
    case 2951:
    case 1182:
    case 1183:
    case 1115:
    case 1185:
    case 1187:
    case 1041:
    case 651:
    case 143:
    case 1270:
      return {Kind::Text, true};
    default:
      return {Kind::Text, false};
  }
}

// Integers: the server sends plain decimal digits.
bool parse_int(const char* p, size_t n, int64_t& out) {
  if (n == 0 || n > 20) return false;
  size_t i = 0;
  bool neg = p[0] == '-';
  if (neg) i = 1;
  if (i == n) return false;
  uint64_t v = 0;
  for (; i < n; ++i) {
    auto d = static_cast<unsigned>(p[i] - '0');
    if (d > 9) return false;
    v = v * 10 + d;
  }
  if (v > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return false;
  out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

void push_json(lua_State* L, const char* p, size_t n) {
  push_helpers(L);
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
  lua_pushlstring(L, p, n);
  lua_call(L, 1, 1);
}

void push_scalar(lua_State* L, Kind kind, const char* p, size_t n) {
  switch (kind) {
    case Kind::Int: {
      int64_t i = 0;
      if (parse_int(p, n, i)) return push_int64(L, i);
      return lua_pushlstring(L, p, n);
    }
    case Kind::Float: {
      // strtod reads NaN, Infinity and -Infinity as the server spells them.
      std::string s(p, n);
      return lua_pushnumber(L, std::strtod(s.c_str(), nullptr));
    }
    case Kind::Bool:
      return lua_pushboolean(L, n > 0 && p[0] == 't');
    case Kind::Bytea: {
      std::string bytes;
      if (pg::decode_bytea_hex(std::string_view(p, n), bytes)) {
        return lua_pushlstring(L, bytes.data(), bytes.size());
      }
      return lua_pushlstring(L, p, n);  // bytea_output = escape: left as the server wrote it
    }
    case Kind::Json:
      return push_json(L, p, n);
    case Kind::Text:
      return lua_pushlstring(L, p, n);
  }
}

void push_array_item(lua_State* L, Kind kind, const pg::ArrayItem& item) {
  switch (item.kind) {
    case pg::ArrayItem::Kind::Null:
      return push_null(L);
    case pg::ArrayItem::Kind::Text:
      return push_scalar(L, kind, item.text.data(), item.text.size());
    case pg::ArrayItem::Kind::Array: {
      lua_createtable(L, static_cast<int>(item.items.size()), 0);
      int i = 0;
      for (const auto& sub : item.items) {
        push_array_item(L, kind, sub);
        lua_rawseti(L, -2, ++i);
      }
      return;
    }
  }
}

void push_value(lua_State* L, TypeInfo t, const char* p, size_t n) {
  if (!t.array) return push_scalar(L, t.kind, p, n);
  pg::ArrayItem root;
  if (!pg::parse_array(std::string_view(p, n), ',', root)) return lua_pushlstring(L, p, n);
  push_array_item(L, t.kind, root);
}

// rows: an array of tables keyed by column name; rows.columns (names in
// order), rows.rowCount, rows.command (the command tag).
void push_rows(lua_State* L, const PGresult* r) {
  const int nrows = pq().PQntuples(r);
  const int ncols = pq().PQnfields(r);
  lua_createtable(L, nrows, 3);
  const int rows = lua_gettop(L);
  lua_createtable(L, ncols, 0);
  const int names = lua_gettop(L);
  std::vector<TypeInfo> types(static_cast<size_t>(ncols));
  for (int j = 0; j < ncols; ++j) {
    lua_pushstring(L, pq().PQfname(r, j));
    lua_rawseti(L, names, j + 1);
    types[static_cast<size_t>(j)] = type_of(pq().PQftype(r, j));
  }
  luaL_checkstack(L, ncols + 8, "too many columns");
  // The names, interned once, on the stack for the row loop.
  for (int j = 0; j < ncols; ++j) lua_rawgeti(L, names, j + 1);
  const int first_name = names + 1;
  for (int i = 0; i < nrows; ++i) {
    lua_createtable(L, 0, ncols);
    for (int j = 0; j < ncols; ++j) {
      lua_pushvalue(L, first_name + j);
      if (pq().PQgetisnull(r, i, j)) {
        push_null(L);
      } else {
        push_value(L, types[static_cast<size_t>(j)], pq().PQgetvalue(r, i, j),
                   static_cast<size_t>(pq().PQgetlength(r, i, j)));
      }
      lua_rawset(L, -3);
    }
    lua_rawseti(L, rows, i + 1);
  }
  lua_settop(L, names);
  lua_setfield(L, rows, "columns");
  const char* tuples = pq().PQcmdTuples(const_cast<PGresult*>(r));
  if (tuples != nullptr && tuples[0] != '\0') {
    lua_pushnumber(L, std::strtod(tuples, nullptr));
  } else {
    lua_pushnumber(L, nrows);
  }
  lua_setfield(L, rows, "rowCount");
  lua_pushstring(L, pq().PQcmdStatus(const_cast<PGresult*>(r)));
  lua_setfield(L, rows, "command");
}

// ------------------------------------------------------------ parameters

// "bad argument #n to 'query' (...)": n counts the SQL as #1.
[[noreturn]] void bad_param(lua_State* L, int n, const char* fname, const char* reason) {
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", n, fname, reason);
  lua_error(L);
  std::abort();
}

// Reads the parameters at first.. on L into c's buffers: text format, except
// bytes (postgres.bytea(s), or a string holding a zero byte) in binary.
void read_params(lua_State* L, Conn* c, int first, int count, const char* fname) {
  c->values.assign(static_cast<size_t>(count), nullptr);
  c->lengths.assign(static_cast<size_t>(count), 0);
  c->formats.assign(static_cast<size_t>(count), 0);
  c->scratch.resize(static_cast<size_t>(count));
  for (int k = 0; k < count; ++k) {
    const int idx = first + k;
    const auto i = static_cast<size_t>(k);
    const int argn = k + 2;
    switch (lua_type(L, idx)) {
      case LUA_TNIL:
        break;
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != nullptr)
          bad_param(L, argn, fname, "light userdata cannot be a parameter");
        break;  // postgres.null
      case LUA_TBOOLEAN:
        c->values[i] = lua_toboolean(L, idx) ? "true" : "false";
        break;
      case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        char buf[40];
        if (std::isnan(d)) {
          c->values[i] = "NaN";
          break;
        }
        if (std::isinf(d)) {
          c->values[i] = d > 0 ? "Infinity" : "-Infinity";
          break;
        }
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
            static_cast<double>(static_cast<int64_t>(d)) == d) {
          std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(d));
        } else {
          std::snprintf(buf, sizeof buf, "%.17g", d);
        }
        c->scratch[i] = buf;
        c->values[i] = c->scratch[i].c_str();
        break;
      }
      case LUA_TSTRING: {
        size_t n = 0;
        const char* s = lua_tolstring(L, idx, &n);
        c->values[i] = s;
        if (std::memchr(s, 0, n) != nullptr) {  // text format stops at a zero byte
          c->lengths[i] = static_cast<int>(n);
          c->formats[i] = 1;
        }
        break;
      }
      case LUA_TTABLE: {
        push_helpers(L);
        lua_rawgeti(L, -1, 3);
        bool bytes = lua_getmetatable(L, idx) != 0 && lua_rawequal(L, -1, -2) != 0;
        lua_settop(L, lua_gettop(L) - (bytes ? 3 : 2));
        if (bytes) {  // postgres.bytea(s): sent in binary, as is
          lua_rawgeti(L, idx, 1);
          size_t n = 0;
          const char* s = lua_tolstring(L, -1, &n);
          if (s == nullptr) bad_param(L, argn, fname, "postgres.bytea holds no string");
          c->scratch[i].assign(s, n);
          lua_pop(L, 1);
          c->values[i] = c->scratch[i].data();
          c->lengths[i] = static_cast<int>(n);
          c->formats[i] = 1;
          break;
        }
        // Any other table is sent as JSON (json/jsonb columns, or ::json).
        push_helpers(L);
        lua_rawgeti(L, -1, 2);
        lua_remove(L, -2);
        lua_pushvalue(L, idx);
        lua_call(L, 1, 2);
        if (!lua_isstring(L, -2)) {
          std::string why = "cannot encode the table as JSON: " + errors::describe(L, -1);
          bad_param(L, argn, fname, why.c_str());
        }
        c->scratch[i] = lua_tostring(L, -2);
        lua_pop(L, 2);
        c->values[i] = c->scratch[i].c_str();
        break;
      }
      case kLuaTypeCdata: {  // int64_t / uint64_t: tostring gives 123LL / 123ULL
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        std::string s = lua_tostring(L, -1) != nullptr ? lua_tostring(L, -1) : "";
        lua_pop(L, 1);
        while (!s.empty() && (s.back() == 'L' || s.back() == 'U')) s.pop_back();
        if (s.empty() || s.find_first_not_of("-0123456789") != std::string::npos) {
          bad_param(L, argn, fname, "only int64_t and uint64_t cdata can be parameters");
        }
        c->scratch[i] = s;
        c->values[i] = c->scratch[i].c_str();
        break;
      }
      default: {
        lua_pushfstring(L, "%s cannot be a parameter", luaL_typename(L, idx));
        bad_param(L, argn, fname, lua_tostring(L, -1));
      }
    }
  }
}

// ------------------------------------------------------------ natives

// Loads libpq (the first call in the process does). When it cannot be
// loaded, pushes nil, err (code LibraryUnavailable, naming the package) and
// returns false.
bool load_libpq(lua_State* L) {
  if (libpq::load() != nullptr) return true;
  lua_pushnil(L);
  errors::push_error(L, "LibraryUnavailable", libpq::load_error());
  return false;
}

// start(keywords, values) -> conn | nil, err: loads libpq (the first time),
// then PQconnectStartParams; the caller then drives connectPoll/wait.
int l_start(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  const int n = static_cast<int>(lua_objlen(L, 1));
  std::vector<std::string> keys, vals;
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, 1, i);
    lua_rawgeti(L, 2, i);
    keys.emplace_back(luaL_checkstring(L, -2));
    vals.emplace_back(luaL_checkstring(L, -1));
    lua_pop(L, 2);
  }
  std::vector<const char*> kp, vp;
  for (size_t i = 0; i < keys.size(); ++i) {
    kp.push_back(keys[i].c_str());
    vp.push_back(vals[i].c_str());
  }
  kp.push_back(nullptr);
  vp.push_back(nullptr);
  if (!load_libpq(L)) return 2;
  PGconn* raw = pq().PQconnectStartParams(kp.data(), vp.data(), 1);
  if (raw == nullptr) {
    lua_pushnil(L);
    errors::push_error(L, "ENOMEM", "libpq could not allocate a connection");
    return 2;
  }
  auto* c = static_cast<Conn*>(lua_newuserdata(L, sizeof(Conn)));
  new (c) Conn();
  c->pg.reset(raw);
  // The server's NOTICE and WARNING messages are not errors: libpq's default
  // prints them on stderr; a library must not.
  pq().PQsetNoticeProcessor(
      raw, [](void* /*arg*/, const char* /*message*/) {}, nullptr);
  luaL_getmetatable(L, kConnMeta);
  lua_setmetatable(L, -2);
  if (pq().PQstatus(raw) == CONNECTION_BAD) {
    std::string m = clean_message(pq().PQerrorMessage(raw));
    c->close();
    lua_pushnil(L);
    errors::push_error(L, connect_code(m), m);
    return 2;
  }
  return 1;
}

// connectPoll(conn) -> "r" | "w" | "ok" | nil, err
int l_connect_poll(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  switch (pq().PQconnectPoll(pg)) {
    case PGRES_POLLING_READING:
      lua_pushliteral(L, "r");
      return 1;
    case PGRES_POLLING_WRITING:
      lua_pushliteral(L, "w");
      return 1;
    case PGRES_POLLING_OK: {
      c->connected = true;
      if (pq().PQsetnonblocking(pg, 1) != 0 || pq().PQenterPipelineMode(pg) != 1) {
        lua_pushnil(L);
        push_conn_error(L, pg, "08001");
        c->close();
        return 2;
      }
      c->cancel.reset(pq().PQgetCancel(pg), PGcancelDeleter());
      lua_pushliteral(L, "ok");
      return 1;
    }
    default: {
      std::string m = clean_message(pq().PQerrorMessage(pg));
      c->close();
      lua_pushnil(L);
      errors::push_error(L, connect_code(m), m);
      return 2;
    }
  }
}

// wait(conn, events "r"|"w"|"rw", timeout (<0: none), yieldable) ->
// true, "r"|"w"|"rw"|"timeout" | true, false (closed meanwhile) | false (cancelled)
int l_wait(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  const char* ev = luaL_checkstring(L, 2);
  double timeout = luaL_optnumber(L, 3, -1);
  const bool want_r = std::strchr(ev, 'r') != nullptr;
  const bool want_w = std::strchr(ev, 'w') != nullptr;
  const int fd = pq().PQsocket(pg);
  if (fd < 0) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 0);
    return 2;
  }
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 4);
  if (t != nullptr && sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (t == nullptr) {  // block in poll(2)
    pollfd p{fd, static_cast<short>((want_r ? POLLIN : 0) | (want_w ? POLLOUT : 0)), 0};
    int ms = timeout < 0 ? -1 : static_cast<int>(std::llround(timeout * 1000.0));
    int rc = 0;
    do {
      rc = ::poll(&p, 1, ms);
    } while (rc < 0 && errno == EINTR);
    lua_pushboolean(L, 1);
    if (rc == 0) {
      lua_pushliteral(L, "timeout");
    } else {
      bool r = (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
      bool w = (p.revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
      lua_pushstring(L, r && w ? "rw" : r ? "r" : "w");
    }
    return 2;
  }
  // The socket can change while connecting (libpq tries the next address).
  if (c->wait != nullptr && c->wait->fd != fd) c->close_wait();
  if (c->wait == nullptr) {
    c->wait =
        NativeHandle::release_to_loop(std::make_unique<SocketWait>(Runtime::from(L).loop(), fd, &c->wait));
  }
  c->wait->start(sys, t, (want_r ? UV_READABLE : 0) | (want_w ? UV_WRITABLE : 0), timeout);
  return sys.suspend(L, t);  // (true, what) when woken
}

// send(conn, sql, usePrepared, ...) -> true | nil, err: the query and a Sync
// go into libpq's output buffer (sent by flush, or when it fills).
int l_send(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  size_t sql_len = 0;
  const char* sql = luaL_checklstring(L, 2, &sql_len);
  const bool use_prepared = lua_toboolean(L, 3) != 0;
  const int nparams = lua_gettop(L) - 3;
  if (nparams > 65535) bad_param(L, 65537, "query", "too many parameters (at most 65535)");
  read_params(L, c, 4, nparams, "query");
  Sent s;
  bool ok = false;
  if (use_prepared) {
    std::string key(sql, sql_len);
    auto it = c->stmts.find(key);
    if (it == c->stmts.end() && c->stmts.size() < kMaxPrepared) {
      auto st = std::make_shared<Stmt>();
      st->name = "evo_" + std::to_string(++c->next_stmt);
      if (pq().PQsendPrepare(pg, st->name.c_str(), sql, 0, nullptr) != 1) goto failed;
      s.prepare = true;
      it = c->stmts.emplace(std::move(key), std::move(st)).first;
    }
    if (it != c->stmts.end()) {
      s.stmt = it->second;
      ok = pq().PQsendQueryPrepared(pg, s.stmt->name.c_str(), nparams, c->values.data(), c->lengths.data(),
                                    c->formats.data(), 0) == 1;
    }
  }
  if (s.stmt == nullptr) {
    ok = pq().PQsendQueryParams(pg, sql, nparams, nullptr, c->values.data(), c->lengths.data(),
                                c->formats.data(), 0) == 1;
  }
  if (!ok || pq().PQpipelineSync(pg) != 1) goto failed;
  ++c->queries;
  c->unflushed = true;
  c->sent.push_back(std::move(s));
  lua_pushboolean(L, 1);
  return 1;
failed:
  // The Parse may have gone in before the Bind failed: forget the statement
  // so it is prepared again, and report libpq's reason.
  if (s.prepare) c->stmts.erase(std::string(sql, sql_len));
  return conn_failure(L, pg);
}

// sendSimple(conn, sql) -> true | nil, err: the simple query protocol (several
// statements, COPY), outside pipeline mode: the caller has made the pipeline idle.
int l_send_simple(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  const char* sql = luaL_checkstring(L, 2);
  if (pq().PQpipelineStatus(pg) != PQ_PIPELINE_OFF && pq().PQexitPipelineMode(pg) != 1) {
    return conn_failure(L, pg);
  }
  if (pq().PQsendQuery(pg, sql) != 1) {
    return conn_failure(L, pg);
  }
  Sent s;
  s.pipelined = false;
  c->sent.push_back(std::move(s));
  lua_pushboolean(L, 1);
  return 1;
}

// pipeline(conn) -> true | nil, err: back into pipeline mode after simple queries.
int l_pipeline(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  if (pq().PQpipelineStatus(pg) == PQ_PIPELINE_OFF && pq().PQenterPipelineMode(pg) != 1) {
    return conn_failure(L, pg);
  }
  lua_pushboolean(L, 1);
  return 1;
}

void set_cork(Conn* c, bool on) {
  if (c->corked == on || !c->pg) return;
  int fd = pq().PQsocket(c->pg.get());
  int v = on ? 1 : 0;
  // Fails harmlessly on a Unix socket.
  if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof v) == 0) c->corked = on;
}

// cork(conn, on): holds the writes of a batch in the kernel (TCP_CORK) so the
// queries of one turn of the loop leave in as few packets as possible; every
// PQpipelineSync flushes by itself.
int l_cork(lua_State* L) {
  Conn* c = check_conn(L);
  open_pg(L, c);
  set_cork(c, lua_toboolean(L, 2) != 0);
  return 0;
}

// flush(conn, read) -> true (all sent) | false (wait for the socket) | nil, err
int l_flush(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  if (lua_toboolean(L, 2) && pq().PQconsumeInput(pg) != 1) {
    return conn_failure(L, pg);
  }
  int rc = pq().PQflush(pg);
  if (rc < 0) {
    return conn_failure(L, pg);
  }
  if (rc == 0) {
    if (c->unflushed) ++c->flushes;  // a batch went out (not a no-op flush)
    c->unflushed = false;
    set_cork(c, false);
  }
  lua_pushboolean(L, rc == 0 ? 1 : 0);
  return 1;
}

// Pushes the finished query's answer: rows, or nil, err. Returns 2.
int push_answer(lua_State* L, Conn* c, Sent& s) {
  PGconn* pg = c->pg.get();
  PGresult* r = s.result.get();
  if (r == nullptr) {
    lua_pushnil(L);
    errors::push_error(L, "08P01", "the server sent no result for the query");
    return 2;
  }
  switch (pq().PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      push_rows(L, r);
      lua_pushnil(L);
      return 2;
    default: {
      lua_pushnil(L);
      // A query sent after its statement's failed Parse reports that failure.
      const char* state = pq().PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (s.stmt && s.stmt->failure &&
          (pq().PQresultStatus(r) == PGRES_PIPELINE_ABORTED ||
           (state != nullptr && std::strcmp(state, "26000") == 0))) {
        push_result_error(L, s.stmt->failure.get(), pg);
      } else if (pq().PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
        errors::push_error(L, "08P01", "the query was aborted by an earlier error in its pipeline");
      } else {
        push_result_error(L, r, pg);
      }
      return 2;
    }
  }
}

// Takes one result into the oldest query in flight. Returns true when that
// query is complete.
bool take_result(Conn* c, ResultPtr r) {
  Sent& s = c->sent.front();
  ExecStatusType st = pq().PQresultStatus(r.get());
  if (st == PGRES_PIPELINE_SYNC) return s.pipelined;
  if (s.prepare && !s.prepared) {
    s.prepared = true;
    if (st == PGRES_FATAL_ERROR && s.stmt) {
      s.stmt->failure = SharedResult(r.release(), PGresultDeleter());
      // Forget it so that a later query prepares it again.
      for (auto it = c->stmts.begin(); it != c->stmts.end(); ++it) {
        if (it->second == s.stmt) {
          c->stmts.erase(it);
          break;
        }
      }
    }
    return false;
  }
  // The first error wins; otherwise the last result (simple protocol with
  // several statements answers with the last one).
  if (!s.result || pq().PQresultStatus(s.result.get()) != PGRES_FATAL_ERROR) s.result = std::move(r);
  return false;
}

// next(conn, read) -> nil (wait for input) | true, rows | true, nil, err |
// "copyin" | "copyout" | false, err (the connection failed)
int l_next(lua_State* L) {
  Conn* c = check_conn(L);
  if (!c->pg) {
    lua_pushboolean(L, 0);
    push_conn_error(L, nullptr, "Closed");
    return 2;
  }
  PGconn* pg = c->pg.get();
  if (lua_toboolean(L, 2)) {
    ++c->reads;
    if (pq().PQconsumeInput(pg) != 1) {
      lua_pushboolean(L, 0);
      push_conn_error(L, pg);
      return 2;
    }
  }
  for (;;) {
    if (c->sent.empty()) return 0;
    if (pq().PQisBusy(pg)) {
      if (pq().PQstatus(pg) == CONNECTION_BAD) {
        lua_pushboolean(L, 0);
        push_conn_error(L, pg);
        return 2;
      }
      return 0;
    }
    ResultPtr r(pq().PQgetResult(pg));
    Sent& s = c->sent.front();
    if (!r) {
      if (!s.pipelined && (s.result || s.copy)) {  // the end of a simple query
        lua_pushboolean(L, 1);
        int n = push_answer(L, c, s);
        c->sent.pop_front();
        return n + 1;
      }
      if (++c->nulls >= 2 || pq().PQstatus(pg) == CONNECTION_BAD) {
        c->nulls = 0;
        if (pq().PQstatus(pg) == CONNECTION_BAD) {
          lua_pushboolean(L, 0);
          push_conn_error(L, pg);
          return 2;
        }
        return 0;
      }
      continue;
    }
    c->nulls = 0;
    ExecStatusType st = pq().PQresultStatus(r.get());
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
      s.copy = true;
      lua_pushstring(L, st == PGRES_COPY_IN ? "copyin" : "copyout");
      return 1;
    }
    // libpq's own error (no SQLSTATE) on a dead connection.
    if (st == PGRES_FATAL_ERROR && pq().PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) == nullptr &&
        pq().PQstatus(pg) == CONNECTION_BAD) {
      lua_pushboolean(L, 0);
      push_result_error(L, r.get(), pg);
      return 2;
    }
    if (take_result(c, std::move(r))) {
      lua_pushboolean(L, 1);
      int n = push_answer(L, c, s);
      c->sent.pop_front();
      return n + 1;
    }
  }
}

// putCopy(conn, data) -> true | false (wait writable) | nil, err
int l_put_copy(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  int rc = pq().PQputCopyData(pg, data, static_cast<int>(n));
  if (rc < 0) {
    return conn_failure(L, pg);
  }
  lua_pushboolean(L, rc);
  return 1;
}

// putCopyEnd(conn [, errormsg]) -> true | false | nil, err
int l_put_copy_end(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  int rc = pq().PQputCopyEnd(pg, luaL_optstring(L, 2, nullptr));
  if (rc < 0) {
    return conn_failure(L, pg);
  }
  lua_pushboolean(L, rc);
  return 1;
}

// getCopy(conn, read) -> data | nil (wait readable) | false (done) | nil, err
int l_get_copy(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  if (lua_toboolean(L, 2) && pq().PQconsumeInput(pg) != 1) {
    return conn_failure(L, pg);
  }
  char* buf = nullptr;
  int rc = pq().PQgetCopyData(pg, &buf, 1);
  if (rc > 0) {
    lua_pushlstring(L, buf, static_cast<size_t>(rc));
    pq().PQfreemem(buf);
    return 1;
  }
  if (rc == 0) return 0;
  if (rc == -1) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return conn_failure(L, pg);
}

// notifies(conn, read) -> {channel, payload, pid} | nil | false, err
int l_notifies(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  if (lua_toboolean(L, 2) && pq().PQconsumeInput(pg) != 1) {
    lua_pushboolean(L, 0);
    push_conn_error(L, pg);
    return 2;
  }
  PGnotify* n = pq().PQnotifies(pg);
  if (n == nullptr) {
    if (pq().PQstatus(pg) == CONNECTION_BAD) {
      lua_pushboolean(L, 0);
      push_conn_error(L, pg);
      return 2;
    }
    return 0;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, n->relname);
  lua_setfield(L, -2, "channel");
  lua_pushstring(L, n->extra != nullptr ? n->extra : "");
  lua_setfield(L, -2, "payload");
  lua_pushnumber(L, n->be_pid);
  lua_setfield(L, -2, "pid");
  pq().PQfreemem(n);
  return 1;
}

// cancel(conn) -> true | nil, err: asks the server to stop the running query
// (PQcancel: a short connection of its own). Synchronous: it returns once the
// server has signalled the backend, so no query sent after it is hit.
int l_cancel(lua_State* L) {
  Conn* c = check_conn(L);
  if (!c->cancel) {
    lua_pushnil(L);
    errors::push_error(L, "Closed", "the connection is closed");
    return 2;
  }
  char err[256] = {0};
  if (pq().PQcancel(c->cancel.get(), err, sizeof err) != 1) {
    lua_pushnil(L);
    errors::push_error(L, "08006", clean_message(err));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int l_close(lua_State* L) {
  check_conn(L)->close();
  return 0;
}

int l_is_open(lua_State* L) {
  Conn* c = check_conn(L);
  lua_pushboolean(L, c->pg && pq().PQstatus(c->pg.get()) == CONNECTION_OK ? 1 : 0);
  return 1;
}

// stats(conn) -> {queries, flushes, reads, inFlight, prepared, pid, serverVersion}
int l_stats(lua_State* L) {
  Conn* c = check_conn(L);
  lua_createtable(L, 0, 7);
  lua_pushnumber(L, static_cast<double>(c->queries));
  lua_setfield(L, -2, "queries");
  lua_pushnumber(L, static_cast<double>(c->flushes));
  lua_setfield(L, -2, "flushes");
  lua_pushnumber(L, static_cast<double>(c->reads));
  lua_setfield(L, -2, "reads");
  lua_pushnumber(L, static_cast<double>(c->sent.size()));
  lua_setfield(L, -2, "inFlight");
  lua_pushnumber(L, static_cast<double>(c->stmts.size()));
  lua_setfield(L, -2, "prepared");
  if (c->pg) {
    lua_pushnumber(L, pq().PQbackendPID(c->pg.get()));
    lua_setfield(L, -2, "pid");
    lua_pushnumber(L, pq().PQserverVersion(c->pg.get()));
    lua_setfield(L, -2, "serverVersion");
    lua_pushboolean(L, pq().PQsslInUse(c->pg.get()));
    lua_setfield(L, -2, "ssl");
  }
  return 1;
}

// escapeIdentifier(conn, s) -> "quoted"; escapeLiteral(conn, s) -> 'quoted'
// (libpq quotes for the connection's encoding and settings).
template <auto Escape>  // &libpq::Api::PQescapeIdentifier or PQescapeLiteral
int l_escape(lua_State* L) {
  Conn* c = check_conn(L);
  PGconn* pg = open_pg(L, c);
  size_t n = 0;
  const char* s = luaL_checklstring(L, 2, &n);
  char* q = (pq().*Escape)(pg, s, n);
  if (q == nullptr) return luaL_error(L, "%s", pq().PQerrorMessage(pg));
  lua_pushstring(L, q);
  pq().PQfreemem(q);
  return 1;
}

// setHelpers(json.decode, json.encode, byteaMeta)
int l_set_helpers(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  push_helpers(L);
  for (int i = 1; i <= 3; ++i) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  return 0;
}

// decodeArray(text, kind) for tests and the fuzz corpus: the element
// decoding of an int ("int"), float, bool or text array.
int l_decode(lua_State* L) {
  size_t n = 0;
  const char* p = luaL_checklstring(L, 1, &n);
  auto oid = static_cast<Oid>(luaL_checkinteger(L, 2));
  push_value(L, type_of(oid), p, n);
  return 1;
}

// libpqVersion() -> 150014 (libpq's PQlibVersion) | nil, err: loads libpq
// if no connection did yet.
int l_libpq_version(lua_State* L) {
  if (!load_libpq(L)) return 2;
  lua_pushnumber(L, pq().PQlibVersion());
  return 1;
}

void make_helpers(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kHelpersKey));
  lua_createtable(L, 3, 0);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

}  // namespace

int open_postgres(lua_State* L) {
  luaL_newmetatable(L, kConnMeta);
  lua_pushcfunction(L, l_conn_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "PostgresNative");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  make_helpers(L);
  const luaL_Reg functions[] = {
      {"start", l_start},
      {"connectPoll", l_connect_poll},
      {"wait", l_wait},
      {"send", l_send},
      {"sendSimple", l_send_simple},
      {"pipeline", l_pipeline},
      {"cork", l_cork},
      {"flush", l_flush},
      {"next", l_next},
      {"putCopy", l_put_copy},
      {"putCopyEnd", l_put_copy_end},
      {"getCopy", l_get_copy},
      {"notifies", l_notifies},
      {"cancel", l_cancel},
      {"close", l_close},
      {"isOpen", l_is_open},
      {"stats", l_stats},
      {"escapeIdentifier", l_escape<&libpq::Api::PQescapeIdentifier>},
      {"escapeLiteral", l_escape<&libpq::Api::PQescapeLiteral>},
      {"setHelpers", l_set_helpers},
      {"decode", l_decode},
      {"libpqVersion", l_libpq_version},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
