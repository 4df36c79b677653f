// evo.net: TCP and Unix-socket connections and listeners, and UDP sockets,
// colourless (lib/net.lua is the public side).
//
// Evented Io mode: libuv handles; a task waiting in connect/accept/receive
// suspends. Blocking Io mode (or a caller that cannot yield): plain sockets
// and syscalls, with poll() for timeouts. See src/io/stream.h for the
// connection streams themselves.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
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
#include "lua/events.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"
#include "io/stream.h"

namespace evo {
namespace {

int push_error_result(lua_State* L, int status, const std::string& detail = std::string()) {
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  errors::push_uv_error(L, status, detail);
  return 3;
}

int push_error_result(lua_State* L, const char* code, const std::string& message) {
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  errors::push_error(L, code, message);
  return 3;
}

int sys_error() { return uv_translate_sys_error(errno); }

// "1.2.3.4", 80 from a socket address.
void push_address(lua_State* L, const sockaddr* sa, const char* ip_field, const char* port_field) {
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(in, ip, sizeof(ip));
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, ip, sizeof(ip));
    port = ntohs(in6->sin6_port);
  }
  events::field(L, ip_field, ip);
  events::field(L, port_field, static_cast<double>(port));
}

bool parse_ip(const char* host, int port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  if (uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  return uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6*>(out)) == 0;
}

int timeout_ms(double seconds) { return seconds > 0 ? static_cast<int>(std::llround(seconds * 1000.0)) : -1; }

// Waits until fd is ready for `events`; false on timeout.
bool wait_fd(int fd, short events, double timeout) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    int r = ::poll(&pfd, 1, timeout_ms(timeout));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// ------------------------------------------------------------------ connect

// A connection being made in the evented mode: resolve, then try each
// address in turn. Owns itself until its last callback.
struct ConnectOp {
  TaskSystem* sys = nullptr;
  Task* task = nullptr;
  uint32_t id = 0;
  bool canceled = false;
  bool resolving = false;
  uv_getaddrinfo_t gai{};
  uv_connect_t connect{};
  addrinfo* results = nullptr;
  addrinfo* next = nullptr;
  UvStreamHandle* handle = nullptr;
  int last_error = 0;
  std::string where;

  ~ConnectOp() {
    if (results != nullptr) uv_freeaddrinfo(results);
  }

  static void cancel(Task* /*t*/, void* arg) {
    auto* op = static_cast<ConnectOp*>(arg);
    op->canceled = true;
    if (op->resolving) uv_cancel(reinterpret_cast<uv_req_t*>(&op->gai));
    if (op->handle != nullptr) op->handle->close();  // the connect callback sees ECANCELED
  }

  void fail(int status) const {
    lua_State* L = sys->L();
    lua_pushnil(L);
    errors::push_uv_error(L, status, where);
    sys->wake(task, id, 2);
  }

  // Returns false when the op is finished (and deleted).
  void try_next() {
    while (next != nullptr) {
      addrinfo* ai = next;
      next = next->ai_next;
      int status = 0;
      auto h = std::make_unique<UvStreamHandle>(sys->runtime().loop(), UvStreamHandle::Kind::Tcp, &status);
      if (status != 0) {
        last_error = status;
        continue;
      }
      handle = NativeHandle::release_to_loop(std::move(h));
      connect.data = this;
      status = uv_tcp_connect(&connect, handle->tcp(), ai->ai_addr, on_connect);
      if (status == 0) return;
      last_error = status;
      handle->close();
      handle = nullptr;
    }
    fail(last_error != 0 ? last_error : UV_EAI_NONAME);
    std::unique_ptr<ConnectOp> done(this);
  }

  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* op = static_cast<ConnectOp*>(req->data);
    op->resolving = false;
    op->results = res;
    if (op->canceled) {
      std::unique_ptr<ConnectOp> done(op);
      return;
    }
    if (status < 0) {
      op->fail(status);
      std::unique_ptr<ConnectOp> done(op);
      return;
    }
    op->next = res;
    op->try_next();
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* op = static_cast<ConnectOp*>(req->data);
    if (op->canceled) {
      if (op->handle != nullptr && !op->handle->closing()) op->handle->close();
      std::unique_ptr<ConnectOp> done(op);
      return;
    }
    if (status < 0) {
      op->last_error = status;
      op->handle->close();
      op->handle = nullptr;
      op->try_next();
      return;
    }
    uv_tcp_nodelay(op->handle->tcp(), 1);
    lua_State* L = op->sys->L();
    push_stream(L, std::make_unique<Stream>(*op->sys, op->handle));
    op->handle = nullptr;
    op->sys->wake(op->task, op->id, 1);
    std::unique_ptr<ConnectOp> done(op);
  }
};

// A stream over a descriptor connected or accepted with plain syscalls
// (where the caller could not wait). In the evented Io mode it is still a
// libuv stream: the Io mode belongs to each call, not to the object, so a
// later read in a task suspends that task.
std::unique_ptr<Stream> adopt_stream(TaskSystem& sys, int fd, UvStreamHandle::Kind kind) {
  if (sys.blocking()) return std::make_unique<Stream>(sys, fd);
  int status = 0;
  auto h = std::make_unique<UvStreamHandle>(sys.runtime().loop(), kind, &status);
  if (status != 0) return std::make_unique<Stream>(sys, fd);  // no handle: a plain descriptor then
  UvStreamHandle* handle = NativeHandle::release_to_loop(std::move(h));
  status =
      kind == UvStreamHandle::Kind::Tcp ? uv_tcp_open(handle->tcp(), fd) : uv_pipe_open(handle->pipe(), fd);
  if (status != 0) {
    handle->close();
    return std::make_unique<Stream>(sys, fd);
  }
  return std::make_unique<Stream>(sys, handle);
}

// A plain blocking connect to host:port, with a timeout (0: none).
int connect_blocking(lua_State* L, TaskSystem& sys, const char* host, const char* port, double timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    return push_error_result(L, rc == EAI_NONAME ? "EAI_NONAME" : "EAI_FAIL",
                             std::string(gai_strerror(rc)) + ": " + host);
  }
  int last = UV_ECONNREFUSED;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = sys_error();
      continue;
    }
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      if (!wait_fd(fd, POLLOUT, timeout)) {
        ::close(fd);
        freeaddrinfo(res);
        return push_error_result(L, "Timeout", std::string("could not connect within the timeout: ") + host);
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r = err == 0 ? 0 : -1;
      errno = err;
    }
    if (r == 0) {
      freeaddrinfo(res);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      lua_pushboolean(L, 1);
      push_stream(L, adopt_stream(sys, fd, UvStreamHandle::Kind::Tcp));
      return 2;
    }
    last = sys_error();
    ::close(fd);
  }
  freeaddrinfo(res);
  return push_error_result(L, last, std::string(host) + ":" + port);
}

// connectTcp(host, port, timeout, yieldable) -> (true, stream) | (true, nil, err) | yields
int net_connect_tcp(lua_State* L) {
  const char* host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1-65535");
  double timeout = luaL_optnumber(L, 3, 0);
  TaskSystem& sys = TaskSystem::from(L);
  std::string port_s = std::to_string(port);
  Task* t = sys.waiter(L, 4);
  if (t == nullptr) return connect_blocking(L, sys, host, port_s.c_str(), timeout);
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  auto op = std::make_unique<ConnectOp>();
  op->sys = &sys;
  op->task = t;
  op->where = std::string(host) + ":" + port_s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  op->gai.data = op.get();
  int rc =
      uv_getaddrinfo(sys.runtime().loop(), &op->gai, ConnectOp::on_resolved, host, port_s.c_str(), &hints);
  if (rc != 0) return push_error_result(L, rc, host);
  op->resolving = true;
  ConnectOp* raw = op.release();  // its callbacks own it now
  raw->id = sys.begin_wait(t, ConnectOp::cancel, raw);
  return sys.suspend(L, t);
}

// A Unix-socket connection in the evented mode.
struct PipeConnectOp {
  TaskSystem* sys = nullptr;
  Task* task = nullptr;
  uint32_t id = 0;
  bool canceled = false;
  uv_connect_t connect{};
  UvStreamHandle* handle = nullptr;
  std::string path;

  static void cancel(Task* /*t*/, void* arg) {
    auto* op = static_cast<PipeConnectOp*>(arg);
    op->canceled = true;
    if (op->handle != nullptr) op->handle->close();
  }

  static void on_connect(uv_connect_t* req, int status) {
    std::unique_ptr<PipeConnectOp> op(static_cast<PipeConnectOp*>(req->data));
    if (op->canceled) return;
    lua_State* L = op->sys->L();
    if (status < 0) {
      op->handle->close();
      lua_pushnil(L);
      errors::push_uv_error(L, status, op->path);
      op->sys->wake(op->task, op->id, 2);
      return;
    }
    push_stream(L, std::make_unique<Stream>(*op->sys, op->handle));
    op->sys->wake(op->task, op->id, 1);
  }
};

// connectPipe(path, timeout, yieldable)
int net_connect_pipe(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  TaskSystem& sys = TaskSystem::from(L);
  Task* t = sys.waiter(L, 3);
  if (t == nullptr) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (std::strlen(path) >= sizeof(addr.sun_path)) return push_error_result(L, UV_ENAMETOOLONG, path);
    std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return push_error_result(L, sys_error(), path);
    (void)timeout;  // a Unix-socket connect does not wait on the network
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      int err = sys_error();
      ::close(fd);
      return push_error_result(L, err, path);
    }
    lua_pushboolean(L, 1);
    push_stream(L, adopt_stream(sys, fd, UvStreamHandle::Kind::Pipe));
    return 2;
  }
  if (sys.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int status = 0;
  auto h = std::make_unique<UvStreamHandle>(sys.runtime().loop(), UvStreamHandle::Kind::Pipe, &status);
  if (status != 0) return push_error_result(L, status, path);
  auto op = std::make_unique<PipeConnectOp>();
  op->sys = &sys;
  op->task = t;
  op->path = path;
  op->handle = NativeHandle::release_to_loop(std::move(h));
  op->connect.data = op.get();
  uv_pipe_connect(&op->connect, op->handle->pipe(), path, PipeConnectOp::on_connect);
  PipeConnectOp* raw = op.release();
  raw->id = sys.begin_wait(t, PipeConnectOp::cancel, raw);
  return sys.suspend(L, t);
}

// ------------------------------------------------------------------ listen

constexpr const char* kListenerMeta = "evo.Listener";

class Listener;

// The libuv side of an evented listener.
class UvListenerHandle final : public NativeHandle {
 public:
  UvListenerHandle(uv_loop_t* loop, bool pipe, int* status) : pipe_(pipe) {
    *status = pipe ? uv_pipe_init(loop, &h_.pipe, 0) : uv_tcp_init(loop, &h_.tcp);
  }
  uv_handle_t* uv_handle() override { return &h_.handle; }
  void release() override;  // through its Listener
  uv_stream_t* stream() { return &h_.stream; }
  uv_tcp_t* tcp() { return &h_.tcp; }
  uv_pipe_t* pipe() { return &h_.pipe; }
  [[nodiscard]] bool is_pipe() const { return pipe_; }
  Listener* owner = nullptr;

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

// A listening socket. In handler mode every connection is accepted at once
// and handed to handler(stream) as a new task; otherwise accept() takes them.
class Listener {
 public:
  Listener(TaskSystem& sys, UvListenerHandle* h) : sys_(sys), handle_(h) { h->owner = this; }
  Listener(TaskSystem& sys, int fd, bool pipe, std::string path = std::string())
      : sys_(sys), fd_(fd), fd_is_pipe_(pipe), path_(std::move(path)) {}
  ~Listener() {
    close();
    if (twin_ref_ != LUA_NOREF) luaL_unref(sys_.L(), LUA_REGISTRYINDEX, twin_ref_);
    if (handler_ref_ != LUA_NOREF) luaL_unref(sys_.L(), LUA_REGISTRYINDEX, handler_ref_);
  }

  void bind_twin(lua_State* L, int twin_idx, int handler_idx) {
    lua_pushvalue(L, twin_idx);
    twin_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lua_isnoneornil(L, handler_idx)) {
      lua_pushvalue(L, handler_idx);
      handler_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }

  // accept(yieldable) -> (true, stream) | (true, nil, err) | yields
  int accept(lua_State* L, int yieldable_idx) {
    if (closed_) return push_error_result(L, "Closed", "the server is closed");
    if (handle_ != nullptr) {
      if (pending_) return accept_now(L);
      Task* t = sys_.waiter(L, yieldable_idx);
      if (t == nullptr) return accept_blocking(L, handle_fd());
      if (waiter_ != nullptr) return luaL_error(L, "another task is already accepting on this server");
      if (sys_.take_cancel(t)) {
        lua_pushboolean(L, 0);
        return 1;
      }
      waiter_ = t;
      waiter_id_ = sys_.begin_wait(t, cancel_accept, this);
      return sys_.suspend(L, t);
    }
    return accept_blocking(L, fd_);
  }

  void set_timeout(double seconds) { timeout_ = seconds; }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (waiter_ != nullptr) {
      Task* t = waiter_;
      waiter_ = nullptr;
      sys_.wake_error(t, waiter_id_, "Closed", "the server was closed");
    }
    if (handle_ != nullptr) {
      handle_->owner = nullptr;
      handle_->close();
      handle_ = nullptr;
    } else if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      if (!path_.empty()) ::unlink(path_.c_str());  // as libuv does for a bound pipe
    }
  }

  [[nodiscard]] int local_fd() const { return handle_ != nullptr ? handle_fd() : fd_; }

  // The runtime's exit sweep closed the handle first.
  void on_handle_closed() {
    handle_ = nullptr;
    closed_ = true;
  }

  static void on_connection(uv_stream_t* server, int status) {
    auto* h = static_cast<UvListenerHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(server)));
    Listener* self = h->owner;
    if (self == nullptr) return;
    lua_State* L = self->sys_.L();
    if (status < 0) {  // EMFILE and the like: tell a waiting accept()
      if (self->waiter_ != nullptr) {
        Task* t = self->waiter_;
        self->waiter_ = nullptr;
        lua_pushnil(L);
        errors::push_uv_error(L, status);
        self->sys_.wake(t, self->waiter_id_, 2);
      }
      return;
    }
    if (self->handler_ref_ != LUA_NOREF) {
      int top = lua_gettop(L);
      if (self->accept_now(L) == 2) {  // (true, stream)
        lua_remove(L, -2);
        self->emit_accepted(L, lua_gettop(L));
        lua_rawgeti(L, LUA_REGISTRYINDEX, self->handler_ref_);
        lua_insert(L, -2);
        self->sys_.spawn(L, 1);  // handler(stream) as a task; it runs on this drain
      }
      lua_settop(L, top);
      return;
    }
    self->pending_ = true;  // libuv holds it and pauses accepting until we take it
    if (self->waiter_ != nullptr) {
      Task* t = self->waiter_;
      self->waiter_ = nullptr;
      int n = self->accept_now(L);
      lua_remove(L, -n);  // drop the protocol's leading true
      self->sys_.wake(t, self->waiter_id_, n - 1);
    }
  }

 private:
  [[nodiscard]] int handle_fd() const {
    uv_os_fd_t fd = -1;
    uv_fileno(const_cast<UvListenerHandle*>(handle_)->uv_handle(), &fd);
    return fd;
  }

  static void cancel_accept(Task* /*t*/, void* arg) { static_cast<Listener*>(arg)->waiter_ = nullptr; }

  void emit_accepted(lua_State* L, int stream_idx) {
    if (twin_ref_ == LUA_NOREF) return;
    int fd = check_stream(L, stream_idx)->fd();
    events::emit(sys_.runtime(), twin_ref_, "CONNECTION_ACCEPTED", [fd](lua_State* Ls) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      if (fd >= 0 && getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
        push_address(Ls, reinterpret_cast<sockaddr*>(&peer), "remoteAddress", "remotePort");
      }
    });
  }

  // Takes the connection libuv holds: (true, stream) or (true, nil, err).
  int accept_now(lua_State* L) {
    pending_ = false;
    int status = 0;
    auto kind = handle_->is_pipe() ? UvStreamHandle::Kind::Pipe : UvStreamHandle::Kind::Tcp;
    auto h = std::make_unique<UvStreamHandle>(handle_->stream()->loop, kind, &status);
    if (status != 0) return push_error_result(L, status);
    UvStreamHandle* client = NativeHandle::release_to_loop(std::move(h));
    status = uv_accept(handle_->stream(), client->stream());
    if (status != 0) {
      client->close();
      return push_error_result(L, status);
    }
    if (!handle_->is_pipe()) uv_tcp_nodelay(client->tcp(), 1);
    lua_pushboolean(L, 1);
    push_stream(L, std::make_unique<Stream>(sys_, client));
    if (handler_ref_ == LUA_NOREF) emit_accepted(L, lua_gettop(L));
    return 2;
  }

  int accept_blocking(lua_State* L, int fd) {
    if (!wait_fd(fd, POLLIN, timeout_))
      return push_error_result(L, "Timeout", "no connection within the timeout");
    for (;;) {
      // Non-blocking, as a connected socket is: its reads and writes wait in
      // poll(), where their timeouts apply, never inside the kernel.
      int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (client < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_fd(fd, POLLIN, timeout_))
          return push_error_result(L, "Timeout", "no connection within the timeout");
        continue;
      }
      if (client < 0) return push_error_result(L, sys_error());
      if (!fd_is_pipe_ && handle_ == nullptr) {
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      lua_pushboolean(L, 1);
      push_stream(L, adopt_stream(sys_, client,
                                  fd_is_pipe_ ? UvStreamHandle::Kind::Pipe : UvStreamHandle::Kind::Tcp));
      emit_accepted(L, lua_gettop(L));
      return 2;
    }
  }

  TaskSystem& sys_;
  UvListenerHandle* handle_ = nullptr;
  int fd_ = -1;
  bool fd_is_pipe_ = false;
  bool closed_ = false;
  bool pending_ = false;
  double timeout_ = 0;
  Task* waiter_ = nullptr;
  uint32_t waiter_id_ = 0;
  int twin_ref_ = LUA_NOREF;
  int handler_ref_ = LUA_NOREF;
  std::string path_;  // a blocking-mode Unix socket's file, removed at close
};

void UvListenerHandle::release() { release_through(owner); }

void UvListenerHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

Listener* check_listener(lua_State* L, int idx) { return Boxed<Listener>::check(L, idx, kListenerMeta); }

// Blocking-mode listening socket.
int listen_fd(const sockaddr* addr, socklen_t len, int backlog, int* fd_out) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error();
  int one = 1;
  if (addr->sa_family != AF_UNIX) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, addr, len) != 0 || ::listen(fd, backlog) != 0) {
    int err = sys_error();
    ::close(fd);
    return err;
  }
  *fd_out = fd;
  return 0;
}

// listen(twin, handler|nil, {host, port, path, backlog}) -> (true, listener, port) | (true, nil, err)
int net_listen(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  TaskSystem& sys = TaskSystem::from(L);
  lua_getfield(L, 3, "backlog");
  int backlog = static_cast<int>(luaL_optinteger(L, -1, 511));
  lua_getfield(L, 3, "path");
  const char* path = lua_tostring(L, -1);
  lua_getfield(L, 3, "host");
  const char* host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 3, "port");
  int port = static_cast<int>(luaL_optinteger(L, -1, 0));
  lua_pop(L, 4);
  if (port < 0 || port > 65535) return luaL_error(L, "bad port %d", port);

  std::unique_ptr<Listener> listener;
  if (!sys.blocking()) {
    int status = 0;
    auto h = std::make_unique<UvListenerHandle>(sys.runtime().loop(), path != nullptr, &status);
    if (status != 0) return push_error_result(L, status);
    UvListenerHandle* handle = NativeHandle::release_to_loop(std::move(h));
    if (path != nullptr) {
      status = uv_pipe_bind(handle->pipe(), path);
    } else {
      sockaddr_storage addr{};
      if (!parse_ip(host, port, &addr)) {
        handle->close();
        return push_error_result(L, "EINVAL", std::string("not an IP address: ") + host);
      }
      status = uv_tcp_bind(handle->tcp(), reinterpret_cast<sockaddr*>(&addr), 0);
    }
    if (status == 0) status = uv_listen(handle->stream(), backlog, Listener::on_connection);
    if (status != 0) {
      handle->close();
      return push_error_result(L, status,
                               path != nullptr ? path : std::string(host) + ":" + std::to_string(port));
    }
    listener = std::make_unique<Listener>(sys, handle);
  } else {
    int fd = -1;
    int status = 0;
    if (path != nullptr) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
      status = listen_fd(reinterpret_cast<sockaddr*>(&addr), sizeof(addr), backlog, &fd);
    } else {
      sockaddr_storage addr{};
      if (!parse_ip(host, port, &addr))
        return push_error_result(L, "EINVAL", std::string("not an IP address: ") + host);
      socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      status = listen_fd(reinterpret_cast<sockaddr*>(&addr), len, backlog, &fd);
    }
    if (status != 0) {
      return push_error_result(L, status,
                               path != nullptr ? path : std::string(host) + ":" + std::to_string(port));
    }
    listener = std::make_unique<Listener>(sys, fd, path != nullptr, path != nullptr ? path : "");
  }
  listener->bind_twin(L, 1, 2);
  int fd = listener->local_fd();
  lua_pushboolean(L, 1);
  Boxed<Listener>::push(L, std::move(listener), kListenerMeta);
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  int actual_port = 0;
  if (path == nullptr && getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen) == 0) {
    actual_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  lua_pushinteger(L, actual_port);
  return 3;
}

int net_accept(lua_State* L) { return check_listener(L, 1)->accept(L, 2); }

int net_listener_close(lua_State* L) {
  check_listener(L, 1)->close();
  return 0;
}

int net_listener_timeout(lua_State* L) {
  check_listener(L, 1)->set_timeout(luaL_optnumber(L, 2, 0));
  return 0;
}

// Addresses of a stream's socket: peer(stream) / local(stream) -> {address, port} | nil
int net_address(lua_State* L, bool peer) {
  int fd = check_stream(L, 1)->fd();
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  if (fd < 0 || rc != 0 || (sa.ss_family != AF_INET && sa.ss_family != AF_INET6)) return 0;
  lua_createtable(L, 0, 2);
  push_address(L, reinterpret_cast<sockaddr*>(&sa), "address", "port");
  return 1;
}
int net_peer(lua_State* L) { return net_address(L, true); }
int net_local(lua_State* L) { return net_address(L, false); }

}  // namespace

int open_net(lua_State* L) {
  if (luaL_newmetatable(L, kListenerMeta) != 0) {
    lua_pushcfunction(L, Boxed<Listener>::gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"connectTcp", net_connect_tcp},
      {"connectPipe", net_connect_pipe},
      {"listen", net_listen},
      {"accept", net_accept},
      {"closeListener", net_listener_close},
      {"setAcceptTimeout", net_listener_timeout},
      {"peerAddress", net_peer},
      {"localAddress", net_local},
      {nullptr, nullptr},
  };
  open_stream_natives(L);  // the Stream metatable and its natives
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_insert(L, -2);
  lua_setfield(L, -2, "stream");
  return 1;
}

}  // namespace evo
