// The evented Io: libuv. An operation owns itself until its last callback;
// a call whose caller cannot wait is done by the blocking Io's system calls
// and its descriptor adopted into libuv.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "core/handle.h"
#include "io/blocking_io.h"
#include "io/files.h"
#include "io/fs_ops.h"
#include "io/io.h"
#include "io/process.h"
#include "io/stdio.h"
#include "io/transport.h"
#include "io/udp.h"
#include "io/workers.h"

namespace evo {
namespace {

// libuv truncates a Unix socket path that does not fit sockaddr_un (and
// binds or connects to another path): refuse it as the kernel would.
bool too_long(const char* path) { return std::strlen(path) >= sizeof(sockaddr_un{}.sun_path); }

// A TCP connection being made: resolve, then try each address in turn.
class TcpConnect final : public IoOp {
 public:
  TcpConnect(uv_loop_t* loop, std::string where, IoDone done)
      : loop_(loop), where_(std::move(where)), done_(std::move(done)) {
    gai_.data = this;
    connect_.data = this;
  }

  // Starts resolving; false when that failed (reported through done then).
  bool start(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int status =
        uv_getaddrinfo(loop_, &gai_, on_resolved, host.c_str(), std::to_string(port).c_str(), &hints);
    resolving_ = status == 0;
    if (!resolving_) done_(IoResult::failed(status, host));
    return resolving_;
  }

  ~TcpConnect() {
    if (results_ != nullptr) uv_freeaddrinfo(results_);
  }

  void cancel() override {
    canceled_ = true;
    if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&gai_));
    if (handle_ != nullptr) handle_->close();  // the connect callback sees ECANCELED
  }

 private:
  void finish(IoResult r) {
    std::unique_ptr<TcpConnect> self(this);
    if (!canceled_) done_(std::move(r));
  }

  void try_next() {
    while (next_ != nullptr) {
      addrinfo* ai = next_;
      next_ = next_->ai_next;
      int status = 0;
      auto h = std::make_unique<UvStreamHandle>(loop_, UvStreamHandle::Kind::Tcp, &status);
      if (status != 0) {
        last_error_ = status;
        continue;
      }
      handle_ = NativeHandle::release_to_loop(std::move(h));
      status = uv_tcp_connect(&connect_, handle_->tcp(), ai->ai_addr, on_connect);
      if (status == 0) return;
      last_error_ = status;
      handle_->close();
      handle_ = nullptr;
    }
    finish(IoResult::failed(last_error_ != 0 ? last_error_ : UV_EAI_NONAME, where_));
  }

  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* op = static_cast<TcpConnect*>(req->data);
    op->resolving_ = false;
    op->results_ = res;
    if (op->canceled_ || status < 0) return op->finish(IoResult::failed(status, op->where_));
    op->next_ = res;
    op->try_next();
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* op = static_cast<TcpConnect*>(req->data);
    if (op->canceled_) {
      if (op->handle_ != nullptr && !op->handle_->closing()) op->handle_->close();
      return op->finish(IoResult{});
    }
    if (status < 0) {
      op->last_error_ = status;
      op->handle_->close();
      op->handle_ = nullptr;
      return op->try_next();
    }
    uv_tcp_nodelay(op->handle_->tcp(), 1);
    IoResult r;
    r.transport = std::make_unique<Transport>(op->handle_);
    op->handle_ = nullptr;
    op->finish(std::move(r));
  }

  uv_loop_t* loop_;
  std::string where_;
  IoDone done_;
  bool canceled_ = false;
  bool resolving_ = false;
  uv_getaddrinfo_t gai_{};
  uv_connect_t connect_{};
  addrinfo* results_ = nullptr;
  addrinfo* next_ = nullptr;
  UvStreamHandle* handle_ = nullptr;
  int last_error_ = 0;
};

// A Unix-socket connection being made.
class PipeConnect final : public IoOp {
 public:
  PipeConnect(UvStreamHandle* handle, std::string path, IoDone done)
      : handle_(handle), path_(std::move(path)), done_(std::move(done)) {
    connect_.data = this;
    uv_pipe_connect(&connect_, handle_->pipe(), path_.c_str(), on_connect);
  }
  void cancel() override {
    canceled_ = true;
    handle_->close();
  }

 private:
  static void on_connect(uv_connect_t* req, int status) {
    std::unique_ptr<PipeConnect> op(static_cast<PipeConnect*>(req->data));
    if (op->canceled_) return;
    if (status < 0) {
      op->handle_->close();
      return op->done_(IoResult::failed(status, op->path_));
    }
    IoResult r;
    r.transport = std::make_unique<Transport>(op->handle_);
    op->done_(std::move(r));
  }

  UvStreamHandle* handle_;
  std::string path_;
  IoDone done_;
  bool canceled_ = false;
  uv_connect_t connect_{};
};

class EventedListener;

// The libuv side of a listener.
class UvListenerHandle final : public NativeHandle {
 public:
  UvListenerHandle(uv_loop_t* loop, bool pipe, int* status) : pipe_(pipe) {
    *status = pipe ? uv_pipe_init(loop, &h_.pipe, 0) : uv_tcp_init(loop, &h_.tcp);
  }
  uv_handle_t* uv_handle() override { return &h_.handle; }
  void release() override;  // through its listener
  uv_stream_t* stream() { return &h_.stream; }
  uv_tcp_t* tcp() { return &h_.tcp; }
  uv_pipe_t* pipe() { return &h_.pipe; }
  [[nodiscard]] bool is_pipe() const { return pipe_; }
  EventedListener* owner = nullptr;

 protected:
  void on_closed() override;

 private:
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_{};
  bool pipe_;
};

std::unique_ptr<Transport> adopt_on(uv_loop_t* loop, int fd, SocketKind kind) {
  // --io=uring: the ring alone carries the socket (libuv never sees it).
  if (auto t = Transport::on_ring(loop, fd)) return t;
  int status = 0;
  auto ukind = kind == SocketKind::Tcp ? UvStreamHandle::Kind::Tcp : UvStreamHandle::Kind::Pipe;
  auto h = std::make_unique<UvStreamHandle>(loop, ukind, &status);
  if (status != 0) return std::make_unique<Transport>(fd);  // no handle: a plain descriptor then
  UvStreamHandle* handle = NativeHandle::release_to_loop(std::move(h));
  status = kind == SocketKind::Tcp ? uv_tcp_open(handle->tcp(), fd) : uv_pipe_open(handle->pipe(), fd);
  if (status != 0) {
    handle->close();
    return std::make_unique<Transport>(fd);
  }
  return std::make_unique<Transport>(handle);
}

// A descriptor from a blocking call, as a libuv stream.
IoResult adopted(uv_loop_t* loop, int status, int fd, SocketKind kind, const std::string& where,
                 const char* timeout_message) {
  if (status == UV_ETIMEDOUT) return IoResult::failed("Timeout", std::string(timeout_message) + where);
  if (status != 0) return IoResult::failed(status, where);
  IoResult r;
  r.transport = adopt_on(loop, fd, kind);
  return r;
}

// A listening libuv handle. A connection that arrives while nobody accepts
// stays with libuv (which stops accepting until it is taken).
class EventedListener final : public IoListener, public IoOp {
 public:
  explicit EventedListener(UvListenerHandle* h) : handle_(h) { h->owner = this; }
  ~EventedListener() override { close(); }

  // Accepts through the ring from now on (--io=uring): the socket is
  // listening already and libuv does not watch it.
  void use_ring(RingAccept* ring) { ring_ = ring; }
  void forget_ring() { ring_ = nullptr; }

  IoOp* accept(bool wait, double timeout, IoDone done) override;
  void accept_each(std::function<void(IoResult)> each) override {
    each_ = std::move(each);
    if (ring_ != nullptr) ring_->start(true, [this](int fd) { each_(accepted(fd)); });
  }
  [[nodiscard]] bool accepting() const override { return waiting_; }
  [[nodiscard]] int fd() const override {
    uv_os_fd_t fd = -1;
    if (handle_ != nullptr) uv_fileno(const_cast<UvListenerHandle*>(handle_)->uv_handle(), &fd);
    return fd;
  }
  void close() override {
    if (ring_ != nullptr) {
      ring_->detach();  // before the socket closes: the kernel lets go of it
      ring_ = nullptr;
    }
    if (waiting_) {
      waiting_ = false;
      IoDone done = std::move(waiter_);
      done(IoResult::failed("Closed", "the server was closed"));
    }
    if (handle_ != nullptr) {
      handle_->owner = nullptr;
      handle_->close();
      handle_ = nullptr;
    }
  }
  void cancel() override {  // the accept in flight
    waiting_ = false;
    waiter_ = nullptr;
    if (ring_ != nullptr && !each_) ring_->stop();
  }
  void on_handle_closed() { handle_ = nullptr; }  // the runtime's exit sweep closed it first
  void on_release(std::function<void()> release) override { release_ = std::move(release); }
  void release() {
    if (release_) return release_();
    close();
  }

  static void on_connection(uv_stream_t* server, int status);

 private:
  IoResult take();
  IoResult accepted(int fd_or_error);

  UvListenerHandle* handle_;
  RingAccept* ring_ = nullptr;
  bool pending_ = false;
  bool waiting_ = false;
  IoDone waiter_;
  std::function<void(IoResult)> each_;
  std::function<void()> release_;
};

void UvListenerHandle::release() {
  if (owner != nullptr) return owner->release();
  close();
}

void UvListenerHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

// --io=uring: the bound socket listens, and the ring accepts on it (the
// libuv handle only holds the descriptor until close).
std::unique_ptr<IoListener> listen_for_ring(UvListenerHandle* handle, int backlog, bool by_readiness,
                                            int* status) {
  uv_os_fd_t fd = -1;
  *status = uv_fileno(handle->uv_handle(), &fd);
  // libuv keeps a bind's EADDRINUSE for uv_listen to report; listen(2) on
  // the unbound socket would pick a port instead.
  if (*status == 0) *status = handle->stream()->delayed_error;
  if (*status == 0 && ::listen(fd, backlog) != 0) *status = uv_translate_sys_error(errno);
  if (*status != 0) {
    handle->close();
    return nullptr;
  }
  auto listener = std::make_unique<EventedListener>(handle);
  EventedListener* l = listener.get();
  RingAccept* ring = Transport::ring_sockets->attach_accept(fd, by_readiness, [l] { l->forget_ring(); });
  if (ring != nullptr) l->use_ring(ring);
  return listener;
}

}  // namespace

std::unique_ptr<IoListener> listen_on_loop(uv_loop_t* loop, const ListenSpec& spec, int* status) {
  if (spec.path != nullptr && too_long(spec.path)) {
    *status = UV_ENAMETOOLONG;
    return nullptr;
  }
  auto h = std::make_unique<UvListenerHandle>(loop, spec.path != nullptr, status);
  if (*status != 0) return nullptr;
  UvListenerHandle* handle = NativeHandle::release_to_loop(std::move(h));
  if (workers::active()) {
    // The supervisor's socket (blocking::listen asks it), already bound and
    // listening; uv_listen below only starts watching it.
    int fd = -1;
    *status = blocking::listen(spec.addr, spec.addr_len, spec.path, spec.backlog, &fd);
    if (*status == 0) {
      *status = spec.path != nullptr ? uv_pipe_open(handle->pipe(), fd) : uv_tcp_open(handle->tcp(), fd);
      if (*status != 0) ::close(fd);
    }
  } else {
    *status = spec.path != nullptr ? uv_pipe_bind(handle->pipe(), spec.path)
                                   : uv_tcp_bind(handle->tcp(), spec.addr, 0);
  }
  // A worker's listener is the supervisor's socket: the ring accepts on it
  // by readiness (uring_io.cpp's RingAcceptOp says why).
  if (*status == 0 && Transport::ring_sockets != nullptr)
    return listen_for_ring(handle, spec.backlog, workers::active(), status);
  if (*status == 0) *status = uv_listen(handle->stream(), spec.backlog, EventedListener::on_connection);
  if (*status != 0) {
    handle->close();
    return nullptr;
  }
  return std::make_unique<EventedListener>(handle);
}

namespace {
class EventedIo final : public Io {
 public:
  explicit EventedIo(uv_loop_t* loop) : loop_(loop), timers_(loop) {}
  [[nodiscard]] const char* name() const override { return "evented"; }

  std::unique_ptr<Transport> adopt_stdio(int fd, int* shared_flags) override {
    return stdio_evented(loop_, fd, shared_flags);
  }

  IoOp* connect_tcp(const std::string& host, int port, double timeout, bool wait, IoDone done) override {
    std::string where = host + ":" + std::to_string(port);
    if (!wait) {
      int fd = -1;
      int status = blocking::connect_tcp(host, port, timeout, &fd);
      done(adopted(loop_, status, fd, SocketKind::Tcp, where, "could not connect within the timeout: "));
      return nullptr;
    }
    auto op = std::make_unique<TcpConnect>(loop_, where, std::move(done));
    if (!op->start(host, port)) return nullptr;
    return op.release();  // its callbacks own it now
  }

  IoOp* connect_pipe(const std::string& path, bool wait, IoDone done) override {
    if (!wait) {
      int fd = -1;
      int status = blocking::connect_pipe(path, &fd);
      done(adopted(loop_, status, fd, SocketKind::Pipe, path, ""));
      return nullptr;
    }
    int status = too_long(path.c_str()) ? UV_ENAMETOOLONG : 0;
    auto h =
        status != 0 ? nullptr : std::make_unique<UvStreamHandle>(loop_, UvStreamHandle::Kind::Pipe, &status);
    if (status != 0) {
      done(IoResult::failed(status, path));
      return nullptr;
    }
    auto op =
        std::make_unique<PipeConnect>(NativeHandle::release_to_loop(std::move(h)), path, std::move(done));
    return op.release();  // its callback owns it now
  }

  std::unique_ptr<IoListener> listen(const ListenSpec& spec, int* status) override {
    return listen_on_loop(loop_, spec, status);
  }

  std::unique_ptr<IoUdp> udp() override { return make_evented_udp(loop_); }
  Spawned spawn(const SpawnSpec& spec) override { return spawn_evented(loop_, spec); }

  IoOp* work(std::function<void()> job, bool wait, std::function<void()> done) override {
    if (!wait) {
      job();
      done();
      return nullptr;
    }
    return work_on_pool(loop_, std::move(job), std::move(done));
  }

  IoOp* fs(FsRequest req, bool wait, std::function<void(FsResult)> done) override {
    if (!wait) {
      done(fs_here(loop_, req));
      return nullptr;
    }
    return fs_on_loop(loop_, std::move(req), std::move(done));
  }

  IoOp* sleep(double seconds, bool wait, IoWake done) override {
    if (!wait) {
      sleep_here(seconds);
      done();
      return nullptr;
    }
    return timers_.start(seconds, done);
  }

 private:
  uv_loop_t* loop_;
  SleepTimers timers_;
};

IoOp* EventedListener::accept(bool wait, double timeout, IoDone done) {
  if (handle_ == nullptr) {
    done(IoResult::failed("Closed", "the server is closed"));
    return nullptr;
  }
  if (pending_) {
    done(take());
    return nullptr;
  }
  if (!wait) {
    int client = -1;
    int status = blocking::accept(fd(), !handle_->is_pipe(), timeout, &client);
    done(adopted(handle_->stream()->loop, status, client,
                 handle_->is_pipe() ? SocketKind::Pipe : SocketKind::Tcp, "",
                 "no connection within the timeout"));
    return nullptr;
  }
  if (waiting_) {
    done(IoResult::failed("Busy", "another task is already accepting on this server"));
    return nullptr;
  }
  waiting_ = true;
  waiter_ = std::move(done);
  if (ring_ != nullptr) {
    ring_->start(false, [this](int fd) {
      if (!waiting_) return;
      waiting_ = false;
      IoDone done = std::move(waiter_);
      done(accepted(fd));
    });
  }
  return this;
}

// A connection the ring accepted (or its error), as a transport.
IoResult EventedListener::accepted(int fd_or_error) {
  if (fd_or_error < 0) return IoResult::failed(uv_translate_sys_error(-fd_or_error), "");
  bool pipe = handle_ == nullptr || handle_->is_pipe();
  if (!pipe) {
    int one = 1;
    ::setsockopt(fd_or_error, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  uv_loop_t* loop = handle_ != nullptr ? handle_->stream()->loop : nullptr;
  if (loop == nullptr) {
    ::close(fd_or_error);
    return IoResult::failed("Closed", "the server was closed");
  }
  IoResult r;
  r.transport = adopt_on(loop, fd_or_error, pipe ? SocketKind::Pipe : SocketKind::Tcp);
  return r;
}

// Takes the connection libuv holds.
IoResult EventedListener::take() {
  pending_ = false;
  int status = 0;
  auto kind = handle_->is_pipe() ? UvStreamHandle::Kind::Pipe : UvStreamHandle::Kind::Tcp;
  auto h = std::make_unique<UvStreamHandle>(handle_->stream()->loop, kind, &status);
  if (status != 0) return IoResult::failed(status, "");
  UvStreamHandle* client = NativeHandle::release_to_loop(std::move(h));
  status = uv_accept(handle_->stream(), client->stream());
  if (status != 0) {
    client->close();
    return IoResult::failed(status, "");
  }
  if (!handle_->is_pipe()) uv_tcp_nodelay(client->tcp(), 1);
  IoResult r;
  r.transport = std::make_unique<Transport>(client);
  return r;
}

void EventedListener::on_connection(uv_stream_t* server, int status) {
  auto* h = static_cast<UvListenerHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(server)));
  EventedListener* self = h->owner;
  if (self == nullptr) return;
  if (status < 0) {  // EMFILE and the like: tell a waiting accept()
    if (self->waiting_) {
      self->waiting_ = false;
      IoDone done = std::move(self->waiter_);
      done(IoResult::failed(status, ""));
    }
    return;
  }
  if (self->each_) return self->each_(self->take());
  self->pending_ = true;  // libuv holds it and pauses accepting until we take it
  if (self->waiting_) {
    self->waiting_ = false;
    IoDone done = std::move(self->waiter_);
    done(self->take());
  }
}

}  // namespace

std::unique_ptr<Io> make_evented_io(uv_loop_t* loop) { return std::make_unique<EventedIo>(loop); }

}  // namespace evo
