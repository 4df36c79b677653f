// Tasks: Lua coroutines driven by the event loop's scheduler.
//
// A task runs a Lua function as a coroutine. Its Future (a userdata) is what
// async()/concurrent() return: awaited for the function's results, or
// cancelled. A task suspends only at Evo's blocking calls (sleep, I/O, await,
// queue operations); each suspension has a wait id, and only a wake carrying
// that id resumes it, so a late or duplicate completion can never resume a
// task twice. Cancellation is delivered once, at the next blocking call, as a
// `Canceled` error (as in Zig's std.Io).
//
// The primitives live here in C++; lib/task.lua builds the public API
// (groups, select, queues, timeouts) on them.
#pragma once

#include <lua.hpp>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ptrmap.h"
#include "core/scheduler.h"

namespace evo {
class Runtime;

struct Task;

class TaskSystem {
 public:
  TaskSystem(Runtime& rt, bool blocking);
  ~TaskSystem();
  TaskSystem(const TaskSystem&) = delete;
  TaskSystem& operator=(const TaskSystem&) = delete;

  static TaskSystem& from(lua_State* L);

  [[nodiscard]] bool blocking() const { return blocking_; }
  Scheduler& scheduler() { return scheduler_; }

  // Starts the function on top of L's stack (nargs arguments above it) as a
  // task; leaves its Future on the stack.
  Task* spawn(lua_State* L, int nargs, bool queue = true);
  // Runs a task spawned with queue = false now, up to its first suspension
  // (a server running a request's handler straight from the read callback,
  // so answers to pipelined requests go out in one write).
  void run_now(Task* t);
  // Like spawn with at most 8 arguments, but on a pooled coroutine: when fn
  // returns the coroutine is parked for the next job instead of being thrown
  // away (a server runs one task per request). fn must not raise; its
  // Future completes with no results.
  // The task's Future is not pushed: when nobody asks for it (task.current()),
  // the Task itself is reused by the next job as well.
  Task* spawn_pooled(lua_State* L, int nargs, bool queue = true);
  bool park_worker(lua_State* co, int co_ref, Task* task);
  // Keeps `what` alive until t's job is over (a pooled task's function
  // returned) or t is gone: what a job's handles in Lua refer to without
  // owning it (a request's exchange), so they need no finalizer.
  static void hold(Task* t, std::shared_ptr<void> what);
  // Whether a running pooled task may take another job on its coroutine
  // without returning (a server's batch of pipelined requests): nobody saw
  // its Future, no cancellation waits for it.
  [[nodiscard]] static bool can_take_next_job(const Task* t);
  static constexpr size_t kMaxIdleCoroutines = 1024;

  // Runs the main chunk (function + nargs on the stack of the main state) as a
  // task and drains the ready queue once. Returns false if it failed at once.
  bool run_main(int nargs, bool& failed_now);

  // When the loop has run out of work: "the main task never finished: it waits
  // in ..." (with a traceback) if a main chunk is still suspended; "" if none is.
  std::string unfinished_main();

  // The task whose coroutine is L, or nullptr.
  Task* task_of(lua_State* L) const;

  void resume(Task* t);
  void finished(Task* t);
  void forget(Task* t);
  void retire(Task* t);

  // Closes the scheduler's handles at shutdown; tasks still suspended are
  // abandoned.
  void close();

  // ---- Waiting, for native modules. A native blocking call follows this
  // protocol, and returns (true, results...) or (false) to its Lua wrapper,
  // which raises Canceled on false:
  //   Task* t = sys.waiter(L, yieldable_idx);   // nullptr: do it blocking
  //   if (t && sys.take_cancel(t)) { push false; return 1; }
  //   start the operation; remember {t, sys.begin_wait(t, hook, arg)};
  //   return sys.suspend(L, t);
  // and when the operation completes: push the results on sys.L() and call
  // sys.wake(t, id, n). A stale id (the task was cancelled, or already woken)
  // drops the values: a task is resumed exactly once per wait.
  using CancelHook = void (*)(Task* t, void* arg);
  Task* waiter(lua_State* L, int yieldable_idx);
  // begin_wait for an operation that completes later through a Waker (a
  // thread-pool job, a server's close, a callback): the completion holds
  // the Waker, never the Task*, so it can outlive a cancelled task safely.
  std::shared_ptr<class Waker> begin_shared_wait(Task* t, CancelHook hook = nullptr, void* arg = nullptr);
  // Asks t to stop (task.cancel): delivered now if it is suspended, else at
  // its next blocking call.
  void cancel(Task* t);
  bool take_cancel(Task* t);
  uint32_t begin_wait(Task* t, CancelHook hook, void* arg);
  // For an operation started after begin_wait (its completion carries the
  // wait id): its cancel hook's argument, once it exists.
  void set_cancel_arg(Task* t, void* arg);
  // wake(t, id) with no values, through t's own system: a completion that
  // carries only a task and a wait id (a timer's, which must fit in a
  // std::function's inline storage).
  static bool wake_plain(Task* t, uint32_t id);
  int suspend(lua_State* L, Task* t);
  bool wake(Task* t, uint32_t id, int nvalues);
  // wake() for a native that suspended to return values of its own (the
  // HTTP server's next(), whose runner reads `res = next()`): the nvalues on
  // top of L() become the call's results as they are, with no leading true.
  // now: resumed at once (straight from a read callback, as run_now), else
  // queued. False, and the values dropped, when t does not wait in `id`.
  bool wake_results(Task* t, uint32_t id, int nvalues, bool now);
  // Whether t is suspended in wait `id` (a wake for it would resume it).
  [[nodiscard]] static bool waits_in(const Task* t, uint32_t id);
  // A registry reference that keeps t's memory (its Future userdata) alive
  // even after it finished, for a native that keeps a Task* across waits it
  // does not see end (LUA_NOREF for a finished task); unanchor drops it.
  int anchor(Task* t);
  void unanchor(int ref);
  // wake() with (nil, error object {code, message}): a failed wait.
  bool wake_error(Task* t, uint32_t id, const char* code, const std::string& message);
  [[nodiscard]] lua_State* L() const;
  [[nodiscard]] bool closed() const { return closed_; }

  Runtime& runtime() { return rt_; }
  int body_ref = LUA_NOREF;         // the Lua wrapper every task runs
  int future_meta_ref = LUA_NOREF;  // the metatable of futures
  Task* resuming = nullptr;         // the task the scheduler is resuming now
  Task* main_task = nullptr;

 private:
  Runtime& rt_;
  bool blocking_;
  bool closed_ = false;
  Scheduler scheduler_;
  PtrMap<lua_State*, Task*> by_thread_;
  int worker_ref_ = LUA_NOREF;
  int xpcall_ref_ = LUA_NOREF;
  std::vector<Task*> main_tasks_;  // unfinished main chunks (run_main)
  Task* new_task_object(lua_State* L);
  Task* new_task(lua_State* L, int nargs, int runner_ref);
  // Parked workers: the coroutine, its anchor, and its Task when reusable.
  struct IdleWorker {
    lua_State* co;
    int co_ref;
    Task* task;
  };
  std::vector<IdleWorker> idle_workers_;
};

// The far end of a wait (see begin_shared_wait). It wakes its task at most
// once; once the task was woken otherwise, cancelled or finished, it does
// nothing (and drops the values pushed for it).
class Waker {
 public:
  explicit Waker(TaskSystem& sys) : sys_(sys) {}
  bool wake(int nvalues);  // the values are on top of sys.L()
  bool wake_error(const char* code, const std::string& message);
  [[nodiscard]] bool waiting() const { return task_ != nullptr; }
  [[nodiscard]] TaskSystem& system() const { return sys_; }

 private:
  friend class TaskSystem;
  friend void forget_waker(Task* t);
  TaskSystem& sys_;
  Task* task_ = nullptr;
  uint32_t id_ = 0;
};

}  // namespace evo
