// `evo --prof`: LuaJIT's sampling profiler over a whole run (docs/performance.md).
//
// Every sample is the stack of the coroutine that was running (a task's
// own frames, not the scheduler's), with a [C] leaf naming the native
// function when the VM was in C code, [GC] in the garbage collector and
// [JIT compiler] in the trace compiler. At the end of the run (the script's
// end, os.exit, Ctrl-C or SIGTERM) the folded stacks and an SVG flame graph
// are written and a summary goes to stderr. Nothing of this is installed
// unless --prof is given.
#pragma once

#include <lua.hpp>

#include <string>

namespace evo::cli::prof {

struct Options {
  std::string folded_path = "evo.prof.folded";
  std::string svg_path;  // "" = folded_path with .folded replaced by .svg
  int interval_ms = 10;  // as jit.p
  bool vm = false;       // --prof-mode=vm: the VM state is the root frame; a state table
  int top = 12;          // rows of the summary
};

// Opens both outputs (so a path that cannot be written fails before the
// script runs) and starts sampling L's VM. On failure returns false with a
// message in *error.
bool start(lua_State* L, const Options& options, std::string* error);

// Stops sampling, writes the outputs and prints the summary; later calls do
// nothing. Returns false when an output could not be written (reported).
bool finish();

// "x.folded" -> "x.svg", anything else -> anything.svg.
std::string svg_path_for(const std::string& folded_path);

}  // namespace evo::cli::prof
