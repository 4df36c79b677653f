// UDP sockets for both Io implementations. Evented: a libuv udp handle;
// datagrams that arrive while nobody waits are queued (up to kMaxQueued,
// then dropped as UDP may). Blocking: a plain socket, recvfrom() after
// poll() for the timeout — also what the evented socket does for a caller
// that cannot wait.
#include "io/udp.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <string>

#include "core/handle.h"
#include "io/blocking_io.h"

namespace evo {
namespace {

constexpr size_t kMaxQueued = 1024;  // datagrams kept for a receive() to come

// One slab for every receive: a datagram is copied out before the next.
char g_slab[65536];

void address_of(const sockaddr* sa, Datagram& d) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(sa), buf, sizeof(buf));
    d.port = ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(sa), buf, sizeof(buf));
    d.port = ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  }
  d.ip = buf;
}

socklen_t length_of(const sockaddr* sa) {
  return sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

Datagram failed(int status, const char* code, std::string message) {
  Datagram d;
  d.status = status;
  d.code = code;
  d.message = std::move(message);
  return d;
}

int port_of(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (fd < 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return 0;
  Datagram d;
  address_of(reinterpret_cast<sockaddr*>(&sa), d);
  return d.port;
}

// recvfrom() on fd, waiting up to timeout seconds.
Datagram receive_blocking(int fd, double timeout) {
  if (fd < 0) return failed(0, "NotBound", "receive() on a socket that was never bound nor used to send");
  for (;;) {
    if (!blocking::wait_fd(fd, false, timeout)) return failed(0, "Timeout", "no datagram within the timeout");
    sockaddr_storage from{};
    socklen_t flen = sizeof(from);
    ssize_t n = ::recvfrom(fd, g_slab, sizeof(g_slab), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return failed(uv_translate_sys_error(errno), nullptr, "");
    Datagram d;
    d.data.assign(g_slab, static_cast<size_t>(n));
    address_of(reinterpret_cast<sockaddr*>(&from), d);
    return d;
  }
}

class BlockingUdp final : public IoUdp {
 public:
  ~BlockingUdp() override { close(); }
  int bind(const sockaddr* addr) override {
    if (ensure_fd(addr->sa_family) != 0) return uv_translate_sys_error(errno);
    return ::bind(fd_, addr, length_of(addr)) == 0 ? 0 : uv_translate_sys_error(errno);
  }
  int send(const char* data, size_t len, const sockaddr* addr) override {
    if (ensure_fd(addr->sa_family) != 0) return uv_translate_sys_error(errno);
    return ::sendto(fd_, data, len, 0, addr, length_of(addr)) < 0 ? uv_translate_sys_error(errno) : 0;
  }
  IoOp* receive(bool /*wait*/, double timeout, DatagramDone done) override {
    done(receive_blocking(fd_, timeout));
    return nullptr;
  }
  [[nodiscard]] int local_port() const override { return port_of(fd_); }
  [[nodiscard]] bool receiving() const override { return false; }  // a receive finishes inside its call
  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int ensure_fd(int family) {
    if (fd_ < 0) fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd_ >= 0 ? 0 : -1;
  }
  int fd_ = -1;
};

class EventedUdp;

class UvUdpHandle final : public NativeHandle {
 public:
  explicit UvUdpHandle(uv_loop_t* loop) { uv_udp_init(loop, &udp); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&udp); }
  void release() override;  // through its socket
  uv_udp_t udp{};
  EventedUdp* owner = nullptr;

 protected:
  void on_closed() override;
};

class EventedUdp final : public IoUdp, public IoOp {
 public:
  explicit EventedUdp(uv_loop_t* loop)
      : handle_(NativeHandle::release_to_loop(std::make_unique<UvUdpHandle>(loop))) {
    handle_->owner = this;
  }
  ~EventedUdp() override { close(); }

  int bind(const sockaddr* addr) override {
    return handle_ == nullptr ? UV_EBADF : uv_udp_bind(&handle_->udp, addr, 0);
  }
  int send(const char* data, size_t len, const sockaddr* addr) override {
    if (handle_ == nullptr) return UV_EBADF;
    // uv_udp_try_send sends now or reports EAGAIN; datagrams are small, so
    // a full socket buffer is rare, and then the datagram is dropped.
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned int>(len));
    int rc = uv_udp_try_send(&handle_->udp, &buf, 1, addr);
    return rc >= 0 ? 0 : rc;
  }
  IoOp* receive(bool wait, double timeout, DatagramDone done) override {
    if (!queue_.empty()) {
      done(take());
      return nullptr;
    }
    if (handle_ == nullptr) {
      done(failed(0, "Closed", "the socket is closed"));
      return nullptr;
    }
    if (!wait) {
      done(receive_blocking(fd(), timeout));
      return nullptr;
    }
    if (waiter_) {
      done(failed(0, "Busy", "another task is already receiving on this socket"));
      return nullptr;
    }
    if (!receiving_) {
      int rc = uv_udp_recv_start(&handle_->udp, alloc_cb, recv_cb);
      if (rc != 0) {
        done(failed(rc, nullptr, ""));
        return nullptr;
      }
      receiving_ = true;
    }
    waiter_ = std::move(done);
    return this;
  }
  [[nodiscard]] int local_port() const override { return port_of(fd()); }
  [[nodiscard]] bool receiving() const override { return static_cast<bool>(waiter_); }
  void close() override {
    if (waiter_) {
      DatagramDone done = std::move(waiter_);
      waiter_ = nullptr;
      done(failed(0, "Closed", "the socket was closed"));
    }
    if (handle_ != nullptr) {
      handle_->owner = nullptr;
      handle_->close();
      handle_ = nullptr;
    }
  }
  void cancel() override { waiter_ = nullptr; }   // the receive in flight
  void on_handle_closed() { handle_ = nullptr; }  // the runtime's exit sweep closed it first

 private:
  [[nodiscard]] int fd() const {
    uv_os_fd_t fd = -1;
    if (handle_ == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(&handle_->udp), &fd) != 0)
      return -1;
    return fd;
  }
  Datagram take() {
    Datagram d = std::move(queue_.front());
    queue_.pop_front();
    return d;
  }
  static void alloc_cb(uv_handle_t* /*h*/, size_t /*suggested*/, uv_buf_t* buf) {
    buf->base = g_slab;
    buf->len = sizeof(g_slab);
  }
  static void recv_cb(uv_udp_t* u, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                      unsigned /*flags*/) {
    auto* h = static_cast<UvUdpHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(u)));
    EventedUdp* self = h->owner;
    if (self == nullptr || nread < 0 || addr == nullptr) return;
    if (self->queue_.size() >= kMaxQueued) return;  // nobody reads: drop, as UDP may
    Datagram d;
    d.data.assign(buf->base, static_cast<size_t>(nread));
    address_of(addr, d);
    self->queue_.push_back(std::move(d));
    if (self->waiter_) {
      DatagramDone done = std::move(self->waiter_);
      self->waiter_ = nullptr;
      done(self->take());
    }
  }

  UvUdpHandle* handle_;
  bool receiving_ = false;
  std::deque<Datagram> queue_;
  DatagramDone waiter_;
};

void UvUdpHandle::release() { release_through(owner); }

void UvUdpHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

}  // namespace

std::unique_ptr<IoUdp> make_evented_udp(uv_loop_t* loop) { return std::make_unique<EventedUdp>(loop); }
std::unique_ptr<IoUdp> make_blocking_udp() { return std::make_unique<BlockingUdp>(); }

}  // namespace evo
