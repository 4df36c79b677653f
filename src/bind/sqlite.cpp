// evo.sqlite: SQLite connections and statements (Debian's libsqlite3), the
// natives behind lib/sqlite.lua.
//
// Two ways to run a connection:
//  - synchronous (the default, like bun:sqlite and better-sqlite3): every
//    call binds straight from the Lua stack, steps on the calling thread and
//    builds the rows as it reads them. The connection is opened NOMUTEX:
//    only this thread ever touches it, so SQLite's own locking is skipped.
//  - worker: each call is one Io::work job (libuv's thread pool in the
//    evented Io; inline in the blocking Io or where the caller cannot wait).
//    Parameters are copied before the job and rows are copied out by it, so
//    the pool thread never touches Lua. Jobs on one connection are
//    serialised by Conn::run; a cancelled job that is running is stopped
//    with sqlite3_interrupt, one still waiting is skipped.
//
// Values: INTEGER -> a number, or an int64_t cdata beyond +-2^53 (as
// evo.json does); REAL -> number; TEXT and BLOB -> string; NULL -> the
// light userdata NULL (sqlite.null, the same value as json.null).
#include <sqlite3.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "bind/int64.h"
#include "bind/io_call.h"
#include "io/io.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

constexpr const char* kDbMeta = "evo.sqlite.Database";
constexpr const char* kStmtMeta = "evo.sqlite.Statement";
// A worker connection's statements: the same natives, behind Lua methods
// that pass `true` (may suspend) and finish the wait protocol.
constexpr const char* kWorkerStmtMeta = "evo.sqlite.WorkerStatement";
constexpr int kLuaTypeCdata = 10;  // LuaJIT's type tag for FFI cdata
const char kHelpersKey = 0;        // registry: {int64_t, uint64_t, ffi.istype, blob meta}

// ------------------------------------------------------------ error names

struct ErrName {
  int code;
  const char* name;
};

#define EVO_SQLITE_ERR(x) \
  { x, #x }
constexpr ErrName kErrNames[] = {
    EVO_SQLITE_ERR(SQLITE_ERROR),
    EVO_SQLITE_ERR(SQLITE_INTERNAL),
    EVO_SQLITE_ERR(SQLITE_PERM),
    EVO_SQLITE_ERR(SQLITE_ABORT),
    EVO_SQLITE_ERR(SQLITE_BUSY),
    EVO_SQLITE_ERR(SQLITE_LOCKED),
    EVO_SQLITE_ERR(SQLITE_NOMEM),
    EVO_SQLITE_ERR(SQLITE_READONLY),
    EVO_SQLITE_ERR(SQLITE_INTERRUPT),
    EVO_SQLITE_ERR(SQLITE_IOERR),
    EVO_SQLITE_ERR(SQLITE_CORRUPT),
    EVO_SQLITE_ERR(SQLITE_NOTFOUND),
    EVO_SQLITE_ERR(SQLITE_FULL),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN),
    EVO_SQLITE_ERR(SQLITE_PROTOCOL),
    EVO_SQLITE_ERR(SQLITE_EMPTY),
    EVO_SQLITE_ERR(SQLITE_SCHEMA),
    EVO_SQLITE_ERR(SQLITE_TOOBIG),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT),
    EVO_SQLITE_ERR(SQLITE_MISMATCH),
    EVO_SQLITE_ERR(SQLITE_MISUSE),
    EVO_SQLITE_ERR(SQLITE_NOLFS),
    EVO_SQLITE_ERR(SQLITE_AUTH),
    EVO_SQLITE_ERR(SQLITE_FORMAT),
    EVO_SQLITE_ERR(SQLITE_RANGE),
    EVO_SQLITE_ERR(SQLITE_NOTADB),
    EVO_SQLITE_ERR(SQLITE_NOTICE),
    EVO_SQLITE_ERR(SQLITE_WARNING),
    EVO_SQLITE_ERR(SQLITE_ERROR_MISSING_COLLSEQ),
    EVO_SQLITE_ERR(SQLITE_ERROR_RETRY),
    EVO_SQLITE_ERR(SQLITE_ERROR_SNAPSHOT),
    EVO_SQLITE_ERR(SQLITE_IOERR_READ),
    EVO_SQLITE_ERR(SQLITE_IOERR_SHORT_READ),
    EVO_SQLITE_ERR(SQLITE_IOERR_WRITE),
    EVO_SQLITE_ERR(SQLITE_IOERR_FSYNC),
    EVO_SQLITE_ERR(SQLITE_IOERR_DIR_FSYNC),
    EVO_SQLITE_ERR(SQLITE_IOERR_TRUNCATE),
    EVO_SQLITE_ERR(SQLITE_IOERR_FSTAT),
    EVO_SQLITE_ERR(SQLITE_IOERR_UNLOCK),
    EVO_SQLITE_ERR(SQLITE_IOERR_RDLOCK),
    EVO_SQLITE_ERR(SQLITE_IOERR_DELETE),
    EVO_SQLITE_ERR(SQLITE_IOERR_BLOCKED),
    EVO_SQLITE_ERR(SQLITE_IOERR_NOMEM),
    EVO_SQLITE_ERR(SQLITE_IOERR_ACCESS),
    EVO_SQLITE_ERR(SQLITE_IOERR_CHECKRESERVEDLOCK),
    EVO_SQLITE_ERR(SQLITE_IOERR_LOCK),
    EVO_SQLITE_ERR(SQLITE_IOERR_CLOSE),
    EVO_SQLITE_ERR(SQLITE_IOERR_DIR_CLOSE),
    EVO_SQLITE_ERR(SQLITE_IOERR_SHMOPEN),
    EVO_SQLITE_ERR(SQLITE_IOERR_SHMSIZE),
    EVO_SQLITE_ERR(SQLITE_IOERR_SHMLOCK),
    EVO_SQLITE_ERR(SQLITE_IOERR_SHMMAP),
    EVO_SQLITE_ERR(SQLITE_IOERR_SEEK),
    EVO_SQLITE_ERR(SQLITE_IOERR_DELETE_NOENT),
    EVO_SQLITE_ERR(SQLITE_IOERR_MMAP),
    EVO_SQLITE_ERR(SQLITE_IOERR_GETTEMPPATH),
    EVO_SQLITE_ERR(SQLITE_IOERR_CONVPATH),
    EVO_SQLITE_ERR(SQLITE_IOERR_VNODE),
    EVO_SQLITE_ERR(SQLITE_IOERR_AUTH),
    EVO_SQLITE_ERR(SQLITE_IOERR_BEGIN_ATOMIC),
    EVO_SQLITE_ERR(SQLITE_IOERR_COMMIT_ATOMIC),
    EVO_SQLITE_ERR(SQLITE_IOERR_ROLLBACK_ATOMIC),
    EVO_SQLITE_ERR(SQLITE_IOERR_DATA),
    EVO_SQLITE_ERR(SQLITE_IOERR_CORRUPTFS),
    EVO_SQLITE_ERR(SQLITE_LOCKED_SHAREDCACHE),
    EVO_SQLITE_ERR(SQLITE_LOCKED_VTAB),
    EVO_SQLITE_ERR(SQLITE_BUSY_RECOVERY),
    EVO_SQLITE_ERR(SQLITE_BUSY_SNAPSHOT),
    EVO_SQLITE_ERR(SQLITE_BUSY_TIMEOUT),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_NOTEMPDIR),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_ISDIR),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_FULLPATH),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_CONVPATH),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_DIRTYWAL),
    EVO_SQLITE_ERR(SQLITE_CANTOPEN_SYMLINK),
    EVO_SQLITE_ERR(SQLITE_CORRUPT_VTAB),
    EVO_SQLITE_ERR(SQLITE_CORRUPT_SEQUENCE),
    EVO_SQLITE_ERR(SQLITE_CORRUPT_INDEX),
    EVO_SQLITE_ERR(SQLITE_READONLY_RECOVERY),
    EVO_SQLITE_ERR(SQLITE_READONLY_CANTLOCK),
    EVO_SQLITE_ERR(SQLITE_READONLY_ROLLBACK),
    EVO_SQLITE_ERR(SQLITE_READONLY_DBMOVED),
    EVO_SQLITE_ERR(SQLITE_READONLY_CANTINIT),
    EVO_SQLITE_ERR(SQLITE_READONLY_DIRECTORY),
    EVO_SQLITE_ERR(SQLITE_ABORT_ROLLBACK),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_CHECK),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_COMMITHOOK),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_FOREIGNKEY),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_FUNCTION),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_NOTNULL),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_PRIMARYKEY),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_TRIGGER),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_UNIQUE),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_VTAB),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_ROWID),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_PINNED),
    EVO_SQLITE_ERR(SQLITE_CONSTRAINT_DATATYPE),
    EVO_SQLITE_ERR(SQLITE_NOTICE_RECOVER_WAL),
    EVO_SQLITE_ERR(SQLITE_NOTICE_RECOVER_ROLLBACK),
    EVO_SQLITE_ERR(SQLITE_WARNING_AUTOINDEX),
    EVO_SQLITE_ERR(SQLITE_AUTH_USER),
};
#undef EVO_SQLITE_ERR

// The extended result code's name ("SQLITE_CONSTRAINT_UNIQUE"), else its
// primary code's.
const char* error_name(int code) {
  for (const auto& e : kErrNames) {
    if (e.code == code) return e.name;
  }
  for (const auto& e : kErrNames) {
    if (e.code == (code & 0xff)) return e.name;
  }
  return "SQLITE_ERROR";
}

// ------------------------------------------------------------ connection

struct Stmt;

struct Conn {
  sqlite3* db = nullptr;
  bool worker = false;
  // Held by whatever uses the connection in worker mode (a pool job, or a
  // call made inline): one call at a time.
  std::mutex run;
  // Which job holds `run` now, so that cancelling one job interrupts only
  // that job, never the one after it.
  std::mutex current_mu;
  const void* current = nullptr;
  // Live statements (main thread only), finalized by close().
  std::unordered_set<Stmt*> stmts;

  ~Conn() { close(); }
  void close();
};

// The first four fields are lib/sqlite.lua's view of a synchronous statement
// (its FFI stmt:run reads and writes them: struct evo_sqlite_stmt there).
// Keep them first, in this order.
struct Stmt {
  sqlite3_stmt* st = nullptr;  // null once finalized (or the database closed)
  sqlite3* db = nullptr;       // conn->db while st is live
  uint32_t gen = 0;            // bumped by each execution: a stale iterator notices
  int32_t nparams = 0;         // sqlite3_bind_parameter_count(st)
  std::shared_ptr<Conn> conn;

  ~Stmt() {
    if (st != nullptr) {
      conn->stmts.erase(this);
      sqlite3_finalize(st);
    }
  }
};

void Conn::close() {
  if (db == nullptr) return;
  if (worker) sqlite3_interrupt(db);  // a long query in a pool job ends now
  std::lock_guard<std::mutex> lock(run);
  for (Stmt* s : stmts) {
    sqlite3_finalize(s->st);
    s->st = nullptr;
  }
  stmts.clear();
  sqlite3_close_v2(db);
  db = nullptr;
}

struct DbBox {
  std::shared_ptr<Conn> conn;
};
struct StmtBox {
  static constexpr uint64_t kMagic = 0x544d54535f6f7665ULL;  // "evo_STMT"
  uint64_t magic = kMagic;
  std::shared_ptr<Stmt> stmt;
};

// ------------------------------------------------------------ raising misuse

// Raises "bad argument #n to 'fname' (reason)" with the user's position.
// fname and the argument offset are the closure's upvalues 1 and 2 (a
// native shared by db:query and stmt:all counts from its own first
// argument); n counts from the first SQL parameter.
[[noreturn]] void bad_param(lua_State* L, int n, const char* reason) {
  const char* fname = lua_tostring(L, lua_upvalueindex(1));
  int offset = static_cast<int>(lua_tointeger(L, lua_upvalueindex(2)));
  luaL_where(L, 1);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", n + offset, fname != nullptr ? fname : "?", reason);
  lua_concat(L, 2);
  lua_error(L);
  std::abort();  // not reached: lua_error does not return
}

// level: where the user's call is (1: the native was called by it, or
// tail-called by its wrapper).
[[noreturn]] void bad_self(lua_State* L, const char* reason, int level = 1) {
  const char* fname = lua_tostring(L, lua_upvalueindex(1));
  luaL_where(L, level);
  lua_pushfstring(L, "bad argument #1 to '%s' (%s)", fname != nullptr ? fname : "?", reason);
  lua_concat(L, 2);
  lua_error(L);
  std::abort();
}

// A statement argument: a full userdata of StmtBox's size carrying its magic
// number (what luaL_testudata establishes, without two metatable lookups by
// name on every call of the hot path).
StmtBox* to_stmt_box(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_objlen(L, idx) != sizeof(StmtBox)) return nullptr;
  auto* box = static_cast<StmtBox*>(lua_touserdata(L, idx));
  return box->magic == StmtBox::kMagic ? box : nullptr;
}

Stmt* check_stmt(lua_State* L, int idx) {
  StmtBox* box = to_stmt_box(L, idx);
  if (box == nullptr) {
    lua_pushfstring(L, "Statement expected, got %s", luaL_typename(L, idx));
    bad_self(L, lua_tostring(L, -1));
  }
  Stmt* s = box->stmt.get();
  if (s->st == nullptr)
    bad_self(L, s->conn->db == nullptr ? "the database is closed" : "the statement is finalized");
  return s;
}

Conn* check_db(lua_State* L, int idx, int level = 1) {
  auto* box = static_cast<DbBox*>(luaL_testudata(L, idx, kDbMeta));
  if (box == nullptr) {
    lua_pushfstring(L, "Database expected, got %s", luaL_typename(L, idx));
    bad_self(L, lua_tostring(L, -1), level);
  }
  if (box->conn->db == nullptr) bad_self(L, "the database is closed", level);
  return box->conn.get();
}

// nil, err with err.code the extended result code's name.
int push_sqlite_error(lua_State* L, int rc, const std::string& message) {
  lua_pushnil(L);
  errors::push_error(L, error_name(rc), message);
  return 2;
}

// ------------------------------------------------------------ values

// One parameter or cell. The text of a parameter bound synchronously points
// into a Lua string on the stack; a worker job's owns its bytes.
struct Value {
  int type = SQLITE_NULL;
  int64_t i = 0;
  double d = 0;
  const char* p = nullptr;
  size_t n = 0;
  std::string owned;
  void own() {
    if (p != nullptr) {
      owned.assign(p, n);
      p = owned.data();
    }
  }
};

void push_helpers(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kHelpersKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
}

// ffi.istype(ctype, value) with ctype helpers[which].
bool is_ctype(lua_State* L, int idx, int which) {
  push_helpers(L);
  lua_rawgeti(L, -1, 3);
  lua_rawgeti(L, -2, which);
  lua_pushvalue(L, idx);
  lua_call(L, 2, 1);
  bool is = lua_toboolean(L, -1) != 0;
  lua_pop(L, 2);
  return is;
}

// Reads the Lua value at idx as parameter n (for messages). Raises on
// values SQLite cannot store.
void read_param(lua_State* L, int idx, int n, Value& v) {
  v.p = nullptr;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      v.type = SQLITE_NULL;
      return;
    case LUA_TNUMBER: {
      double d = lua_tonumber(L, idx);
      // Integral values are stored as INTEGER (SQLite compares 1 and 1.0 as
      // equal, but typeof() and Python see the difference).
      if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
          static_cast<double>(static_cast<int64_t>(d)) == d) {
        v.type = SQLITE_INTEGER;
        v.i = static_cast<int64_t>(d);
      } else {
        v.type = SQLITE_FLOAT;
        v.d = d;
      }
      return;
    }
    case LUA_TSTRING:
      v.type = SQLITE_TEXT;
      v.p = lua_tolstring(L, idx, &v.n);
      return;
    case LUA_TBOOLEAN:
      v.type = SQLITE_INTEGER;
      v.i = lua_toboolean(L, idx);
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == nullptr) {  // sqlite.null
        v.type = SQLITE_NULL;
        return;
      }
      break;
    case LUA_TTABLE:
      if (lua_getmetatable(L, idx) != 0) {
        push_helpers(L);
        lua_rawgeti(L, -1, 4);
        bool blob = lua_rawequal(L, -1, -3) != 0;
        lua_pop(L, 3);
        if (blob) {  // sqlite.blob(bytes)
          lua_rawgeti(L, idx, 1);
          v.type = SQLITE_BLOB;
          v.p = lua_tolstring(L, -1, &v.n);  // the marker keeps the string alive
          lua_pop(L, 1);
          return;
        }
      }
      bad_param(L, n,
                "cannot bind a table (a row of parameters is the only argument; sqlite.blob(s) for bytes)");
    default:
      if (lua_type(L, idx) == kLuaTypeCdata) {
        if (is_ctype(L, idx, 1)) {
          v.type = SQLITE_INTEGER;
          std::memcpy(&v.i, lua_topointer(L, idx), sizeof v.i);
          return;
        }
        if (is_ctype(L, idx, 2)) {
          uint64_t u = 0;
          std::memcpy(&u, lua_topointer(L, idx), sizeof u);
          if (u > static_cast<uint64_t>(INT64_MAX))
            bad_param(L, n, "uint64_t value out of SQLite's integer range");
          v.type = SQLITE_INTEGER;
          v.i = static_cast<int64_t>(u);
          return;
        }
      }
      break;
  }
  lua_pushfstring(L, "cannot bind a %s", luaL_typename(L, idx));
  bad_param(L, n, lua_tostring(L, -1));
}

int bind_value(sqlite3_stmt* st, int i, const Value& v) {
  switch (v.type) {
    case SQLITE_INTEGER:
      return sqlite3_bind_int64(st, i, v.i);
    case SQLITE_FLOAT:
      return sqlite3_bind_double(st, i, v.d);
    case SQLITE_TEXT:
      return sqlite3_bind_text64(st, i, v.p, v.n, SQLITE_STATIC, SQLITE_UTF8);
    case SQLITE_BLOB:
      return sqlite3_bind_blob64(st, i, v.p, v.n, SQLITE_STATIC);
    default:
      return sqlite3_bind_null(st, i);
  }
}

// Calls sink(i, value) for each of the statement's parameters, read from
// the call's arguments from stack index `first`: either one value per
// parameter, or one table holding them (by position, and by name without
// its ':', '$' or '@').
template <class Sink>
void read_params(lua_State* L, sqlite3_stmt* st, int first, Sink&& sink) {
  int want = sqlite3_bind_parameter_count(st);
  int given = lua_gettop(L) - first + 1;
  Value v;
  bool row =
      given == 1 && lua_istable(L, first) && !(lua_getmetatable(L, first) != 0 && (lua_pop(L, 1), true));
  if (row) {
    for (int i = 1; i <= want; ++i) {
      const char* name = sqlite3_bind_parameter_name(st, i);
      if (name == nullptr || name[0] == '?') {
        lua_rawgeti(L, first, i);
      } else {
        lua_getfield(L, first, name + 1);
      }
      if (lua_isnil(L, -1)) {  // NULL is sqlite.null: a missing value is a mistake
        if (name != nullptr) {
          lua_pushfstring(L, "no value for parameter %s (sqlite.null binds NULL)", name);
        } else {
          lua_pushfstring(L, "no value for parameter %d (sqlite.null binds NULL)", i);
        }
        bad_param(L, 1, lua_tostring(L, -1));
      }
      read_param(L, lua_gettop(L), 1, v);
      sink(i, v);
      lua_pop(L, 1);
    }
    return;
  }
  if (given != want) {
    lua_pushfstring(L, "the statement has %d parameter%s, %d value%s given", want, want == 1 ? "" : "s",
                    given, given == 1 ? "" : "s");
    bad_param(L, given > want ? want + 1 : (given > 0 ? given : 1), lua_tostring(L, -1));
  }
  for (int i = 1; i <= want; ++i) {
    read_param(L, first + i - 1, i, v);
    sink(i, v);
  }
}

void push_null(lua_State* L) { lua_pushlightuserdata(L, nullptr); }

void push_column(lua_State* L, sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
      return push_int64(L, sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
      return lua_pushnumber(L, sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      return lua_pushlstring(L, p, static_cast<size_t>(sqlite3_column_bytes(st, i)));
    }
    case SQLITE_BLOB: {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(st, i));
      int n = sqlite3_column_bytes(st, i);
      return lua_pushlstring(L, p != nullptr ? p : "", static_cast<size_t>(n));
    }
    default:
      return push_null(L);
  }
}

void read_column(sqlite3_stmt* st, int i, Value& v) {
  v.type = sqlite3_column_type(st, i);
  switch (v.type) {
    case SQLITE_INTEGER:
      v.i = sqlite3_column_int64(st, i);
      break;
    case SQLITE_FLOAT:
      v.d = sqlite3_column_double(st, i);
      break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void* p = v.type == SQLITE_TEXT ? static_cast<const void*>(sqlite3_column_text(st, i))
                                            : sqlite3_column_blob(st, i);
      v.owned.assign(p != nullptr ? static_cast<const char*>(p) : "",
                     static_cast<size_t>(sqlite3_column_bytes(st, i)));
      break;
    }
    default:
      break;
  }
}

void push_value(lua_State* L, const Value& v) {
  switch (v.type) {
    case SQLITE_INTEGER:
      return push_int64(L, v.i);
    case SQLITE_FLOAT:
      return lua_pushnumber(L, v.d);
    case SQLITE_TEXT:
    case SQLITE_BLOB:
      return lua_pushlstring(L, v.owned.data(), v.owned.size());
    default:
      return push_null(L);
  }
}

// The statement's column names as a Lua array, kept as the userdata's
// environment table (one per statement, made at prepare), pushed.
void push_names(lua_State* L, int stmt_idx) { lua_getfenv(L, stmt_idx); }

void make_names(lua_State* L, sqlite3_stmt* st) {
  int n = sqlite3_column_count(st);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; ++i) {
    const char* name = sqlite3_column_name(st, i);
    lua_pushstring(L, name != nullptr ? name : "");
    lua_rawseti(L, -2, i + 1);
  }
}

// A copy of the names array at idx.
void push_names_copy(lua_State* L, int names_idx) {
  int n = static_cast<int>(lua_objlen(L, names_idx));
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, names_idx, i);
    lua_rawseti(L, -2, i);
  }
}

// ------------------------------------------------------------ synchronous calls

enum class Mode { All, Get, Run, Iterate };

// The row at the statement's cursor as a table keyed by column name.
void push_row(lua_State* L, sqlite3_stmt* st, int ncol, int names_idx) {
  lua_createtable(L, 0, ncol);
  for (int i = 0; i < ncol; ++i) {
    lua_rawgeti(L, names_idx, i + 1);
    push_column(L, st, i);
    lua_rawset(L, -3);
  }
}

// {changes = n, lastInsertRowid = id}. Called from one of the statement
// closures (in_closure), the key strings are its upvalues 3 and 4: no
// interning of the keys per call, a third of what an insert costs Evo beyond
// SQLite itself.
void push_run_result(lua_State* L, int64_t changes, int64_t id, bool in_closure) {
  lua_createtable(L, 0, 2);
  if (in_closure) {
    lua_pushvalue(L, lua_upvalueindex(3));
  } else {
    lua_pushliteral(L, "changes");
  }
  lua_pushnumber(L, static_cast<double>(changes));
  lua_rawset(L, -3);
  if (in_closure) {
    lua_pushvalue(L, lua_upvalueindex(4));
  } else {
    lua_pushliteral(L, "lastInsertRowid");
  }
  push_int64(L, id);
  lua_rawset(L, -3);
}

int step_error(lua_State* L, Stmt* s, int rc) {
  std::string message = sqlite3_errmsg(s->conn->db);
  sqlite3_reset(s->st);
  return push_sqlite_error(L, rc, message);
}

// Column names may change when SQLite re-prepares after a schema change
// (SELECT * after ALTER TABLE): the cached array is rebuilt then.
int names_for(lua_State* L, int stmt_idx, sqlite3_stmt* st) {
  push_names(L, stmt_idx);
  int ncol = sqlite3_column_count(st);
  if (static_cast<int>(lua_objlen(L, -1)) != ncol) {
    lua_pop(L, 1);
    make_names(L, st);
    lua_pushvalue(L, -1);
    lua_setfenv(L, stmt_idx);
  }
  return lua_gettop(L);
}

int run_sync(lua_State* L, Stmt* s, int first, Mode mode) {
  sqlite3_stmt* st = s->st;
  ++s->gen;
  sqlite3_reset(st);
  read_params(L, st, first, [st](int i, const Value& v) { bind_value(st, i, v); });
  int rc = sqlite3_step(st);
  if (mode == Mode::Run) {
    while (rc == SQLITE_ROW) rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) return step_error(L, s, rc);
    sqlite3_reset(st);
    push_run_result(L, sqlite3_changes64(s->conn->db), sqlite3_last_insert_rowid(s->conn->db), true);
    return 1;
  }
  int ncol = sqlite3_column_count(st);
  int names = names_for(L, 1, st);
  if (mode == Mode::Get) {
    if (rc == SQLITE_ROW) {
      push_row(L, st, ncol, names);
    } else if (rc == SQLITE_DONE) {
      lua_pushnil(L);
    } else {
      return step_error(L, s, rc);
    }
    sqlite3_reset(st);
    return 1;
  }
  lua_createtable(L, 4, 1);
  int n = 0;
  for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
    push_row(L, st, ncol, names);
    lua_rawseti(L, -2, ++n);
  }
  if (rc != SQLITE_DONE) return step_error(L, s, rc);
  sqlite3_reset(st);
  push_names_copy(L, names);
  lua_setfield(L, -2, "columns");
  return 1;
}

// ------------------------------------------------------------ worker calls

// One call on a worker connection: parameters in, rows out, run by
// Io::work. It is also the IoOp the task's cancel hook reaches.
struct Job final : IoOp {
  std::shared_ptr<Stmt> stmt;  // null for exec
  std::shared_ptr<Conn> conn;
  Mode mode = Mode::All;
  std::string sql;  // exec
  std::vector<Value> params;
  std::atomic<bool> canceled{false};
  IoOp* inner = nullptr;
  // Results.
  int rc = SQLITE_OK;
  std::string errmsg;
  std::vector<std::string> names;
  std::vector<Value> cells;  // rows * names.size()
  int64_t changes = 0;
  int64_t last_id = 0;

  void cancel() override {
    canceled = true;
    {
      std::lock_guard<std::mutex> g(conn->current_mu);
      if (conn->current == this && conn->db != nullptr) sqlite3_interrupt(conn->db);
    }
    if (inner != nullptr) inner->cancel();
  }

  void run() {
    std::lock_guard<std::mutex> lock(conn->run);
    if (canceled) return;
    if (conn->db == nullptr || (stmt != nullptr && stmt->st == nullptr)) {
      rc = SQLITE_MISUSE;
      errmsg = "the database was closed";
      return;
    }
    set_current(this);
    if (stmt == nullptr) {
      run_exec();
    } else {
      run_stmt();
    }
    set_current(nullptr);
  }

  void set_current(const void* job) {
    std::lock_guard<std::mutex> g(conn->current_mu);
    conn->current = job;
  }

  void run_exec() {
    char* msg = nullptr;
    rc = sqlite3_exec(conn->db, sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      rc = sqlite3_extended_errcode(conn->db);
      errmsg = msg != nullptr ? msg : sqlite3_errstr(rc);
    }
    sqlite3_free(msg);
  }

  void run_stmt() {
    sqlite3_stmt* st = stmt->st;
    sqlite3_reset(st);
    for (size_t i = 0; i < params.size(); ++i) {
      Value& v = params[i];
      if (v.p != nullptr) v.p = v.owned.data();  // the vector may have moved the strings since own()
      bind_value(st, static_cast<int>(i) + 1, v);
    }
    int ncol = sqlite3_column_count(st);
    if (mode != Mode::Run) {
      for (int i = 0; i < ncol; ++i) names.emplace_back(sqlite3_column_name(st, i));
    }
    int r = sqlite3_step(st);
    for (; r == SQLITE_ROW; r = sqlite3_step(st)) {
      if (mode == Mode::Run) continue;
      for (int i = 0; i < ncol; ++i) read_column(st, i, cells.emplace_back());
      if (mode == Mode::Get) {
        r = SQLITE_DONE;
        break;
      }
    }
    rc = r == SQLITE_DONE ? SQLITE_OK : r;
    if (rc != SQLITE_OK) errmsg = sqlite3_errmsg(conn->db);
    changes = sqlite3_changes64(conn->db);
    last_id = sqlite3_last_insert_rowid(conn->db);
    sqlite3_reset(st);
  }

  // The answer's values on L (the caller's state, or the loop's).
  int push(lua_State* L) {
    if (rc != SQLITE_OK) return push_sqlite_error(L, rc, errmsg);
    if (stmt == nullptr) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (mode == Mode::Run) {
      push_run_result(L, changes, last_id, false);
      return 1;
    }
    size_t ncol = names.size();
    size_t nrows = ncol == 0 ? 0 : cells.size() / ncol;
    lua_createtable(L, static_cast<int>(ncol), 0);
    for (size_t i = 0; i < ncol; ++i) {
      lua_pushlstring(L, names[i].data(), names[i].size());
      lua_rawseti(L, -2, static_cast<int>(i) + 1);
    }
    int names_idx = lua_gettop(L);
    if (mode == Mode::Get) {
      if (nrows == 0) {
        lua_pushnil(L);
      } else {
        push_cells_row(L, 0, names_idx);
      }
      lua_remove(L, names_idx);
      return 1;
    }
    lua_createtable(L, static_cast<int>(nrows), 1);
    for (size_t r = 0; r < nrows; ++r) {
      push_cells_row(L, r, names_idx);
      lua_rawseti(L, -2, static_cast<int>(r) + 1);
    }
    lua_pushvalue(L, names_idx);
    lua_setfield(L, -2, "columns");
    lua_remove(L, names_idx);
    return 1;
  }

  void push_cells_row(lua_State* L, size_t r, int names_idx) {
    size_t ncol = names.size();
    lua_createtable(L, 0, static_cast<int>(ncol));
    for (size_t i = 0; i < ncol; ++i) {
      lua_rawgeti(L, names_idx, static_cast<int>(i) + 1);
      push_value(L, cells[r * ncol + i]);
      lua_rawset(L, -3);
    }
  }
};

// Runs the job under the wait contract: on the pool for a task that can
// wait, else here. Returns the protocol's (true, results...) or (false).
int run_job(lua_State* L, const std::shared_ptr<Job>& job, int yieldable_idx) {
  if (Runtime::find(L) == nullptr) {  // a worker Lua state: no loop, run it here
    job->run();
    lua_pushboolean(L, 1);
    return job->push(L) + 1;
  }
  Io& io = io_of(TaskSystem::from(L));
  return io_call<std::shared_ptr<Job>>(
      L, yieldable_idx,
      [&](bool wait, std::function<void(std::shared_ptr<Job>)> done) -> IoOp* {
        IoOp* op = io.work([job] { job->run(); }, wait, [job, done = std::move(done)] { done(job); });
        if (op == nullptr) return nullptr;
        job->inner = op;
        return job.get();
      },
      [](lua_State* Ls, const std::shared_ptr<Job>& j) { return j->push(Ls); });
}

int run_worker(lua_State* L, StmtBox* box, Mode mode) {
  Stmt* s = box->stmt.get();
  // Checked first, so that a bad argument raises before any C++ object
  // exists in this frame.
  read_params(L, s->st, 3, [](int /*i*/, const Value& /*v*/) {});
  auto job = std::make_shared<Job>();
  job->stmt = box->stmt;
  job->conn = s->conn;
  job->mode = mode;
  // Reading the parameters touches only the statement's description, which
  // SQLite guards with the connection's mutex (worker connections are
  // opened FULLMUTEX).
  read_params(L, s->st, 3, [&job](int /*i*/, const Value& v) {
    job->params.push_back(v);
    job->params.back().own();
  });
  ++s->gen;
  return run_job(L, job, 2);
}

// ------------------------------------------------------------ statement natives

// all/get/run(stmt, [yieldable,] params...): synchronous connections take the
// parameters from index 2; worker connections from 3, after the yieldable
// flag, and answer with the wait protocol's (true, ...) / (false).
template <Mode M>
int l_stmt_call(lua_State* L) {
  Stmt* s = check_stmt(L, 1);
  if (s->conn->worker) return run_worker(L, static_cast<StmtBox*>(lua_touserdata(L, 1)), M);
  return run_sync(L, s, 2, M);
}

// The iterator of a synchronous iterate(): upvalues statement, generation.
int l_iter_next(lua_State* L) {
  auto* box = static_cast<StmtBox*>(lua_touserdata(L, lua_upvalueindex(1)));
  Stmt* s = box->stmt.get();
  auto gen = static_cast<uint32_t>(lua_tointeger(L, lua_upvalueindex(2)));
  if (gen == 0) return 0;  // finished
  if (s->st == nullptr || s->gen != gen) {
    return luaL_error(L, "stmt:iterate: the statement was used again (or finalized) before the loop ended");
  }
  int rc = sqlite3_step(s->st);
  if (rc == SQLITE_ROW) {
    lua_pushvalue(L, lua_upvalueindex(1));
    int names = names_for(L, lua_gettop(L), s->st);
    push_row(L, s->st, sqlite3_column_count(s->st), names);
    return 1;
  }
  lua_pushinteger(L, 0);
  lua_replace(L, lua_upvalueindex(2));
  if (rc == SQLITE_DONE) {
    sqlite3_reset(s->st);
    return 0;
  }
  // A for loop cannot see nil, err (nil ends it): the error is raised (no
  // C++ object is alive across lua_error).
  {
    std::string message = sqlite3_errmsg(s->conn->db);
    sqlite3_reset(s->st);
    errors::push_error(L, error_name(rc), message);
  }
  return lua_error(L);
}

// iterate(stmt, params...) -> iterator: steps one row per call
// (synchronous connections; lib/sqlite.lua iterates over all() on worker ones).
int l_stmt_iterate(lua_State* L) {
  Stmt* s = check_stmt(L, 1);
  sqlite3_stmt* st = s->st;
  ++s->gen;
  if (s->gen == 0) ++s->gen;  // 0 marks a finished iterator
  sqlite3_reset(st);
  read_params(L, st, 2, [st](int i, const Value& v) { bind_value(st, i, v); });
  lua_settop(L, 1);
  lua_pushinteger(L, s->gen);
  lua_pushcclosure(L, l_iter_next, 2);
  return 1;
}

int l_stmt_columns(lua_State* L) {
  Stmt* s = check_stmt(L, 1);
  push_names_copy(L, names_for(L, 1, s->st));
  return 1;
}

int l_stmt_finalize(lua_State* L) {
  StmtBox* box = to_stmt_box(L, 1);
  if (box == nullptr) return luaL_argerror(L, 1, "Statement expected");
  Stmt* s = box->stmt.get();
  if (s->st != nullptr) {
    std::unique_lock<std::mutex> lock(s->conn->run, std::defer_lock);
    if (s->conn->worker) lock.lock();  // not while a job uses it
    s->conn->stmts.erase(s);
    sqlite3_finalize(s->st);
    s->st = nullptr;
  }
  return 0;
}

// ------------------------------------------------------------ the FFI path

static_assert(std::is_standard_layout_v<Stmt> && offsetof(Stmt, st) == 0 && offsetof(Stmt, db) == 8 &&
                  offsetof(Stmt, gen) == 16 && offsetof(Stmt, nparams) == 20,
              "lib/sqlite.lua's struct evo_sqlite_stmt mirrors Stmt's first fields");

// The SQLite calls lib/sqlite.lua's stmt:run makes through the FFI: a trace
// calls them directly, where a call of a C function from Lua costs the
// argument checks of the Lua API on every value (a third of what an insert
// cost Evo beyond SQLite). Pointers, not ffi.C symbols: the FFI then works
// however libsqlite3 is linked.
struct FastApi {
  int (*bind_int64)(sqlite3_stmt*, int, sqlite3_int64);
  int (*bind_double)(sqlite3_stmt*, int, double);
  int (*bind_text64)(sqlite3_stmt*, int, const char*, sqlite3_uint64, void (*)(void*), unsigned char);
  int (*step)(sqlite3_stmt*);
  int (*reset)(sqlite3_stmt*);
  sqlite3_int64 (*changes64)(sqlite3*);
  sqlite3_int64 (*last_insert_rowid)(sqlite3*);
};
const FastApi kFastApi = {sqlite3_bind_int64, sqlite3_bind_double, sqlite3_bind_text64,      sqlite3_step,
                          sqlite3_reset,      sqlite3_changes64,   sqlite3_last_insert_rowid};

// stmtView(v) -> the Stmt of a synchronous statement as a light userdata
// (alive as long as v), or nil for anything else.
int l_stmt_view(lua_State* L) {
  StmtBox* box = to_stmt_box(L, 1);
  if (box == nullptr || box->stmt->conn->worker) return 0;
  lua_pushlightuserdata(L, box->stmt.get());
  return 1;
}

// stepError(stmt, rc) -> nil, err for a failed sqlite3_step of the FFI path.
int l_step_error(lua_State* L) {
  Stmt* s = check_stmt(L, 1);
  return step_error(L, s, static_cast<int>(lua_tointeger(L, 2)));
}

int l_stmt_gc(lua_State* L) {
  static_cast<StmtBox*>(lua_touserdata(L, 1))->~StmtBox();
  return 0;
}

int l_stmt_sql(lua_State* L) {
  Stmt* s = check_stmt(L, 1);
  lua_pushstring(L, sqlite3_sql(s->st));
  return 1;
}

// ------------------------------------------------------------ database natives

// open(path, flags, busy_ms, wal, worker) -> db | nil, err
int l_open(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  int flags = static_cast<int>(luaL_checkinteger(L, 2));
  int busy_ms = static_cast<int>(luaL_checkinteger(L, 3));
  bool wal = lua_toboolean(L, 4) != 0;
  bool worker = lua_toboolean(L, 5) != 0;
  // A synchronous connection is only ever used by this thread: no mutex. A
  // worker one is also touched here (prepare, finalize) while a pool job
  // may run: SQLite's own mutex.
  flags |= worker ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX;
  auto conn = std::make_shared<Conn>();
  conn->worker = worker;
  int rc = sqlite3_open_v2(path, &conn->db, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = conn->db != nullptr ? sqlite3_errmsg(conn->db) : sqlite3_errstr(rc);
    return push_sqlite_error(L, rc, message + ": " + path);
  }
  sqlite3_extended_result_codes(conn->db, 1);
  sqlite3_busy_timeout(conn->db, busy_ms);
  // A page cache of up to 16 MiB (SQLite's default is 2 MiB, better-sqlite3's
  // 16 MiB): point lookups in a table of a few MiB stay off the disk.
  const char* setup = wal ? "PRAGMA cache_size=-16000; PRAGMA journal_mode=WAL" : "PRAGMA cache_size=-16000";
  {
    char* msg = nullptr;
    rc = sqlite3_exec(conn->db, setup, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string message = msg != nullptr ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      return push_sqlite_error(L, sqlite3_extended_errcode(conn->db), message);
    }
  }
  new (lua_newuserdata(L, sizeof(DbBox))) DbBox{std::move(conn)};
  luaL_getmetatable(L, kDbMeta);
  lua_setmetatable(L, -2);
  return 1;
}

// True when only whitespace and comments are left after a statement.
bool only_comments(const char* p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == ';') ++p;
    if (p[0] == '-' && p[1] == '-') {
      while (*p != '\0' && *p != '\n') ++p;
    } else if (p[0] == '/' && p[1] == '*') {
      const char* end = std::strstr(p + 2, "*/");
      if (end == nullptr) return true;
      p = end + 2;
    } else {
      return *p == '\0';
    }
  }
}

// prepare(db, sql) -> stmt | nil, err (upvalues: fname, offset). More than
// one statement in sql is misuse: db:exec runs those.
int l_prepare(lua_State* L) {
  const int level = static_cast<int>(lua_tointeger(L, lua_upvalueindex(2)));
  Conn* c = check_db(L, 1, level);
  size_t len = 0;
  const char* sql = luaL_checklstring(L, 2, &len);
  auto* box = static_cast<DbBox*>(lua_touserdata(L, 1));
  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(c->db, sql, static_cast<int>(len) + 1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
  if (rc != SQLITE_OK) return push_sqlite_error(L, sqlite3_extended_errcode(c->db), sqlite3_errmsg(c->db));
  if (st == nullptr) {
    return push_sqlite_error(L, SQLITE_MISUSE, "the SQL holds no statement");
  }
  if (tail != nullptr && !only_comments(tail)) {
    sqlite3_finalize(st);
    luaL_where(L, level);
    lua_pushfstring(L,
                    "bad argument #1 to '%s' (the SQL holds more than one statement; db:exec runs several)",
                    lua_tostring(L, lua_upvalueindex(1)));
    lua_concat(L, 2);
    return lua_error(L);
  }
  auto stmt = std::make_shared<Stmt>();
  stmt->conn = box->conn;
  stmt->st = st;
  stmt->db = c->db;
  stmt->nparams = sqlite3_bind_parameter_count(st);
  c->stmts.insert(stmt.get());
  new (lua_newuserdata(L, sizeof(StmtBox))) StmtBox{StmtBox::kMagic, std::move(stmt)};
  luaL_getmetatable(L, c->worker ? kWorkerStmtMeta : kStmtMeta);
  lua_setmetatable(L, -2);
  make_names(L, st);
  lua_setfenv(L, -2);
  return 1;
}

// exec(db, yieldable, sql) -> true | nil, err; worker connections answer
// with the wait protocol.
int l_exec(lua_State* L) {
  Conn* c = check_db(L, 1);
  const char* sql = luaL_checkstring(L, 3);
  if (c->worker) {
    auto job = std::make_shared<Job>();
    job->conn = static_cast<DbBox*>(lua_touserdata(L, 1))->conn;
    job->sql = sql;
    return run_job(L, job, 2);
  }
  char* msg = nullptr;
  int rc = sqlite3_exec(c->db, sql, nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    std::string message = msg != nullptr ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    return push_sqlite_error(L, sqlite3_extended_errcode(c->db), message);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int l_close(lua_State* L) {
  auto* box = static_cast<DbBox*>(luaL_checkudata(L, 1, kDbMeta));
  box->conn->close();
  return 0;
}

int l_db_gc(lua_State* L) {
  static_cast<DbBox*>(lua_touserdata(L, 1))->~DbBox();
  return 0;
}

// inTransaction(db) -> boolean
int l_in_transaction(lua_State* L) {
  Conn* c = check_db(L, 1);
  lua_pushboolean(L, sqlite3_get_autocommit(c->db) == 0);
  return 1;
}

int l_is_open(lua_State* L) {
  auto* box = static_cast<DbBox*>(luaL_checkudata(L, 1, kDbMeta));
  lua_pushboolean(L, box->conn->db != nullptr);
  return 1;
}

// ------------------------------------------------------------ module

void set_closure(lua_State* L, int table, const char* key, lua_CFunction fn, const char* fname, int offset) {
  lua_pushstring(L, fname);
  lua_pushinteger(L, offset);
  lua_pushliteral(L, "changes");  // the keys of run()'s result (push_run_result)
  lua_pushliteral(L, "lastInsertRowid");
  lua_pushcclosure(L, fn, 4);
  lua_setfield(L, table, key);
}

// helpers = {ffi.typeof("int64_t"), ffi.typeof("uint64_t"), ffi.istype, blob meta}
void make_helpers(lua_State* L, int blob_meta) {
  lua_pushlightuserdata(L, const_cast<char*>(&kHelpersKey));
  lua_createtable(L, 4, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "ffi");
  lua_call(L, 1, 1);
  int i = 0;
  for (const char* ct : {"int64_t", "uint64_t"}) {
    lua_getfield(L, -1, "typeof");
    lua_pushstring(L, ct);
    lua_call(L, 1, 1);
    lua_rawseti(L, -3, ++i);
  }
  lua_getfield(L, -1, "istype");
  lua_rawseti(L, -3, 3);
  lua_pop(L, 1);
  lua_pushvalue(L, blob_meta);
  lua_rawseti(L, -2, 4);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

}  // namespace

int open_sqlite(lua_State* L) {
  // Before SQLite initialises (a no-op after): no global count of the bytes
  // it allocated, which costs a mutex on every malloc (better-sqlite3 builds
  // SQLite with the same setting).
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  lua_createtable(L, 0, 24);
  const int module = lua_gettop(L);

  luaL_newmetatable(L, kDbMeta);
  lua_pushcfunction(L, l_db_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  for (const char* meta : {kStmtMeta, kWorkerStmtMeta}) {
    luaL_newmetatable(L, meta);
    lua_pushcfunction(L, l_stmt_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "Statement");
    lua_setfield(L, -2, "__name");
    // lib/sqlite.lua sets __index
    lua_setfield(L, module, meta == kStmtMeta ? "statementMeta" : "workerStatementMeta");
  }

  lua_createtable(L, 0, 1);  // the blob marker's metatable
  lua_pushliteral(L, "sqlite.blob");
  lua_setfield(L, -2, "__name");
  make_helpers(L, lua_gettop(L));
  lua_setfield(L, module, "blobMeta");

  lua_pushcfunction(L, l_open);
  lua_setfield(L, module, "open");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, module, "close");
  lua_pushcfunction(L, l_is_open);
  lua_setfield(L, module, "isOpen");
  set_closure(L, module, "exec", l_exec, "db:exec", 0);
  set_closure(L, module, "inTransaction", l_in_transaction, "db:inTransaction", 0);
  // prepare as the user's call names it; upvalue 2: the user's level (db:prepare
  // tail-calls it; db:query/get/run call it from a helper).
  for (const char* name : {"db:query", "db:get", "db:run"}) set_closure(L, module, name, l_prepare, name, 3);
  set_closure(L, module, "db:prepare", l_prepare, "db:prepare", 1);
  // Statement methods, and the same natives as db:query/get/run see them
  // (the SQL is their argument #1, the first parameter #2).
  set_closure(L, module, "all", l_stmt_call<Mode::All>, "stmt:all", 0);
  set_closure(L, module, "get", l_stmt_call<Mode::Get>, "stmt:get", 0);
  set_closure(L, module, "run", l_stmt_call<Mode::Run>, "stmt:run", 0);
  set_closure(L, module, "iterate", l_stmt_iterate, "stmt:iterate", 0);
  set_closure(L, module, "dbAll", l_stmt_call<Mode::All>, "db:query", 1);
  set_closure(L, module, "dbGet", l_stmt_call<Mode::Get>, "db:get", 1);
  set_closure(L, module, "dbRun", l_stmt_call<Mode::Run>, "db:run", 1);
  set_closure(L, module, "columns", l_stmt_columns, "stmt:columns", 0);
  set_closure(L, module, "sql", l_stmt_sql, "stmt:sql", 0);
  lua_pushcfunction(L, l_stmt_finalize);
  lua_setfield(L, module, "finalize");
  lua_pushcfunction(L, l_stmt_view);
  lua_setfield(L, module, "stmtView");
  lua_pushcfunction(L, l_step_error);
  lua_setfield(L, module, "stepError");
  lua_pushlightuserdata(L, const_cast<FastApi*>(&kFastApi));
  lua_setfield(L, module, "fastApi");

  const struct {
    const char* name;
    int value;
  } flags[] = {{"OPEN_READONLY", SQLITE_OPEN_READONLY},
               {"OPEN_READWRITE", SQLITE_OPEN_READWRITE},
               {"OPEN_CREATE", SQLITE_OPEN_CREATE},
               {"OPEN_URI", SQLITE_OPEN_URI}};
  for (const auto& f : flags) {
    lua_pushinteger(L, f.value);
    lua_setfield(L, module, f.name);
  }
  lua_pushstring(L, sqlite3_libversion());
  lua_setfield(L, module, "version");
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, module, "null");
  lua_settop(L, module);
  return 1;
}

}  // namespace evo
