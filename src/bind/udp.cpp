// evo.udp: UDP sockets, colourless (net.udp() in lib/net.lua).
//
// Evented: a libuv udp handle; receive() suspends the task until a datagram
// arrives (datagrams arriving with nobody waiting are queued, up to a limit).
// Blocking: a plain socket, recvfrom() with poll() for the timeout.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <string>

#include "core/handle.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

constexpr const char* kUdpMeta = "evo.Udp";
constexpr size_t kMaxQueued = 1024;  // datagrams kept for a receive() to come

struct Datagram {
  std::string data;
  std::string ip;
  int port = 0;
};

void address_of(const sockaddr* sa, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(sa), buf, sizeof(buf));
    port = ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(sa), buf, sizeof(buf));
    port = ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  }
  ip = buf;
}

bool parse_ip(const char* host, int port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  if (uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  return uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6*>(out)) == 0;
}

socklen_t length_of(const sockaddr_storage& sa) {
  return sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

int error_result(lua_State* L, int status, const std::string& detail = std::string()) {
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  errors::push_uv_error(L, status, detail);
  return 3;
}

class Udp;

int invalid_ip(lua_State* L, const char* host) {
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  errors::push_error(L, "EINVAL", std::string("not an IP address: ") + host);
  return 3;
}

class UvUdpHandle final : public NativeHandle {
 public:
  explicit UvUdpHandle(uv_loop_t* loop) { uv_udp_init(loop, &udp); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&udp); }
  void release() override;  // through its Udp
  uv_udp_t udp{};
  Udp* owner = nullptr;

 protected:
  void on_closed() override;
};

char g_slab[65536];

class Udp {
 public:
  Udp(TaskSystem& sys, UvUdpHandle* h) : sys_(sys), handle_(h) { h->owner = this; }
  Udp(TaskSystem& sys, int fd) : sys_(sys), fd_(fd) {}
  ~Udp() { close(); }

  int bind(lua_State* L, const char* host, int port) {
    if (closed_) return closed_result(L);
    sockaddr_storage addr{};
    if (!parse_ip(host, port, &addr)) return invalid_ip(L, host);
    int rc = 0;
    if (handle_ != nullptr) {
      rc = uv_udp_bind(&handle_->udp, reinterpret_cast<sockaddr*>(&addr), 0);
    } else {
      if (ensure_fd(addr.ss_family) != 0) return error_result(L, uv_translate_sys_error(errno));
      rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), length_of(addr)) == 0
               ? 0
               : uv_translate_sys_error(errno);
    }
    if (rc != 0) return error_result(L, rc, std::string(host) + ":" + std::to_string(port));
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }

  int send(lua_State* L, int data_idx, const char* host, int port) {
    size_t len = 0;
    const char* data = luaL_checklstring(L, data_idx, &len);
    if (closed_) return closed_result(L);
    sockaddr_storage addr{};
    if (!parse_ip(host, port, &addr)) return invalid_ip(L, host);
    int rc = 0;
    if (handle_ != nullptr) {
      // uv_udp_try_send sends now or reports EAGAIN; datagrams are small, so
      // a full socket buffer is rare, and then the datagram is dropped as UDP allows.
      uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned int>(len));
      rc = uv_udp_try_send(&handle_->udp, &buf, 1, reinterpret_cast<sockaddr*>(&addr));
      if (rc >= 0) rc = 0;
    } else {
      if (ensure_fd(addr.ss_family) != 0) return error_result(L, uv_translate_sys_error(errno));
      ssize_t n = ::sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&addr), length_of(addr));
      rc = n < 0 ? uv_translate_sys_error(errno) : 0;
    }
    if (rc != 0) return error_result(L, rc);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }

  // receive(yieldable) -> (true, data, ip, port) | (true, nil, err) | yields
  int receive(lua_State* L, int yieldable_idx) {
    if (closed_) return closed_result(L);
    if (!queue_.empty()) {
      lua_pushboolean(L, 1);
      push_datagram(L);
      return 4;
    }
    if (handle_ == nullptr) return receive_blocking(L);
    Task* t = sys_.waiter(L, yieldable_idx);
    if (t == nullptr) return luaL_error(L, "receive() needs a task that can yield in the evented mode");
    if (waiter_ != nullptr) return luaL_error(L, "another task is already receiving on this socket");
    if (sys_.take_cancel(t)) {
      lua_pushboolean(L, 0);
      return 1;
    }
    if (!receiving_) {
      int rc = uv_udp_recv_start(&handle_->udp, alloc_cb, recv_cb);
      if (rc != 0) return error_result(L, rc);
      receiving_ = true;
    }
    waiter_ = t;
    waiter_id_ = sys_.begin_wait(t, cancel_receive, this);
    return sys_.suspend(L, t);
  }

  void set_timeout(double s) { timeout_ = s; }

  // The runtime's exit sweep closed the handle first.
  void on_handle_closed() {
    handle_ = nullptr;
    closed_ = true;
  }

  int local_port() {
    sockaddr_storage sa{};
    int len = sizeof(sa);
    int rc = handle_ != nullptr ? uv_udp_getsockname(&handle_->udp, reinterpret_cast<sockaddr*>(&sa), &len)
                                : (fd_ >= 0 ? getsockname(fd_, reinterpret_cast<sockaddr*>(&sa),
                                                          reinterpret_cast<socklen_t*>(&len))
                                            : -1);
    if (rc != 0) return 0;
    std::string ip;
    int port = 0;
    address_of(reinterpret_cast<sockaddr*>(&sa), ip, port);
    return port;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (waiter_ != nullptr) {
      Task* t = waiter_;
      waiter_ = nullptr;
      sys_.wake_error(t, waiter_id_, "Closed", "the socket was closed");
    }
    if (handle_ != nullptr) {
      handle_->owner = nullptr;
      handle_->close();
      handle_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int ensure_fd(int family) {
    if (fd_ >= 0) return 0;
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd_ >= 0 ? 0 : -1;
  }

  static int closed_result(lua_State* L) {
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    errors::push_error(L, "Closed", "the socket is closed");
    return 3;
  }

  void push_datagram(lua_State* L) {
    Datagram d = std::move(queue_.front());
    queue_.pop_front();
    lua_pushlstring(L, d.data.data(), d.data.size());
    lua_pushlstring(L, d.ip.data(), d.ip.size());
    lua_pushinteger(L, d.port);
  }

  int receive_blocking(lua_State* L) {
    if (fd_ < 0) return luaL_error(L, "receive() on a socket that was never bound nor used to send");
    for (;;) {
      pollfd pfd{fd_, POLLIN, 0};
      int ms = timeout_ > 0 ? static_cast<int>(std::llround(timeout_ * 1000)) : -1;
      int r = ::poll(&pfd, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
        errors::push_error(L, "Timeout", "no datagram within the timeout");
        return 3;
      }
      sockaddr_storage from{};
      socklen_t flen = sizeof(from);
      ssize_t n = ::recvfrom(fd_, g_slab, sizeof(g_slab), 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) return error_result(L, uv_translate_sys_error(errno));
      Datagram d;
      d.data.assign(g_slab, static_cast<size_t>(n));
      address_of(reinterpret_cast<sockaddr*>(&from), d.ip, d.port);
      queue_.push_back(std::move(d));
      lua_pushboolean(L, 1);
      push_datagram(L);
      return 4;
    }
  }

  static void alloc_cb(uv_handle_t* /*h*/, size_t /*suggested*/, uv_buf_t* buf) {
    buf->base = g_slab;
    buf->len = sizeof(g_slab);
  }

  static void recv_cb(uv_udp_t* u, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                      unsigned /*flags*/) {
    auto* h = static_cast<UvUdpHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(u)));
    Udp* self = h->owner;
    if (self == nullptr || nread < 0 || addr == nullptr) return;
    if (self->queue_.size() >= kMaxQueued) return;  // nobody reads: drop, as UDP may
    Datagram d;
    d.data.assign(buf->base, static_cast<size_t>(nread));
    address_of(addr, d.ip, d.port);
    self->queue_.push_back(std::move(d));
    if (self->waiter_ != nullptr) {
      Task* t = self->waiter_;
      self->waiter_ = nullptr;
      lua_State* L = self->sys_.L();
      self->push_datagram(L);
      self->sys_.wake(t, self->waiter_id_, 3);
    }
  }

  static void cancel_receive(Task* /*t*/, void* arg) { static_cast<Udp*>(arg)->waiter_ = nullptr; }

  TaskSystem& sys_;
  UvUdpHandle* handle_ = nullptr;
  int fd_ = -1;
  bool closed_ = false;
  bool receiving_ = false;
  double timeout_ = 0;
  std::deque<Datagram> queue_;
  Task* waiter_ = nullptr;
  uint32_t waiter_id_ = 0;
};

void UvUdpHandle::release() { release_through(owner); }

void UvUdpHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

Udp* check_udp(lua_State* L, int idx) { return Boxed<Udp>::check(L, idx, kUdpMeta); }

int udp_new(lua_State* L) {
  TaskSystem& sys = TaskSystem::from(L);
  std::unique_ptr<Udp> u;
  if (sys.blocking()) {
    u = std::make_unique<Udp>(sys, -1);
  } else {
    u = std::make_unique<Udp>(
        sys, NativeHandle::release_to_loop(std::make_unique<UvUdpHandle>(sys.runtime().loop())));
  }
  Boxed<Udp>::push(L, std::move(u), kUdpMeta);
  return 1;
}

int udp_bind(lua_State* L) {
  return check_udp(L, 1)->bind(L, luaL_optstring(L, 2, "127.0.0.1"),
                               static_cast<int>(luaL_optinteger(L, 3, 0)));
}
int udp_send(lua_State* L) {
  return check_udp(L, 1)->send(L, 2, luaL_checkstring(L, 3), static_cast<int>(luaL_checkinteger(L, 4)));
}
int udp_receive(lua_State* L) { return check_udp(L, 1)->receive(L, 2); }
int udp_close(lua_State* L) {
  check_udp(L, 1)->close();
  return 0;
}
int udp_timeout(lua_State* L) {
  check_udp(L, 1)->set_timeout(luaL_optnumber(L, 2, 0));
  return 0;
}
int udp_port(lua_State* L) {
  lua_pushinteger(L, check_udp(L, 1)->local_port());
  return 1;
}

}  // namespace

int open_udp(lua_State* L) {
  if (luaL_newmetatable(L, kUdpMeta) != 0) {
    lua_pushcfunction(L, Boxed<Udp>::gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"new", udp_new},     {"bind", udp_bind},          {"send", udp_send}, {"receive", udp_receive},
      {"close", udp_close}, {"settimeout", udp_timeout}, {"port", udp_port}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
