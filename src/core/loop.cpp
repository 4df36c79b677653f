#include "core/loop.h"

#include <cstdio>
#include <cstdlib>

namespace evo {

Loop::Loop() {
  int rc = uv_loop_init(&loop_);
  if (rc != 0) {
    std::fprintf(stderr, "evo: cannot create the event loop: %s\n", uv_strerror(rc));
    std::abort();
  }
}

namespace {
// The innermost run_loop of this thread.
struct Running {
  const uv_loop_t* loop = nullptr;
  uv_run_mode mode = UV_RUN_DEFAULT;
};
thread_local Running t_running;
}  // namespace

int run_loop(uv_loop_t* loop, uv_run_mode mode) {
  Running outer = t_running;
  t_running = Running{loop, mode};
  int rc = uv_run(loop, mode);
  t_running = outer;
  return rc;
}

bool loop_may_block(const uv_loop_t* loop) {
  return t_running.loop != loop || t_running.mode != UV_RUN_NOWAIT;
}

bool loop_runs_to_end(const uv_loop_t* loop) {
  return t_running.loop == loop && t_running.mode == UV_RUN_DEFAULT;
}

namespace {
int count_closing(uv_loop_t* loop) {
  int n = 0;
  uv_walk(
      loop, [](uv_handle_t* h, void* arg) { *static_cast<int*>(arg) += uv_is_closing(h) ? 1 : 0; }, &n);
  return n;
}
}  // namespace

void Loop::drain_closing() {
  // UV_RUN_NOWAIT processes pending close callbacks without blocking on I/O.
  while (count_closing(&loop_) > 0) run_loop(&loop_, UV_RUN_NOWAIT);
}

Loop::~Loop() {
  // By now the runtime has closed every handle it knows about. Anything still
  // open here is a bug elsewhere; close it anyway so the loop can be freed.
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) != 0) {
    std::fprintf(stderr, "evo: internal error: event loop still busy at exit\n");
  }
}

}  // namespace evo
