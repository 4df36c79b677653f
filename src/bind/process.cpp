// evo.process: child processes with streams, colourless (lib/process.lua).
//
// Evented Io mode: uv_spawn, pipes as Streams on libuv, the exit reported by
// libuv's SIGCHLD handling; wait() suspends the task. Blocking Io mode:
// posix_spawn, plain pipes, waitpid().
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"
#include "io/stream.h"

namespace evo {
namespace {

constexpr const char* kChildMeta = "evo.Child";

class Child;

class ProcessHandle final : public NativeHandle {
 public:
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&process_); }
  [[nodiscard]] bool internal() const override { return true; }
  uv_process_t process_{};
  Child* owner = nullptr;

 protected:
  void on_closed() override;
};

// A child process: its pid, its exit once known, and who waits for it.
class Child {
 public:
  Child(TaskSystem& sys, int pid, ProcessHandle* h) : sys_(sys), pid_(pid), handle_(h) {
    if (h != nullptr) h->owner = this;
  }
  ~Child() {
    if (handle_ != nullptr) {
      handle_->owner = nullptr;
      if (!exited_) uv_unref(handle_->uv_handle());  // forgotten: it no longer keeps the loop alive
    }
  }

  [[nodiscard]] int pid() const { return pid_; }

  // Closed by its exit callback, or by the runtime's exit sweep.
  void on_handle_closed() { handle_ = nullptr; }

  // wait(yieldable) -> (true, code, signal) | yields
  int wait(lua_State* L, int yieldable_idx) {
    if (exited_) return push_exit(L);
    if (handle_ == nullptr) return wait_blocking(L);
    Task* t = sys_.waiter(L, yieldable_idx);
    if (t == nullptr) {
      return luaL_error(L,
                        "wait() for a child needs a task that can yield in the evented mode "
                        "(not a metamethod, a comparator or a module's top level)");
    }
    if (waiter_ != nullptr) return luaL_error(L, "another task is already waiting for this child");
    if (sys_.take_cancel(t)) {
      lua_pushboolean(L, 0);
      return 1;
    }
    waiter_ = t;
    waiter_id_ = sys_.begin_wait(t, cancel_wait, this);
    return sys_.suspend(L, t);
  }

  int kill(int signum) {
    if (exited_) return UV_ESRCH;
    if (handle_ != nullptr) return uv_process_kill(&handle_->process_, signum);
    return ::kill(pid_, signum) == 0 ? 0 : uv_translate_sys_error(errno);
  }

  static void on_exit(uv_process_t* p, int64_t status, int term_signal) {
    auto* h = static_cast<ProcessHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(p)));
    Child* self = h->owner;
    h->owner = nullptr;
    h->close();
    if (self == nullptr) return;
    self->handle_ = nullptr;
    self->exited_ = true;
    self->code_ = static_cast<int>(status);
    self->signal_ = term_signal;
    if (self->waiter_ != nullptr) {
      Task* t = self->waiter_;
      self->waiter_ = nullptr;
      lua_State* L = self->sys_.L();
      lua_pushinteger(L, self->code_);
      lua_pushinteger(L, self->signal_);
      self->sys_.wake(t, self->waiter_id_, 2);
    }
  }

 private:
  static void cancel_wait(Task* /*t*/, void* arg) { static_cast<Child*>(arg)->waiter_ = nullptr; }

  int push_exit(lua_State* L) const {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, code_);
    lua_pushinteger(L, signal_);
    return 3;
  }

  int wait_blocking(lua_State* L) {
    int status = 0;
    pid_t r = -1;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    exited_ = true;
    if (r < 0) {
      code_ = -1;
    } else if (WIFEXITED(status)) {
      code_ = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      signal_ = WTERMSIG(status);
    }
    return push_exit(L);
  }

  TaskSystem& sys_;
  int pid_;
  ProcessHandle* handle_;
  bool exited_ = false;
  int code_ = 0;
  int signal_ = 0;
  Task* waiter_ = nullptr;
  uint32_t waiter_id_ = 0;
};

void ProcessHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

Child* check_child(lua_State* L, int idx) { return Boxed<Child>::check(L, idx, kChildMeta); }

enum class Stdio : uint8_t { Pipe, Inherit, Ignore };

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

// Pushes the child and its three streams (or nil for each not piped).
void push_child(lua_State* L, std::unique_ptr<Child> child) {
  Boxed<Child>::push(L, std::move(child), kChildMeta);
}

int spawn_evented(lua_State* L, TaskSystem& sys, const char* file, std::vector<std::string>& argv,
                  std::vector<std::string>* env, const char* cwd, const Stdio (&modes)[3]) {
  uv_loop_t* loop = sys.runtime().loop();
  UvStreamHandle* pipes[3] = {nullptr, nullptr, nullptr};
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    if (modes[i] == Stdio::Pipe) {
      int status = 0;
      auto h = std::make_unique<UvStreamHandle>(loop, UvStreamHandle::Kind::Pipe, &status);
      pipes[i] = NativeHandle::release_to_loop(std::move(h));
      stdio[i].flags =
          static_cast<uv_stdio_flags>(UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = pipes[i]->stream();
    } else if (modes[i] == Stdio::Inherit) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    } else {
      stdio[i].flags = UV_IGNORE;
    }
  }
  auto args = c_strings(argv);
  std::vector<char*> envp;
  if (env != nullptr) envp = c_strings(*env);
  uv_process_options_t options{};
  options.file = file;
  options.args = args.data();
  options.env = env != nullptr ? envp.data() : nullptr;
  options.cwd = cwd;
  options.exit_cb = Child::on_exit;
  options.stdio = stdio;
  options.stdio_count = 3;
  auto ph = std::make_unique<ProcessHandle>();
  int rc = uv_spawn(loop, &ph->process_, &options);
  if (rc != 0) {
    // uv_spawn leaves the handle initialised even on failure: close it.
    ProcessHandle::release_to_loop(std::move(ph))->close();
    for (auto* p : pipes) {
      if (p != nullptr) p->close();
    }
    lua_pushnil(L);
    errors::push_uv_error(L, rc, file);
    return 2;
  }
  ProcessHandle* handle = NativeHandle::release_to_loop(std::move(ph));
  push_child(L, std::make_unique<Child>(sys, handle->process_.pid, handle));
  for (auto* p : pipes) {
    if (p != nullptr) {
      push_stream(L, std::make_unique<Stream>(sys, p));
    } else {
      lua_pushnil(L);
    }
  }
  return 4;
}

int spawn_blocking(lua_State* L, TaskSystem& sys, const char* file, std::vector<std::string>& argv,
                   std::vector<std::string>* env, const char* cwd, const Stdio (&modes)[3]) {
  int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  auto cleanup = [&] {
    posix_spawn_file_actions_destroy(&actions);
    for (auto& p : fds) {
      for (int fd : p) {
        if (fd >= 0) ::close(fd);
      }
    }
  };
  for (int i = 0; i < 3; ++i) {
    if (modes[i] == Stdio::Pipe) {
      if (::pipe2(fds[i], O_CLOEXEC) != 0) {
        int err = uv_translate_sys_error(errno);
        cleanup();
        lua_pushnil(L);
        errors::push_uv_error(L, err);
        return 2;
      }
      int child_end = i == 0 ? fds[i][0] : fds[i][1];
      posix_spawn_file_actions_adddup2(&actions, child_end, i);
    } else if (modes[i] == Stdio::Ignore) {
      posix_spawn_file_actions_addopen(&actions, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  if (cwd != nullptr) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    posix_spawn_file_actions_addchdir_np(&actions, cwd);
#endif
  }
  auto args = c_strings(argv);
  std::vector<char*> envp;
  if (env != nullptr) envp = c_strings(*env);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, file, &actions, nullptr, args.data(), env != nullptr ? envp.data() : environ);
  if (rc != 0) {
    cleanup();
    lua_pushnil(L);
    errors::push_uv_error(L, uv_translate_sys_error(rc), file);
    return 2;
  }
  posix_spawn_file_actions_destroy(&actions);
  push_child(L, std::make_unique<Child>(sys, pid, nullptr));
  for (int i = 0; i < 3; ++i) {
    if (modes[i] != Stdio::Pipe) {
      lua_pushnil(L);
      continue;
    }
    int ours = i == 0 ? fds[i][1] : fds[i][0];
    ::close(i == 0 ? fds[i][0] : fds[i][1]);
    push_stream(L, std::make_unique<Stream>(sys, ours));
  }
  return 4;
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
  if (sys.blocking()) return spawn_blocking(L, sys, file, argv, has_env ? &env : nullptr, cwd, modes);
  return spawn_evented(L, sys, file, argv, has_env ? &env : nullptr, cwd, modes);
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
      {"spawn", p_spawn}, {"wait", p_wait}, {"kill", p_kill}, {"pid", p_pid}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
