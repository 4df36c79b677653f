// evo_loadgen: a small HTTP/1.1 and WebSocket load generator on libuv, for
// benchmarks that must measure the server rather than the client (issue 13).
//
//   evo_loadgen [options] http://HOST:PORT/PATH    keep-alive or pipelined GETs
//   evo_loadgen [options] ws://HOST:PORT/PATH      WebSocket echo
//
// Each thread runs one libuv loop with its share of the connections. Every
// connection keeps `-p` requests (messages) in flight: when responses
// arrive, as many new requests go out in one write (with --batch, the next
// -p go out only once all of the last -p are answered, like wrk's pipelining
// script). Requests are serialised once and written from a shared buffer;
// responses are parsed in place (wire.h) with no allocation per response.
// WebSocket frames are masked with a fresh key each (RFC 6455 5.3: the keys
// come from OpenSSL's RAND_bytes, 64 at a time), carry a sequence number in
// their first bytes, and each echo is checked: its length and sequence
// number always, its whole payload on one message in --sample.
//
// The last line of the output is machine-readable:
//   RESULT mode=http rps=... requests=... non2xx=... errors=... p50_ms=... p99_ms=... cpu=... seconds=...
// where cpu is this process's CPU time over the run in % of one CPU; with -R
// it adds skipped=... (sends due on a connection that was not ready), with
// --pid server_cpu_s=... server_rss_kib=... (the server over the counted run).
//
// -R makes it an open loop: a total rate of requests, each connection sending
// in turn, so 10,000 connections at -R 10000 each send one request a second,
// spread evenly over the second. --warmup leaves the connection setup out of
// the figures.
#include <netdb.h>
#include <openssl/rand.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "wire.h"

namespace loadgen {
namespace {

struct Options {
  bool websocket = false;
  std::string host;
  std::string port;
  std::string path = "/";
  std::vector<std::string> headers;
  int connections = 50;
  int depth = 1;
  int threads = 1;
  double duration = 0;  // seconds; 0 with a count: run until the count
  uint64_t count = 0;
  size_t size = 32;  // WebSocket payload bytes
  bool binary = false;
  bool batch = false;
  bool latency = true;
  uint64_t sample = 64;  // check every Nth echo's whole payload
  double rate = 0;       // -R: requests per second in all, spread over the connections; 0: closed loop
  double warmup = 0;     // seconds before counting starts (connections open, caches warm)
  int server_pid = 0;    // --pid: report this process's CPU time and RSS over the counted run
};

// Latency histogram in nanoseconds: log-linear, 32 buckets per power of two
// (about 3% wide), a fixed array so recording never allocates.
class Histogram {
 public:
  void record(uint64_t ns) { ++counts_[index(ns)]; }
  void add(const Histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  }
  // The value below which a fraction p of the samples lie (bucket midpoint).
  [[nodiscard]] double percentile(double p) const {
    uint64_t total = 0;
    for (uint64_t c : counts_) total += c;
    if (total == 0) return NAN;
    auto target = static_cast<uint64_t>(std::ceil(p * static_cast<double>(total)));
    if (target == 0) target = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= target) return (lower(i) + lower(i + 1)) / 2.0;
    }
    return NAN;
  }

 private:
  static constexpr int kSubBits = 5;
  static size_t index(uint64_t v) {
    if (v < (1u << kSubBits)) return v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - kSubBits;
    return (static_cast<size_t>(shift + 1) << kSubBits) + ((v >> shift) & ((1u << kSubBits) - 1));
  }
  static double lower(size_t i) {
    if (i < (2u << kSubBits)) return static_cast<double>(i);
    size_t shift = (i >> kSubBits) - 1;
    return std::ldexp(static_cast<double>((1u << kSubBits) + (i & ((1u << kSubBits) - 1))),
                      static_cast<int>(shift));
  }
  std::array<uint64_t, 64 << kSubBits> counts_{};
};

struct Stats {
  uint64_t done = 0;  // responses, or echoed messages
  uint64_t non2xx = 0;
  uint64_t connect_errors = 0;
  uint64_t io_errors = 0;        // read or write failures, and peers closing
  uint64_t protocol_errors = 0;  // malformed responses or frames, failed handshakes
  uint64_t mismatches = 0;       // echoes that differ from what was sent
  uint64_t reconnects = 0;       // "Connection: close" honoured
  uint64_t skipped = 0;          // -R: sends due on a connection that was not ready
  const char* last_error = nullptr;
  Histogram latency;

  [[nodiscard]] uint64_t errors() const { return connect_errors + io_errors + protocol_errors + mismatches; }
  void add(const Stats& o) {
    done += o.done;
    non2xx += o.non2xx;
    connect_errors += o.connect_errors;
    io_errors += o.io_errors;
    protocol_errors += o.protocol_errors;
    mismatches += o.mismatches;
    reconnects += o.reconnects;
    skipped += o.skipped;
    if (o.last_error != nullptr) last_error = o.last_error;
    latency.add(o.latency);
  }
};

constexpr size_t kSeqDigits = 16;  // the sequence number at the start of each WebSocket payload
constexpr uint64_t kRetryMs = 10;  // after a failed connection, before the next attempt

class Worker;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Another process's CPU time (utime + stime, every thread) and resident set,
// from /proc: what --pid reports about the server over the counted run.
struct Usage {
  double cpu = NAN;  // seconds
  long rss_kib = -1;
};

Usage usage_of(int pid) {
  Usage u;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  if (FILE* f = std::fopen(path, "r")) {
    char buf[1024];
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // fields after the command name, which may hold spaces: skip past its ')'
    const char* p = std::strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    if (p != nullptr &&
        std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2)
      u.cpu = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::snprintf(path, sizeof(path), "/proc/%d/status", pid);
  if (FILE* f = std::fopen(path, "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr)
      if (std::sscanf(line, "VmRSS: %ld kB", &u.rss_kib) == 1) break;
    std::fclose(f);
  }
  return u;
}

// One client connection; its libuv handles live as long as the Worker.
class Conn {
 public:
  Conn(Worker* worker);
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  void start();
  void stop();
  void due();

 private:
  enum class Phase : uint8_t { Idle, Connecting, Handshake, Running, Closing };

  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);
  static void on_retry(uv_timer_t* timer);

  void connected();
  void send(uint32_t n);
  void flush(uint32_t n);
  void write_bytes(const char* data, size_t size);
  uint32_t read_http(const char* data, size_t size);
  uint32_t read_frames(const char* data, size_t size);
  bool read_handshake(const char** data, size_t* size);
  void check_payload(std::string_view piece);
  void complete(uint64_t now);
  void next_expected();
  void build_frames(uint32_t n);
  std::array<uint8_t, 4> next_mask();
  void fail(uint64_t* counter, const char* why);
  void reset();

  Worker* w_;
  const Options& opt_;
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  uv_timer_t retry_{};
  Phase phase_ = Phase::Idle;
  bool writing_ = false;
  bool retry_at_once_ = false;  // a "Connection: close" reconnect, not a failure
  uint32_t in_flight_ = 0;      // sent, not yet answered
  uint32_t pending_ = 0;        // to send once the write in progress is done
  // send times of the requests in flight, oldest first (a ring of -p entries)
  std::vector<uint64_t> sent_at_;
  uint32_t ring_first_ = 0;
  uint64_t now_ = 0;  // the time of the read being handled

  ResponseReader responses_;
  // WebSocket
  FrameReader frames_;
  std::string handshake_;
  std::string payload_;  // the next message's payload: the template with its sequence number
  std::string out_;      // frames being written
  std::array<uint8_t, 256> masks_{};
  size_t masks_used_ = sizeof(masks_);
  uint64_t send_seq_ = 0;
  uint64_t recv_seq_ = 0;
  uint64_t message_offset_ = 0;
  bool message_bad_ = false;
  std::array<char, kSeqDigits> expected_seq_{};
};

class Worker {
 public:
  Worker(const Options& opt, const sockaddr_storage& addr, int connections, uint64_t count, bool first)
      : opt(opt),
        addr(addr),
        first(first),
        connections_(connections),
        budget_(count > 0 ? count : UINT64_MAX),
        target_(count),
        rate_(opt.rate * connections / opt.connections) {
    // `depth` copies of the request back to back: n pipelined requests are
    // the first n * request_size bytes
    std::string one = "GET " + opt.path + " HTTP/1.1\r\nHost: " + opt.host + ":" + opt.port + "\r\n";
    for (const std::string& h : opt.headers) one += h + "\r\n";
    one += "\r\n";
    request_size = one.size();
    for (int i = 0; i < opt.depth; ++i) request += one;
    // the payload template: a sequence number, then 'a'..'z' repeated
    payload_template.resize(opt.size);
    for (size_t i = 0; i < opt.size; ++i) payload_template[i] = static_cast<char>('a' + i % 26);
    read_buffer.resize(256 * 1024);
  }

  void run() {
    uv_loop_init(&loop);
    start_ns = uv_hrtime();
    for (int i = 0; i < connections_; ++i) conns_.push_back(std::make_unique<Conn>(this));
    for (auto& c : conns_) c->start();
    uv_timer_init(&loop, &stop_timer_);
    stop_timer_.data = this;
    uv_timer_init(&loop, &rate_timer_);
    rate_timer_.data = this;
    if (rate_ > 0) {
      rate_start_ns_ = uv_hrtime();
      uv_timer_start(&rate_timer_, on_rate_tick, 1, 1);
    }
    if (opt.warmup > 0) {
      uv_timer_start(
          &stop_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->warm(); },
          static_cast<uint64_t>(opt.warmup * 1000), 0);
    } else {
      start_counting();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    conns_.clear();
  }

  // Ends the run: what arrives after this is not counted.
  void stop() {
    if (stopping) return;
    stopping = true;
    end_ns = uv_hrtime();
    if (first) sample_end();
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&rate_timer_), nullptr);
    for (auto& c : conns_) c->stop();
  }

  // The warm-up is over: what happened so far is forgotten (the -n budget
  // included) and the -d timer starts.
  void warm() {
    stats = Stats{};
    budget_ = target_ > 0 ? target_ : UINT64_MAX;
    start_counting();
  }

  // Takes up to n sends from the -n budget.
  uint32_t take(uint32_t n) {
    if (budget_ == UINT64_MAX) return n;
    uint32_t k = static_cast<uint32_t>(std::min<uint64_t>(n, budget_));
    budget_ -= k;
    return k;
  }
  void give_back(uint64_t n) {
    if (budget_ != UINT64_MAX) budget_ += n;
  }
  void completed(uint32_t n) {
    stats.done += n;
    if (target_ > 0 && stats.done >= target_) stop();
  }

  const Options& opt;
  const sockaddr_storage addr;
  const bool first;  // the first worker samples this process's and the server's CPU
  uv_loop_t loop{};
  Stats stats;
  std::string request;
  size_t request_size = 0;
  std::string payload_template;
  std::vector<char> read_buffer;  // shared: libuv reads one connection at a time
  bool stopping = false;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  // samples at the start and the end of the counted run (first worker only)
  double cpu_start = 0, cpu_end = 0;
  Usage server_start, server_end;

 private:
  void start_counting() {
    start_ns = uv_hrtime();
    if (first) {
      cpu_start = cpu_seconds();
      if (opt.server_pid > 0) server_start = usage_of(opt.server_pid);
    }
    if (opt.duration > 0) {
      uv_timer_start(
          &stop_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->stop(); },
          static_cast<uint64_t>(opt.duration * 1000), 0);
    }
  }
  void sample_end() {
    cpu_end = cpu_seconds();
    if (opt.server_pid > 0) server_end = usage_of(opt.server_pid);
  }

  // -R: an open loop. Every millisecond the sends due since the start go out,
  // one per connection in turn, so each connection sends every
  // connections/rate seconds and the sends of all of them are spread evenly
  // over that period (not bunched at its start, as a timer per connection
  // started together would be).
  static void on_rate_tick(uv_timer_t* t) {
    auto* w = static_cast<Worker*>(t->data);
    auto due = static_cast<uint64_t>(static_cast<double>(uv_hrtime() - w->rate_start_ns_) * w->rate_ / 1e9);
    while (w->issued_ < due && !w->stopping) w->conns_[w->issued_++ % w->conns_.size()]->due();
  }

  int connections_;
  uint64_t budget_;
  uint64_t target_;
  double rate_;  // this worker's share of -R
  uint64_t rate_start_ns_ = 0;
  uint64_t issued_ = 0;  // -R: sends due so far, made or skipped
  uv_timer_t stop_timer_{};
  uv_timer_t rate_timer_{};
  std::vector<std::unique_ptr<Conn>> conns_;
};

Conn::Conn(Worker* worker) : w_(worker), opt_(worker->opt), sent_at_(opt_.depth) {
  uv_timer_init(&w_->loop, &retry_);
  retry_.data = this;
  if (opt_.websocket) {
    payload_ = w_->payload_template;
    out_.resize(frame_size(opt_.size) * opt_.depth);
  }
}

void Conn::start() {
  reset();
  phase_ = Phase::Connecting;
  uv_tcp_init(&w_->loop, &tcp_);
  tcp_.data = this;
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&w_->addr), on_connect);
  if (rc < 0) fail(&w_->stats.connect_errors, uv_strerror(rc));
}

// -R: this connection's turn to send. A connection still connecting, or with
// -p requests unanswered, misses it (counted: the rate was not met).
void Conn::due() {
  if (phase_ != Phase::Running || in_flight_ + pending_ >= static_cast<uint32_t>(opt_.depth)) {
    ++w_->stats.skipped;
    return;
  }
  send(1);
}

void Conn::reset() {
  writing_ = false;
  in_flight_ = 0;
  pending_ = 0;
  ring_first_ = 0;
  responses_.reset();
  frames_.reset();
  send_seq_ = 0;
  recv_seq_ = 0;
  message_offset_ = 0;
  message_bad_ = false;
  next_expected();
}

void Conn::stop() {
  if (phase_ != Phase::Idle && phase_ != Phase::Closing) {
    phase_ = Phase::Closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_), nullptr);
}

// Counts a failure, closes the connection and, unless the run is over,
// connects again shortly. Requests in flight are lost (given back to -n).
void Conn::fail(uint64_t* counter, const char* why) {
  retry_at_once_ = counter == nullptr;
  if (counter != nullptr) {
    ++*counter;
    w_->stats.last_error = why;
  }
  if (phase_ == Phase::Closing || phase_ == Phase::Idle) return;
  w_->give_back(in_flight_ + pending_);
  in_flight_ = 0;
  pending_ = 0;
  phase_ = Phase::Closing;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
}

void Conn::on_close(uv_handle_t* handle) {
  auto* c = static_cast<Conn*>(handle->data);
  c->phase_ = Phase::Idle;
  if (!c->w_->stopping) uv_timer_start(&c->retry_, on_retry, c->retry_at_once_ ? 0 : kRetryMs, 0);
}

void Conn::on_retry(uv_timer_t* timer) {
  auto* c = static_cast<Conn*>(timer->data);
  if (!c->w_->stopping) c->start();
}

void Conn::on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (status == UV_ECANCELED) return;
  if (status < 0) return c->fail(&c->w_->stats.connect_errors, uv_strerror(status));
  if (c->phase_ != Phase::Connecting) return;
  c->connected();
}

void Conn::connected() {
  uv_tcp_nodelay(&tcp_, 1);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
  if (!opt_.websocket) {
    phase_ = Phase::Running;
    if (opt_.rate == 0) send(opt_.depth);
    return;
  }
  phase_ = Phase::Handshake;
  std::string key = websocket_key();
  responses_.expect_accept(websocket_accept(key));
  handshake_ = "GET " + opt_.path + " HTTP/1.1\r\nHost: " + opt_.host + ":" + opt_.port +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               "\r\nSec-WebSocket-Version: 13\r\n";
  for (const std::string& h : opt_.headers) handshake_ += h + "\r\n";
  handshake_ += "\r\n";
  write_bytes(handshake_.data(), handshake_.size());
}

// ------------------------------------------------------------------ sending

void Conn::send(uint32_t n) {
  if (w_->stopping || phase_ != Phase::Running) return;
  n = w_->take(n);
  if (n == 0) return;
  if (writing_) {
    pending_ += n;
    return;
  }
  flush(n);
}

void Conn::flush(uint32_t n) {
  if (opt_.latency) {
    uint64_t now = uv_hrtime();
    for (uint32_t i = 0; i < n; ++i) sent_at_[(ring_first_ + in_flight_ + i) % opt_.depth] = now;
  }
  in_flight_ += n;
  if (!opt_.websocket) {
    write_bytes(w_->request.data(), n * w_->request_size);
    return;
  }
  build_frames(n);
  write_bytes(out_.data(), n * frame_size(opt_.size));
}

// Writes at once when the socket takes it all (the usual case on a fast
// link: no write request, no callback), else queues the rest.
void Conn::write_bytes(const char* data, size_t size) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(size));
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
  if (n == static_cast<int>(size)) return;
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return fail(&w_->stats.io_errors, uv_strerror(n));
  buf = uv_buf_init(const_cast<char*>(data) + n, static_cast<unsigned>(size - n));
  writing_ = true;
  write_req_.data = this;
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, on_write);
  if (rc < 0) {
    writing_ = false;
    fail(&w_->stats.io_errors, uv_strerror(rc));
  }
}

void Conn::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  c->writing_ = false;
  if (status == UV_ECANCELED || c->phase_ == Phase::Closing) return;
  if (status < 0) return c->fail(&c->w_->stats.io_errors, uv_strerror(status));
  if (c->pending_ > 0) {
    uint32_t n = c->pending_;
    c->pending_ = 0;
    c->flush(n);
  }
}

std::array<uint8_t, 4> Conn::next_mask() {
  if (masks_used_ == masks_.size()) {
    if (RAND_bytes(masks_.data(), static_cast<int>(masks_.size())) != 1) std::abort();
    masks_used_ = 0;
  }
  std::array<uint8_t, 4> key;
  std::memcpy(key.data(), masks_.data() + masks_used_, 4);
  masks_used_ += 4;
  return key;
}

// The sequence number's hex digits, least significant first (so that short
// payloads still change from one message to the next).
void write_seq(char* out, size_t n, uint64_t seq) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i, seq >>= 4) out[i] = kHex[seq & 15];
}

void Conn::build_frames(uint32_t n) {
  char* out = out_.data();
  size_t prefix = std::min(kSeqDigits, opt_.size);
  for (uint32_t i = 0; i < n; ++i) {
    write_seq(payload_.data(), prefix, send_seq_++);
    out += write_client_frame(out, payload_, opt_.binary, next_mask());
  }
}

// ------------------------------------------------------------------ receiving

void Conn::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(handle->data);
  *buf = uv_buf_init(c->w_->read_buffer.data(), static_cast<unsigned>(c->w_->read_buffer.size()));
}

void Conn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(stream->data);
  if (nread == 0 || c->phase_ == Phase::Closing) return;
  if (nread < 0) {
    return c->fail(&c->w_->stats.io_errors,
                   nread == UV_EOF ? "the server closed the connection" : uv_strerror(nread));
  }
  if (c->w_->stopping) return;
  c->now_ = c->opt_.latency ? uv_hrtime() : 0;
  const char* data = buf->base;
  auto size = static_cast<size_t>(nread);
  uint32_t done = 0;
  if (!c->opt_.websocket) {
    done = c->read_http(data, size);
  } else if (c->phase_ == Phase::Handshake) {
    if (c->read_handshake(&data, &size)) done = c->read_frames(data, size);
  } else {
    done = c->read_frames(data, size);
  }
  if (done > 0) c->w_->completed(done);
  if (c->phase_ != Phase::Running || c->w_->stopping || c->opt_.rate > 0) return;
  // refill: as many as were answered, or (--batch) a whole batch once all are answered
  if (c->opt_.batch) {
    if (c->in_flight_ + c->pending_ == 0) c->send(c->opt_.depth);
  } else if (done > 0) {
    c->send(done);
  }
}

void Conn::complete(uint64_t now) {
  if (opt_.latency) w_->stats.latency.record(now - sent_at_[ring_first_]);
  ring_first_ = (ring_first_ + 1) % opt_.depth;
  --in_flight_;
}

// Returns how many responses were completed.
uint32_t Conn::read_http(const char* data, size_t size) {
  uint32_t done = 0;
  size_t at = 0;
  while (at < size) {
    size_t used = 0;
    ResponseReader::Response r;
    auto step = responses_.next(data + at, size - at, &used, &r);
    at += used;
    if (step == ResponseReader::Step::NeedMore) break;
    if (step != ResponseReader::Step::Response) {
      fail(&w_->stats.protocol_errors,
           step == ResponseReader::Step::Upgraded ? "unexpected 101 response" : responses_.error());
      return 0;
    }
    if (in_flight_ == 0) {
      fail(&w_->stats.protocol_errors, "a response to no request");
      return 0;
    }
    complete(now_);
    ++done;
    if (r.status < 200 || r.status > 299) ++w_->stats.non2xx;
    if (r.close) {
      // the server ends the connection after this response: count what
      // arrived, then connect again
      w_->completed(done);
      ++w_->stats.reconnects;
      fail(nullptr, nullptr);
      return 0;
    }
  }
  return done;
}

// The 101 response. True once the connection is upgraded; *data and *size
// are then what followed the response.
bool Conn::read_handshake(const char** data, size_t* size) {
  size_t used = 0;
  ResponseReader::Response r;
  auto step = responses_.next(*data, *size, &used, &r);
  if (step == ResponseReader::Step::NeedMore) return false;
  if (step != ResponseReader::Step::Upgraded) {
    fail(&w_->stats.protocol_errors,
         step == ResponseReader::Step::Error ? responses_.error() : "handshake answered without 101");
    return false;
  }
  if (!responses_.accept_ok() || !responses_.upgrade_ok()) {
    fail(&w_->stats.protocol_errors, "handshake: wrong Sec-WebSocket-Accept or Upgrade");
    return false;
  }
  *data += used;
  *size -= used;
  phase_ = Phase::Running;
  if (opt_.rate == 0) send(opt_.depth);
  return true;
}

void Conn::next_expected() { write_seq(expected_seq_.data(), kSeqDigits, recv_seq_); }

// Checks the next bytes of an echo against what was sent: the sequence number
// always, the rest on one message in opt_.sample.
void Conn::check_payload(std::string_view piece) {
  uint64_t off = message_offset_;
  message_offset_ += piece.size();
  if (off + piece.size() > opt_.size) {
    message_bad_ = true;  // longer than sent: the length check reports it
    return;
  }
  size_t prefix = std::min(kSeqDigits, opt_.size);
  if (off < prefix) {
    size_t n = std::min<size_t>(prefix - off, piece.size());
    if (std::memcmp(piece.data(), expected_seq_.data() + off, n) != 0) message_bad_ = true;
  }
  if (recv_seq_ % opt_.sample == 0 && off + piece.size() > prefix) {
    size_t skip = off < prefix ? prefix - off : 0;
    if (std::memcmp(piece.data() + skip, w_->payload_template.data() + off + skip, piece.size() - skip) != 0)
      message_bad_ = true;
  }
}

uint32_t Conn::read_frames(const char* data, size_t size) {
  uint32_t done = 0;
  size_t at = 0;
  uint8_t sent_opcode = opt_.binary ? 2 : 1;
  // until NeedMore, not until the data is used up: the end of a message is
  // reported by the call after its last payload bytes
  for (;;) {
    size_t used = 0;
    FrameReader::Piece piece;
    auto step = frames_.next(data + at, size - at, &used, &piece);
    at += used;
    switch (step) {
      case FrameReader::Step::NeedMore:
        return done;
      case FrameReader::Step::Payload:
        check_payload(piece.payload);
        break;
      case FrameReader::Step::Message:
        if (in_flight_ == 0) {
          fail(&w_->stats.protocol_errors, "an echo of no message");
          return 0;
        }
        if (message_bad_ || piece.message_size != opt_.size || piece.opcode != sent_opcode) {
          ++w_->stats.mismatches;
          w_->stats.last_error = "an echo differs from the message sent";
        }
        complete(now_);
        ++done;
        ++recv_seq_;
        message_offset_ = 0;
        message_bad_ = false;
        next_expected();
        break;
      case FrameReader::Step::Control:
        if (piece.opcode == 8) {
          fail(&w_->stats.io_errors, "the server sent a Close frame");
          return 0;
        }
        break;  // pings and pongs: not expected, skipped
      case FrameReader::Step::Error:
        fail(&w_->stats.protocol_errors, frames_.error());
        return 0;
    }
  }
  return done;
}

// ------------------------------------------------------------------ command line

[[noreturn]] void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: evo_loadgen [options] http://HOST:PORT/PATH | ws://HOST:PORT/PATH\n"
               "  -c N        connections (default 50)\n"
               "  -p N        requests (messages) in flight per connection (default 1)\n"
               "  -t N        threads, one libuv loop each (default 1)\n"
               "  -d SECONDS  duration (default 10; with -n, whichever comes first)\n"
               "  -n N        stop after N responses (echoes)\n"
               "  -s BYTES    WebSocket payload size (default 32)\n"
               "  -H LINE     extra request header, e.g. -H 'Accept: */*'\n"
               "  --binary    WebSocket binary messages (default text)\n"
               "  --batch     send the next -p requests only when all of the last are answered\n"
               "  --sample N  check the whole payload of every Nth echo (default 64; 1: all)\n"
               "  --no-latency  do not time each request\n"
               "  -R N        open loop: N requests (messages) per second in all, each connection\n"
               "              sending in turn (every -c/N seconds each), spread evenly\n"
               "  --warmup S  count nothing for the first S seconds (then -d and -n start)\n"
               "  --pid PID   report PID's CPU time and RSS over the counted run (Linux /proc)\n");
  std::exit(code);
}

bool parse_url(const std::string& url, Options* opt) {
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
    opt->websocket = true;
  } else {
    return false;
  }
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  opt->path = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos) {
    opt->host = authority;
    opt->port = "80";
  } else {
    opt->host = authority.substr(0, colon);
    opt->port = authority.substr(colon + 1);
  }
  if (!opt->host.empty() && opt->host.front() == '[' && opt->host.back() == ']')
    opt->host = opt->host.substr(1, opt->host.size() - 2);
  return !opt->host.empty() && !opt->port.empty();
}

uint64_t number(const char* flag, const char* text, uint64_t min) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) {
    std::fprintf(stderr, "evo_loadgen: bad value for %s: %s\n", flag, text);
    std::exit(2);
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options opt;
  std::string url;
  bool have_duration = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    // a short option's value may be attached, as wrk allows: -c50, -d10s
    const char* attached = nullptr;
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' && std::strchr("cptnsHdR", a[1]) != nullptr) {
      attached = argv[i] + 2;
      a.resize(2);
    }
    auto value = [&]() -> const char* {
      if (attached != nullptr) return attached;
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(0);
    } else if (a == "-c") {
      opt.connections = static_cast<int>(number("-c", value(), 1));
    } else if (a == "-p") {
      opt.depth = static_cast<int>(number("-p", value(), 1));
    } else if (a == "-t") {
      opt.threads = static_cast<int>(number("-t", value(), 1));
    } else if (a == "-n") {
      opt.count = number("-n", value(), 1);
    } else if (a == "-s") {
      opt.size = number("-s", value(), 0);
    } else if (a == "-H") {
      opt.headers.emplace_back(value());
    } else if (a == "-R" || a == "--warmup") {
      const char* text = value();
      char* end = nullptr;
      double v = std::strtod(text, &end);
      if (end == text || (*end != '\0' && !(a == "--warmup" && std::strcmp(end, "s") == 0)) || !(v > 0) ||
          !std::isfinite(v)) {
        std::fprintf(stderr, "evo_loadgen: bad value for %s: %s\n", a.c_str(), text);
        std::exit(2);
      }
      (a == "-R" ? opt.rate : opt.warmup) = v;
    } else if (a == "--pid") {
      opt.server_pid = static_cast<int>(number("--pid", value(), 1));
    } else if (a == "--sample") {
      opt.sample = number("--sample", value(), 1);
    } else if (a == "-d") {
      const char* text = value();
      char* end = nullptr;
      opt.duration = std::strtod(text, &end);
      if (end == text || (*end != '\0' && std::strcmp(end, "s") != 0) || !(opt.duration > 0)) {
        std::fprintf(stderr, "evo_loadgen: bad duration: %s\n", text);
        std::exit(2);
      }
      have_duration = true;
    } else if (a == "--binary") {
      opt.binary = true;
    } else if (a == "--batch") {
      opt.batch = true;
    } else if (a == "--no-latency") {
      opt.latency = false;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "evo_loadgen: unknown option %s\n", a.c_str());
      usage(2);
    } else if (url.empty()) {
      url = a;
    } else {
      usage(2);
    }
  }
  if (url.empty()) usage(2);
  if (!parse_url(url, &opt)) {
    std::fprintf(stderr, "evo_loadgen: expected http://HOST:PORT/PATH or ws://HOST:PORT/PATH, got %s\n",
                 url.c_str());
    std::exit(2);
  }
  if (!have_duration && opt.count == 0) opt.duration = 10;
  if (opt.threads > opt.connections) opt.threads = opt.connections;
  return opt;
}

sockaddr_storage resolve(const Options& opt) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(opt.host.c_str(), opt.port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "evo_loadgen: cannot resolve %s:%s: %s\n", opt.host.c_str(), opt.port.c_str(),
                 gai_strerror(rc));
    std::exit(1);
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return addr;
}

int run(const Options& opt) {
  sockaddr_storage addr = resolve(opt);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < opt.threads; ++i) {
    int conns = opt.connections / opt.threads + (i < opt.connections % opt.threads ? 1 : 0);
    uint64_t count = opt.count == 0
                         ? 0
                         : opt.count / opt.threads + (i < static_cast<int>(opt.count % opt.threads) ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(opt, addr, conns, count, i == 0));
  }
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers.size(); ++i) threads.emplace_back([w = workers[i].get()] { w->run(); });
  workers[0]->run();
  for (auto& t : threads) t.join();
  // over the counted run, as the first worker saw it
  const Worker& w0 = *workers[0];
  double counted = w0.end_ns > w0.start_ns ? static_cast<double>(w0.end_ns - w0.start_ns) / 1e9 : 0;
  double cpu = counted > 0 ? 100 * (w0.cpu_end - w0.cpu_start) / counted : NAN;

  Stats total;
  double seconds = 0;
  for (auto& w : workers) {
    total.add(w->stats);
    uint64_t end = w->end_ns != 0 ? w->end_ns : uv_hrtime();
    seconds = std::max(seconds, static_cast<double>(end - w->start_ns) / 1e9);
  }
  double rps = seconds > 0 ? static_cast<double>(total.done) / seconds : 0;
  const char* mode = opt.websocket ? "ws" : "http";
  const char* unit = opt.websocket ? "messages" : "requests";
  double p50 = opt.latency ? total.latency.percentile(0.5) / 1e6 : NAN;
  double p99 = opt.latency ? total.latency.percentile(0.99) / 1e6 : NAN;

  std::printf("%s://%s:%s%s  %d connections, %d in flight each%s, %d thread%s, %.2f s\n", mode,
              opt.host.c_str(), opt.port.c_str(), opt.path.c_str(), opt.connections, opt.depth,
              opt.batch ? " (batches)" : "", opt.threads, opt.threads == 1 ? "" : "s", seconds);
  if (opt.websocket) std::printf("  payload %zu bytes %s\n", opt.size, opt.binary ? "binary" : "text");
  std::printf("  %" PRIu64 " %s, %.1f %s/s", total.done, unit, rps, opt.websocket ? "msg" : "req");
  if (opt.latency) std::printf(", latency p50 %.3f ms p99 %.3f ms", p50, p99);
  std::printf(", loadgen cpu %.0f%%\n", cpu);
  if (!opt.websocket) std::printf("  non-2xx %" PRIu64 "\n", total.non2xx);
  if (opt.rate > 0) {
    std::printf("  rate %.1f/s asked, sends missed %" PRIu64 " (connecting, or -p unanswered)\n", opt.rate,
                total.skipped);
  }
  double server_cpu = w0.server_end.cpu - w0.server_start.cpu;
  if (opt.server_pid > 0) {
    std::printf("  server pid %d: cpu %.2f s (%.2f us per %s), rss %ld KiB at the end\n", opt.server_pid,
                server_cpu, 1e6 * server_cpu / static_cast<double>(total.done),
                opt.websocket ? "message" : "request", w0.server_end.rss_kib);
  }
  std::printf("  errors %" PRIu64 " (connect %" PRIu64 ", io %" PRIu64 ", protocol %" PRIu64
              ", mismatched echoes %" PRIu64 ")%s%s\n",
              total.errors(), total.connect_errors, total.io_errors, total.protocol_errors, total.mismatches,
              total.last_error != nullptr ? "; last: " : "",
              total.last_error != nullptr ? total.last_error : "");
  std::printf("RESULT mode=%s rps=%.1f %s=%" PRIu64 " non2xx=%" PRIu64 " errors=%" PRIu64
              " p50_ms=%.3f p99_ms=%.3f cpu=%.1f seconds=%.3f",
              mode, rps, unit, total.done, total.non2xx, total.errors(), p50, p99, cpu, seconds);
  if (opt.rate > 0) std::printf(" skipped=%" PRIu64, total.skipped);
  if (opt.server_pid > 0)
    std::printf(" server_cpu_s=%.3f server_rss_kib=%ld", server_cpu, w0.server_end.rss_kib);
  std::printf("\n");
  return total.done > 0 ? 0 : 1;
}

}  // namespace
}  // namespace loadgen

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  loadgen::Options opt = loadgen::parse_options(argc, argv);
  return loadgen::run(opt);
}
