// The one libuv loop that every part of Evo shares, luv included.
#pragma once

#include <uv.h>

namespace evo {

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }

  // Runs until no referenced handle or request is left (or uv_stop).
  // Returns non-zero if work remains (as uv_run does).
  int run(uv_run_mode mode = UV_RUN_DEFAULT) { return uv_run(&loop_, mode); }

  // Runs the loop until every handle that is closing has finished closing,
  // without waiting for active handles.
  void drain_closing();

 private:
  uv_loop_t loop_{};
};

}  // namespace evo
