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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>

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
    pause();
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
  static constexpr size_t kKeepBytes = size_t{64} * 1024;

  RingSend(Ring& ring, RingSocketsImpl* owner, Transport* t, int fd)
      : ring_(ring), owner_(owner), t_(t), fd_(fd) {}
  ~RingSend() override;

  void send(std::string& bytes, size_t from) override {
    buf_.swap(bytes);  // the transport gets this op's last buffer back: both keep their capacity
    bytes.clear();
    pos_ = from;
    in_flight_ = true;
    if (pos_ < buf_.size()) return submit_send();
    io_uring_prep_nop(ring_.sqe(this, kSend));  // nothing left: the completion alone
  }
  [[nodiscard]] size_t unsent() const override { return in_flight_ ? buf_.size() - pos_ : 0; }
  std::string settle() override {
    if (!in_flight_) return {};
    settling_ = true;
    ring_.settle(this, kSend);
    settling_ = false;
    std::string rest = buf_.substr(std::min(pos_, buf_.size()));
    buf_.clear();
    in_flight_ = false;
    return rest;
  }
  void shutdown() override { io_uring_prep_shutdown(ring_.sqe(this, kShutdown), fd_, SHUT_WR); }
  void detach() override {
    t_ = nullptr;
    if (in_flight_) ring_.cancel(this, kSend);
    ring_.release(this);
  }
  void orphan() {
    if (t_ != nullptr) t_->forget_ring();
    t_ = nullptr;
    owner_ = nullptr;
  }
  [[nodiscard]] bool finished() const override { return t_ == nullptr; }

  void on_cqe(uint8_t tag, int res, uint32_t /*flags*/) override {
    bool live = t_ != nullptr && !ring_.closing();
    if (tag == kShutdown) {
      if (live) t_->on_ring_shutdown(res < 0 ? uv_status(res) : 0);
      return;
    }
    if (res > 0) pos_ += static_cast<size_t>(res);
    if (settling_) return;  // settle() takes what is left
    if (!live) {
      in_flight_ = false;
      buf_.clear();
      return;
    }
    if (res > 0 && pos_ < buf_.size()) return submit_send();  // a short send: the rest
    in_flight_ = false;
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
  bool in_flight_ = false;
  bool settling_ = false;
};

// Accepts on a listening socket: one multishot entry hands every
// connection over as it comes (the HTTP server, net.listen with a
// handler), or one single-shot entry per accept() call. A cancelled
// entry that won the race still brings a descriptor: it is closed.
class RingAcceptOp final : public RingOp, public RingAccept {
 public:
  RingAcceptOp(Ring& ring, RingSocketsImpl* owner, int fd, std::function<void()> forget)
      : ring_(ring), owner_(owner), fd_(fd), forget_(std::move(forget)) {}
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
    if (!armed_) arm();
  }
  void stop() override {
    each_ = nullptr;
    if (armed_) ring_.cancel(this, 0);
  }
  void detach() override {
    gone_ = true;
    stop();
    ring_.release(this);
  }
  [[nodiscard]] bool finished() const override { return gone_; }
  // An armed accept keeps the loop alive as libuv's listening handle does.
  [[nodiscard]] bool holds_loop() const override { return true; }

  void on_cqe(uint8_t /*tag*/, int res, uint32_t flags) override {
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) armed_ = false;
    bool live = each_ && !gone_ && !ring_.closing();
    if (!live) {
      if (res >= 0) ::close(res);
      return;
    }
    if (res == -ECANCELED) return;
    // One connection for a single accept: the callback is spent before it
    // runs (it may start the next one).
    std::function<void(int)> each = many_ ? each_ : std::move(each_);
    if (!many_) each_ = nullptr;
    each(res);
    // The kernel ended the multishot entry (an error such as EMFILE, or
    // its own limits): on again while someone takes connections.
    if (!armed_ && many_ && each_ && !gone_) arm();
  }

 private:
  void arm() {
    io_uring_sqe* s = ring_.sqe(this, 0);
    int flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
    if (many_) {
      io_uring_prep_multishot_accept(s, fd_, nullptr, nullptr, flags);
    } else {
      io_uring_prep_accept(s, fd_, nullptr, nullptr, flags);
    }
    armed_ = true;
  }

  Ring& ring_;
  RingSocketsImpl* owner_;
  int fd_;
  std::function<void()> forget_;
  std::function<void(int)> each_;
  bool many_ = false;
  bool armed_ = false;
  bool gone_ = false;
};

class RingSocketsImpl final : public RingSockets {
 public:
  explicit RingSocketsImpl(Ring& ring) : ring_(ring) {
    const char* mode = std::getenv("EVO_URING_SEND");
    sends_ = mode == nullptr || std::strcmp(mode, "off") != 0;
    Transport::ring_send_tries = mode != nullptr && std::strcmp(mode, "try") == 0;
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
  RingAccept* attach_accept(int fd, std::function<void()> forget) override {
    auto op = std::make_unique<RingAcceptOp>(ring_, this, fd, std::move(forget));
    RingAcceptOp* a = op.get();
    accepts_.insert(a);
    ring_.adopt(std::move(op));
    return a;
  }
  void forget(RingAcceptOp* a) { accepts_.erase(a); }
  void forget(RingRecv* r) { reads_.erase(r); }
  void forget(RingSend* w) { writes_.erase(w); }

 private:
  Ring& ring_;
  bool sends_ = true;  // EVO_URING_SEND=off keeps libuv's writes (for comparison)
  std::unordered_set<RingRecv*> reads_;
  std::unordered_set<RingSend*> writes_;
  std::unordered_set<RingAcceptOp*> accepts_;
};

RingAcceptOp::~RingAcceptOp() {
  if (owner_ != nullptr) owner_->forget(this);
}

RingSend::~RingSend() {
  if (owner_ != nullptr) owner_->forget(this);
}

RingRecv::~RingRecv() {
  if (owner_ != nullptr) owner_->forget(this);
}

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
  UringIo(std::unique_ptr<Ring> ring, std::unique_ptr<Io> evented, uv_loop_t* loop)
      : ring_(std::move(ring)), evented_(std::move(evented)), sockets_(*ring_), timers_(*ring_, loop) {
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
  IoOp* connect_tcp(const std::string& host, int port, double timeout, bool wait, IoDone done) override {
    return evented_->connect_tcp(host, port, timeout, wait, std::move(done));
  }
  IoOp* connect_pipe(const std::string& path, bool wait, IoDone done) override {
    return evented_->connect_pipe(path, wait, std::move(done));
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
  // Declared first: destroyed last, after sockets_ let go of its receives
  // and sends (the ring drains and frees them).
  std::unique_ptr<Ring> ring_;
  std::unique_ptr<Io> evented_;
  RingSocketsImpl sockets_;
  uring::RingTimers timers_;  // before the ring goes: its alarm is the ring's
};

}  // namespace

std::unique_ptr<Io> make_uring_io(uv_loop_t* loop, std::string* why) {
  std::unique_ptr<Ring> ring = Ring::create(loop, why);
  if (ring == nullptr) return nullptr;
  return std::make_unique<UringIo>(std::move(ring), make_evented_io(loop), loop);
}

}  // namespace evo
