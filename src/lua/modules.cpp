#include "lua/modules.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "lua/embedded.h"
#include "lua/loadreport.h"
#include "lua/workctl.h"

namespace evo::modules {
namespace {

struct NativeModule {
  const char* name;
  lua_CFunction open;
  bool needs_runtime;  // unavailable in luv thread / work states
};

const NativeModule kNativeModules[] = {
    // clang-format off
    {"evo.appfs",  open_appfs,  false},
    {"evo.core",   open_core,   true},
    {"evo.crypto", open_crypto, false},
    {"evo.encoding", open_encoding, false},
    {"evo.fsfast", open_fsfast, true},
    {"evo.fswatch", open_fswatch, true},
    {"evo.http",   http::open_http, true},
    {"evo.json",   open_json,   false},
    {"evo.modpath", open_modpath, false},
    {"evo.httpresponse", open_httpresponse, false},
    {"evo.h2native", open_h2client, false},
    {"evo.httpkit", open_httpkit, false},
    {"evo.net",    open_net,    true},
    {"evo.pcre",   open_pcre,   false},
    {"evo.postgres", open_postgres, true},
    {"evo.process", open_process, true},
    {"evo.resp",   open_resp,   false},
    {"evo.replnative", repl::open_native, true},
    {"evo.udp",    open_udp,    true},
    {"evo.ws",     open_ws,     false},
    {"evo.zlib",   open_zlib,   false},
    {"evo.workctl", open_workctl, false},
    {"evo.signal", open_signal, true},
    {"evo.sqlite", open_sqlite, false},
    {"evo.stdio",  open_stdio,  true},
    {"evo.task",   open_task_io, true},
    {"evo.timer",  open_timer,  true},
    {"evo.tls",    open_tls,    true},
    {"luv",        open_uv,     false},
    {"uv",         open_uv,     false},
    // clang-format on
};

const char kWorkerKey = 0;
lua_CFunction g_app_searcher = nullptr;  // set_app_searcher(): a built app's archive

bool is_worker(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kWorkerKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  bool worker = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return worker;
}

const embedded::LuaModule* find_lua(std::string_view name) {
  const auto* begin = embedded::kLuaModules;
  const auto* end = begin + embedded::kLuaModuleCount;
  const auto* it = std::lower_bound(begin, end, name, [](const embedded::LuaModule& m, std::string_view n) {
    return std::string_view(m.name) < n;
  });
  return (it != end && name == it->name) ? it : nullptr;
}

// In a worker state (task.work, uv.new_thread) a built-in module that needs
// Evo's runtime cannot load. require says so in one line, naming the module
// the script asked for, instead of a search list for an inner dependency.
constexpr const char kNotInWorker[] = "is not available in a worker";

int not_in_worker(lua_State* L, const char* name) {
  lua_pushfstring(L,
                  "module '%s' %s (task.work, uv.new_thread): it needs Evo's event loop; a worker has "
                  "Lua's standard libraries and uv, pretty, assert, crypto, base64, hex, uuid, "
                  "path, url, zlib, json, sqlite, evo.serial, evo.ws",
                  name, kNotInWorker);
  return lua_error(L);
}

// The loader of a built-in Lua module in a worker: runs the chunk, and turns
// a failure to load a runtime module below it into not_in_worker(name).
int worker_loader(lua_State* L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) == 0) return lua_gettop(L);
  const char* msg = lua_tostring(L, -1);
  if (msg != nullptr && std::strstr(msg, kNotInWorker) != nullptr)
    return not_in_worker(L, lua_tostring(L, lua_upvalueindex(2)));
  return lua_error(L);
}

// package.loaders entry: returns the loader of a built-in module, or a
// message saying there is none (require collects these messages).
int builtin_searcher(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  bool worker = is_worker(L);
  for (const auto& m : kNativeModules) {
    if (std::strcmp(m.name, name) == 0) {
      if (worker && m.needs_runtime) return not_in_worker(L, name);
      lua_pushcfunction(L, m.open);
      return 1;
    }
  }
  if (const auto* m = find_lua(name)) {
    // The chunk name recorded in the bytecode ("[evo]/events.lua") is kept.
    if (luaL_loadbuffer(L, reinterpret_cast<const char*>(m->bytecode), m->size, name) != 0) {
      return luaL_error(L, "error loading built-in module '%s': %s", name, lua_tostring(L, -1));
    }
    if (worker) {
      lua_pushstring(L, name);
      lua_pushcclosure(L, worker_loader, 2);
    }
    return 1;
  }
  lua_pushfstring(L, "\n\tno built-in module '%s'", name);
  return 1;
}

void append_unique(std::vector<std::string>& list, const std::string& entry) {
  if (!entry.empty() && std::find(list.begin(), list.end(), entry) == list.end()) list.push_back(entry);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(';', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& e : list) {
    if (!out.empty()) out += ';';
    out += e;
  }
  return out;
}

// The patterns of one directory of the search path, and those of a rocks
// tree (luarocks' layout for Lua 5.1).
const std::vector<std::string> kLuaPatterns = {"?.lua", "?/init.lua"};
const std::vector<std::string> kCPatterns = {"?.so"};
const std::vector<std::string> kTreeLuaPatterns = {"share/lua/5.1/?.lua", "share/lua/5.1/?/init.lua"};
const std::vector<std::string> kTreeCPatterns = {"lib/lua/5.1/?.so"};

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void append_patterns(std::vector<std::string>& list, const std::string& dir,
                     const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) append_unique(list, dir + "/" + p);
}

void append_trees(std::vector<std::string>& list, const std::string& script_dir, bool lua) {
  for (const auto& tree : lua_modules_trees(script_dir))
    append_patterns(list, tree, lua ? kTreeLuaPatterns : kTreeCPatterns);
}

// The places of one kind (Lua or C) that a script in `dir` searches before
// LUA_PATH: the directory itself, then every lua_modules tree from `dir` up to
// the root, nearest first (like node_modules).
std::vector<std::string> local_entries(const std::string& dir, bool lua) {
  std::vector<std::string> list;
  append_patterns(list, dir.empty() ? "." : dir, lua ? kLuaPatterns : kCPatterns);
  append_trees(list, dir, lua);
  return list;
}

// Rebuilds package[field]: script dir, ./, the lua_modules trees above the
// script (or, without a script, above the current directory), what LuaJIT set
// (LUA_PATH or its defaults), then Debian's directories if still missing. The
// project's own files come first, then its rocks, then the system's.
void set_path(lua_State* L, const char* field, const std::string& script_dir, bool lua,
              const std::vector<std::string>& debian) {
  lua_getfield(L, -1, field);
  std::string current = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  std::vector<std::string> list;
  if (!script_dir.empty() && script_dir != ".")
    append_patterns(list, script_dir, lua ? kLuaPatterns : kCPatterns);
  append_patterns(list, ".", lua ? kLuaPatterns : kCPatterns);
  append_trees(list, script_dir, lua);
  for (const auto& e : split(current)) append_unique(list, e);
  for (const auto& e : debian) append_unique(list, e);
  lua_pushstring(L, join(list).c_str());
  lua_setfield(L, -2, field);
}

// Puts `entries` at the front of package[field], dropping their later copies.
void prepend_path(lua_State* L, int package, const char* field, const std::vector<std::string>& entries) {
  lua_getfield(L, package, field);
  std::string current = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  std::vector<std::string> list = entries;
  for (const auto& e : split(current)) append_unique(list, e);
  lua_pushstring(L, join(list).c_str());
  lua_setfield(L, package, field);
}

// modpath.addDir(dir): searches `dir` and its lua_modules trees first, as if
// a script in `dir` ran (evo test does this for each spec's directory).
int modpath_add_dir(lua_State* L) {
  std::string dir = luaL_checkstring(L, 1);
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) return luaL_error(L, "package is not a table");
  int package = lua_gettop(L);
  prepend_path(L, package, "path", local_entries(dir, true));
  prepend_path(L, package, "cpath", local_entries(dir, false));
  return 0;
}

// modpath.trees(dir): the lua_modules directories searched for a script in
// dir, nearest first (absolute paths).
int modpath_trees(lua_State* L) {
  auto trees = lua_modules_trees(luaL_optstring(L, 1, ""));
  lua_createtable(L, static_cast<int>(trees.size()), 0);
  for (size_t i = 0; i < trees.size(); ++i) {
    lua_pushstring(L, trees[i].c_str());
    lua_rawseti(L, -2, static_cast<int>(i) + 1);
  }
  return 1;
}

}  // namespace

void install(lua_State* L, const std::string& script_dir, bool worker) {
  lua_pushlightuserdata(L, const_cast<char*>(&kWorkerKey));
  lua_pushboolean(L, worker ? 1 : 0);
  lua_rawset(L, LUA_REGISTRYINDEX);

  lua_getglobal(L, "package");
  // Insert the built-in searcher right after package.preload's.
  lua_getfield(L, -1, "loaders");
  int n = static_cast<int>(lua_objlen(L, -1));
  for (int i = n; i >= 2; --i) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, builtin_searcher);
  lua_rawseti(L, -2, 2);
  if (g_app_searcher != nullptr) {
    for (int i = n + 1; i >= 3; --i) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, g_app_searcher);
    lua_rawseti(L, -2, 3);
  }
  lua_pop(L, 1);

  const std::string arch = EVO_MULTIARCH;
  set_path(L, "path", script_dir, /*lua=*/true,
           {"/usr/local/share/lua/5.1/?.lua", "/usr/local/share/lua/5.1/?/init.lua",
            "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua"});
  set_path(L, "cpath", script_dir, /*lua=*/false,
           {"/usr/local/lib/lua/5.1/?.so", "/usr/local/lib/" + arch + "/lua/5.1/?.so",
            "/usr/lib/" + arch + "/lua/5.1/?.so", "/usr/lib/lua/5.1/?.so"});
  lua_pop(L, 1);
  loadreport::install(L);  // only under `evo --watch`: tells it each file loaded
}

std::vector<std::string> lua_modules_trees(const std::string& dir) {
  std::vector<std::string> trees;
  // Absolute, so that a chdir later does not change what require finds.
  char real[PATH_MAX];
  if (::realpath(dir.empty() ? "." : dir.c_str(), real) == nullptr) return trees;
  std::string d = real;
  while (true) {
    std::string tree = (d == "/" ? "" : d) + "/lua_modules";
    if (is_dir(tree)) trees.push_back(tree);
    if (d == "/") break;
    size_t slash = d.find_last_of('/');
    d = slash == 0 ? "/" : d.substr(0, slash);
  }
  return trees;
}

void set_app_searcher(lua_CFunction searcher) { g_app_searcher = searcher; }

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  for (const auto& m : kNativeModules) names.emplace_back(m.name);
  for (size_t i = 0; i < embedded::kLuaModuleCount; ++i) names.emplace_back(embedded::kLuaModules[i].name);
  std::sort(names.begin(), names.end());
  return names;
}

int open_modpath(lua_State* L) {
  const luaL_Reg functions[] = {{"addDir", modpath_add_dir}, {"trees", modpath_trees}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo::modules
