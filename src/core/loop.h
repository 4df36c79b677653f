// The one libuv loop that every part of Evo shares, luv included.
#pragma once

#include <uv.h>

namespace evo {

// uv_run(loop, mode) that says how it runs: libuv tells no callback its run
// mode, yet a waiter that blocks in libuv's place (the uring Io's ring
// wait, which blocks in its prepare callback) must not block under
// UV_RUN_NOWAIT. Nested runs (a script's uv.run inside the runtime's) each
// say theirs.
int run_loop(uv_loop_t* loop, uv_run_mode mode);
// Whether loop may block now: false while this thread runs it through
// run_loop(UV_RUN_NOWAIT); true otherwise (a plain uv_run is taken to be
// one that may).
bool loop_may_block(const uv_loop_t* loop);
// Whether this thread runs loop through run_loop(UV_RUN_DEFAULT) now: a turn
// may then be followed by another without returning (UV_RUN_ONCE returns
// after one).
bool loop_runs_to_end(const uv_loop_t* loop);

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }

  // Runs until no referenced handle or request is left (or uv_stop).
  // Returns non-zero if work remains (as uv_run does).
  int run(uv_run_mode mode = UV_RUN_DEFAULT) { return run_loop(&loop_, mode); }

  // Runs the loop until every handle that is closing has finished closing,
  // without waiting for active handles.
  void drain_closing();

 private:
  uv_loop_t loop_{};
};

}  // namespace evo
