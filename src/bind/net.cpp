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
#include <functional>
#include <memory>
#include <string>

#include "bind/io_call.h"
#include "core/handle.h"
#include "io/io.h"
#include "io/stream.h"
#include "io/transport.h"
#include "io/workers.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/events.h"
#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo {
namespace {

// "1.2.3.4", 80 from a socket address.
// An IP socket address's text and port ("" and 0 for any other family).
std::string address_of(const sockaddr* sa, int* port) {
  char ip[INET6_ADDRSTRLEN] = "";
  *port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(in, ip, sizeof(ip));
    *port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, ip, sizeof(ip));
    *port = ntohs(in6->sin6_port);
  }
  return ip;
}

void push_address(lua_State* L, const sockaddr* sa, const char* ip_field, const char* port_field) {
  int port = 0;
  std::string ip = address_of(sa, &port);
  events::field(L, ip_field, std::string_view(ip));
  events::field(L, port_field, static_cast<double>(port));
}

// Pushes an Io result as a native call's results: (stream) or (nil, err).
int push_stream_result(lua_State* L, TaskSystem& sys, IoResult r) {
  if (!r.ok()) return push_failure(L, r.status, r.code, r.message);
  push_stream(L, std::make_unique<Stream>(sys, std::move(r.transport)));
  return 1;
}

// ------------------------------------------------------------------ connect

// connectTcp(host, port, timeout, yieldable) -> (true, stream) | (true, nil, err) | yields
int net_connect_tcp(lua_State* L) {
  std::string host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1-65535");
  double timeout = luaL_optnumber(L, 3, 0);
  TaskSystem& sys = TaskSystem::from(L);
  Io& io = io_of(sys);
  return io_call<IoResult>(
      L, 4,
      [&](bool wait, IoDone done) {
        return io.connect_tcp(host, static_cast<int>(port), timeout, wait, std::move(done));
      },
      [&sys](lua_State* Ls, IoResult r) { return push_stream_result(Ls, sys, std::move(r)); });
}

// connectPipe(path, timeout, yieldable)
int net_connect_pipe(lua_State* L) {
  std::string path = luaL_checkstring(L, 1);
  TaskSystem& sys = TaskSystem::from(L);
  Io& io = io_of(sys);
  return io_call<IoResult>(
      L, 3, [&](bool wait, IoDone done) { return io.connect_pipe(path, wait, std::move(done)); },
      [&sys](lua_State* Ls, IoResult r) { return push_stream_result(Ls, sys, std::move(r)); });
}

// ------------------------------------------------------------------ listen

constexpr const char* kListenerMeta = "evo.Listener";

// A listening socket for Lua. In handler mode every connection is accepted
// at once and handed to handler(stream) as a new task; otherwise accept()
// takes them. Each accepted connection is reported as CONNECTION_ACCEPTED.
class Listener {
 public:
  Listener(TaskSystem& sys, std::unique_ptr<IoListener> io) : sys_(sys), io_(std::move(io)) {
    // A worker's graceful stop closes the listener: accept() answers
    // "Closed", and the connections taken so far are the script's to finish.
    if (workers::active()) workers::on_drain(this, [this] { io_->close(); });
  }
  ~Listener() {
    workers::forget(this);
    io_->close();
    if (twin_ref_ != LUA_NOREF) luaL_unref(sys_.L(), LUA_REGISTRYINDEX, twin_ref_);
    if (handler_ref_ != LUA_NOREF) luaL_unref(sys_.L(), LUA_REGISTRYINDEX, handler_ref_);
    if (deliver_ref_ != LUA_NOREF) luaL_unref(sys_.L(), LUA_REGISTRYINDEX, deliver_ref_);
  }

  // `deliver_idx`: lib/net.lua's deliverer of CONNECTION_ACCEPTED (the
  // payload made in Lua: events::emit_values), or none.
  void bind_twin(lua_State* L, int twin_idx, int handler_idx, int deliver_idx) {
    lua_pushvalue(L, twin_idx);
    twin_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    if (lua_type(L, deliver_idx) == LUA_TFUNCTION) {
      lua_pushvalue(L, deliver_idx);
      deliver_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (lua_isnoneornil(L, handler_idx)) return;
    lua_pushvalue(L, handler_idx);
    handler_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    io_->accept_each([this](IoResult r) { on_each(std::move(r)); });
  }

  // accept(yieldable) -> (true, stream) | (true, nil, err) | yields
  int accept(lua_State* L, int yieldable_idx) {
    // A call that would wait while another task waits is misuse; one that
    // cannot wait takes its connection directly, as before.
    if (io_->accepting() && sys_.waiter(L, yieldable_idx) != nullptr)
      return luaL_error(L, "another task is already accepting on this server");
    return io_call<IoResult>(
        L, yieldable_idx,
        [this](bool wait, IoDone done) { return io_->accept(wait, timeout_, std::move(done)); },
        [this](lua_State* Ls, IoResult r) {
          int n = push_stream_result(Ls, sys_, std::move(r));
          if (n == 1) emit_accepted(Ls, lua_gettop(Ls));
          return n;
        });
  }

  void set_timeout(double seconds) { timeout_ = seconds; }
  void close() { io_->close(); }
  [[nodiscard]] int local_fd() const { return io_->fd(); }

 private:
  // A connection in handler mode: handler(stream) runs as a task, on this drain.
  void on_each(IoResult r) {
    if (!r.ok()) return;  // EMFILE and the like: the next one may succeed
    lua_State* L = sys_.L();
    int top = lua_gettop(L);
    push_stream_result(L, sys_, std::move(r));
    emit_accepted(L, lua_gettop(L));
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref_);
    lua_insert(L, -2);
    sys_.spawn(L, 1);
    lua_settop(L, top);
  }

  void emit_accepted(lua_State* L, int stream_idx) {
    if (twin_ref_ == LUA_NOREF) return;
    int fd = check_stream(L, stream_idx)->fd();
    // The peer's address, when the socket still has one (else no fields).
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    bool known = fd >= 0 && getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
    const auto* sa = reinterpret_cast<const sockaddr*>(&peer);
    Runtime& rt = sys_.runtime();
    auto fill = [known, sa](lua_State* Ls) {
      if (known) push_address(Ls, sa, "remoteAddress", "remotePort");
    };
    if (deliver_ref_ == LUA_NOREF) {
      events::emit(rt, twin_ref_, "CONNECTION_ACCEPTED", fill);
      return;
    }
    auto push = [known, sa](lua_State* Ls) {
      if (!known) return 0;  // (missing values are nil)
      int port = 0;
      std::string ip = address_of(sa, &port);
      lua_pushlstring(Ls, ip.data(), ip.size());
      lua_pushnumber(Ls, port);
      return 2;
    };
    events::emit_values(rt, twin_ref_, "CONNECTION_ACCEPTED", deliver_ref_, push, fill, 2);
  }

  TaskSystem& sys_;
  std::unique_ptr<IoListener> io_;
  double timeout_ = 0;
  int twin_ref_ = LUA_NOREF;
  int handler_ref_ = LUA_NOREF;
  int deliver_ref_ = LUA_NOREF;
};

Listener* check_listener(lua_State* L, int idx) { return Boxed<Listener>::check(L, idx, kListenerMeta); }

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

  std::string where = path != nullptr ? path : std::string(host) + ":" + std::to_string(port);
  sockaddr_storage addr{};
  ListenSpec spec;
  spec.backlog = backlog;
  if (path != nullptr) {
    spec.path = path;
  } else {
    if (!parse_ip(host, port, &addr))
      return answer_failure(L, "EINVAL", std::string("not an IP address: ") + host);
    spec.addr = reinterpret_cast<sockaddr*>(&addr);
    spec.addr_len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }
  int status = 0;
  std::unique_ptr<IoListener> io = io_of(sys).listen(spec, &status);
  if (io == nullptr) return answer_failure(L, status, where);
  auto listener = std::make_unique<Listener>(sys, std::move(io));
  listener->bind_twin(L, 1, 2, 4);
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
