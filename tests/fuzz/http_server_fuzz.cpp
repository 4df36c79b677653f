// libFuzzer target: the HTTP server's connection state machine, end to end.
//
// One Evo runtime serves http.serve with handlers that exercise every path of
// the engine (whole and streamed bodies, chunked responses, handlers that
// yield, raise or never answer). Each input is sent by a real TCP client in
// one go, followed by a half-close; the loop then runs until the server has
// closed the connection. The server must never crash, leak or hang: every
// connection ends within the time bound, every answer starts with a status
// line, and no connection is left behind. Run by `make test-fuzz`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "lua/runtime.h"

namespace {

constexpr const char kServer[] = R"(
local http = require("http")
local task = require("task")
server = assert(http.serve({port = 0, headerTimeout = 0.5, idleTimeout = 0.5, maxBodyBytes = 4096,
                            maxHeaderBytes = 2048, maxUriBytes = 512}, function(req, res)
  local p = req.path
  if p == "/body" then return res:send(200, req:body()) end
  if p == "/read" then
    while true do
      local chunk, err = req:read()
      if not chunk then break end
    end
    return res:send(204)
  end
  if p == "/stream" then
    res:header("x-q", "1")
    res:write("a")
    res:write(req.query)
    return res:finish()
  end
  if p == "/yield" then
    task.yield()
    return res:send(200, "y")
  end
  if p == "/error" then error("handler failure") end
  if p == "/noreply" then return end
  if p == "/headers" then
    local n = 0
    for _ in pairs(req.headers) do n = n + 1 end
    return res:send(200, tostring(n), {["x-n"] = tostring(n)})
  end
  if p == "/params" then
    local n = 0
    for _ in pairs(req:queryParams()) do n = n + 1 end
    return res:send(200, tostring(n))
  end
  res:send(200, "ok")
end))
port = server.port
)";

std::unique_ptr<evo::Runtime> g_runtime;
int g_port = 0;

int connections() {
  lua_State* L = g_runtime->L();
  luaL_dostring(L, "return server:connections()");
  int n = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  return n;
}

// A fresh client connection. Hundreds of thousands of runs go through
// loopback: a connect that fails for want of a local port is retried after
// letting the loop run (the harness's limit, not the server's).
int connect_client() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(g_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    ::close(fd);
    uv_run(g_runtime->loop(), UV_RUN_NOWAIT);
    ::usleep(1000);
  }
  __builtin_trap();  // the server stopped accepting
}

// Closes with a reset: no TIME_WAIT left behind on the client's side.
void close_client(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  g_runtime = std::make_unique<evo::Runtime>(evo::RuntimeOptions{});
  lua_State* L = g_runtime->L();
  if (luaL_dostring(L, kServer) != 0) __builtin_trap();
  lua_getglobal(L, "port");
  g_port = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  // (Handler errors are expected and reported on stderr: run with
  // -close_fd_mask=2 to keep them off the fuzzer's output.)
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uv_loop_t* loop = g_runtime->loop();
  int fd = connect_client();
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server already closed: fine
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  ::fcntl(fd, F_SETFL, O_NONBLOCK);

  std::string answer;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    uv_run(loop, UV_RUN_NOWAIT);
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      answer.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;  // closed (or reset)
    if (std::chrono::steady_clock::now() > deadline) __builtin_trap();        // the server hung
    ::usleep(100);
  }
  close_client(fd);
  // Whatever came back is HTTP: it starts with a status line.
  if (!answer.empty() && answer.compare(0, 9, "HTTP/1.1 ") != 0) __builtin_trap();
  // And the server forgets the connection.
  while (connections() != 0) {
    if (std::chrono::steady_clock::now() > deadline) __builtin_trap();
    uv_run(loop, UV_RUN_NOWAIT);
  }
  // Objects Lua still holds (a request's res) are freed by the collector:
  // collect now, so what remains allocated after an input is a real leak.
  lua_gc(g_runtime->L(), LUA_GCCOLLECT, 0);
  return 0;
}
