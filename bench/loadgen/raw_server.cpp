// evo_bench_raw_server: the simplest HTTP/1.1 hello-world server libuv allows,
// the ceiling for plain HTTP in the benchmarks and the server that shows
// whether a load generator, not the server, sets the pace.
//
//   evo_bench_raw_server PORT [HOST]       prints "listening on PORT"
//
// It does no real parsing: every "\r\n\r\n" ends a request (GETs have no
// body), and the answers to all requests ended by one read go out in one
// write of a canned response (no Date header). Connections are keep-alive.
#include <uv.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
constexpr size_t kResponseSize = sizeof(kResponse) - 1;
constexpr size_t kBatch = 64;  // responses per iovec

std::string g_responses;  // kBatch copies, written from directly
std::array<char, 256 * 1024> g_read_buffer;

struct Client {
  uv_tcp_t tcp{};
  int matched = 0;  // how much of "\r\n\r\n" the last bytes were
};

struct WriteReq {
  uv_write_t req{};
};

void on_close(uv_handle_t* handle) { std::unique_ptr<Client>(static_cast<Client*>(handle->data)); }

void close_client(Client* c) {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp)))
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
}

// Counts the requests the bytes end: the "\r\n\r\n" in them, even when split
// across reads.
size_t count_requests(Client* c, const char* p, size_t n) {
  static constexpr char kEnd[] = "\r\n\r\n";
  size_t count = 0;
  int m = c->matched;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] == kEnd[m]) {
      if (++m == 4) {
        ++count;
        m = 0;
      }
    } else {
      m = p[i] == '\r' ? 1 : 0;
    }
  }
  c->matched = m;
  return count;
}

void respond(Client* c, size_t count) {
  std::vector<uv_buf_t> bufs;
  bufs.reserve(count / kBatch + 1);
  while (count > 0) {
    size_t k = count < kBatch ? count : kBatch;
    bufs.push_back(uv_buf_init(g_responses.data(), static_cast<unsigned>(k * kResponseSize)));
    count -= k;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  int n = uv_try_write(stream, bufs.data(), static_cast<unsigned>(bufs.size()));
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return close_client(c);
  // skip what was written; queue the rest (the buffers are static)
  size_t skip = static_cast<size_t>(n);
  size_t first = 0;
  while (first < bufs.size() && skip >= bufs[first].len) skip -= bufs[first++].len;
  if (first == bufs.size()) return;
  bufs[first].base += skip;
  bufs[first].len -= skip;
  auto w = std::make_unique<WriteReq>();
  int rc =
      uv_write(&w->req, stream, bufs.data() + first, static_cast<unsigned>(bufs.size() - first),
               [](uv_write_t* req, int) { std::unique_ptr<WriteReq>(reinterpret_cast<WriteReq*>(req)); });
  if (rc < 0) return close_client(c);
  w.release();  // freed by the callback
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Client*>(stream->data);
  if (nread < 0) return close_client(c);
  size_t count = count_requests(c, buf->base, static_cast<size_t>(nread));
  if (count > 0) respond(c, count);
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
    std::fprintf(stderr, "usage: evo_bench_raw_server PORT [HOST]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < kBatch; ++i) g_responses += kResponse;
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr{};
  uv_ip4_addr(argc > 2 ? argv[2] : "127.0.0.1", std::atoi(argv[1]), &addr);
  int rc = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server), 1024, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "evo_bench_raw_server: %s\n", uv_strerror(rc));
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
