// evo_bench_ws_echo: a WebSocket echo server on libuv and Evo's own sans-I/O
// WebSocket engine (src/proto/ws_protocol: the same framing, unmasking and
// UTF-8 checks Evo's ws module runs), with nothing else: the C++ ceiling of
// bench/ws.sh, against which Evo's Lua-level server is measured.
//
//   evo_bench_ws_echo PORT [HOST]          prints "listening on PORT"
//
// The opening handshake is read minimally (the request head, its
// Sec-WebSocket-Key); every message is sent back as it came (text or binary),
// the engine answers pings and the closing handshake. No permessage-deflate.
#include <uv.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/ws_protocol.h"

namespace {

constexpr size_t kMaxHead = 8192;
std::array<char, 256 * 1024> g_read_buffer;

struct Client {
  uv_tcp_t tcp{};
  bool upgraded = false;
  bool closing = false;
  std::string head;  // the handshake request, until its end
  evo::ws::Session session{evo::ws::Role::Server};
  std::vector<evo::ws::Event> events;
};

// A write that libuv could not finish at once owns its bytes until done.
struct WriteReq {
  uv_write_t req{};
  std::string data;
  bool close_after = false;
};

void on_close(uv_handle_t* handle) { std::unique_ptr<Client>(static_cast<Client*>(handle->data)); }

void close_client(Client* c) {
  c->closing = true;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp)))
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
}

void on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(reinterpret_cast<WriteReq*>(req));
  auto* c = static_cast<Client*>(req->handle->data);
  if (status < 0 || w->close_after) close_client(c);
}

void send(Client* c, std::string data, bool close_after) {
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  uv_buf_t buf = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
  int n = uv_try_write(stream, &buf, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return close_client(c);
  if (static_cast<size_t>(n) == data.size()) {
    if (close_after) close_client(c);
    return;
  }
  auto w = std::make_unique<WriteReq>();
  w->data = std::move(data);
  w->data.erase(0, static_cast<size_t>(n));
  w->close_after = close_after;
  buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, stream, &buf, 1, on_write) < 0) return close_client(c);
  w.release();  // freed by on_write
}

// The value of header `name` (lower case) in a request head, or empty.
std::string_view header(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) break;
    std::string_view line = head.substr(start, end - start);
    size_t colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (size_t i = 0; i < colon && same; ++i)
        same = static_cast<char>(line[i] | 0x20) == name[i] || line[i] == name[i];
      if (same) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
      }
    }
    pos = end;
  }
  return {};
}

// Reads the handshake; returns how many bytes of `data` it took, or -1 when
// the connection was refused.
long handshake(Client* c, const char* data, size_t size) {
  size_t old = c->head.size();
  c->head.append(data, std::min(size, kMaxHead - old));
  size_t end = c->head.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c->head.size() == kMaxHead) {
      send(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n", true);
      return -1;
    }
    return static_cast<long>(size);
  }
  std::string_view head(c->head.data(), end + 2);
  std::string_view key = header(head, "sec-websocket-key");
  if (head.substr(0, 4) != "GET " || !evo::ws::valid_client_key(key)) {
    send(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", true);
    return -1;
  }
  send(c,
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
       "Upgrade\r\nSec-WebSocket-Accept: " +
           evo::ws::accept_key(key) + "\r\n\r\n",
       false);
  c->upgraded = true;
  size_t used = end + 4 - old;
  c->head = std::string();
  return static_cast<long>(used);
}

void echo(Client* c, const char* data, size_t size) {
  bool ok = c->session.feed({data, size}, &c->events);
  for (evo::ws::Event& e : c->events) {
    if (e.kind == evo::ws::Event::Kind::Message) c->session.send_message(e.data, e.binary);
  }
  c->events.clear();
  bool done = !ok || c->session.closed();
  if (c->session.has_output()) {
    send(c, c->session.take_output(), done);
  } else if (done) {
    close_client(c);
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Client*>(stream->data);
  if (nread < 0) return close_client(c);
  if (c->closing) return;
  const char* data = buf->base;
  auto size = static_cast<size_t>(nread);
  if (!c->upgraded) {
    long used = handshake(c, data, size);
    if (used < 0 || c->closing) return;
    data += used;
    size -= static_cast<size_t>(used);
  }
  if (size > 0 && c->upgraded) echo(c, data, size);
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto c = std::make_unique<Client>();
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c.get();
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c.release()->tcp), on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* b) { *b = uv_buf_init(g_read_buffer.data(), g_read_buffer.size()); },
      on_read);
  c.release();  // owned by its handle until on_close
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: evo_bench_ws_echo PORT [HOST]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr{};
  uv_ip4_addr(argc > 2 ? argv[2] : "127.0.0.1", std::atoi(argv[1]), &addr);
  int rc = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server), 1024, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "evo_bench_ws_echo: %s\n", uv_strerror(rc));
    return 1;
  }
  sockaddr_in bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&bound), &len);
  // SIGTERM ends the process through exit(), so that profilers (callgrind) write their output
  uv_signal_t term;
  uv_signal_init(loop, &term);
  uv_signal_start(
      &term, [](uv_signal_t*, int) { std::exit(0); }, SIGTERM);
  uv_unref(reinterpret_cast<uv_handle_t*>(&term));
  std::printf("listening on %d\n", ntohs(bound.sin_port));
  std::fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
