#include "core/scheduler.h"

#include <memory>

#include "core/handle.h"

namespace evo {

// Keeps the loop's poll from blocking while tasks are ready. Referenced only
// while active: ready tasks keep the process alive, nothing else does.
class IdleHandle final : public NativeHandle {
 public:
  explicit IdleHandle(uv_loop_t* loop) { uv_idle_init(loop, &idle_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&idle_); }
  [[nodiscard]] bool internal() const override { return true; }
  void set_active(bool on) {
    if (on && uv_is_active(uv_handle()) == 0) uv_idle_start(&idle_, [](uv_idle_t*) {});
    if (!on && uv_is_active(uv_handle()) != 0) uv_idle_stop(&idle_);
  }

 private:
  uv_idle_t idle_{};
};

// Drains the ready queue after each poll.
class CheckHandle final : public NativeHandle {
 public:
  CheckHandle(uv_loop_t* loop, Scheduler* scheduler) : scheduler_(scheduler) {
    uv_check_init(loop, &check_);
    uv_check_start(&check_, on_check);
    uv_unref(uv_handle());
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&check_); }
  [[nodiscard]] bool internal() const override { return true; }

 private:
  static void on_check(uv_check_t* c) {
    static_cast<CheckHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(c)))->scheduler_->drain();
  }
  uv_check_t check_{};
  Scheduler* scheduler_;
};

// Flushes what was corked outside a drain (a callback of the timer or
// poll phase) right before the loop polls: nothing waits for a later turn.
// Active only from such a cork to its flush: an active prepare handle costs
// every loop iteration a callback (about 40 instructions of a 1,100 a
// task.yield() hop takes), and most iterations cork nothing outside a drain.
class PrepareHandle final : public NativeHandle {
 public:
  PrepareHandle(uv_loop_t* loop, Scheduler* scheduler) : scheduler_(scheduler) {
    uv_prepare_init(loop, &prepare_);
    uv_unref(uv_handle());
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&prepare_); }
  [[nodiscard]] bool internal() const override { return true; }
  void start() {
    if (uv_is_active(uv_handle()) == 0) uv_prepare_start(&prepare_, on_prepare);
  }

 private:
  static void on_prepare(uv_prepare_t* p) {
    // Stopped first: a flush that corks again outside a drain starts it again.
    uv_prepare_stop(p);
    static_cast<PrepareHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(p)))
        ->scheduler_->flush_corked();
  }
  uv_prepare_t prepare_{};
  Scheduler* scheduler_;
};

Corkable::~Corkable() { leave_cork(); }

bool Corkable::leave_cork() {
  if (corked_in_ == nullptr) return false;
  corked_in_->uncork(this);
  return true;
}

void Scheduler::cork(Corkable* c) {
  if (c->corked_in_ != nullptr) return;
  // Corked outside a drain (a callback of the timer, poll or prepare
  // phase): the poll must not block before the next flush point. The
  // prepare handle may already have run this iteration, or run before
  // another prepare handle that submits what it flushes (the uring Io's
  // ring): with the idle handle on, the poll returns at once and the
  // check phase's drain flushes.
  c->corked_in_ = this;
  c->prev_corked_ = corked_tail_;
  c->next_corked_ = nullptr;
  if (corked_tail_ != nullptr) {
    corked_tail_->next_corked_ = c;
  } else {
    corked_head_ = c;
  }
  corked_tail_ = c;
  if (depth_ == 0) {
    if (idle_ != nullptr) idle_->set_active(true);
    if (prepare_ != nullptr) prepare_->start();
  }
}

void Scheduler::uncork(Corkable* c) {
  if (c->corked_in_ != this) return;
  if (c->prev_corked_ != nullptr) {
    c->prev_corked_->next_corked_ = c->next_corked_;
  } else {
    corked_head_ = c->next_corked_;
  }
  if (c->next_corked_ != nullptr) {
    c->next_corked_->prev_corked_ = c->prev_corked_;
  } else {
    corked_tail_ = c->prev_corked_;
  }
  c->prev_corked_ = c->next_corked_ = nullptr;
  c->corked_in_ = nullptr;
}

void Scheduler::flush_corked() {
  // One at a time from the head: a flush may cork another object (a write
  // failure wakes a task that runs at once and writes elsewhere).
  while (Corkable* c = corked_head_) {
    uncork(c);
    c->flush_corked();
  }
}

void Scheduler::Queue::push(Schedulable* t) {
  t->next_ready = nullptr;
  if (tail != nullptr) {
    tail->next_ready = t;
  } else {
    head = t;
  }
  tail = t;
  ++size;
}

Schedulable* Scheduler::Queue::pop() {
  Schedulable* t = head;
  if (t == nullptr) return nullptr;
  head = t->next_ready;
  if (head == nullptr) tail = nullptr;
  t->next_ready = nullptr;
  --size;
  return t;
}

void Scheduler::Queue::append(Queue& other) {
  if (other.head == nullptr) return;
  if (tail != nullptr) {
    tail->next_ready = other.head;
  } else {
    head = other.head;
  }
  tail = other.tail;
  size += other.size;
  other = Queue{};
}

bool Scheduler::Queue::remove(Schedulable* t) {
  Schedulable* prev = nullptr;
  for (Schedulable* cur = head; cur != nullptr; prev = cur, cur = cur->next_ready) {
    if (cur != t) continue;
    if (prev != nullptr) {
      prev->next_ready = cur->next_ready;
    } else {
      head = cur->next_ready;
    }
    if (tail == cur) tail = prev;
    cur->next_ready = nullptr;
    --size;
    return true;
  }
  return false;
}

Scheduler::Scheduler(uv_loop_t* loop, ResumeFn resume, void* context) : resume_(resume), context_(context) {
  idle_ = NativeHandle::release_to_loop(std::make_unique<IdleHandle>(loop));
  check_ = NativeHandle::release_to_loop(std::make_unique<CheckHandle>(loop, this));
  prepare_ = NativeHandle::release_to_loop(std::make_unique<PrepareHandle>(loop, this));
}

Scheduler::~Scheduler() { close(); }

void Scheduler::close() {
  if (idle_ != nullptr) idle_->close();
  if (check_ != nullptr) check_->close();
  if (prepare_ != nullptr) prepare_->close();
  idle_ = nullptr;
  check_ = nullptr;
  prepare_ = nullptr;
  flush_corked();  // the loop is ending: what is corked goes now, as it would have
  ready_ = Queue{};
  deferred_ = Queue{};
}

void Scheduler::update_idle() {
  if (idle_ != nullptr) idle_->set_active(ready_.size + deferred_.size > 0 || corked_head_ != nullptr);
}

void Scheduler::make_ready(Schedulable* task) {
  if (task->queued) return;  // already due to run: resumed once, not twice
  task->queued = true;
  ready_.push(task);
  update_idle();
}

void Scheduler::defer(Schedulable* task) {
  if (task->queued) return;
  task->queued = true;
  deferred_.push(task);
  update_idle();
}

void Scheduler::forget(Schedulable* task) {
  if (!task->queued) return;
  if (!ready_.remove(task)) deferred_.remove(task);
  task->queued = false;
  update_idle();
}

void Scheduler::drain() {
  // A task may run the loop itself (uv.run() in a script): the drain then
  // nests, so other tasks keep running meanwhile. Bounded, to stay sane.
  if (depth_ >= kMaxDepth) return;
  ++depth_;
  ready_.append(deferred_);  // what yielded last iteration runs now, after earlier arrivals
  // Tasks deferred during this drain land in deferred_ and wait for the next
  // iteration; tasks made ready during it run in it, after those before them.
  for (size_t budget = kDrainBudget; budget > 0; --budget) {
    Schedulable* t = ready_.pop();
    if (t == nullptr) break;
    t->queued = false;
    // (A task that runs the loop itself, uv.run() in a script, may find the
    // idle handle still on: the nested drain turns it off once nothing is ready.)
    resume_(t, context_);
  }
  --depth_;
  // What the tasks wrote goes out now, together: one write per stream for
  // the whole drain, before the loop polls again.
  flush_corked();
  update_idle();
}

}  // namespace evo
