// The ring (see uring_ring.h): setup and probing, batched submission from
// a prepare handle, reaping from an eventfd watched by libuv, the provided
// buffer ring, and the drain at exit.
#include "io/uring_ring.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "core/loop.h"

namespace evo::uring {
namespace {

// user_data: the operation's address with the entry's tag in the low bits
// (operations are at least 8-byte aligned).
uint64_t pack(RingOp* op, uint8_t tag) { return reinterpret_cast<uintptr_t>(op) | tag; }
// The kernel hands user_data back as an integer: there is no pointer to
// derive the operation from.
// NOLINTNEXTLINE(performance-no-int-to-ptr)
RingOp* op_of(uint64_t user_data) { return reinterpret_cast<RingOp*>(user_data & ~uint64_t{7}); }
uint8_t tag_of(uint64_t user_data) { return static_cast<uint8_t>(user_data & 7); }

// What the kernel says about io_uring_disabled (0 allowed, 1 privileged
// only, 2 off), or -1 when it does not say.
int disabled_sysctl() {
  std::ifstream f("/proc/sys/kernel/io_uring_disabled");
  int v = -1;
  if (!(f >> v)) return -1;
  return v;
}

std::string setup_failure(int err) {
  std::string why = std::string("io_uring_setup failed: ") + std::strerror(err);
  if (err == ENOSYS) return why + " (this kernel has no io_uring)";
  if (err == EPERM || err == EACCES) {
    int d = disabled_sysctl();
    if (d > 0) return why + " (disabled by /proc/sys/kernel/io_uring_disabled=" + std::to_string(d) + ")";
    return why + " (forbidden here: a seccomp filter or a container policy)";
  }
  return why;
}

const char* opcode_name(unsigned op) {
  switch (op) {
    case IORING_OP_NOP:
      return "nop";
    case IORING_OP_READ:
      return "read";
    case IORING_OP_WRITE:
      return "write";
    case IORING_OP_OPENAT:
      return "openat";
    case IORING_OP_CLOSE:
      return "close";
    case IORING_OP_STATX:
      return "statx";
    case IORING_OP_RECV:
      return "recv";
    case IORING_OP_SEND:
      return "send";
    case IORING_OP_ACCEPT:
      return "accept";
    case IORING_OP_CONNECT:
      return "connect";
    case IORING_OP_ASYNC_CANCEL:
      return "cancel";
    case IORING_OP_LINK_TIMEOUT:
      return "link_timeout";
    case IORING_OP_TIMEOUT:
      return "timeout";
    case IORING_OP_FSYNC:
      return "fsync";
    case IORING_OP_SHUTDOWN:
      return "shutdown";
    case IORING_OP_POLL_ADD:
      return "poll";
    case IORING_OP_SPLICE:
      return "splice";
    // timers and file handles (src/io/uring_ops.cpp)
    case IORING_OP_TIMEOUT_REMOVE:
      return "timeout_remove";
    default:
      return nullptr;
  }
}

// The opcodes this Io submits: a kernel without one of them is refused at
// start rather than failing an operation later.
constexpr uint8_t kNeeded[] = {IORING_OP_NOP,      IORING_OP_READ,   IORING_OP_WRITE,       IORING_OP_OPENAT,
                               IORING_OP_CLOSE,    IORING_OP_STATX,  IORING_OP_RECV,        IORING_OP_SEND,
                               IORING_OP_SHUTDOWN, IORING_OP_ACCEPT, IORING_OP_ASYNC_CANCEL};

// Those of timers and file handles (src/io/uring_ops.cpp).
constexpr uint8_t kNeededToo[] = {IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE, IORING_OP_LINK_TIMEOUT,
                                  IORING_OP_FSYNC};

}  // namespace

std::string probe() {
  io_uring ring{};
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) return setup_failure(-rc);
  std::string why;
  io_uring_probe* p = io_uring_get_probe_ring(&ring);
  if (p == nullptr) {
    why = "the kernel cannot list its io_uring opcodes (IORING_REGISTER_PROBE)";
  } else {
    for (uint8_t op : kNeeded) {
      if (io_uring_opcode_supported(p, op) == 0) {
        why = std::string("this kernel's io_uring lacks the ") + opcode_name(op) + " operation";
        break;
      }
    }
    for (uint8_t op : kNeededToo) {
      if (why.empty() && io_uring_opcode_supported(p, op) == 0)
        why = std::string("this kernel's io_uring lacks the ") + opcode_name(op) + " operation";
    }
    io_uring_free_probe(p);
  }
  io_uring_queue_exit(&ring);
  return why;
}

// ----------------------------------------------------------------- handles

struct Ring::Handles {
  uv_prepare_t prepare{};
  uv_poll_t poll{};
  uv_idle_t idle{};  // active while something is deferred: the loop's poll does not block
  Ring* ring = nullptr;
  int open = 0;  // handles not yet closed; the holder is freed at 0

  static Handles* of(uv_prepare_t* h) {
    return reinterpret_cast<Handles*>(reinterpret_cast<char*>(h) - offsetof(Handles, prepare));
  }
  static Handles* of(uv_poll_t* h) {
    return reinterpret_cast<Handles*>(reinterpret_cast<char*>(h) - offsetof(Handles, poll));
  }
  static Handles* of(uv_idle_t* h) {
    return reinterpret_cast<Handles*>(reinterpret_cast<char*>(h) - offsetof(Handles, idle));
  }
  static void closed(uv_handle_t* h) {
    Handles* self = h->type == UV_PREPARE ? of(reinterpret_cast<uv_prepare_t*>(h))
                    : h->type == UV_IDLE  ? of(reinterpret_cast<uv_idle_t*>(h))
                                          : of(reinterpret_cast<uv_poll_t*>(h));
    if (--self->open == 0) std::unique_ptr<Handles> gone(self);
  }
};

// The one-shot IORING_OP_POLL_ADD on libuv's backend (epoll) descriptor
// while the ring is the outer waiter: its completion only ends the wait;
// libuv's own poll, which then runs with a zero timeout, takes the events.
// One-shot rather than multishot, re-armed before the next wait: arming
// polls the descriptor at once, so an event libuv left ready (a
// level-triggered descriptor it did not drain) wakes the next wait, which a
// multishot poll only woken by new events would miss.
class Ring::BackendPoll final : public RingOp {
 public:
  void on_cqe(uint8_t /*tag*/, int /*res*/, uint32_t flags) override {
    if ((flags & IORING_CQE_F_MORE) == 0) armed = false;
    fired = true;
  }
  // Owned by the ring (backend_poll_), never freed by a completion.
  [[nodiscard]] bool finished() const override { return false; }
  // libuv's own handles say whether the loop is alive.
  [[nodiscard]] bool holds_loop() const override { return false; }
  bool armed = false;
  bool fired = false;  // since the ring last gave libuv a turn
};

// ------------------------------------------------------ output at exit(3)

namespace {
// The ring of the running loop, for the atexit handler (one per thread's
// runtime; the one that exits is the loop thread's).
thread_local Ring* t_exit_ring = nullptr;
void flush_at_exit() {
  if (t_exit_ring != nullptr) t_exit_ring->flush_output_at_exit();
}
}  // namespace

void Ring::flush_output_at_exit() {
  if (!ring_ok_ || closing_ || exiting_) return;
  exiting_ = true;
  constexpr uint64_t kBoundNs = 2'000'000'000;  // a peer that reads nothing does not hold the exit longer
  uint64_t deadline = uv_hrtime() + kBoundNs;
  submit();
  while (output_ > 0) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    __kernel_timespec ts{static_cast<int64_t>((deadline - now) / 1000000000),
                         static_cast<long long>((deadline - now) % 1000000000)};
    io_uring_cqe* cqe = nullptr;
    if (backlog_.empty() && io_uring_wait_cqe_timeout(&ring_, &cqe, &ts) != 0) continue;
    reap();
    submit();  // the rest of a short send
  }
}

// -------------------------------------------------------------------- Ring

Ring::Ring(uv_loop_t* loop) : loop_(loop) {
  const char* s = std::getenv("EVO_URING_STATS");
  print_stats_ = s != nullptr && *s != '\0' && std::strcmp(s, "0") != 0;
}

std::unique_ptr<Ring> Ring::create(uv_loop_t* loop, std::string* why) {
  auto r = std::make_unique<Ring>(loop);
  if (!r->init(why)) return nullptr;
  return r;
}

bool Ring::init(std::string* why) {
  if (std::string p = probe(); !p.empty()) {
    *why = p;
    return false;
  }
  // Each setup in turn, from the one asked for down to the plain ring.
  // COOP_TASKRUN (5.19, the default): completion work waits for the loop
  // thread's next system call instead of interrupting it with an IPI per
  // arriving packet; TASKRUN_FLAG says when such work waits. SINGLE_ISSUER:
  // only this thread submits. DEFER_TASKRUN (6.1, EVO_URING_SETUP=defer)
  // runs that work only when asked for events: the cheapest per request,
  // but with libuv's epoll as the outer waiter its wake-ups come late
  // (docs/io.md), so it is the default only when the ring waits.
  // SUBMIT_ALL: a batch goes in whole even when one entry of it fails.
  // EVO_URING_SETUP=plain: none of them (to measure). The ring is the outer
  // waiter by default (EVO_URING_WAIT=epoll turns libuv's epoll back),
  // which makes defer the default setup: a thread waiting in io_uring_enter
  // is woken when completion work is queued for it, which libuv's epoll is
  // not (docs/io.md). On the 10k-connection row it cost 0.75x evented's CPU
  // per request where libuv's epoll as the outer waiter cost 0.97x.
  const char* wait = std::getenv("EVO_URING_WAIT");
  ring_wait_ = wait == nullptr || std::strcmp(wait, "epoll") != 0;
  const char* turns = std::getenv("EVO_URING_LOOP");
  own_turns_ = turns == nullptr || std::strcmp(turns, "libuv") != 0;
  const char* setup = std::getenv("EVO_URING_SETUP");
  std::string want = setup != nullptr ? setup : ring_wait_ ? "defer" : "coop";
  constexpr unsigned kAll = IORING_SETUP_SUBMIT_ALL;
  constexpr unsigned kDefer =
      kAll | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  constexpr unsigned kCoop =
      kAll | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  std::vector<unsigned> setups;
  if (want == "defer") setups.push_back(kDefer);
  if (want == "defer" || want == "coop") setups.push_back(kCoop);
  setups.push_back(kAll);
  setups.push_back(0);
  int rc = -EINVAL;
  for (unsigned flags : setups) {
    io_uring_params params{};
    params.flags = flags;
    rc = io_uring_queue_init_params(1024, &ring_, &params);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    *why = setup_failure(-rc);
    return false;
  }
  ring_ok_ = true;
  // The wait's timeout is an IORING_ENTER_EXT_ARG (5.11): without it, the
  // ring cannot wait for libuv's next timer without a timeout entry, and
  // libuv stays the outer waiter. (A ring that got DEFER_TASKRUN has it.)
  if ((ring_.features & IORING_FEAT_EXT_ARG) == 0) ring_wait_ = false;
  // How the loop learns of completions: by polling the ring's own
  // descriptor (readable while completions wait: reaping them is all it
  // takes, no read(2) per wake-up, no eventfd signal per completion), or
  // an eventfd the ring signals (EVO_URING_WAKE=eventfd, to compare).
  const char* wake = std::getenv("EVO_URING_WAKE");
  wake_by_ring_fd_ = ring_wait_ || wake == nullptr || std::strcmp(wake, "eventfd") != 0;
  if (!wake_by_ring_fd_) {
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0 || io_uring_register_eventfd(&ring_, efd_) != 0) {
      *why = std::string("cannot signal io_uring completions to an eventfd: ") + std::strerror(errno);
      return false;
    }
  }
  init_buffers();  // without them sockets keep libuv's reads
  auto h = std::make_unique<Handles>();
  h->ring = this;
  int watched = wake_by_ring_fd_ ? ring_.ring_fd : efd_;
  if (uv_prepare_init(loop_, &h->prepare) != 0 || uv_poll_init(loop_, &h->poll, watched) != 0 ||
      uv_idle_init(loop_, &h->idle) != 0) {
    *why = "cannot watch the io_uring completions from the event loop";
    return false;
  }
  h->open = 3;
  uv_unref(reinterpret_cast<uv_handle_t*>(&h->idle));
  static thread_local bool hooked = false;
  if (!hooked) {
    hooked = true;
    std::atexit(flush_at_exit);
  }
  t_exit_ring = this;
  uv_prepare_start(&h->prepare, on_prepare);
  // Neither keeps the loop alive but while entries are in the kernel: the
  // poll handle when libuv waits, the prepare handle when the ring does
  // (then libuv does not poll the ring's descriptor at all).
  uv_unref(reinterpret_cast<uv_handle_t*>(&h->prepare));
  if (!ring_wait_) uv_poll_start(&h->poll, UV_READABLE, on_poll);
  uv_unref(reinterpret_cast<uv_handle_t*>(&h->poll));
  if (ring_wait_) backend_poll_ = std::make_unique<BackendPoll>();
  handles_ = h.release();  // freed by the close callbacks
  return true;
}

// The provided buffers multishot receives take from: one group of
// kBuffers buffers of kBufferSize bytes, each handed back as soon as its
// bytes are copied into a transport's input.
bool Ring::init_buffers() {
  buf_ring_bytes_ = kBuffers * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return false;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(mem);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
    ::munmap(mem, buf_ring_bytes_);
    return false;
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  // Not zeroed: the kernel writes a buffer before anyone reads it, and
  // untouched pages cost no memory until a receive uses them.
  buffers_ = std::make_unique_for_overwrite<char[]>(size_t{kBuffers} * kBufferSize);
  io_uring_buf_ring_init(buf_ring_);
  for (uint32_t i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(buf_ring_, buffers_.get() + size_t{i} * kBufferSize, kBufferSize,
                          static_cast<uint16_t>(i), io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(kBuffers));
  return true;
}

void Ring::recycle(uint16_t id) {
  io_uring_buf_ring_add(buf_ring_, buffers_.get() + size_t{id} * kBufferSize, kBufferSize, id,
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

Ring::~Ring() {
  if (t_exit_ring == this) t_exit_ring = nullptr;
  deferred_.clear();  // their ops are freed with the others below
  if (ring_ok_) drain_at_exit();
  if (print_stats_) std::fprintf(stderr, "evo uring stats: %s\n", stats_line().c_str());
  if (handles_ != nullptr) {
    handles_->ring = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->prepare), Handles::closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->poll), Handles::closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->idle), Handles::closed);
  }
  if (buf_ring_ != nullptr) {
    io_uring_unregister_buf_ring(&ring_, kGroup);
    ::munmap(buf_ring_, buf_ring_bytes_);
  }
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (efd_ >= 0) ::close(efd_);
}

// Cancels every entry still in the kernel and waits for all of their
// completions: the kernel may write into the operations' buffers until
// then. Nobody is called back (the VM is closed by now).
void Ring::drain_at_exit() {
  closing_ = true;
  while (!backlog_.empty()) {
    io_uring_cqe copy = backlog_.front();
    backlog_.pop_front();
    dispatch(&copy);
  }
  if (live_ > 0) {
    io_uring_sqe* s = sqe(nullptr, kCancelTag);
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
  }
  submit();
  while (live_ > 0) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring_, &cqe) != 0) break;
    dispatch(cqe);
    io_uring_cqe_seen(&ring_, cqe);
    submit();  // what ops submitted while finishing (a close)
  }
}

// NOLINTNEXTLINE(readability-convert-member-functions-to-static): see uring_ring.h
RingOp* Ring::adopt(std::unique_ptr<RingOp> op) { return op.release(); }

void Ring::release(RingOp* op) {
  if (op != dispatching_ && op->in_kernel_ == 0 && op->finished()) std::unique_ptr<RingOp> gone(op);
}

io_uring_sqe* Ring::sqe(RingOp* op, uint8_t tag) {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    submit();
    s = io_uring_get_sqe(&ring_);
  }
  // The kernel must make room; with SUBMIT_ALL a submit always drains the
  // queue, so this holds.
  io_uring_sqe_set_data64(s, pack(op, tag));
  ++unsubmitted_;
  if (op != nullptr) ++op->in_kernel_;
  ++live_;
  if ((op == nullptr || op->holds_loop()) && held_++ == 0) update_ref();  // alive until its completion
  return s;
}

void Ring::cancel(RingOp* op, uint8_t tag) {
  if (op->in_kernel_ == 0) return;
  io_uring_sqe* s = sqe(op, kCancelTag);
  io_uring_prep_cancel64(s, pack(op, tag), 0);
}

void Ring::remove_timeout(RingOp* op, uint8_t tag) {
  if (op->in_kernel_ == 0) return;
  io_uring_prep_timeout_remove(sqe(op, kCancelTag), pack(op, tag), 0);
}

void Ring::update_timeout(RingOp* op, uint8_t tag, __kernel_timespec* ts, unsigned flags) {
  if (op->in_kernel_ == 0) return;
  io_uring_prep_timeout_update(sqe(op, kCancelTag), ts, pack(op, tag), flags);
}

void Ring::submit() { enter(false); }

// Submits what is queued; with get_events the same io_uring_enter also runs
// the completion work the kernel deferred to this thread (DEFER_TASKRUN).
void Ring::enter(bool get_events) {
  if (unsubmitted_ == 0 && !get_events) return;
  bool any = unsubmitted_ > 0;
  count_unsubmitted();
  int rc = 0;
  if (get_events) {
    rc = any ? io_uring_submit_and_get_events(&ring_) : io_uring_get_events(&ring_);
  } else {
    rc = io_uring_submit(&ring_);
  }
  if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
    std::fprintf(stderr, "evo: io_uring_enter failed: %s\n", std::strerror(-rc));
  }
  update_ref();
}

bool Ring::queued_for(int fd) const {
  const io_uring_sq& sq = ring_.sq;
  // From the kernel's head, not ours: an enter that failed (EBUSY, EAGAIN)
  // or stopped early leaves published entries the kernel has not taken.
  for (unsigned i = IO_URING_READ_ONCE(*sq.khead); i != sq.sqe_tail; ++i) {
    const io_uring_sqe& e = sq.sqes[i & sq.ring_mask];
    if (e.fd == fd && (e.flags & IOSQE_FIXED_FILE) == 0) return true;
  }
  return false;
}

// Counts what goes out with the next io_uring_enter, by opcode (the entries
// between the kernel's head and our tail are the unsubmitted ones).
void Ring::count_unsubmitted() {
  io_uring_sq& sq = ring_.sq;
  for (unsigned i = sq.sqe_head; i != sq.sqe_tail; ++i) ++stats_[sq.sqes[i & sq.ring_mask].opcode];
  unsubmitted_ = 0;
}

void Ring::arm_backend_poll() {
  if (backend_poll_->armed) return;
  backend_poll_->armed = true;
  io_uring_prep_poll_add(sqe(backend_poll_.get(), 0), uv_backend_fd(loop_), POLLIN);
}

// The loop's one blocking point when the ring is the outer waiter: submits
// the batch and waits in the same io_uring_enter for one completion (the
// kernel runs the deferred completion work as it comes), libuv's epoll
// descriptor turning readable, or libuv's next timer (timeout_ms, -1 for
// none). A signal ends it early too (EINTR); its handler wrote to libuv's
// signal pipe, which the poll sees.
void Ring::wait_in_ring(int timeout_ms) {
  arm_backend_poll();
  count_unsubmitted();
  // One io_uring_enter, made here rather than by liburing's
  // io_uring_submit_and_wait_timeout, whose CQE-peeking loop around it cost
  // about 150 instructions a wait (callgrind; two waits a keep-alive
  // request): the batch is published as liburing's submit does (no SQPOLL
  // here), and a completion already waiting makes the wait not block.
  io_uring_sq& sq = ring_.sq;
  if (sq.sqe_head != sq.sqe_tail) {
    sq.sqe_head = sq.sqe_tail;
    IO_URING_WRITE_ONCE(*sq.ktail, sq.sqe_tail);
  }
  unsigned to_submit = sq.sqe_tail - *sq.khead;
  __kernel_timespec ts{timeout_ms / 1000, static_cast<long long>(timeout_ms % 1000) * 1000000};
  io_uring_getevents_arg arg{};
  arg.ts = timeout_ms < 0 ? 0 : reinterpret_cast<uintptr_t>(&ts);
  unsigned wait_nr = io_uring_cq_ready(&ring_) > 0 || !backlog_.empty() ? 0 : 1;
  int rc = io_uring_enter2(ring_.ring_fd, to_submit, wait_nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                           reinterpret_cast<sigset_t*>(&arg), sizeof(arg));
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
    std::fprintf(stderr, "evo: io_uring_enter failed: %s\n", std::strerror(-rc));
  }
}

bool Ring::work_waiting() const {
  return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0 || io_uring_cq_ready(&ring_) > 0 ||
         !backlog_.empty();
}

// One turn of the ring, from the loop (prepare, and the eventfd's poll
// callback): submit what was queued and take the deferred completion work
// in one io_uring_enter, reap, and again while completions queued more.
// Meanwhile the eventfd is quiet — completions that come while the loop is
// in here need no wake-up, which would cost the next poll a read of the
// eventfd for nothing; what came in the gap is seen before the loop blocks.
void Ring::turn() {
  if (wake_by_ring_fd_) return turn_polled();
  io_uring_cq_eventfd_toggle(&ring_, false);
  for (int round = 0; round < 4; ++round) {
    bool deferred = (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    if (unsubmitted_ > 0 || deferred) enter(deferred || unsubmitted_ > 0);
    if (backlog_.empty() && io_uring_cq_ready(&ring_) == 0) break;
    reap();
  }
  io_uring_cq_eventfd_toggle(&ring_, true);
  // Completion work queued before the eventfd was on again set the TASKRUN
  // flag or filled the queue without a signal: signal it ourselves, so the
  // loop's poll returns at once. (Both sides fence: one sees the other.)
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (unsubmitted_ > 0 || work_waiting()) {
    uint64_t one = 1;
    while (::write(efd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
  update_ref();
}

// The turn when libuv polls the ring's descriptor: as above, without the
// eventfd. What comes in the gap before the loop blocks needs nothing
// here: a completion makes the descriptor readable (the poll is
// level-triggered), and completion work still owed to this thread
// (COOP_TASKRUN) interrupts the poll, runs, and makes it readable. Only
// entries still unsubmitted after the last round go now.
void Ring::turn_polled() {
  for (int round = 0; round < 4; ++round) {
    bool deferred = (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    if (unsubmitted_ > 0 || deferred) enter(deferred || unsubmitted_ > 0);
    if (backlog_.empty() && io_uring_cq_ready(&ring_) == 0) break;
    reap();
  }
  if (unsubmitted_ > 0) enter(false);
  update_ref();
}

void Ring::update_ref() {
  if (handles_ == nullptr) return;
  auto* h = ring_wait_ ? reinterpret_cast<uv_handle_t*>(&handles_->prepare)
                       : reinterpret_cast<uv_handle_t*>(&handles_->poll);
  if (held_ > 0 || held_receives_ > 0) {
    uv_ref(h);
  } else {
    uv_unref(h);
  }
}

void Ring::hold(int delta) {
  held_receives_ += delta;
  if (delta > 0 ? held_receives_ == delta : held_receives_ == 0) update_ref();
}

void Ring::reap() {
  // Each completion is marked seen before its operation runs: the
  // operation may submit (even settle) from on_cqe. What settle() kept
  // aside came first.
  for (;;) {
    io_uring_cqe copy{};
    if (!backlog_.empty()) {
      copy = backlog_.front();
      backlog_.pop_front();
    } else {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_peek_cqe(&ring_, &cqe) != 0 || cqe == nullptr) break;
      copy = *cqe;
      io_uring_cqe_seen(&ring_, cqe);
    }
    dispatch(&copy);
  }
  update_ref();
}

void Ring::settle(RingOp* op, uint8_t tag) {
  cancel(op, tag);
  submit();
  // The op's own completions may already wait in the backlog.
  for (auto it = backlog_.begin(); it != backlog_.end() && op->in_kernel_ > 0;) {
    if (op_of(it->user_data) != op) {
      ++it;
      continue;
    }
    io_uring_cqe copy = *it;
    it = backlog_.erase(it);
    dispatch(&copy);
  }
  while (op->in_kernel_ > 0) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring_, &cqe) != 0) break;
    io_uring_cqe copy = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
    if (op_of(copy.user_data) == op) {
      dispatch(&copy);
    } else {
      backlog_.push_back(copy);
    }
  }
}

void Ring::dispatch(io_uring_cqe* cqe) {
  RingOp* op = op_of(cqe->user_data);
  uint8_t tag = tag_of(cqe->user_data);
  bool last = (cqe->flags & IORING_CQE_F_MORE) == 0;
  if (last) {
    --live_;
    if (op == nullptr || op->holds_loop()) --held_;
  }
  if (op == nullptr) return;  // the exit's cancel-everything
  if (last) --op->in_kernel_;
  if (tag != kCancelTag) {
    // The op may let go of itself from its completion (a transport closed
    // by its user): release() leaves it to the check below then.
    RingOp* outer = dispatching_;
    dispatching_ = op;
    op->on_cqe(tag, cqe->res, cqe->flags);
    dispatching_ = outer;
  }
  if (op->in_kernel_ == 0 && op->finished()) std::unique_ptr<RingOp> gone(op);
}

void Ring::defer(RingOp* op, uint8_t tag) {
  deferred_.emplace_back(op, tag);
  // The loop must not block in its poll before the next prepare (defer()
  // may be called from this turn's prepare itself): an active idle handle
  // makes its poll return at once (or the eventfd wakes it).
  if (wake_by_ring_fd_) {
    if (handles_ != nullptr) uv_idle_start(&handles_->idle, [](uv_idle_t*) {});
    return;
  }
  uint64_t one = 1;
  while (::write(efd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void Ring::undefer(RingOp* op) {
  std::erase_if(deferred_, [op](const auto& d) { return d.first == op; });
}

void Ring::on_prepare(uv_prepare_t* h) {
  Ring* r = Handles::of(h)->ring;
  if (r == nullptr) return;
  // What was deferred before this turn; one told may undefer another.
  for (size_t n = r->deferred_.size(); n > 0 && !r->deferred_.empty(); --n) {
    auto [op, tag] = r->deferred_.front();
    r->deferred_.pop_front();
    // As dispatch() does: the op may let go of itself from this call.
    RingOp* outer = r->dispatching_;
    r->dispatching_ = op;
    op->on_cqe(tag, 0, 0);
    r->dispatching_ = outer;
    if (op->in_kernel_ == 0 && op->finished()) std::unique_ptr<RingOp> gone(op);
  }
  uv_idle_t* idle = &Handles::of(h)->idle;
  if (r->deferred_.empty()) uv_idle_stop(idle);
  if (!r->ring_wait_) return r->turn();
  // The ring waits: what is already reaped may wake tasks (then the loop
  // must not block); otherwise the wait's io_uring_enter submits the batch
  // too, and what it brought is reaped without another system call: the
  // completion work that came after it, and the entries its completions
  // queued, go with the next wait (which returns at once for them), after
  // the tasks woken now have run and queued theirs.
  r->reap();
  r->wait_turns();
  // libuv's poll must not block now: it only picks up what its descriptors
  // have (the wait above was the loop's block), then the check phase runs
  // the tasks woken here. The idle handle is unreferenced: it keeps no
  // loop alive.
  uv_idle_start(idle, [](uv_idle_t*) {});
}

// The ring's waits of one libuv loop turn. Blocking here stands in for
// libuv's poll, which would block only if the loop is not run with
// UV_RUN_NOWAIT (the mode libuv keeps to itself: run_loop says it) and
// uv_backend_timeout is not 0.
void Ring::wait_turns() {
  backend_poll_->fired = false;
  int script = script_mode_ ? script_mode_() : -1;
  // Turns of our own only under a run to the end: uv.run("once") (luv) or
  // run_loop(UV_RUN_ONCE) returns after one wait.
  bool again = loop_runs_to_end(loop_) && (script == -1 || script == UV_RUN_DEFAULT);
  for (int turns = 0;; ++turns) {
    int timeout = uv_backend_timeout(loop_);
    if (timeout == 0 || watchers_queued() || !loop_may_block(loop_) || script == UV_RUN_NOWAIT) return turn();
    wait_in_ring(timeout);
    reap();
    // A turn of the loop's own without libuv's (its epoll_wait(0), timers,
    // idle, prepare and check phases, which would find nothing to do but
    // the check phase's drain): while libuv's descriptors stayed quiet (the
    // poll on its epoll descriptor did not fire) and no prepare or check
    // handle but the ring's and the scheduler's would run. The drain runs
    // the tasks woken now, as the check phase would; then, at the top,
    // anything that needs libuv's turn makes uv_backend_timeout 0: its next
    // timer due (the time is updated first), tasks still ready, pending
    // work, closing handles, uv_stop. Every 64 turns libuv takes one anyway.
    if (!again || !drain_ || !own_turns_ || backend_poll_->fired || turns >= 64 || !libuv_idle()) return;
    uv_update_time(loop_);
    drain_();
    // What the drain started may need libuv's turn: a prepare or check
    // handle (a script's, or the scheduler's flush of output corked there).
    if (!libuv_idle()) return turn();
  }
}

namespace {
// The length of one of libuv's handle queues: a circular list of nodes
// whose first pointer is the next node (void*[2] up to libuv 1.45, struct
// uv__queue {next, prev} since; taken by address so that both compile).
template <typename Queue>
int queue_length(const Queue& queue) {
  static_assert(sizeof(Queue) == 2 * sizeof(void*), "libuv's queue node is {next, prev}");
  auto* head = reinterpret_cast<void* const*>(&queue);
  int n = 0;
  for (auto* q = static_cast<void* const*>(head[0]); q != head; q = static_cast<void* const*>(q[0])) ++n;
  return n;
}
}  // namespace

// Whether libuv has descriptors started since its last poll (a luv pipe's
// read_start in a task): it adds them to its epoll set only in its poll
// phase, so a wait in the ring before then would not see them ready. Its
// poll (timeout 0 here) goes first; the next loop turn's wait sees them.
bool Ring::watchers_queued() const { return queue_length(loop_->watcher_queue) > 0; }

// Whether libuv's prepare and check phases hold only the ring's prepare
// handle and the scheduler's check handle, whose work drain_ does (a
// script's uv.new_check, or the scheduler's prepare flushing what was
// corked outside a drain, needs libuv's turn; so does a scheduler closed).
bool Ring::libuv_idle() const {
  return queue_length(loop_->prepare_handles) == 1 && queue_length(loop_->check_handles) == 1;
}

void Ring::on_poll(uv_poll_t* h, int /*status*/, int /*events*/) {
  Ring* r = Handles::of(h)->ring;
  if (r == nullptr) return;
  uint64_t count = 0;
  while (!r->wake_by_ring_fd_ && ::read(r->efd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
  r->turn();  // what the completions started goes out in this iteration
}

std::string Ring::stats_line() const {
  std::string line;
  for (unsigned op = 0; op < stats_.size(); ++op) {
    if (stats_[op] == 0) continue;
    const char* name = opcode_name(op);
    if (!line.empty()) line += ' ';
    line += name != nullptr ? name : ("op" + std::to_string(op)).c_str();
    line += '=';
    line += std::to_string(stats_[op]);
  }
  return line.empty() ? "none" : line;
}

}  // namespace evo::uring
