// Module loading: Evo's built-in modules and the search path for the rest.
//
// require(name) looks, in order, in package.preload, Evo's built-ins (native
// modules such as "uv", and lib/*.lua embedded as bytecode), then the Lua and
// C paths: the main script's directory, ./, the lua_modules rocks trees above
// the script (docs/rocks.md), LUA_PATH / LUA_CPATH (or LuaJIT's defaults), and
// Debian's Lua 5.1 directories. Built-ins therefore win over
// files of the same name. Nothing else of Lua's standard library is changed.
#pragma once

#include <lua.hpp>

#include <string>
#include <vector>

namespace evo {

// Native modules (each in src/bind/ or src/lua/).
int open_core(lua_State* L);     // "evo.core": runtime internals for lib/
int open_timer(lua_State* L);    // "evo.timer"
int open_signal(lua_State* L);   // "evo.signal"
int open_fswatch(lua_State* L);  // "evo.fswatch"
int open_fsfast(lua_State* L);   // "evo.fsfast": whole-file reads and writes in one pool job
int open_net(lua_State* L);      // "evo.net": connections, listeners, streams
int open_process(lua_State* L);  // "evo.process": child processes
int open_udp(lua_State* L);      // "evo.udp": UDP sockets
int open_tls(lua_State* L);      // "evo.tls": TLS contexts (src/bind/tls.cpp)
int open_resp(lua_State* L);     // "evo.resp": the RESP (Redis) engine (src/bind/resp.cpp)
int open_ws(lua_State* L);       // "evo.ws": the WebSocket protocol engine (src/bind/ws.cpp)
int open_zlib(lua_State* L);     // "evo.zlib": streaming inflate/deflate
// "evo.httpkit": cookies and multipart for lib/http.lua (src/bind/httpkit.cpp)
int open_httpkit(lua_State* L);
int open_stdio(lua_State* L);  // "evo.stdio": process.stdin/stdout/stderr (src/bind/stdio.cpp)
// "evo.crypto": OpenSSL hashes, HMAC, KDFs, AES-GCM, uuids (src/bind/crypto.cpp)
int open_crypto(lua_State* L);
int open_encoding(lua_State* L);  // "evo.encoding": base64, hex, uuid text (src/bind/encoding.cpp)
int open_json(lua_State* L);      // "evo.json": JSON decode (simdjson) and encode (src/bind/json.cpp)
int open_sqlite(lua_State* L);    // "evo.sqlite": SQLite connections and statements (src/bind/sqlite.cpp)
// "evo.pcre": PCRE2 regexes and the NULL light userdata for ngx (src/bind/pcre.cpp)
int open_pcre(lua_State* L);
int open_postgres(lua_State* L);  // "evo.postgres": libpq connections on the loop (src/bind/postgres.cpp)
int open_uv(lua_State* L);        // "uv" and "luv": luv on Evo's loop
int open_appfs(lua_State* L);     // "evo.appfs": a one-file executable's archive (src/bind/appfs.cpp)
int open_task(lua_State* L);      // "evo.task": tasks and futures (src/lua/tasks.cpp)
int open_task_io(lua_State* L);   // "evo.task": open_task + task.sleep on the Io (src/bind/task_io.cpp)
// "evo.httpresponse": the HTTP client's response parser (src/bind/http_client.cpp)
int open_httpresponse(lua_State* L);
int open_h2client(lua_State* L);
namespace http {
int open_http(lua_State* L);  // "evo.http": the HTTP server engine (src/bind/http.cpp)
}
namespace repl {
int open_native(lua_State* L);  // "evo.replnative" (src/cli/repl.cpp)
}

namespace modules {

// Installs the built-in searcher and the search paths. `script_dir` may be
// empty (-e, stdin, REPL). A worker state (luv threads and work queues) gets
// only the built-ins that do not need the runtime.
void install(lua_State* L, const std::string& script_dir, bool worker);

// The lua_modules directories from `dir` (empty: the current directory) up to
// the root, nearest first, as absolute paths: the rocks trees require searches.
std::vector<std::string> lua_modules_trees(const std::string& dir);

// "evo.modpath": addDir(dir) puts dir and its lua_modules trees first in
// package.path/cpath (evo test, per spec directory); trees(dir) lists them.
int open_modpath(lua_State* L);

// A one-file executable (src/cli/build.cpp) sets the searcher of its
// embedded modules before any state opens; install() then puts it right
// after the built-ins', so embedded modules come before the disk's.
void set_app_searcher(lua_CFunction searcher);

// Every built-in module name, sorted.
std::vector<std::string> builtin_names();

}  // namespace modules
}  // namespace evo
