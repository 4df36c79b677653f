// Ring: one io_uring instance on Evo's libuv loop (--io=uring, issue 14).
//
// How the ring and libuv wait together, EVO_URING_WAIT=epoll (by default
// the ring waits: below): the ring signals each completion
// on an eventfd (io_uring_register_eventfd) that a uv_poll_t watches, so
// libuv stays the one outer waiter and luv, DNS, child processes, signals
// and fs watching run as before. Submissions are batched: an operation
// only fills a submission queue entry, and the ring takes a turn (submit,
// run the kernel's pending completion work and reap, in one io_uring_enter)
// in a uv_prepare_t just before the loop blocks and in the eventfd's poll
// callback, so a task woken by a completion runs in the check phase of the
// same loop iteration. During a turn the eventfd is quiet; what came in the
// gap is signalled by hand before the loop blocks (docs/io.md).
//
// An operation (RingOp) owns itself while the kernel may still write into
// it: it is freed only after the last completion of every entry it
// submitted — a cancelled one included (IORING_OP_ASYNC_CANCEL is asked
// for, the buffers stay alive until the cancelled entry's completion).
// At exit the ring cancels whatever is left, waits for every completion
// and frees the operations without calling anyone.
//
// By default (EVO_URING_WAIT=ring, or unset) the waiting is turned round:
// the ring is the outer waiter. The loop still runs libuv's uv_run, but the ring's prepare
// callback blocks in io_uring_enter(GETEVENTS, 1) with libuv's next timeout
// (an IORING_ENTER_EXT_ARG timeout) and libuv's epoll descriptor watched by
// an IORING_OP_POLL_ADD on the ring, then keeps an idle handle active so
// libuv's own poll only looks (timeout 0). A thread waiting inside
// io_uring_enter is woken as soon as completion work is queued for it, so
// DEFER_TASKRUN works (it is that mode's default setup); the loop's
// liveness is the prepare handle's ref while entries are in the kernel.
// It blocks only where libuv's poll would: uv_backend_timeout not 0 and the
// loop not run with UV_RUN_NOWAIT (libuv keeps the mode to itself, so
// evo::run_loop records it: src/core/loop.h).
#pragma once

#include <liburing.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace evo::uring {

// Why io_uring cannot be used here (the kernel lacks it, a sysctl or a
// seccomp filter forbids it, an opcode Evo needs is missing), or "" when
// it can.
std::string probe();

class Ring;

// An operation in flight on the ring. Its completions arrive through
// on_cqe with the tag it submitted the entry with (several entries of one
// operation are told apart by tag). It is freed by the ring once finished()
// is true and no entry of it is left in the kernel.
class RingOp {
 public:
  virtual ~RingOp() = default;
  RingOp(const RingOp&) = delete;
  RingOp& operator=(const RingOp&) = delete;

  // A completion: res as the kernel gives it (>= 0, or -errno), flags its
  // IORING_CQE_F_* flags. Called from the loop (never from a caller's call).
  virtual void on_cqe(uint8_t tag, int res, uint32_t flags) = 0;
  // Nothing more will be submitted: the ring frees it once its entries are
  // all completed.
  [[nodiscard]] virtual bool finished() const = 0;
  // Whether its entries keep the loop alive as an active libuv handle
  // would (a file job does; a socket's receive counts itself through
  // Ring::hold, as its handle's ref says).
  [[nodiscard]] virtual bool holds_loop() const { return true; }
  // Entries of it still in the kernel.
  [[nodiscard]] uint32_t in_kernel() const { return in_kernel_; }

 protected:
  RingOp() = default;

 private:
  friend class Ring;
  uint32_t in_kernel_ = 0;  // entries submitted whose last completion has not come
};

// Tags 0..5 are the operation's own; the cancel entries use kCancelTag.
constexpr uint8_t kCancelTag = 7;

class Ring {
 public:
  // A ring on loop, or nullptr with *why set.
  static std::unique_ptr<Ring> create(uv_loop_t* loop, std::string* why);
  explicit Ring(uv_loop_t* loop);  // create() sets it up
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Takes an operation over: the ring frees it once finished.
  // (A member, though it needs no state: an op belongs to the ring it was
  // submitted on.)
  // NOLINTNEXTLINE(readability-convert-member-functions-to-static)
  RingOp* adopt(std::unique_ptr<RingOp> op);
  // Frees op now if it is finished with nothing in the kernel (else its
  // last completion does); never while its own completion runs.
  void release(RingOp* op);
  // A submission entry for op (tag: which of its entries), submitted with
  // the next batch. Never nullptr: a full queue is submitted first.
  io_uring_sqe* sqe(RingOp* op, uint8_t tag);
  // Asks the kernel to cancel op's entry with that tag
  // (IORING_OP_ASYNC_CANCEL, matched by user_data); its completion still
  // comes, with -ECANCELED or its result.
  void cancel(RingOp* op, uint8_t tag);
  // Cancels op's entry with that tag and waits here until the op has no
  // entry left in the kernel; its completions run now, the others'
  // completions met meanwhile are kept for the loop (a caller's call never
  // runs anyone else's callback).
  void settle(RingOp* op, uint8_t tag);
  // Calls op->on_cqe(tag, 0, 0) at the start of the next loop turn (its
  // prepare phase): after the tasks this turn's completions woke have run,
  // which a completion (or a NOP's) in this turn's reaping would not wait
  // for. An op leaves with undefer() before it can be freed.
  void defer(RingOp* op, uint8_t tag);
  void undefer(RingOp* op);
  // Submits the batch now (the prepare handle does it before the loop
  // blocks; a caller about to wait for a completion does it at once).
  void submit();
  // Whether an entry naming descriptor fd waits in the batch, unsubmitted:
  // the kernel looks fd up only when the batch goes in, so closing it
  // before then could make that entry another file's.
  [[nodiscard]] bool queued_for(int fd) const;
  // Receives armed on referenced handles: they keep the loop alive as an
  // active libuv handle would (an op's entries do not count for them).
  void hold(int delta);
  // The mode of a script's uv.run in progress (-1: none): no wait in the
  // ring under "nowait", one at most under "once"; besides run_loop's mode.
  void set_script_mode(std::function<int()> mode) { script_mode_ = std::move(mode); }
  [[nodiscard]] bool ring_waits() const { return ring_wait_; }
  // The check phase's work (the scheduler's drain: ready tasks, then the
  // corked output). Set, the ring waits again after it while libuv has
  // nothing to do, without a turn of libuv's loop (its epoll_wait(0) and
  // phases): EVO_URING_LOOP=libuv leaves every wait to one loop turn.
  void set_drain(std::function<void()> drain) { drain_ = std::move(drain); }
  // The loop is closing (or the process exiting): the ring frees ops
  // without calling them back.
  [[nodiscard]] bool closing() const { return closing_ || exiting_; }

  // ---- output at exit(3) (os.exit): the loop never turns again
  // Sends and half-closes count themselves while on the ring.
  void output(int delta) { output_ += delta; }
  // Submits what is queued and waits, up to a bound, until no send or
  // half-close is left on the ring; completions meanwhile call nobody
  // (exiting() is true for them). Run by an atexit handler.
  void flush_output_at_exit();
  [[nodiscard]] bool exiting() const { return exiting_; }

  // ---- timers (src/io/uring_ops.cpp)
  // Asks the kernel to remove op's IORING_OP_TIMEOUT entry with that tag
  // (IORING_OP_TIMEOUT_REMOVE); the timeout's completion still comes, with
  // -ECANCELED, or -ETIME if it fired first.
  void remove_timeout(RingOp* op, uint8_t tag);
  // Moves that entry's deadline to *ts (IORING_OP_TIMEOUT_REMOVE with
  // IORING_TIMEOUT_UPDATE; ts is read when the batch is submitted).
  void update_timeout(RingOp* op, uint8_t tag, __kernel_timespec* ts, unsigned flags);

  // ---- the provided buffer ring for socket receives (one group, kGroup)
  static constexpr uint16_t kGroup = 1;
  static constexpr uint32_t kBuffers = 256;
  static constexpr uint32_t kBufferSize = 16 * 1024;
  [[nodiscard]] bool has_buffers() const { return buf_ring_ != nullptr; }
  // The bytes of buffer id (from a completion's flags).
  [[nodiscard]] const char* buffer(uint16_t id) const { return buffers_.get() + size_t{id} * kBufferSize; }
  // Gives buffer id back to the kernel.
  void recycle(uint16_t id);

  // Counts of entries submitted, by opcode (EVO_URING_STATS=1 prints them
  // at exit).
  [[nodiscard]] uint64_t submitted(uint8_t opcode) const { return stats_[opcode]; }
  [[nodiscard]] std::string stats_line() const;

 private:
  bool init(std::string* why);
  bool init_buffers();
  void reap();
  void turn();
  void turn_polled();
  void enter(bool get_events);
  void count_unsubmitted();
  void wait_in_ring(int timeout_ms);
  void wait_turns();
  [[nodiscard]] bool libuv_idle() const;
  [[nodiscard]] bool watchers_queued() const;
  void arm_backend_poll();
  [[nodiscard]] bool work_waiting() const;
  void dispatch(io_uring_cqe* cqe);
  void update_ref();
  void drain_at_exit();
  static void on_prepare(uv_prepare_t* h);
  static void on_poll(uv_poll_t* h, int status, int events);

  uv_loop_t* loop_;
  io_uring ring_{};
  bool ring_ok_ = false;
  int efd_ = -1;                 // EVO_URING_WAKE=eventfd only
  bool wake_by_ring_fd_ = true;  // libuv polls the ring's descriptor
  bool ring_wait_ = false;       // the ring is the outer waiter (not EVO_URING_WAIT=epoll)
  std::function<int()> script_mode_;
  std::function<void()> drain_;
  bool own_turns_ = true;                      // EVO_URING_LOOP: turns without libuv's loop
  class BackendPoll;                           // the POLL_ADD on libuv's epoll descriptor
  std::unique_ptr<BackendPoll> backend_poll_;  // ring_wait_ only
  // The two libuv handles live in a holder that libuv frees after their
  // close callbacks (the Ring may be gone by then).
  struct Handles;
  Handles* handles_ = nullptr;
  std::deque<io_uring_cqe> backlog_;                  // reaped by settle() for others
  std::deque<std::pair<RingOp*, uint8_t>> deferred_;  // defer(): told at the next prepare
  RingOp* dispatching_ = nullptr;                     // whose completion runs now
  uint32_t unsubmitted_ = 0;
  uint64_t live_ = 0;  // entries whose last completion has not come
  uint64_t held_ = 0;  // those of them that keep the loop alive
  int64_t held_receives_ = 0;
  bool closing_ = false;
  bool exiting_ = false;
  int64_t output_ = 0;  // sends and half-closes on the ring
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  std::unique_ptr<char[]> buffers_;
  std::array<uint64_t, 256> stats_{};
  bool print_stats_ = false;
};

}  // namespace evo::uring
