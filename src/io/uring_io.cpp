// The uring Io (--io=uring, issue 14): a completion-based Io on io_uring.
//
// What goes through the ring: whole-file jobs (Io::file: openat, statx,
// read or write, close — no thread-pool trip), and for every evented
// socket transport its receives (a multishot recv into the provided buffer
// ring, the Transport's RingRead seam), its sends and half-close (RingWrite:
// IORING_OP_SEND batched per loop turn, IORING_OP_SHUTDOWN), and the
// accepts of listen_on_loop's listeners (RingAccept: multishot accept).
// Everything else is the evented Io's (libuv): connecting, closing a
// socket, UDP, child processes, work on the thread pool. A caller that
// cannot wait is served by the evented Io too (it does such calls with
// blocking system calls), so the same script gives the same results in
// every mode. docs/io.md has the table.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "io/io.h"
#include "io/transport.h"
#include "io/uring_ops.h"
#include "io/uring_ring.h"

namespace evo {
namespace {

using uring::Ring;
using uring::RingOp;

int uv_status(int res) { return uv_translate_sys_error(-res); }

// ----------------------------------------------------------- socket reads

class RingSocketsImpl;

// The reads of one transport: a recv taking buffers from the ring's
// provided group; each completion's bytes are copied into the transport's
// input and the buffer goes back at once. It starts multishot (one entry,
// a completion per arrival: a keep-alive connection costs no new entry per
// request). A multishot receive drains the socket into the buffers as fast
// as data comes, so a user that stops reading (flow control) would still
// get up to the whole buffer group per loop turn: after the first pause
// the transport receives one buffer per entry, re-armed while it reads,
// and what comes after a pause is at most one buffer.
class RingRecv final : public RingOp, public RingRead {
 public:
  static constexpr uint8_t kRecv = 0;
  static constexpr uint8_t kNotify = 1;
  static constexpr uint8_t kDeferred = 2;  // never submitted: Ring::defer

  RingRecv(Ring& ring, RingSocketsImpl* owner, Transport* t, int fd)
      : ring_(ring), owner_(owner), t_(t), fd_(fd) {}
  ~RingRecv() override;

  void start() override {
    io_uring_sqe* s = ring_.sqe(this, kRecv);
    if (multishot_) {
      io_uring_prep_recv_multishot(s, fd_, nullptr, 0, 0);
    } else {
      io_uring_prep_recv(s, fd_, nullptr, Ring::kBufferSize, 0);
    }
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = Ring::kGroup;
    armed_ = true;
    cancel_sent_ = false;
    update_hold();
  }
  void pause() override {
    multishot_ = false;
    if (!armed_ || cancel_sent_) return;
    cancel_sent_ = true;
    ring_.cancel(this, kRecv);
    // Now rather than with the batch: until the kernel sees it, what
    // arrives is received and piles up in the input of a transport whose
    // user asked for no more (flow control).
    ring_.submit();
  }
  void settle() override {
    if (!armed_) return;
    cancel_sent_ = true;
    ring_.settle(this, kRecv);
  }
  void notify_soon() override {
    if (notify_pending_) return;
    notify_pending_ = true;
    io_uring_prep_nop(ring_.sqe(this, kNotify));
    update_hold();
  }
  void end_next_turn() override {
    if (deferred_) return;
    deferred_ = true;
    ring_.defer(this, kDeferred);
    update_hold();
  }
  void detach() override {
    t_ = nullptr;
    if (deferred_) {
      deferred_ = false;
      ring_.undefer(this);
    }
    // The cancel goes with the loop turn's batch (beside the socket's
    // close): nobody reads any more, so there is nothing to hold back.
    multishot_ = false;
    if (armed_ && !cancel_sent_) {
      cancel_sent_ = true;
      ring_.cancel(this, kRecv);
    }
    update_hold();
    ring_.release(this);  // now, when nothing of it is in the kernel
  }
  // The ring is going away with the transport still open: it reads
  // nothing more.
  void orphan() {
    if (deferred_) {
      deferred_ = false;
      ring_.undefer(this);
    }
    if (t_ != nullptr) t_->forget_ring();
    t_ = nullptr;
    owner_ = nullptr;
    update_hold();
  }
  [[nodiscard]] bool finished() const override { return t_ == nullptr; }
  [[nodiscard]] bool holds_loop() const override { return false; }
  void set_ref(bool on) override {
    ref_ = on;
    update_hold();
  }

  void on_cqe(uint8_t tag, int res, uint32_t flags) override {
    bool live = t_ != nullptr && !ring_.closing();
    if (tag == kNotify) {
      notify_pending_ = false;
      if (live) t_->on_ring_notify();
      update_hold();
      return;
    }
    if (tag == kDeferred) {  // end_next_turn()
      deferred_ = false;
      if (live) t_->on_ring_final(0);
      update_hold();
      return;
    }
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
      auto id = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      // on_ring_data may close the transport (detach() then clears t_).
      if (res > 0 && live) t_->on_ring_data(ring_.buffer(id), static_cast<size_t>(res));
      ring_.recycle(id);
    }
    if ((flags & IORING_CQE_F_MORE) != 0) return;
    armed_ = false;
    update_hold();
    if (t_ == nullptr || ring_.closing()) return;
    int status = 1;  // stopped without an end: cancelled, out of buffers, or ended by the kernel
    if (res == 0) {
      status = 0;
    } else if (res < 0 && res != -ECANCELED && res != -ENOBUFS) {
      status = uv_status(res);
    }
    t_->on_ring_final(status);
  }

 private:
  Ring& ring_;
  RingSocketsImpl* owner_;  // nullptr once the Io is gone (the ring frees this)
  Transport* t_;
  int fd_;
  // Counted in the ring's held receives: armed, or with input or its end
  // still to be told (notify_soon), for a live transport whose handle is
  // referenced (an active libuv handle's rule). Without the second, an end
  // told a turn later found the loop already ended.
  void update_hold() {
    bool hold = (armed_ || notify_pending_ || deferred_) && ref_ && t_ != nullptr;
    if (hold != held_) ring_.hold(hold ? 1 : -1);
    held_ = hold;
  }

  bool armed_ = false;
  bool ref_ = true;
  bool held_ = false;
  bool multishot_ = true;
  bool cancel_sent_ = false;
  bool notify_pending_ = false;
  bool deferred_ = false;  // end_next_turn(): in the ring's deferred list
};

// The sends and the half-close of one transport. One send is in flight at
// a time (the transport's corked output, as one libuv write): its bytes
// live here until the kernel's last completion for them, a short send is
// resubmitted for the rest, and the transport hears once all is taken.
class RingSend final : public RingOp, public RingWrite {
 public:
  static constexpr uint8_t kSend = 2;
  static constexpr uint8_t kShutdown = 3;
  static constexpr uint8_t kClose = 4;
  static constexpr uint8_t kSplicePoll = 0;  // the socket is writable again
  static constexpr uint8_t kSpliceIn = 5;    // file -> pipe
  static constexpr uint8_t kSpliceOut = 6;   // pipe -> socket
  static constexpr size_t kKeepBytes = size_t{64} * 1024;

  RingSend(Ring& ring, RingSocketsImpl* owner, Transport* t, int fd)
      : ring_(ring), owner_(owner), t_(t), fd_(fd) {}
  ~RingSend() override;

  void send(std::string& bytes, size_t from) override {
    buf_.swap(bytes);  // the transport gets this op's last buffer back: both keep their capacity
    bytes.clear();
    pos_ = from;
    set_in_flight(true);
    if (pos_ < buf_.size()) return submit_send();
    io_uring_prep_nop(ring_.sqe(this, kSend));  // nothing left: the completion alone
  }
  [[nodiscard]] size_t unsent() const override { return in_flight_ ? buf_.size() - pos_ : 0; }
  std::string settle() override {
    if (splice_entries_ > 0) {
      settling_ = true;
      ring_.cancel(this, kSplicePoll);
      ring_.cancel(this, kSpliceIn);
      ring_.settle(this, kSpliceOut);  // (waits for every entry of this op)
      settling_ = false;
      ring_.output(-1);
      drop_pipe();  // what it still holds is not sent
      return {};
    }
    if (!in_flight_) return {};
    settling_ = true;
    ring_.settle(this, kSend);
    settling_ = false;
    std::string rest = buf_.substr(std::min(pos_, buf_.size()));
    buf_.clear();
    set_in_flight(false);
    return rest;
  }
  void shutdown() override {
    ring_.output(1);
    ++shutdowns_;
    io_uring_prep_shutdown(ring_.sqe(this, kShutdown), fd_, SHUT_WR);
  }
  // The descriptor's close, after the send settled (Transport::close): a
  // receive still in the kernel holds the socket's file, so the connection
  // ends when it completes. A half-close still on the ring goes first: the
  // kernel runs it on a worker thread, which looks the descriptor up by
  // number only then — after a close beside it, that number may be a new
  // socket's already (seen: a new connection shut down under its client).
  void splice(int file_fd, int64_t offset, size_t len) override {
    ring_.output(1);
    if (!open_pipe()) {
      spliced_ = uv_translate_sys_error(errno);
      io_uring_prep_nop(ring_.sqe(this, kSpliceOut));  // told from the loop
      ++splice_entries_;
      return;
    }
    len = std::min(len, pipe_size_);
    spliced_ = 0;
    io_uring_sqe* in = ring_.sqe(this, kSpliceIn);
    io_uring_prep_splice(in, file_fd, offset, pipe_[1], -1, static_cast<unsigned>(len), SPLICE_F_MOVE);
    in->flags |= IOSQE_IO_LINK;
    io_uring_prep_splice(ring_.sqe(this, kSpliceOut), pipe_[0], -1, fd_, -1, static_cast<unsigned>(len),
                         SPLICE_F_MOVE);
    splice_entries_ += 2;
  }
  void close_fd() override {
    if (shutdowns_ > 0 || splice_entries_ > 0) {
      close_after_ = true;
      return;
    }
    close_socket();
  }
  void detach() override {
    t_ = nullptr;
    if (in_flight_) ring_.cancel(this, kSend);
    if (splice_entries_ > 0) {
      ring_.cancel(this, kSpliceIn);
      ring_.cancel(this, kSpliceOut);
    }
    ring_.release(this);
  }
  [[nodiscard]] Transport* transport() const { return t_; }
  void orphan() {
    if (t_ != nullptr) t_->forget_ring();
    t_ = nullptr;
    owner_ = nullptr;
  }
  [[nodiscard]] bool finished() const override { return t_ == nullptr; }

  void on_cqe(uint8_t tag, int res, uint32_t /*flags*/) override {
    bool live = t_ != nullptr && !ring_.closing();
    if (tag == kShutdown) {
      ring_.output(-1);
      if (--shutdowns_ == 0 && close_after_) {
        close_after_ = false;  // (even for a transport gone meanwhile: the descriptor is this op's to close)
        close_socket();
      }
      if (live) t_->on_ring_shutdown(res < 0 ? uv_status(res) : 0);
      return;
    }
    if (tag == kSend && ring_.exiting() && !settling_ && t_ != nullptr) return sent_at_exit(res);
    if (tag == kSpliceIn || tag == kSpliceOut || tag == kSplicePoll) return spliced(tag, res);
    if (tag == kClose) {
      // Told even while the ring closes (the transport would point here
      // otherwise); the op is finished once t_ is gone.
      Transport* t = t_;
      t_ = nullptr;
      if (t != nullptr) t->on_ring_closed();
      return;
    }
    if (res > 0) pos_ += static_cast<size_t>(res);
    if (settling_) return;  // settle() takes what is left
    if (!live) {
      set_in_flight(false);
      buf_.clear();
      return;
    }
    if (res > 0 && pos_ < buf_.size()) return submit_send();  // a short send: the rest
    set_in_flight(false);
    buf_.clear();
    // The buffer comes back to the transport at its next send: a small one
    // is kept for that, a large answer's is not (an idle connection holds
    // no peak-sized buffer).
    if (buf_.capacity() > kKeepBytes) std::string().swap(buf_);
    int status = 0;
    if (res < 0) {
      status = uv_status(res);
    } else if (pos_ < buf_.size()) {
      status = UV_EPIPE;  // the socket took nothing of a non-empty send
    }
    t_->on_ring_sent(status);
  }

 private:
  // A splice's completions: bytes into the pipe, bytes out of it. A short
  // move into the pipe breaks the link (the move out is cancelled): what
  // the pipe holds is moved out by another entry. The kernel's worker
  // moves it out of the pipe, but into a non-blocking socket: a full one
  // says EAGAIN, and the next move waits for writability (a POLL_ADD
  // linked before it). Done when the pipe is empty again (or on an error:
  // the pipe is dropped with its bytes).
  void spliced(uint8_t tag, int res) {
    --splice_entries_;
    if (tag == kSpliceIn && res > 0) in_pipe_ += static_cast<size_t>(res);
    if (tag == kSpliceOut && res > 0) {
      in_pipe_ -= std::min(in_pipe_, static_cast<size_t>(res));
      spliced_ += res;
    }
    if (tag == kSpliceOut && res == -EAGAIN) {
      full_ = true;
    } else if (tag != kSplicePoll && res < 0 && res != -ECANCELED && spliced_ >= 0) {
      spliced_ = uv_status(res);
    }
    if (settling_ || splice_entries_ > 0) return;
    if (in_pipe_ > 0 && spliced_ >= 0 && t_ != nullptr && !ring_.closing()) {
      if (full_) {
        full_ = false;
        io_uring_sqe* poll = ring_.sqe(this, kSplicePoll);
        io_uring_prep_poll_add(poll, fd_, POLLOUT);
        poll->flags |= IOSQE_IO_LINK;
        ++splice_entries_;
      }
      io_uring_prep_splice(ring_.sqe(this, kSpliceOut), pipe_[0], -1, fd_, -1,
                           static_cast<unsigned>(in_pipe_), SPLICE_F_MOVE);
      ++splice_entries_;
      return;
    }
    ring_.output(-1);
    if (spliced_ < 0) drop_pipe();
    if (close_after_ && shutdowns_ == 0) {
      close_after_ = false;
      close_socket();
    }
    if (t_ != nullptr && !ring_.closing()) t_->on_ring_spliced(spliced_);
  }
  bool open_pipe() {
    if (pipe_[0] >= 0) return true;
    if (::pipe2(pipe_, O_CLOEXEC) != 0) return false;
    // A larger pipe moves more per entry (the default is 64 KiB).
    int got = ::fcntl(pipe_[1], F_SETPIPE_SZ, 1 << 20);
    pipe_size_ = got > 0 ? static_cast<size_t>(got) : size_t{64} * 1024;
    return true;
  }
  void drop_pipe() {
    if (pipe_[0] >= 0) ::close(pipe_[0]);
    if (pipe_[1] >= 0) ::close(pipe_[1]);
    pipe_[0] = pipe_[1] = -1;
    in_pipe_ = 0;
  }
  void set_in_flight(bool on) {
    if (on != in_flight_) ring_.output(on ? 1 : -1);
    in_flight_ = on;
  }
  // exit(3) with this send on the ring (Ring::flush_output_at_exit): the
  // rest goes, then what was corked behind it; nobody is told.
  void sent_at_exit(int res) {
    if (res > 0) pos_ += static_cast<size_t>(res);
    if (res > 0 && pos_ < buf_.size()) return submit_send();
    set_in_flight(false);
    buf_.clear();
    if (res >= 0) t_->on_ring_sent_at_exit();
  }
  // The descriptor's close, with nothing of it left on the ring but a
  // receive (which holds the socket's file, not its number): close(2) at
  // once, as libuv's uv_close does, so the process's descriptors are
  // counted down when its user closes (an IORING_OP_CLOSE would wait for
  // the next loop turn). The transport still hears from the loop: a NOP's
  // completion, which keeps the loop alive until then. An entry naming
  // the descriptor still unsubmitted (a receive armed this turn) looks the
  // number up only when it goes in: then the batch goes first; if the
  // kernel did not take all of it (a busy completion queue), the close is
  // an IORING_OP_CLOSE behind those entries, as it was before.
  void close_socket() {
    if (ring_.queued_for(fd_)) ring_.submit();
    if (ring_.queued_for(fd_)) {
      io_uring_prep_close(ring_.sqe(this, kClose), fd_);
      return;
    }
    ::close(fd_);
    io_uring_prep_nop(ring_.sqe(this, kClose));
  }
  void submit_send() {
    size_t n = std::min(buf_.size() - pos_, size_t{1} << 30);
    io_uring_prep_send(ring_.sqe(this, kSend), fd_, buf_.data() + pos_, n, MSG_NOSIGNAL);
  }

  Ring& ring_;
  RingSocketsImpl* owner_;
  Transport* t_;
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  int shutdowns_ = 0;         // half-closes on the ring
  bool close_after_ = false;  // close_fd() waits for them (and for splices)
  int pipe_[2] = {-1, -1};    // splice(): made at the first file
  size_t pipe_size_ = 0;
  size_t in_pipe_ = 0;
  int splice_entries_ = 0;
  bool full_ = false;    // the last move out found the socket full
  int64_t spliced_ = 0;  // bytes moved to the socket, or a libuv status
  bool in_flight_ = false;
  bool settling_ = false;
};

// Accepts on a listening socket: one multishot entry hands every
// connection over as it comes (the HTTP server, net.listen with a
// handler), or one single-shot entry per accept() call. A cancelled
// entry that won the race still brings a descriptor: it is closed.
//
// A queue that outlives this process or is shared with others (a worker's
// listener: the supervisor keeps it) is accepted by readiness instead: the
// ring's accept takes a connection into the process the moment it comes,
// even while the process is busy (so one busy worker took every connection
// of a shared Unix socket) and a cancelled one can have taken one already
// (a draining worker reset it). A poll entry says a connection waits, and
// accept4(2) takes them here, as libuv does: the rest stay queued for the
// other workers or the next one.
class RingAcceptOp final : public RingOp, public RingAccept {
 public:
  RingAcceptOp(Ring& ring, RingSocketsImpl* owner, int fd, bool by_readiness, std::function<void()> forget)
      : ring_(ring), owner_(owner), fd_(fd), forget_(std::move(forget)), by_readiness_(by_readiness) {}
  ~RingAcceptOp() override;
  // The ring is going away with the listener still open.
  void orphan() {
    if (forget_) forget_();
    forget_ = nullptr;
    owner_ = nullptr;
    each_ = nullptr;
    gone_ = true;
  }

  void start(bool many, std::function<void(int)> each) override {
    each_ = std::move(each);
    many_ = many;
    if (!armed_ && !backing_off_ && !polling_) arm();
  }
  void stop() override {
    each_ = nullptr;
    if (armed_) ring_.cancel(this, by_readiness_ ? kReady : 0);
    if (backing_off_) ring_.cancel(this, kBackoff);
    if (polling_) ring_.cancel(this, kPoll);
  }
  void detach() override {
    gone_ = true;
    stop();
    ring_.release(this);
  }
  [[nodiscard]] bool finished() const override { return gone_; }
  // An armed accept keeps the loop alive as libuv's listening handle does.
  [[nodiscard]] bool holds_loop() const override { return true; }

  void on_cqe(uint8_t tag, int res, uint32_t flags) override {
    if (tag == kReady) return on_ready(res, flags);
    if (tag == kBackoff || tag == kPoll) {
      (tag == kBackoff ? backing_off_ : polling_) = false;
      if (each_ && !gone_ && !ring_.closing() && !armed_) arm();
      return;
    }
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) armed_ = false;
    bool live = each_ && !gone_ && !ring_.closing();
    if (!live) {
      if (res >= 0) ::close(res);
      return;
    }
    // (Cancelled by a stop followed by a start in the same turn: that start
    // found the entry still armed; it is armed again below.)
    if (res != -ECANCELED) hand_over(res);
    // The kernel ended the multishot entry (an error, or its own limits), or
    // a start came while a cancel was on its way: on again while someone
    // takes connections (a single accept's callback is spent by now).
    if (!armed_ && !backing_off_ && !polling_ && each_ && !gone_) arm();
  }

 private:
  static constexpr uint8_t kBackoff = 1;
  static constexpr uint8_t kPoll = 2;
  static constexpr uint8_t kReady = 3;

  // An accepted descriptor or -errno to the listener.
  void hand_over(int res) {
    if ((res == -EMFILE || res == -ENFILE) && out_of_descriptors(res)) return;
    // One connection for a single accept: the callback is spent before it
    // runs (it may start the next one).
    std::function<void(int)> each = many_ ? each_ : std::move(each_);
    if (!many_) each_ = nullptr;
    each(res);
  }

  // By readiness: connections wait on the listener; take them while
  // someone wants them (another worker may have taken them first).
  void on_ready(int res, uint32_t flags) {
    if ((flags & IORING_CQE_F_MORE) == 0) armed_ = false;
    while (res != -ECANCELED && each_ && !gone_ && !ring_.closing()) {
      int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (fd < 0 && errno == EINTR) continue;
      hand_over(fd >= 0 ? fd : -errno);
      if (fd < 0) break;  // told, or out of descriptors: the next wake tries again
    }
    if (!armed_ && !backing_off_ && !polling_ && each_ && !gone_ && !ring_.closing()) arm();
  }

  // Out of descriptors: the connection stays in the listen queue, and an
  // accept armed again at once would fail at once, for ever (a spin: the
  // kernel takes the descriptor before it looks for a connection, so it
  // fails even with none waiting). As libuv does: the reserve descriptor
  // is closed, the waiting connections are accepted and closed (their
  // clients see the end rather than wait), the reserve is opened again —
  // nobody is told — and the next accept waits until a connection comes
  // (IORING_OP_POLL_ADD on the listener): each one costs a wake-up, no
  // more, until descriptors free. Without a reserve to spend, the error is
  // told (as libuv tells it) and the next accept waits 100 ms.
  bool out_of_descriptors(int res);

  void arm() {
    armed_ = true;
    if (by_readiness_) {
      io_uring_sqe* s = ring_.sqe(this, kReady);
      if (many_) {
        io_uring_prep_poll_multishot(s, fd_, POLLIN);
      } else {
        io_uring_prep_poll_add(s, fd_, POLLIN);
      }
      return;
    }
    io_uring_sqe* s = ring_.sqe(this, 0);
    int flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
    if (many_) {
      io_uring_prep_multishot_accept(s, fd_, nullptr, nullptr, flags);
    } else {
      io_uring_prep_accept(s, fd_, nullptr, nullptr, flags);
    }
  }

  Ring& ring_;
  RingSocketsImpl* owner_;
  int fd_;
  std::function<void()> forget_;
  std::function<void(int)> each_;
  bool many_ = false;
  bool armed_ = false;
  bool gone_ = false;
  bool backing_off_ = false;
  bool polling_ = false;                       // out of descriptors: waiting for the next connection
  bool by_readiness_;                          // a queue others share or that outlives us: poll, then accept4
  __kernel_timespec backoff_{0, 100'000'000};  // 100 ms
};

class RingSocketsImpl final : public RingSockets {
 public:
  explicit RingSocketsImpl(Ring& ring) : ring_(ring) {
    const char* mode = std::getenv("EVO_URING_SEND");
    sends_ = mode == nullptr || std::strcmp(mode, "off") != 0;
    Transport::ring_send_tries = mode != nullptr && std::strcmp(mode, "try") == 0;
    const char* splice = std::getenv("EVO_URING_SPLICE");
    Transport::ring_splice = splice != nullptr && std::strcmp(splice, "1") == 0;
  }
  ~RingSocketsImpl() {
    // The run is over with transports still open (a C++ test's): they read
    // and write nothing more; ops still in the kernel are freed by the ring.
    std::unordered_set<RingRecv*> reads;
    reads.swap(reads_);
    for (RingRecv* r : reads) {
      r->orphan();
      if (r->in_kernel() == 0) std::unique_ptr<RingRecv> gone(r);
    }
    std::unordered_set<RingSend*> writes;
    writes.swap(writes_);
    for (RingSend* w : writes) {
      w->orphan();
      if (w->in_kernel() == 0) std::unique_ptr<RingSend> gone(w);
    }
    std::unordered_set<RingAcceptOp*> accepts;
    accepts.swap(accepts_);
    for (RingAcceptOp* a : accepts) {
      a->orphan();
      if (a->in_kernel() == 0) std::unique_ptr<RingAcceptOp> gone(a);
    }
    if (reserve_ >= 0) ::close(reserve_);
  }
  RingSocketsImpl(const RingSocketsImpl&) = delete;
  RingSocketsImpl& operator=(const RingSocketsImpl&) = delete;

  RingRead* attach_read(Transport* t, int fd) override {
    if (!ring_.has_buffers()) return nullptr;
    auto op = std::make_unique<RingRecv>(ring_, this, t, fd);
    RingRecv* r = op.get();
    reads_.insert(r);
    ring_.adopt(std::move(op));
    return r;
  }
  RingWrite* attach_write(Transport* t, int fd) override {
    if (!sends_) return nullptr;
    auto op = std::make_unique<RingSend>(ring_, this, t, fd);
    RingSend* w = op.get();
    writes_.insert(w);
    ring_.adopt(std::move(op));
    return w;
  }
  RingAccept* attach_accept(int fd, bool by_readiness, std::function<void()> forget) override {
    keep_reserve();
    auto op = std::make_unique<RingAcceptOp>(ring_, this, fd, by_readiness, std::move(forget));
    RingAcceptOp* a = op.get();
    accepts_.insert(a);
    ring_.adopt(std::move(op));
    return a;
  }
  void forget(RingAcceptOp* a) { accepts_.erase(a); }
  void forget(RingRecv* r) { reads_.erase(r); }
  void forget(RingSend* w) { writes_.erase(w); }

  // ---- ring-only sockets (Transport::on_ring), the EMFILE reserve
  [[nodiscard]] bool own_sockets() const override { return sends_ && ring_.has_buffers(); }
  void release_all() override;
  // Accepts and closes the connections waiting on listen_fd with the
  // reserve descriptor spent: true when the queue is empty now.
  bool drop_pending(int listen_fd);
  void keep_reserve() {
    if (reserve_ < 0) reserve_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

 private:
  Ring& ring_;
  int reserve_ = -1;   // a descriptor kept to give back when out of them (EMFILE)
  bool sends_ = true;  // EVO_URING_SEND=off keeps libuv's writes (for comparison)
  std::unordered_set<RingRecv*> reads_;
  std::unordered_set<RingSend*> writes_;
  std::unordered_set<RingAcceptOp*> accepts_;
};

RingAcceptOp::~RingAcceptOp() {
  if (owner_ != nullptr) owner_->forget(this);
}

bool RingAcceptOp::out_of_descriptors(int res) {
  if (owner_ != nullptr && owner_->drop_pending(fd_)) {
    if (!armed_ && !polling_) {
      polling_ = true;
      io_uring_prep_poll_add(ring_.sqe(this, kPoll), fd_, POLLIN);
    }
    return true;
  }
  std::function<void(int)> each = many_ ? each_ : std::move(each_);
  if (!many_) each_ = nullptr;
  each(res);
  if (!armed_ && !backing_off_ && many_ && each_ && !gone_) {
    backing_off_ = true;
    io_uring_prep_timeout(ring_.sqe(this, kBackoff), &backoff_, 0, 0);
  }
  return true;
}

bool RingSocketsImpl::drop_pending(int listen_fd) {
  if (reserve_ < 0) return false;
  ::close(reserve_);
  reserve_ = -1;
  int err = 0;
  for (;;) {
    // (The listening socket is non-blocking, as libuv made it; poll first
    // all the same: a blocking accept here would hang the loop.)
    pollfd pfd{listen_fd, POLLIN, 0};
    if (::poll(&pfd, 1, 0) <= 0) {
      err = EAGAIN;
      break;
    }
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      ::close(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    err = errno;
    break;
  }
  keep_reserve();
  return err == EAGAIN || err == EWOULDBLOCK;
}

// Releases every open ring-only transport as libuv's walk releases a
// handle: through its user (a stream fails its waiters, a server's
// connection ends). A release may end others: each is looked up again.
void RingSocketsImpl::release_all() {
  std::vector<RingSend*> all(writes_.begin(), writes_.end());
  for (RingSend* w : all) {
    if (!writes_.contains(w)) continue;
    Transport* t = w->transport();
    if (t != nullptr && t->ring_only() && !t->closed()) t->release();
  }
}

RingSend::~RingSend() {
  if (owner_ != nullptr) owner_->forget(this);
  drop_pipe();
}

RingRecv::~RingRecv() {
  if (owner_ != nullptr) owner_->forget(this);
}

// ---------------------------------------------------------------- connects

// A connection made on the ring: a socket(2), then IORING_OP_CONNECT, with
// the deadline as a linked IORING_OP_LINK_TIMEOUT (the kernel cancels the
// connect when it fires) and cancellation by IORING_OP_ASYNC_CANCEL. A host
// name is resolved first by libuv's getaddrinfo (on its thread pool);
// each address is tried in turn, as the evented Io does, within one
// deadline. The connected socket becomes a ring-only transport. Errors
// are the evented Io's: the libuv status of the last address tried (or of
// the resolution), detailed with "host:port" or the path.
class RingConnect final : public RingOp, public IoOp {
 public:
  static constexpr uint8_t kConnect = 0;
  static constexpr uint8_t kTimeout = 1;

  RingConnect(Ring& ring, uv_loop_t* loop, std::string where, double timeout, IoDone done)
      : ring_(ring), loop_(loop), where_(std::move(where)), done_(std::move(done)) {
    gai_.data = this;
    if (timeout > 0) deadline_ = uv_hrtime() + static_cast<uint64_t>(timeout * 1e9);
  }
  ~RingConnect() override {
    if (results_ != nullptr) uv_freeaddrinfo(results_);
  }

  // To one address (numeric host, or a Unix socket's).
  void start(const sockaddr* addr, socklen_t len) {
    std::memcpy(&addr_, addr, len);
    addr_len_ = len;
    attempt();
  }
  // Resolves host first; false when that failed at once (told through done).
  bool resolve(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int status =
        uv_getaddrinfo(loop_, &gai_, on_resolved, host.c_str(), std::to_string(port).c_str(), &hints);
    if (status != 0) {
      finished_ = true;
      done_(IoResult::failed(status, host));
      return false;
    }
    resolving_ = true;
    return true;
  }

  void cancel() override {
    canceled_ = true;
    if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&gai_));  // on_resolved lets go
    if (connecting_) ring_.cancel(this, kConnect);                  // its completion lets go
  }
  [[nodiscard]] bool finished() const override { return finished_; }

  void on_cqe(uint8_t tag, int res, uint32_t /*flags*/) override {
    if (tag == kTimeout) return;  // the connect's own completion says what happened
    connecting_ = false;
    if (canceled_ || ring_.closing()) {
      ::close(fd_);
      fd_ = -1;
      finished_ = true;
      return;
    }
    if (res == 0) return connected();
    ::close(fd_);
    fd_ = -1;
    if (res == -ECANCELED) {  // not by us: the linked timeout fired
      return finish(IoResult::failed("Timeout", "could not connect within the timeout: " + where_));
    }
    last_error_ = uv_status(res);
    next();
  }

 private:
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* self = static_cast<RingConnect*>(req->data);
    self->resolving_ = false;
    self->results_ = res;
    if (self->canceled_) {
      self->finished_ = true;
      self->ring_.release(self);
      return;
    }
    if (status < 0) return self->finish_now(IoResult::failed(status, self->where_));
    self->next_ = res;
    self->next();
    if (self->finished_) self->ring_.release(self);
  }

  // The next address of the resolved list, or the last error.
  void next() {
    if (next_ == nullptr) {
      return finish(IoResult::failed(last_error_ != 0 ? last_error_ : UV_EAI_NONAME, where_));
    }
    addrinfo* ai = next_;
    next_ = ai->ai_next;
    std::memcpy(&addr_, ai->ai_addr, ai->ai_addrlen);
    addr_len_ = ai->ai_addrlen;
    attempt();
  }

  void attempt() {
    fd_ = ::socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      last_error_ = uv_translate_sys_error(errno);
      return next();
    }
    io_uring_sqe* s = ring_.sqe(this, kConnect);
    io_uring_prep_connect(s, fd_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    connecting_ = true;
    if (deadline_ == 0) return;
    uint64_t now = uv_hrtime();
    uint64_t left = deadline_ > now ? deadline_ - now : 1;
    ts_.tv_sec = static_cast<int64_t>(left / 1000000000);
    ts_.tv_nsec = static_cast<long long>(left % 1000000000);
    s->flags |= IOSQE_IO_LINK;
    io_uring_prep_link_timeout(ring_.sqe(this, kTimeout), &ts_, 0);
  }

  void connected() {
    if (addr_.ss_family != AF_UNIX) {
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    IoResult r;
    r.transport = Transport::on_ring(loop_, fd_);
    if (r.transport == nullptr) {  // (UringIo checked that the ring carries sockets)
      ::close(fd_);
      r = IoResult::failed(UV_ENOTSUP, where_);
    }
    fd_ = -1;
    finish(std::move(r));
  }

  // From a completion: the ring frees this after it.
  void finish(IoResult r) {
    finished_ = true;
    IoDone done = std::move(done_);
    done(std::move(r));
  }
  // From libuv's callback: the caller lets go (ring_.release).
  void finish_now(IoResult r) {
    finish(std::move(r));
    ring_.release(this);
  }

  Ring& ring_;
  uv_loop_t* loop_;
  std::string where_;
  IoDone done_;
  uint64_t deadline_ = 0;  // uv_hrtime() ns; 0: none
  __kernel_timespec ts_{};
  uv_getaddrinfo_t gai_{};
  addrinfo* results_ = nullptr;
  addrinfo* next_ = nullptr;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  int fd_ = -1;
  int last_error_ = 0;
  bool resolving_ = false;
  bool connecting_ = false;
  bool canceled_ = false;
  bool finished_ = false;
};

// --------------------------------------------------------- whole-file jobs

// open, (statx), read or write, close: each step one entry, the next
// submitted from the previous one's completion. The result goes to done
// as soon as the data is in (a read's close follows on its own).
class FileJob final : public RingOp, public IoOp {
 public:
  FileJob(Ring& ring, FileOp op, std::string path, std::string data, std::function<void(FileResult)> done)
      : ring_(ring), op_(op), data_(std::move(data)), done_(std::move(done)) {
    result_.path = std::move(path);
  }

  void begin() {
    int flags = O_RDONLY | O_CLOEXEC;
    if (op_ != FileOp::Read)
      flags = O_WRONLY | O_CREAT | O_CLOEXEC | (op_ == FileOp::Append ? O_APPEND : O_TRUNC);
    step_ = Step::Open;
    io_uring_prep_openat(ring_.sqe(this, 0), AT_FDCWD, result_.path.c_str(), flags, 0666);
  }

  void cancel() override {
    canceled_ = true;
    ring_.cancel(this, 0);
  }
  [[nodiscard]] bool finished() const override { return step_ == Step::Done; }

  void on_cqe(uint8_t /*tag*/, int res, uint32_t /*flags*/) override {
    if ((canceled_ || ring_.closing()) && step_ != Step::Close) return abandon(res);
    switch (step_) {
      case Step::Open:
        return opened(res);
      case Step::Stat:
        return stated(res);
      case Step::Read:
        return got(res);
      case Step::Write:
        return wrote(res);
      case Step::Close:
        return closed(res);
      case Step::Done:
        return;
    }
  }

 private:
  enum class Step : uint8_t { Open, Stat, Read, Write, Close, Done };
  static constexpr size_t kChunk = size_t{64} * 1024;

  void opened(int res) {
    if (res < 0) return fail(res);
    fd_ = res;
    if (op_ == FileOp::Read) {
      step_ = Step::Stat;
      io_uring_prep_statx(ring_.sqe(this, 0), fd_, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx_);
      return;
    }
    write_more();
  }

  void stated(int res) {
    // A regular file's size is read at once; anything else (a pipe, /proc)
    // a chunk at a time until its end.
    sized_ = res == 0 && S_ISREG(stx_.stx_mode) && stx_.stx_size > 0;
    read_more(sized_ ? static_cast<size_t>(stx_.stx_size) : kChunk);
  }

  void read_more(size_t want) {
    size_t old = result_.data.size();
    result_.data.resize(old + want);
    step_ = Step::Read;
    io_uring_prep_read(ring_.sqe(this, 0), fd_, result_.data.data() + old, static_cast<unsigned>(want),
                       static_cast<uint64_t>(old));
    asked_ = want;
  }

  void got(int res) {
    size_t old = result_.data.size() - asked_;
    if (res < 0) {
      result_.data.clear();
      return fail(res);
    }
    result_.data.resize(old + static_cast<size_t>(res));
    bool whole = sized_ && result_.data.size() >= stx_.stx_size;
    if (res > 0 && !whole) return read_more(kChunk);
    deliver();
    close_fd();  // after the answer: nobody waits for a read's close
  }

  void write_more() {
    step_ = Step::Write;
    size_t left = data_.size() - written_;
    auto n = static_cast<unsigned>(std::min(left, size_t{1} << 30));
    // Appends write at the end whatever the offset; -1: the file position.
    uint64_t offset = op_ == FileOp::Append ? static_cast<uint64_t>(-1) : written_;
    io_uring_prep_write(ring_.sqe(this, 0), fd_, data_.data() + written_, n, offset);
  }

  void wrote(int res) {
    if (res < 0) {
      result_.status = uv_status(res);
      return close_fd();
    }
    written_ += static_cast<size_t>(res);
    if (written_ < data_.size() && res > 0) return write_more();
    close_fd();  // a write's answer waits for close: it may report the error (NFS)
  }

  void close_fd() {
    step_ = Step::Close;
    io_uring_prep_close(ring_.sqe(this, 0), fd_);
    fd_ = -1;
  }

  void closed(int res) {
    step_ = Step::Done;
    if (delivered_ || canceled_ || ring_.closing()) return;
    if (res < 0 && result_.status == 0) result_.status = uv_status(res);
    deliver();
  }

  void fail(int res) {
    result_.status = uv_status(res);
    if (fd_ >= 0) return close_fd();  // the answer follows the close
    step_ = Step::Done;
    deliver();
  }

  void deliver() {
    delivered_ = true;
    auto done = std::move(done_);
    done(std::move(result_));
  }

  // Cancelled (or the ring is closing): close what was opened, tell nobody.
  void abandon(int res) {
    if (step_ == Step::Open && res >= 0) fd_ = res;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    step_ = Step::Done;
  }

  Ring& ring_;
  FileOp op_;
  std::string data_;
  std::function<void(FileResult)> done_;
  FileResult result_;
  Step step_ = Step::Open;
  int fd_ = -1;
  struct statx stx_ {};
  bool sized_ = false;
  size_t asked_ = 0;
  size_t written_ = 0;
  bool canceled_ = false;
  bool delivered_ = false;
};

// ----------------------------------------------------------------- the Io

class UringIo final : public Io {
 public:
  UringIo(uv_loop_t* loop, std::unique_ptr<Ring> ring, std::unique_ptr<Io> evented)
      : loop_(loop),
        ring_(std::move(ring)),
        evented_(std::move(evented)),
        sockets_(*ring_),
        timers_(*ring_, loop) {
    Transport::ring_sockets = &sockets_;
  }
  ~UringIo() override {
    if (Transport::ring_sockets == &sockets_) Transport::ring_sockets = nullptr;
  }
  UringIo(const UringIo&) = delete;
  UringIo& operator=(const UringIo&) = delete;

  [[nodiscard]] const char* name() const override { return "uring"; }

  std::unique_ptr<Transport> adopt_stdio(int fd, int* shared_flags) override {
    return evented_->adopt_stdio(fd, shared_flags);
  }
  // A connect that failed at once (no socket) has told done already.
  IoOp* started(RingConnect* c) {
    if (!c->finished()) return c;
    ring_->release(c);
    return nullptr;
  }
  // Connects on the ring (a caller that cannot wait connects with blocking
  // system calls in the evented Io; its socket is adopted onto the ring).
  IoOp* connect_tcp(const std::string& host, int port, double timeout, bool wait, IoDone done) override {
    if (!wait || !sockets_.own_sockets())
      return evented_->connect_tcp(host, port, timeout, wait, std::move(done));
    std::string where = host + ":" + std::to_string(port);
    auto op = std::make_unique<RingConnect>(*ring_, loop_, std::move(where), timeout, std::move(done));
    RingConnect* c = op.get();
    ring_->adopt(std::move(op));
    sockaddr_storage addr{};
    if (parse_ip(host.c_str(), port, &addr)) {
      socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      c->start(reinterpret_cast<const sockaddr*>(&addr), len);
      return started(c);
    }
    if (!c->resolve(host, port)) {
      ring_->release(c);
      return nullptr;
    }
    return c;
  }
  IoOp* connect_pipe(const std::string& path, bool wait, IoDone done) override {
    if (!wait || !sockets_.own_sockets()) return evented_->connect_pipe(path, wait, std::move(done));
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) {
      done(IoResult::failed(UV_ENAMETOOLONG, path));
      return nullptr;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    auto op = std::make_unique<RingConnect>(*ring_, loop_, path, 0, std::move(done));
    RingConnect* c = op.get();
    ring_->adopt(std::move(op));
    c->start(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    return started(c);
  }
  std::unique_ptr<IoListener> listen(const ListenSpec& spec, int* status) override {
    return evented_->listen(spec, status);
  }
  std::unique_ptr<IoUdp> udp() override { return evented_->udp(); }
  Spawned spawn(const SpawnSpec& spec) override { return evented_->spawn(spec); }
  IoOp* work(std::function<void()> job, bool wait, std::function<void()> done) override {
    return evented_->work(std::move(job), wait, std::move(done));
  }

  IoOp* file(FileOp op, std::string path, std::string data, bool wait,
             std::function<void(FileResult)> done) override {
    if (!wait) return evented_->file(op, std::move(path), std::move(data), false, std::move(done));
    auto job = std::make_unique<FileJob>(*ring_, op, std::move(path), std::move(data), std::move(done));
    FileJob* j = job.get();
    ring_->adopt(std::move(job));
    j->begin();
    return j;
  }

  // Timers and file handles on the ring (src/io/uring_ops.cpp).
  IoOp* fs(FsRequest req, bool wait, std::function<void(FsResult)> done) override {
    if (!wait) return evented_->fs(std::move(req), false, std::move(done));
    return uring::start_fs(*ring_, std::move(req), std::move(done));
  }
  IoOp* sleep(double seconds, bool wait, IoWake done) override {
    if (!wait) return evented_->sleep(seconds, false, done);
    return timers_.start(seconds, done);
  }

 private:
  uv_loop_t* loop_;
  // Declared first: destroyed last, after sockets_ let go of its receives
  // and sends (the ring drains and frees them).
  std::unique_ptr<Ring> ring_;
  std::unique_ptr<Io> evented_;
  RingSocketsImpl sockets_;
  uring::RingTimers timers_;  // before the ring goes: its alarm is the ring's
};

}  // namespace

std::unique_ptr<Io> make_uring_io(uv_loop_t* loop, std::string* why, std::function<int()> script_mode,
                                  std::function<void()> drain) {
  std::unique_ptr<Ring> ring = Ring::create(loop, why);
  if (ring == nullptr) return nullptr;
  ring->set_script_mode(std::move(script_mode));
  ring->set_drain(std::move(drain));
  return std::make_unique<UringIo>(loop, std::move(ring), make_evented_io(loop));
}

}  // namespace evo
