// luv on Evo's loop: the `uv` module is luv itself, sharing the runtime's loop.
#pragma once

#include <uv.h>
#include <lua.hpp>

namespace evo::luv_glue {

// Before any require("uv"): points luv at `loop`, routes luv callback errors
// through Evo's reporter, and makes luv threads and work queues create their
// states with Evo's module loader.
void setup(lua_State* L, uv_loop_t* loop);

// By default an error in a luv callback ends the process (status 1), as an
// uncaught error does. The REPL turns that off: it reports and goes on.
void set_callback_errors_fatal(bool fatal);

// True while the script runs the loop itself (uv.run() called from Lua).
bool inside_script_run(lua_State* L);
// The same, in that mode.
bool inside_script_run(lua_State* L, uv_run_mode mode);
// Where luv keeps the mode of the script's uv.run running now (-1 for none):
// read through it, a check costs no registry lookup (the uring Io's ring
// asks before each wait). Valid while L is.
const int* script_run_mode(lua_State* L);

// Asks every open luv handle to close through luv itself (so luv frees its
// bookkeeping and anchors); the loop must then run to finish the closes.
void close_handles(lua_State* L, uv_loop_t* loop);

// A worker state (as uv.new_work's) on this thread, for jobs run inline;
// made at first use, closed by close_inline_worker_vm() at shutdown.
lua_State* inline_worker_vm();
void close_inline_worker_vm();

}  // namespace evo::luv_glue
