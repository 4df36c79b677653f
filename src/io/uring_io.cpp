// The uring Io (--io=uring, issue 14): a completion-based Io on io_uring.
//
// What goes through the ring today: whole-file jobs (Io::file: openat,
// statx, read or write, close — no thread-pool trip) and the reads of
// every evented socket transport (a multishot recv into the provided
// buffer ring, through the Transport's RingRead seam). Everything else is
// the evented Io's (libuv): connecting, listening, UDP, child processes,
// work on the thread pool, and a transport's writes, shutdown and close.
// A caller that cannot wait is served by the evented Io too (it does such
// calls with blocking system calls), so the same script gives the same
// results in every mode. docs/io.md has the table.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>

#include "io/io.h"
#include "io/transport.h"
#include "io/uring_ring.h"

namespace evo {
namespace {

using uring::Ring;
using uring::RingOp;

int uv_status(int res) { return uv_translate_sys_error(-res); }

// ----------------------------------------------------------- socket reads

class RingReadsImpl;

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

  RingRecv(Ring& ring, RingReadsImpl* owner, Transport* t, int fd)
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
  void detach() override {
    t_ = nullptr;
    pause();
    update_hold();
  }
  // The ring is going away with the transport still open: it reads
  // nothing more.
  void orphan() {
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
  RingReadsImpl* owner_;  // nullptr once the Io is gone (the ring frees this)
  Transport* t_;
  int fd_;
  // Counted in the ring's held receives: armed, or with input or its end
  // still to be told (notify_soon), for a live transport whose handle is
  // referenced (an active libuv handle's rule). Without the second, an end
  // told a turn later found the loop already ended.
  void update_hold() {
    bool hold = (armed_ || notify_pending_) && ref_ && t_ != nullptr;
    if (hold != held_) ring_.hold(hold ? 1 : -1);
    held_ = hold;
  }

  bool armed_ = false;
  bool ref_ = true;
  bool held_ = false;
  bool multishot_ = true;
  bool cancel_sent_ = false;
  bool notify_pending_ = false;
};

class RingReadsImpl final : public RingReads {
 public:
  explicit RingReadsImpl(Ring& ring) : ring_(ring) {}
  ~RingReadsImpl() {
    // The run is over with transports still open (a C++ test's): they read
    // nothing more; receives still in the kernel are freed by the ring.
    std::unordered_set<RingRecv*> left;
    left.swap(live_);
    for (RingRecv* r : left) {
      r->orphan();
      if (r->in_kernel() == 0) std::unique_ptr<RingRecv> gone(r);
    }
  }
  RingReadsImpl(const RingReadsImpl&) = delete;
  RingReadsImpl& operator=(const RingReadsImpl&) = delete;

  RingRead* attach(Transport* t, int fd) override {
    if (!ring_.has_buffers()) return nullptr;
    auto op = std::make_unique<RingRecv>(ring_, this, t, fd);
    RingRecv* r = op.get();
    live_.insert(r);
    ring_.adopt(std::move(op));
    return r;
  }
  void forget(RingRecv* r) { live_.erase(r); }

 private:
  Ring& ring_;
  std::unordered_set<RingRecv*> live_;
};

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
  UringIo(std::unique_ptr<Ring> ring, std::unique_ptr<Io> evented)
      : ring_(std::move(ring)), evented_(std::move(evented)), reads_(*ring_) {
    Transport::ring_reads = &reads_;
  }
  ~UringIo() override {
    if (Transport::ring_reads == &reads_) Transport::ring_reads = nullptr;
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

 private:
  // Declared first: destroyed last, after reads_ let go of its receives
  // (the ring drains and frees them).
  std::unique_ptr<Ring> ring_;
  std::unique_ptr<Io> evented_;
  RingReadsImpl reads_;
};

}  // namespace

std::unique_ptr<Io> make_uring_io(uv_loop_t* loop, std::string* why) {
  std::unique_ptr<Ring> ring = Ring::create(loop, why);
  if (ring == nullptr) return nullptr;
  return std::make_unique<UringIo>(std::move(ring), make_evented_io(loop));
}

}  // namespace evo
