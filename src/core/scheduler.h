// Scheduler: the run queue of tasks, driven by the event loop.
//
// A task is anything that can be resumed (in Evo, a Lua coroutine). The
// scheduler knows nothing of Lua: it keeps ready tasks in FIFO order and
// resumes them through a callback. Two queues give the two promptnesses Evo
// needs:
//   make_ready(t)  t runs in the current drain, or the next one (a completed
//                  operation, a newly spawned task, a finished awaited task);
//   defer(t)       t runs in the drain of the next loop iteration (task.yield,
//                  sleep(0)): one hop through the loop, so I/O gets its turn.
// The loop drains in its check phase, right after polling for I/O, so a task
// woken by I/O or a timer runs in the same iteration. While anything is ready,
// an idle handle keeps the poll from blocking.
//
// Invariants (tests/cpp/scheduler_test.cpp): ready tasks run in FIFO order; a
// task queued twice before it runs is resumed once; nothing made ready is
// ever lost, even when it is made ready while a drain is running.
#pragma once

#include <uv.h>

#include <cstddef>

namespace evo {

class IdleHandle;
class CheckHandle;
class PrepareHandle;
class Scheduler;

// Output corked while the loop dispatches (a Stream written from a task):
// flushed once, by flush_corked(), when the current drain of ready tasks
// ends, or before the loop polls again for what was corked elsewhere (a
// timer's or a read's callback) — uWebSockets' corking: the writes of one
// turn leave in one system call. Never later than the current loop
// iteration: no timer is involved.
class Corkable {
 public:
  Corkable() = default;
  Corkable(const Corkable&) = delete;
  Corkable& operator=(const Corkable&) = delete;
  virtual void flush_corked() = 0;
  [[nodiscard]] bool corked() const { return corked_in_ != nullptr; }
  // Off its scheduler's list, if on one: true when it was, and what it
  // corked must then go now, by the caller (it is closing, or stopping).
  bool leave_cork();

 protected:
  ~Corkable();  // leaves the list it is on

 private:
  friend class Scheduler;
  Corkable* prev_corked_ = nullptr;
  Corkable* next_corked_ = nullptr;
  Scheduler* corked_in_ = nullptr;
};

struct Schedulable {
  Schedulable* next_ready = nullptr;
  bool queued = false;
};

class Scheduler {
 public:
  using ResumeFn = void (*)(Schedulable* task, void* context);

  // At most this many resumes per drain; the rest wait for the next loop
  // iteration, so a chain of ready tasks cannot starve I/O.
  static constexpr size_t kDrainBudget = 10000;

  Scheduler(uv_loop_t* loop, ResumeFn resume, void* context);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void make_ready(Schedulable* task);
  void defer(Schedulable* task);

  // Resumes ready tasks in FIFO order (deferred ones first become ready).
  void drain();

  // Forgets a task that is going away (removes it from either queue).
  void forget(Schedulable* task);

  // Queues c's flush_corked() for the end of this drain, or for before the
  // next poll (once: a corked object already queued stays where it is).
  void cork(Corkable* c);
  // Takes c off the list without flushing it (it flushes itself now).
  void uncork(Corkable* c);
  // Flushes everything corked (the end of a drain, the prepare phase, and
  // os.exit, which leaves without running the loop again).
  void flush_corked();

  [[nodiscard]] size_t ready_count() const { return ready_.size + deferred_.size; }
  [[nodiscard]] bool draining() const { return depth_ > 0; }

  // Closes the loop handles (at shutdown); the queues are dropped.
  void close();

 private:
  struct Queue {
    Schedulable* head = nullptr;
    Schedulable* tail = nullptr;
    size_t size = 0;
    void push(Schedulable* t);
    Schedulable* pop();
    void append(Queue& other);
    bool remove(Schedulable* t);
  };

  void update_idle();

  Queue ready_;
  Queue deferred_;
  ResumeFn resume_;
  void* context_;
  IdleHandle* idle_ = nullptr;
  CheckHandle* check_ = nullptr;
  PrepareHandle* prepare_ = nullptr;
  Corkable* corked_head_ = nullptr;  // FIFO: flushed in the order corked
  Corkable* corked_tail_ = nullptr;
  int depth_ = 0;
  static constexpr int kMaxDepth = 8;
};

}  // namespace evo
