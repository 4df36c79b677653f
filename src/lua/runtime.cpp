#include "lua/runtime.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/handle.h"
#include "lua/errors.h"
#include "lua/finalizers.h"
#include "lua/interrupt.h"
#include "lua/luv_glue.h"
#include "lua/modules.h"
#include "lua/tasks.h"

// LuaJIT's string hash. OpenResty's LuaJIT hashes strings with the CPU's
// CRC32 instruction where SSE4.2 is present, selected by a constructor in its
// shared library; Debian's static archive (the one evo links, whole) has no
// such constructor, so every state kept the portable sparse hash. On short,
// similar strings (decimal numbers, keys "k1".."kN") that hash clusters:
// 3M tostring(i) fill 1.83M of 4M buckets where CRC32 fills 2.23M, the chains
// are longer, and each extra link is a cache miss in lj_str_new and
// gc_sweepstr: 3M tostring(i) kept took 1.5x luajit's time (bench/strings.sh).
// The switch must happen before any lua_State exists (interned strings would
// no longer be found), hence a constructor; weak, so a LuaJIT without the
// function still links.
#if defined(__x86_64__)
extern "C" void str_hash_init_sse42(void) __attribute__((weak));

namespace {
__attribute__((constructor)) void select_luajit_string_hash() {
  __builtin_cpu_init();  // needed before __builtin_cpu_supports in a constructor
  if (str_hash_init_sse42 != nullptr && __builtin_cpu_supports("sse4.2")) str_hash_init_sse42();
}
}  // namespace
#endif

namespace evo {

namespace {
const char kRuntimeKey = 0;  // registry[&kRuntimeKey] = this runtime

// lua_close runs every finalizer, in no order a C module can count on; one is
// the package library's, which unloads the modules' shared objects (dlclose).
// Finalizers that run after it may need a module's code: its own __gc
// functions, or the wrapper it installed with LUAJIT_MODE_WRAPCFUNC, through
// which LuaJIT then calls every C function, finalizers included. So the
// libraries stay loaded until the process exits (Lua 5.4 unloads them after
// every other finalizer; nothing promises that order here).
void keep_c_modules_loaded(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADLIB");  // the metatable of library handles
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
}  // namespace

Runtime::Runtime(RuntimeOptions options) : options_(std::move(options)) {
  L_ = luaL_newstate();
  if (L_ == nullptr) {
    std::fprintf(stderr, "evo: cannot create the Lua state (out of memory)\n");
    std::exit(1);
  }
  small_blocks_.install(L_);
  lua_pushlightuserdata(L_, const_cast<char*>(&kRuntimeKey));
  lua_pushlightuserdata(L_, this);
  lua_rawset(L_, LUA_REGISTRYINDEX);
  if (options_.no_env) {  // read by LuaJIT's package library as it opens
    lua_pushboolean(L_, 1);
    lua_setfield(L_, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L_);
  lua_pushcfunction(L_, errors::traceback_handler);
  traceback_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  lua_pushliteral(L_, "__index");
  index_name_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  finalizers::install(L_);
  luv_glue::setup(L_, loop_.get());
  modules::install(L_, options_.script_dir, /*worker=*/false);
  tasks_ = std::make_unique<TaskSystem>(*this, options_.blocking);
  interrupt::install(*this);
}

Runtime::~Runtime() { shutdown(); }

Runtime* Runtime::find(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kRuntimeKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  auto* rt = static_cast<Runtime*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return rt;
}

Runtime& Runtime::from(lua_State* L) {
  Runtime* rt = find(L);
  if (rt == nullptr) {
    luaL_error(L, "this needs the main Evo runtime (not available in a thread or work state)");
  }
  return *rt;
}

bool Runtime::start_main_task(int nargs) {
  bool failed_now = false;
  tasks_->run_main(nargs, failed_now);
  if (failed_now) exit_code_ = 1;
  return !failed_now;
}

void Runtime::run_loop() {
  for (;;) {
    loop_.run(UV_RUN_DEFAULT);
    // Stopped (uv.stop, exit) with work left is not idle: the run ends as before.
    if (exit_requested_ || uv_loop_alive(loop_.get()) != 0 || !call_idle_handler()) return;
    if (uv_loop_alive(loop_.get()) == 0) return;  // the handler made no new work
  }
}

// Calls the idle handler, if one is set; false if none is.
bool Runtime::call_idle_handler() {
  lua_getfield(L_, LUA_REGISTRYINDEX, errors::kIdleHandlerKey);
  if (!lua_isfunction(L_, -1)) {
    lua_pop(L_, 1);
    return false;
  }
  errors::call_and_report(L_, 0, 0, "idle handler");
  return true;
}

void Runtime::check_main_finished() {
  if (exit_requested_ || uv_loop_alive(loop_.get()) != 0) return;  // it failed, or was stopped
  std::string text = tasks_->unfinished_main();
  if (text.empty()) return;
  errors::report(text);
  if (exit_code_ == 0) exit_code_ = 13;  // (the test runner has already set 1)
}

void Runtime::request_exit(int code) {
  exit_code_ = code;
  exit_requested_ = true;
  uv_stop(loop_.get());
}

void Runtime::close_script_handles() {
  luv_glue::close_handles(L_, loop_.get());
  uv_walk(
      loop_.get(),
      [](uv_handle_t* h, void*) {
        NativeHandle* owner = NativeHandle::from(h);
        if (owner != nullptr && !owner->internal() && !owner->closing()) owner->release();
      },
      nullptr);
  if (release_loose_) release_loose_();
}

void Runtime::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  interrupt::uninstall();
  luv_glue::close_inline_worker_vm();
  tasks_->close();  // tasks still suspended are abandoned
  // Close everything still open (luv's handles through luv, Evo's through
  // their owners, the REPL too) and run the loop until no handle and no
  // request is left: in-flight fs, dns and work requests call back into Lua,
  // which must still be alive then. A callback may open new handles; each
  // round closes those as well. UV_RUN_ONCE blocks only while work is pending.
  constexpr int kMaxRounds = 10000;
  bool settled = false;
  for (int round = 0; round < kMaxRounds; ++round) {
    close_script_handles();
    uv_walk(
        loop_.get(),
        [](uv_handle_t* h, void*) {
          if (NativeHandle* owner = NativeHandle::from(h)) owner->close();
        },
        nullptr);
    if (uv_loop_alive(loop_.get()) == 0) {
      settled = true;
      break;
    }
    loop_.run(UV_RUN_ONCE);
  }
  if (!settled) {
    // Callbacks keep starting new work. Closing the VM under them would crash;
    // leaving it to the process exit is safe.
    errors::report("pending callbacks kept starting new work at exit; leaving them");
    // The state outlives small_blocks_: its blocks go back to LuaJIT's own
    // allocator, which then serves whatever still runs.
    small_blocks_.uninstall(L_);
    return;
  }
  keep_c_modules_loaded(L_);
  // (Blocks freed while closing go to LuaJIT's allocator, which then
  // releases its whole arena.)
  small_blocks_.uninstall(L_);
  lua_close(L_);
  L_ = nullptr;
  loop_.drain_closing();
}

// libgcov's, in an instrumented build only (make release's first step);
// null everywhere else. (Weak rather than #ifdef: the function must have the
// same shape in both of the release build's steps for its profile to fit.)
extern "C" [[gnu::weak]] void __gcov_dump();

void Runtime::exit_now(int code) {
  if (profiler_exit_now != nullptr) profiler_exit_now();
  if (before_exit_now != nullptr) before_exit_now();
  std::fflush(stdout);
  std::fflush(stderr);
  // The release build's training (scripts/pgo-train) stops its servers with
  // SIGINT, which can end here: an instrumented build's counts are written
  // at exit, which _exit skips.
  if (__gcov_dump != nullptr) __gcov_dump();
  _exit(code);  // no atexit work: the VM is mid-call and cannot be closed
}

}  // namespace evo

namespace evo {

void Runtime::push_interned(const char* text) {
  // Native code names events and payload fields with string literals: the
  // address finds the string without hashing it (the characters are still
  // compared, so a reused buffer is never mistaken for another name).
  for (const Interned& e : interned_) {
    if (e.address == text && std::strcmp(e.text.c_str(), text) == 0) {
      lua_rawgeti(L_, LUA_REGISTRYINDEX, e.ref);
      return;
    }
  }
  for (Interned& e : interned_) {
    if (e.text == text) {
      e.address = text;
      lua_rawgeti(L_, LUA_REGISTRYINDEX, e.ref);
      return;
    }
  }
  lua_pushstring(L_, text);
  if (interned_.size() < 128) {  // the engine's names; a script's own are few too
    lua_pushvalue(L_, -1);
    interned_.push_back({text, text, luaL_ref(L_, LUA_REGISTRYINDEX)});
  }
}

}  // namespace evo
