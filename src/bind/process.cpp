// evo.process: child processes with streams, colourless (lib/process.lua),
// on the Io's spawn (src/io/process.cpp): wait() suspends a task that can
// yield and blocks everywhere else.
#include <unistd.h>

#include <cctype>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bind/io_call.h"
#include "io/io.h"
#include "io/stream.h"
#include "io/transport.h"
#include "io/workers.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/tasks.h"

namespace evo {
namespace {

constexpr const char* kChildMeta = "evo.Child";

// A child process for Lua.
class Child {
 public:
  explicit Child(std::unique_ptr<IoChild> io) : io_(std::move(io)) {}
  [[nodiscard]] int pid() const { return io_->pid(); }
  int kill(int signum) { return io_->kill(signum); }

  // wait(yieldable) -> (true, code, signal) | yields
  int wait(lua_State* L, int yieldable_idx) {
    return io_call<ChildExit>(
        L, yieldable_idx,
        [this](bool wait, std::function<void(ChildExit)> done) { return io_->wait(wait, std::move(done)); },
        [](lua_State* Ls, ChildExit e) {
          lua_pushinteger(Ls, e.code);
          lua_pushinteger(Ls, e.signal);
          return 2;
        });
  }

 private:
  std::unique_ptr<IoChild> io_;
};

Child* check_child(lua_State* L, int idx) { return Boxed<Child>::check(L, idx, kChildMeta); }

using Stdio = StdioMode;

Stdio stdio_option(lua_State* L, int opts, const char* name, Stdio fallback) {
  lua_getfield(L, opts, name);
  const char* v = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (v == nullptr) return fallback;
  if (std::strcmp(v, "pipe") == 0) return Stdio::Pipe;
  if (std::strcmp(v, "inherit") == 0) return Stdio::Inherit;
  if (std::strcmp(v, "ignore") == 0) return Stdio::Ignore;
  luaL_error(L, R"(bad %s option '%s' (expected "pipe", "inherit" or "ignore"))", name, v);
  return fallback;
}

// A string argument without NUL bytes (the OS would cut it there).
std::string c_string(lua_State* L, int idx, int arg, const char* what) {
  size_t len = 0;
  const char* s = lua_tolstring(L, idx, &len);
  if (std::strlen(s) != len) luaL_argerror(L, arg, lua_pushfstring(L, "%s contains a NUL byte", what));
  return {s, len};
}

std::vector<std::string> string_list(lua_State* L, int idx) {
  std::vector<std::string> out;
  if (lua_isnoneornil(L, idx)) return out;
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = static_cast<int>(lua_objlen(L, idx));
  for (int i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "args[%d] is not a string", i);
    int item = lua_gettop(L);
    const char* what = lua_pushfstring(L, "args[%d]", i);
    out.push_back(c_string(L, item, idx, what));
    lua_pop(L, 2);
  }
  return out;
}

// env: a table {NAME = value}, replacing the environment.
bool env_list(lua_State* L, int opts, std::vector<std::string>& out) {
  lua_getfield(L, opts, "env");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING &&
        (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      std::string name = c_string(L, -2, 3, "an env name");
      if (name.empty() || name.find('=') != std::string::npos)
        luaL_argerror(L, 3,
                      lua_pushfstring(L, "invalid env name '%s' (empty, or contains '=')", name.c_str()));
      lua_pushvalue(L, -1);  // (a number value: convert a copy, not the key lua_next needs)
      int copy = lua_gettop(L);
      const char* what = lua_pushfstring(L, "env value of '%s'", name.c_str());
      std::string value = c_string(L, copy, 3, what);
      lua_pop(L, 2);
      out.push_back(name + "=" + value);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// spawn(file, args, opts) -> child, stdin, stdout, stderr | nil, err
int p_spawn(lua_State* L) {
  luaL_checkstring(L, 1);
  const std::string file_str = c_string(L, 1, 1, "the command");
  const char* file = file_str.c_str();
  std::vector<std::string> argv;
  argv.emplace_back(file);
  for (auto& a : string_list(L, 2)) argv.push_back(std::move(a));
  if (lua_isnoneornil(L, 3)) lua_newtable(L), lua_replace(L, 3);
  luaL_checktype(L, 3, LUA_TTABLE);
  const Stdio modes[3] = {stdio_option(L, 3, "stdin", Stdio::Pipe), stdio_option(L, 3, "stdout", Stdio::Pipe),
                          stdio_option(L, 3, "stderr", Stdio::Pipe)};
  lua_getfield(L, 3, "cwd");
  const char* cwd = lua_tostring(L, -1);
  if (cwd != nullptr) c_string(L, -1, 3, "cwd");
  lua_pop(L, 1);  // the string stays alive in opts
  std::vector<std::string> env;
  bool has_env = env_list(L, 3, env);
  TaskSystem& sys = TaskSystem::from(L);
  if (cwd != nullptr && ::access(cwd, X_OK) != 0) {
    // Reported against the directory, not the command (which exists).
    int err = uv_translate_sys_error(errno);
    lua_pushnil(L);
    errors::push_uv_error(L, err, (std::string("cwd ") + cwd).c_str());
    return 2;
  }
  auto args = c_strings(argv);
  std::vector<char*> envp;
  if (has_env) envp = c_strings(env);
  SpawnSpec spec;
  spec.file = file;
  spec.argv = args.data();
  spec.env = has_env ? envp.data() : nullptr;
  spec.cwd = cwd;
  for (int i = 0; i < 3; ++i) spec.stdio[i] = modes[i];
  Spawned child = io_of(sys).spawn(spec);
  if (child.status != 0) return push_failure(L, child.status, nullptr, file);
  // The child and its three streams (nil for each not piped).
  Boxed<Child>::push(L, std::make_unique<Child>(std::move(child.child)), kChildMeta);
  for (auto& pipe : child.pipes) {
    if (pipe != nullptr) {
      push_stream(L, std::make_unique<Stream>(sys, std::move(pipe)));
    } else {
      lua_pushnil(L);
    }
  }
  return 4;
}

int p_wait(lua_State* L) { return check_child(L, 1)->wait(L, 2); }

int p_kill(lua_State* L) {
  Child* c = check_child(L, 1);
  int signum = SIGTERM;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    signum = static_cast<int>(lua_tointeger(L, 2));
  } else if (!lua_isnoneornil(L, 2)) {
    std::string name = luaL_checkstring(L, 2);
    for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (name.rfind("SIG", 0) != 0) name = "SIG" + name;
    static const struct {
      const char* name;
      int num;
    } kNames[] = {{"SIGTERM", SIGTERM}, {"SIGKILL", SIGKILL}, {"SIGINT", SIGINT},
                  {"SIGHUP", SIGHUP},   {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1},
                  {"SIGUSR2", SIGUSR2}, {"SIGSTOP", SIGSTOP}, {"SIGCONT", SIGCONT}};
    signum = -1;
    for (const auto& n : kNames) {
      if (name == n.name) signum = n.num;
    }
    if (signum < 0) return luaL_argerror(L, 2, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, 2)));
  }
  int rc = c->kill(signum);
  if (rc != 0) {
    lua_pushnil(L);
    errors::push_uv_error(L, rc);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

// workerInfo() -> id, count under `evo --workers` (src/io/workers.h); nothing otherwise
int p_worker_info(lua_State* L) {
  if (!workers::active()) return 0;
  lua_pushinteger(L, workers::id());
  lua_pushinteger(L, workers::count());
  return 2;
}

int p_pid(lua_State* L) {
  lua_pushinteger(L, check_child(L, 1)->pid());
  return 1;
}

}  // namespace

int open_process(lua_State* L) {
  open_stream_natives(L);  // child streams need the Stream metatable
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kChildMeta) != 0) {
    lua_pushcfunction(L, Boxed<Child>::gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"spawn", p_spawn}, {"wait", p_wait}, {"kill", p_kill}, {"pid", p_pid}, {"workerInfo", p_worker_info},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
