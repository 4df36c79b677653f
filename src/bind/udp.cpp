// evo.udp: UDP sockets, colourless (net.udp() in lib/net.lua), on the Io's
// IoUdp (src/io/udp.cpp): receive() suspends a task that can yield and
// blocks (with its timeout) everywhere else.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <string>

#include "bind/io_call.h"
#include "io/io.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"
#include "lua/tasks.h"

namespace evo {
namespace {

constexpr const char* kUdpMeta = "evo.Udp";

int invalid_ip(lua_State* L, const char* host) {
  return answer_failure(L, "EINVAL", std::string("not an IP address: ") + host);
}

// A UDP socket for Lua: the Io's socket, and "Closed" once closed.
class Udp {
 public:
  explicit Udp(std::unique_ptr<IoUdp> io) : io_(std::move(io)) {}
  ~Udp() { close(); }

  int bind(lua_State* L, const char* host, int port) {
    if (closed_) return closed_result(L);
    sockaddr_storage addr{};
    if (!parse_ip(host, port, &addr)) return invalid_ip(L, host);
    int rc = io_->bind(reinterpret_cast<sockaddr*>(&addr));
    if (rc != 0) return answer_failure(L, rc, std::string(host) + ":" + std::to_string(port));
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
    int rc = io_->send(data, len, reinterpret_cast<sockaddr*>(&addr));
    if (rc != 0) return answer_failure(L, rc);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }

  // receive(yieldable) -> (true, data, ip, port) | (true, nil, err) | yields
  int receive(lua_State* L, int yieldable_idx) {
    if (closed_) return closed_result(L);
    if (io_->receiving() && TaskSystem::from(L).waiter(L, yieldable_idx) != nullptr)
      return luaL_error(L, "another task is already receiving on this socket");
    misuse_.clear();
    int n = io_call<Datagram>(
        L, yieldable_idx,
        [this](bool wait, DatagramDone done) { return io_->receive(wait, timeout_, std::move(done)); },
        [this](lua_State* Ls, Datagram d) { return push_datagram(Ls, std::move(d)); });
    // A misuse is only ever found inside the call: raised here, outside the Io.
    if (!misuse_.empty()) return luaL_error(L, "%s", misuse_.c_str());
    return n;
  }

  void set_timeout(double s) { timeout_ = s; }
  [[nodiscard]] int local_port() const { return closed_ ? 0 : io_->local_port(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    io_->close();
  }

 private:
  static int closed_result(lua_State* L) { return answer_failure(L, "Closed", "the socket is closed"); }

  int push_datagram(lua_State* L, Datagram d) {
    if (d.code != nullptr && std::strcmp(d.code, "NotBound") == 0) {
      misuse_ = d.message;
      return 0;
    }
    if (!d.ok()) return push_failure(L, d.status, d.code, d.message);
    lua_pushlstring(L, d.data.data(), d.data.size());
    lua_pushlstring(L, d.ip.data(), d.ip.size());
    lua_pushinteger(L, d.port);
    return 3;
  }

  std::unique_ptr<IoUdp> io_;
  std::string misuse_;
  bool closed_ = false;
  double timeout_ = 0;
};

Udp* check_udp(lua_State* L, int idx) { return Boxed<Udp>::check(L, idx, kUdpMeta); }

int udp_new(lua_State* L) {
  Boxed<Udp>::push(L, std::make_unique<Udp>(io_of(TaskSystem::from(L)).udp()), kUdpMeta);
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
