// Runtime: one Lua VM on one libuv loop, and everything that ties them together.
//
// The runtime owns the loop and the lua_State. Native objects reach it from a
// lua_State with Runtime::from(L). It runs the main chunk as a coroutine before
// the loop starts, runs the loop until nothing referenced is left, then closes
// every handle (luv's and Evo's) before closing the VM and the loop.
#pragma once

#include <uv.h>
#include <lua.hpp>

#include <string>
#include <utility>
#include <vector>

#include "core/loop.h"
#include "lua/small_alloc.h"

#include <functional>
#include <memory>

namespace evo {

class TaskSystem;
class Io;  // src/io/io.h: made by io_of() at its first use

struct RuntimeOptions {
  bool debug = false;      // --debug or EVO_DEBUG=1: default event handlers print
  bool blocking = false;   // --io=blocking or EVO_IO=blocking: every call is a plain syscall
  bool uring = false;      // --io=uring or EVO_IO=uring: the evented model on io_uring (docs/io.md)
  std::string script_dir;  // directory of the main script, searched by require
  bool no_env = false;     // -E: package.path and cpath ignore LUA_PATH and LUA_CPATH
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The runtime of L's VM; raises a Lua error in a state without one (luv
  // thread and work states). find() returns nullptr there instead.
  static Runtime& from(lua_State* L);
  static Runtime* find(lua_State* L);

  [[nodiscard]] lua_State* L() const { return L_; }
  uv_loop_t* loop() { return loop_.get(); }
  [[nodiscard]] bool debug() const { return options_.debug; }
  [[nodiscard]] bool uring() const { return options_.uring; }
  void set_debug(bool on) { options_.debug = on; }

  // Registry references of the functions on every event's path, made once.
  [[nodiscard]] int traceback_ref() const { return traceback_ref_; }
  [[nodiscard]] int index_name_ref() const { return index_name_ref_; }  // the string "__index"
  [[nodiscard]] int default_handler_ref() const { return default_handler_ref_; }
  // The default handler's identity (lua_topointer), for telling it apart
  // without pushing it: the registry reference keeps it alive.
  [[nodiscard]] const void* default_handler() const { return default_handler_; }
  void set_default_handler_ref(int ref, const void* fn) {
    default_handler_ref_ = ref;
    default_handler_ = fn;
  }
  // Pushes an event's name or a payload field's, interned once per name and
  // kept in the registry (events.cpp emits two events per HTTP request with
  // six fields: hashing the names each time showed).
  void push_interned(const char* text);

  [[nodiscard]] int exit_code() const { return exit_code_; }
  // A task failed and nobody awaited it (reported when its Future is
  // collected, at the latest by shutdown()): the run's status becomes 1.
  void note_unhandled_task_error() { ++unhandled_task_errors_; }
  [[nodiscard]] int unhandled_task_errors() const { return unhandled_task_errors_; }
  void set_exit_code(int code) { exit_code_ = code; }

  // Runs the function on top of L's stack with `nargs` arguments above it as
  // the main task: a task started now, before the loop runs. Returns false
  // (after reporting) when it failed before suspending.
  bool start_main_task(int nargs);

  TaskSystem& tasks() { return *tasks_; }
  [[nodiscard]] Io* io() const { return io_.get(); }
  void set_io(std::shared_ptr<Io> io) { io_ = std::move(io); }

  // Runs the loop until no referenced handle is left. When the loop runs
  // out of work, the idle handler (registry[kIdleHandlerKey], set by the test
  // runner through core.setIdleHandler) is called once; if it made new work
  // (a test stuck in a yield is failed and the runner woken), the loop runs on.
  void run_loop();

  // After run_loop: when the loop ran out of work (not stopped) with a main
  // chunk still suspended, nothing can ever resume it: says where it waits and
  // sets the exit status to 13 (as Node does for an unsettled top-level await).
  void check_main_finished();

  // Asks every handle a script opened (luv's and Evo's) to close.
  void close_script_handles();
  // What that sweep releases besides libuv's handles: the uring Io's
  // sockets, which have none (set by the Io, src/io/io.cpp).
  void set_release_loose(std::function<void()> fn) { release_loose_ = std::move(fn); }

  // Closes every handle, waits for pending requests, runs their callbacks,
  // then closes the VM. Idempotent.
  void shutdown();

  // Ends the run as soon as the current loop iteration is over: stops the
  // loop; shutdown then closes everything as at a normal end. Only valid
  // from Evo's own loop run (not inside a script's uv.run()).
  void request_exit(int code);

  // Leaves the process at once with `code` after flushing stdio (_exit: no
  // atexit handlers, no leak check of a VM that cannot be closed). Used for
  // an uncaught error inside a callback and for SIGINT/SIGTERM inside Lua
  // code, where unwinding is not possible.
  [[noreturn]] static void exit_now(int code);
  // Called by exit_now before it flushes stdio (process.stdout's queued
  // output goes out: src/bind/stdio.cpp).
  static inline void (*before_exit_now)() = nullptr;
  // Called by exit_now first of all: `evo --prof` writes its profile
  // (src/cli/prof.cpp). Pure C++, no Lua.
  static inline void (*profiler_exit_now)() = nullptr;

 private:
  bool call_idle_handler();
  RuntimeOptions options_;
  Loop loop_;  // declared before L_: destroyed after the VM is closed
  lua_State* L_ = nullptr;
  SmallBlocks small_blocks_;  // in front of L_'s allocator (src/lua/small_alloc.h)
  std::unique_ptr<TaskSystem> tasks_;
  std::shared_ptr<Io> io_;  // shared_ptr: destroyed here without knowing the type
  std::function<void()> release_loose_;
  int exit_code_ = 0;
  int traceback_ref_ = LUA_NOREF;
  int index_name_ref_ = LUA_NOREF;
  int default_handler_ref_ = LUA_NOREF;
  const void* default_handler_ = nullptr;
  struct Interned {
    const char* address;  // where it was last asked for from (a string literal)
    std::string text;
    int ref;
  };
  std::vector<Interned> interned_;
  bool shut_down_ = false;
  bool exit_requested_ = false;
  int unhandled_task_errors_ = 0;  // request_exit: the loop was stopped on purpose
};

}  // namespace evo
