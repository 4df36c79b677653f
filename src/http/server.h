// The HTTP/1.1 server engine: listener, connections, exchanges.
//
// One engine serves both of Evo's styles. In the task style (http.serve) each
// request runs its handler as a task with a (req, res) pair; in the event
// style (HttpServer) the server object receives HTTP_REQUEST_STARTED and
// HTTP_REQUEST_FINISHED and answers by request id. Everything on the wire is
// native: llhttp parses, responses are built into one output buffer per
// connection, and pipelined requests answered without waiting are written
// with one write.
//
// A connection handles one request at a time, in order (pipelining answers
// in order by construction): while a response is being produced, the bytes of
// the next requests wait in the connection's input buffer. Each connection is
// in one of these states:
//   Waiting     reading the next request's headers (header or idle deadline)
//   Body        the handler runs while the request body still arrives
//   Responding  the request is complete; the handler has not finished
//   Draining    the response finished before the body did: the rest of the
//               body is read and dropped, then the next request follows
//   Upgraded    the transport was handed to a net Stream (WebSocket); this ends
//   Closing     a last response is being flushed; then shutdown and close
#pragma once

#include <uv.h>
#include <lua.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/handle.h"
#include "http/pending.h"
#include "io/io.h"
#include "io/transport.h"
#include "proto/h2_session.h"
#include "proto/http_parser.h"
#include "proto/http_response.h"
#include "proto/tls.h"

namespace evo {
class Stream;
class TaskSystem;
struct Task;
class Runtime;
}  // namespace evo

namespace evo::http {

class Server;
class Connection;
class H2Connection;
class Exchange;

struct ServerConfig {
  Limits limits;
  double header_timeout = 10;  // seconds to receive a request's headers → 408
  double idle_timeout = 5;     // seconds a kept-alive connection may sit idle
  double body_timeout = 60;    // seconds between two pieces of a request body → 408
  double send_timeout = 60;    // seconds the peer may take none of our output → close
  size_t high_water = size_t{64} * 1024;
  bool events = false;                // the event style (HttpServer) instead of task handlers
  std::shared_ptr<tls::Context> tls;  // https: every connection is a TLS session
  // HTTP/2 (h2_connection.h): ALPN "h2" under TLS, the prior-knowledge
  // preface and "Upgrade: h2c" on cleartext.
  bool http2 = false;
  h2::Options h2;
};

// What an exchange's response and body reads go through: the HTTP/1.1
// connection, or one HTTP/2 stream (H2Stream). The bindings (src/bind/
// http.cpp) see only this, so res/req have one implementation for both.
class ExchangeIo {
 public:
  virtual ~ExchangeIo() = default;
  virtual void send_head(Exchange& ex) = 0;
  virtual void write_body(Exchange& ex, std::string_view chunk) = 0;
  virtual void finish(Exchange& ex) = 0;
  virtual void send_whole(Exchange& ex, std::string_view body) = 0;
  virtual void send_continue(Exchange& ex) = 0;
  // An informational (1xx, not 101) response before the head; `lines`:
  // validated header lines ("Name: value\r\n"...).
  virtual void send_informational(Exchange& ex, int status, std::string_view lines) = 0;
  // True while more than the high-water mark waits to be written.
  [[nodiscard]] virtual bool congested() const = 0;
  // A task waiting for the output to drain below the high-water mark.
  virtual void wait_writable(Task* t, uint32_t id) = 0;
  virtual void cancel_wait_writable() = 0;
  // The handler took the body the exchange held: read more of it.
  virtual void body_consumed() = 0;
  virtual void flush() = 0;
  // Sends length bytes of the open file fd (taken over) from offset after
  // the output before it. Returns 0 (or a libuv error) when that is done
  // now, or Transport::kPending: done(status) follows (0 or a libuv error).
  virtual int64_t send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) = 0;
  virtual void cancel_file() = 0;
  virtual void close_soon() = 0;  // the response cannot be completed: end it after what is queued
  virtual void close() = 0;       // now
  [[nodiscard]] virtual bool closed() const = 0;
  // Ends a response that cannot be completed (its handler failed after the
  // head went out): the client must see it incomplete.
  virtual void cut(Exchange& ex) = 0;
  // The HTTP/1.1 connection (upgrades, WebSocket), nullptr over HTTP/2.
  virtual Connection* http1() { return nullptr; }
};

// Everything an exchange holds about one request and its response, apart
// from its identity (the shared_ptr control block, the res slot). A
// connection recycles an exchange for its next request: Exchange::recycle
// resets every field listed here to its initial value — a field added here
// must be added there (tests/http/reuse.spec.lua checks a recycled exchange
// starts clean).
struct ExchangeState {
  // (Boxed: a connection's parser and the exchange it hands a request to
  // swap the two pointers, RequestParser::swap_request. Never null.)
  std::unique_ptr<Request> req = std::make_unique<Request>();
  uint32_t id = 0;
  std::string remote_ip;
  int remote_port = 0;
  ExchangeIo* conn = nullptr;          // nullptr once the exchange is over or the connection gone
  std::unique_ptr<ExchangeIo> stream;  // HTTP/2: the stream conn points to, owned here
  Task* handler = nullptr;             // the handler's task (task style) until it returns

  // The request body as it arrives: bytes not yet read by the handler.
  std::string body;
  bool body_done = false;
  int body_error_status = 0;  // 413/400 when the body failed mid-way
  std::string body_error;
  bool continue_sent = false;
  Task* body_reader = nullptr;
  uint32_t body_reader_id = 0;

  // The response.
  int status = 200;
  std::string reason;  // empty: the standard phrase
  std::string head;    // header lines set so far
  bool has_length = false;
  uint64_t length = 0;
  bool headers_sent = false;
  bool chunked = false;
  bool finished = false;
  uint64_t written = 0;
  bool close_after = false;  // "Connection: close" was chosen or asked for
  bool abort_reported = false;
  // Response trailers (res:trailer), sent after the body: a chunked
  // HTTP/1.1 body's last chunk, or HTTP/2's trailing HEADERS. Names as given.
  HeaderList trailers;
};

// One request and its response. Shared between the connection (while the
// exchange is current), its handler's task (TaskSystem::hold, until the
// handler returns) and the event style's table of requests by id, so any may
// go first. Lua's `res` does not own it: it names it by slot (below).
class Exchange : public std::enable_shared_from_this<Exchange>, public ExchangeState {
 public:
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange();

  // Makes a finished exchange nobody else holds new again, for the next
  // request of its connection (Connection::dispatch): every res that named
  // it now finds nothing (its slot's generation moves on, as when the
  // destructor gives the slot up), and every field is reset but the remote
  // address (the same connection's); strings and lists keep their capacity
  // (dispatch swaps `req` with its parser's; the head buffer stays).
  void recycle();

  // Header lines set by the handler: adds one and returns true, or returns
  // false with nothing changed; header_error says why ("" if nothing is
  // wrong) — for the message, and for lines written elsewhere. checked:
  // the pair was accepted before (lib/evo/checkedheaders.lua keeps those of
  // the FFI paths): the byte checks are skipped, the special names still
  // handled. *as_line (when given) says whether the pair went into the head
  // as its own line "name: value\r\n" and nothing else (false for a name
  // the engine acts on: Content-Length, Connection, Transfer-Encoding).
  bool add_header_if_valid(std::string_view name, std::string_view value, bool checked = false,
                           bool* as_line = nullptr);
  static std::string header_error(std::string_view name, std::string_view value);
  // The same for a trailer field: also refuses the fields a trailer must
  // not carry (RFC 9110 6.5.1: framing, routing, controls, auth...).
  static std::string trailer_error(std::string_view name, std::string_view value);
  // (The size first, then four bytes: `== "HEAD"` called strlen and memcmp,
  // and every response asks two or three times.)
  [[nodiscard]] bool head_request() const {
    return req->method.size() == 4 && std::memcmp(req->method.data(), "HEAD", 4) == 0;
  }

  // The slot Lua's `res` names this exchange by (0: none yet); see ExchangeRef.
  uint32_t slot = 0;

 private:
  void release_slot();
};

// How Lua's `res` refers to its exchange without owning it: a slot number and
// the slot's generation when it was taken. A `res` therefore needs no
// finalizer (one per request was a fifth of the garbage collector's work on
// a pipelined hello), and a `res` kept after its exchange is gone finds the
// slot reused or empty instead of a dangling pointer. Slots are per thread
// and never shrink: there are as many as exchanges were alive at once.
struct ExchangeRef {
  uint32_t slot = 0;
  uint32_t gen = 0;
  static ExchangeRef of(Exchange& ex);  // gives ex a slot if it has none
  [[nodiscard]] Exchange* get() const;  // nullptr once the exchange is gone
};

// The slots' array and size (server.cpp keeps them in a vector): plain
// thread_local values, constinit, so that get() is inlined and reads them
// without the guard and call a thread_local with a constructor costs (about
// 20 instructions a lookup, two or three lookups a request).
struct ExchangeSlot {
  Exchange* ex = nullptr;
  uint32_t gen = 0;
};
extern constinit thread_local ExchangeSlot* g_exchange_slots;
extern constinit thread_local size_t g_exchange_slot_count;

inline Exchange* ExchangeRef::get() const {
  if (slot >= g_exchange_slot_count) return nullptr;  // (a ref read by the FFI fast path is checked too)
  const ExchangeSlot& s = g_exchange_slots[slot];
  return s.gen == gen ? s.ex : nullptr;
}

// A listening server's shared state. Owned (shared_ptr) by its listener
// handle, by every connection and by the Lua object, so a graceful close can
// let connections finish after the listener is gone.
class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(Runtime& rt, ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; 0 or a libuv error.
  int listen(const char* host, int port, int backlog);
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] size_t connection_count() const { return connections_.size(); }

  // Stops accepting; idle connections close now, busy ones after their
  // response. `done` runs once every connection is gone.
  void stop(std::function<void()> done);
  // A worker's graceful stop (src/io/workers.h): stop() without closing
  // idle keep-alive connections at once — a client may have just sent its
  // next request on one, which a close would reset. Each one's next request
  // is answered with "Connection: close"; one that stays idle goes after
  // `idle_seconds`.
  void drain(double idle_seconds);
  // Closes every connection at once (runtime shutdown).
  void abort_all();

  const ServerConfig& config() const { return config_; }
  Runtime& runtime() { return rt_; }
  TaskSystem& tasks();
  DateCache& date() { return date_; }

  // Lua side: the object events go to, the handler (task style) and the
  // per-request runner.
  int object_ref = LUA_NOREF;
  int handler_ref = LUA_NOREF;
  int runner_ref = LUA_NOREF;
  // Event style: the runner of HTTP_REQUEST_STARTED and _FINISHED, given the
  // request's values instead of a payload (events::emit_task_values).
  int request_runner_ref = LUA_NOREF;

  // Event style: exchanges waiting for their response, by request id.
  PendingExchanges pending;
  // Event style: the last kAnswered ids answered by sendResponse or fail, so
  // a second answer is told AlreadySent rather than Closed. Noting one is a
  // store; asking (only once an id is no longer pending) a scan.
  static constexpr size_t kAnswered = 4096;
  void note_answered(uint32_t id) { answered_[answered_next_++ % kAnswered] = id; }
  [[nodiscard]] bool answered(uint32_t id) const {
    return std::find(answered_.begin(), answered_.end(), id) != answered_.end();
  }
  uint32_t next_id() { return ++last_id_; }

  // Finished exchanges kept for the next request of any connection: a
  // connection that goes idle gives its exchange here rather than keeping it
  // (10,000 idle keep-alive connections would hold 10,000 of them), and the
  // next request, on whichever connection, takes one back (no allocation
  // per keep-alive request). Bounded; one whose buffers grew large is not kept.
  static constexpr size_t kPooledExchanges = 64;
  void pool_exchange(std::shared_ptr<Exchange> ex);
  std::shared_ptr<Exchange> take_pooled_exchange();
  // Request parsers likewise (456 bytes each, a quarter of an idle
  // connection): a connection holds one from its first byte of a request
  // until the last request its input holds is answered, then gives it here;
  // its next read takes one. Between requests a parser holds no state, so
  // whichever connection takes it starts clean.
  void pool_parser(std::unique_ptr<RequestParser> p);
  std::unique_ptr<RequestParser> take_parser();

  // Task style: a runner whose batch ran out of requests waits inside its
  // next() for the first request of the next read, on any connection
  // (park_batch_runner), instead of returning and going back to the pool.
  // A keep-alive read brings one request: taking a pooled coroutine, the
  // runner's entry, its xpcall and its return, then parking it, cost about
  // as much as the request itself. Waits unbounded: released (its next()
  // returns nothing) when the server stops.
  Task* parked_runner = nullptr;
  uint32_t parked_wait = 0;
  // The last task parked, anchored (TaskSystem::anchor) until another one
  // parks or the server ends: a coroutine.resume of its coroutine by a
  // script takes it out of the wait without its cancel hook, and it may then
  // finish; parked_runner must still point at a Task, never at freed memory.
  Task* anchored_runner = nullptr;
  int runner_anchor = LUA_NOREF;
  void release_parked_runner();

  // Connection bookkeeping: a connection ends through remove(), or, once an
  // upgrade took its transport, at the next sweep (reap_soon()).
  void remove(Connection* c);
  void reap_soon();
  // True when t is the handler task of one of this server's requests.
  [[nodiscard]] bool runs_handler(const Task* t) const;
  void on_listener_closed();
  void sweep();  // enforces every connection's deadlines

 private:
  friend class Connection;
  friend class SweepTimer;
  friend bool park_batch_runner(TaskSystem& sys);
  void on_connection(IoResult r);
  void close_listener();
  void release_lua();
  void maybe_done();

  Runtime& rt_;
  ServerConfig config_;
  std::unique_ptr<IoListener> listener_;
  std::shared_ptr<Server> listening_;  // itself, while it listens
  class SweepTimer* sweep_ = nullptr;
  std::list<std::unique_ptr<Connection>> connections_;
  bool reap_ = false;
  DateCache date_;
  std::string host_;
  int port_ = 0;
  uint32_t last_id_ = 0;
  std::array<uint32_t, kAnswered> answered_{};  // (ids start at 1: 0 is none)
  size_t answered_next_ = 0;
  std::vector<std::shared_ptr<Exchange>> exchange_pool_;
  std::vector<std::unique_ptr<RequestParser>> parser_pool_;
  bool stopping_ = false;
  uint64_t drain_idle_ms_ = 0;  // drain(): how long idle connections may stay
  std::function<void()> on_stopped_;
};

// One client connection: the HTTP/1.1 engine on a Transport (the socket, TLS,
// the buffers, files). Owned by its server; it ends when its transport's
// handle has closed, or when an upgrade hands the transport to a Stream.
class Connection final : public TransportUser, public ExchangeIo, public Corkable {
 public:
  // H2: an HTTP/2 connection (h2_) took the transport over for good.
  enum class State : uint8_t { Waiting, Body, Responding, Draining, Upgraded, Closing, H2 };

  Connection(std::shared_ptr<Server> server, std::unique_ptr<Transport> transport);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();  // after accept: reading, header deadline

  // Response side, called from Lua through the exchange.
  void send_head(Exchange& ex) override;
  void write_body(Exchange& ex, std::string_view chunk) override;
  void finish(Exchange& ex) override;
  void send_whole(Exchange& ex, std::string_view body) override;
  // Whether send_whole(ex, ...) now would only append to the output and
  // move on to the next request: no Lua (no task woken, no event, no
  // advance() into the next request's handler) and no I/O (no flush, no
  // close). The event style's FFI answer (src/bind/http.cpp) needs that: a
  // C function called from compiled Lua must not run Lua nor allocate in it.
  [[nodiscard]] bool answers_quietly(const Exchange& ex) const;
  // The 100 Continue interim response, before the handler's first body read.
  void send_continue(Exchange& ex) override;
  void send_informational(Exchange& ex, int status, std::string_view lines) override;
  // True while more than the high-water mark waits to be written.
  [[nodiscard]] bool congested() const override;
  // A task waiting for the output to drain below the high-water mark.
  void wait_writable(Task* t, uint32_t id) override;
  void cancel_wait_writable() override { writer_ = nullptr; }
  // Reading the body is slow to keep up: stop or restart reading.
  void body_consumed() override;

  // Hands the transport (socket, TLS session, the input read past the
  // request) to a net Stream after a 101 answer to an upgrade request (the
  // WebSocket server); this connection then ends. Needs the output written
  // out first (drained()). Nothing is duplicated: the same handle goes on.
  std::unique_ptr<Stream> detach_to_stream(Exchange& ex);
  [[nodiscard]] bool drained() const { return t_->drained(); }
  void wait_drained(Task* t, uint32_t id) {
    drain_all_ = true;
    wait_writable(t, id);
  }
  void flush() override;  // hands the output to the transport
  // Corkable: the answers advance() left corked go out (see flush_soon).
  void flush_corked() override;
  // The same now, when corked (the server stops: idle() must see them sent).
  void flush_now();
  // Sends length bytes of the open file fd (taken over) from offset after
  // the output before it. Returns the bytes sent when that is done now, or
  // Transport::kPending: done(status) follows (0 or a libuv error).
  int64_t send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) override;
  void cancel_file() override { t_->cancel_file(); }
  void close_soon() override;  // flush, then close
  void close() override;       // now
  [[nodiscard]] bool closed() const override { return closed_; }
  Connection* http1() override { return this; }
  [[nodiscard]] H2Connection* h2() const { return h2_.get(); }
  // Ends a response that cannot be completed (its handler failed after the
  // head went out): what was written goes out, then the connection closes,
  // without the end of the body, so the client knows it is incomplete.
  void cut(Exchange& ex) override;

  [[nodiscard]] State state() const { return state_; }
  // Inside its read callback's parse loop: a response finished now lets the
  // loop go on with the next request (nothing is parsed or started, nobody
  // woken, from inside finish()).
  [[nodiscard]] bool in_advance() const { return in_advance_; }
  [[nodiscard]] const Exchange* current() const { return current_.get(); }
  [[nodiscard]] size_t pending_output() const { return t_->pending(); }
  [[nodiscard]] bool secure() const { return t_->tls() != nullptr; }
  // Between requests with nothing read or to write: closing loses nothing.
  [[nodiscard]] bool idle() const { return state_ == State::Waiting && t_->buffered() == 0 && t_->drained(); }
  // Between requests, kept alive: the sweep gives its buffers back.
  void release_idle_memory();

  // TransportUser
  void on_input() override;
  void on_output() override;
  void on_transport_closed() override;
  void release_transport() override { close(); }

  // The deadline of what the connection waits for (uv_now ms; 0: none):
  // the next request's headers, an idle keep-alive, the next piece of a
  // request body, or the linger after a last response. Output that the peer
  // does not take has its own deadline (send_deadline), whatever the state.
  enum class Wait : uint8_t { Header, Idle, Body, Linger };
  uint64_t deadline = 0;
  Wait waiting_for = Wait::Header;
  uint64_t send_deadline = 0;
  void on_deadline();
  void on_send_deadline();
  std::list<std::unique_ptr<Connection>>::iterator self;  // in the server's list

 private:
  void received();
  void on_end_of_input();
  void advance();
  void flush_soon();
  bool parse_step();
  bool on_parsed(RequestParser::Result r);
  void feed_body();
  void dispatch(bool complete);
  void request_completed();
  void response_done(Exchange& ex);
  void fail_request(int status);
  void emit_finished(Exchange& ex);
  void finish_closing();
  void after_output();
  void wake_writer_if_ready();
  void set_reading(bool on) { t_->set_reading(on); }
  void update_deadline();
  void arm_send_deadline();
  [[nodiscard]] bool output_pending() const { return !t_->drained(); }
  void client_left();
  void cancel_handler(Exchange& ex);
  void body_timed_out();
  void wake_body_reader(Exchange& ex);
  void connection_lost();
  void report_abort(Exchange& ex);
  void run_task(std::shared_ptr<Exchange> ex);
  friend std::shared_ptr<Exchange> pull_batch_request(TaskSystem& sys, Task** task);
  friend bool park_batch_runner(TaskSystem& sys);
  friend int pull_event_fast(Server& server, std::shared_ptr<Exchange>* out);
  friend std::shared_ptr<Exchange> pull_request_fast();
  [[gnu::always_inline]] inline int pull_whole(Task* task, bool events, std::shared_ptr<Exchange>* out);
  std::shared_ptr<Exchange> pull_next();
  void shutdown_done();
  bool try_h2();
  bool upgrade_h2c();
  void become_h2(const std::shared_ptr<Exchange>& upgraded);
  friend class H2Connection;

  std::shared_ptr<Server> server_;
  std::unique_ptr<Transport> t_;
  // Held while a request is on its way or more input waits (Server::take_parser).
  std::unique_ptr<RequestParser> parser_;
  RequestParser& parser() {
    if (parser_ == nullptr) parser_ = server_->take_parser();
    return *parser_;
  }
  State state_ = State::Waiting;
  std::string head_spare_;  // a header buffer handed to each exchange in turn
  bool closed_ = false;
  bool eof_seen_ = false;
  bool in_advance_ = false;
  bool shut_down_ = false;
  bool served_any_ = false;
  bool tls_close_sent_ = false;
  bool drain_all_ = false;           // the writer waits for all output, not just below the mark
  bool stopped_for_output_ = false;  // parsing waits for the output to drain below the mark
  size_t send_mark_ = 0;             // pending bytes when the send deadline was armed
  uint64_t sent_mark_ = 0;           // bytes sent then
  std::shared_ptr<Exchange> current_;
  // The last finished exchange, recycled by dispatch for the next request
  // when nothing else holds it any more (its task let it go, no res can
  // reach it): no allocation, and the request's buffers keep their capacity.
  std::shared_ptr<Exchange> spare_;
  std::shared_ptr<Exchange> new_exchange(bool* own);  // *own: it is this connection's spare_
  // A batch's runner asks for the next request (pull_next): dispatch hands
  // the exchange over here instead of starting a task for it.
  bool pulling_ = false;
  std::shared_ptr<Exchange> pulled_;
  // A parser result the FFI pull left for the classic one (pull_event_fast).
  std::optional<RequestParser::Result> deferred_;
  Task* writer_ = nullptr;
  uint32_t writer_id_ = 0;
  std::string remote_ip_;
  int remote_port_ = 0;
  std::unique_ptr<H2Connection> h2_;
};

// The error code a handler's body read fails with, by the status to answer.
inline const char* body_error_code(int status) {
  return status == 413 ? "BodyTooLarge" : status == 408 ? "Timeout" : "BadRequest";
}

// Shared by both protocols (server.cpp).
// Hands the handler waiting in req:read() what the exchange holds: body,
// its end, or its error.
void wake_body_reader(Server& server, Exchange& ex);
// The event style's HTTP_REQUEST_STARTED / HTTP_REQUEST_FINISHED /
// HTTP_CONNECTION_ABORTED (once per exchange).
void emit_started(Server& server, Exchange& ex);
// Both events of a request whose body has come, in one task (the request
// runner's); false when that cannot be (then emit_started + emit_finished).
// Run at once (from a read callback) with `batch`, its task goes on with
// the next whole requests of that read (next_event_request).
bool emit_whole_request(Server& server, Exchange& ex, Connection* batch = nullptr);
// Pushes a request's values for the event style's request runner: id,
// method, path, query, and with `finished` its headers and body (moved out).
int push_request_values(lua_State* L, Exchange& e, bool finished);
void emit_finished(Server& server, Exchange& ex);
void report_abort(Server& server, Exchange& ex);
// Starts the task-style handler of an exchange. With `batch`, a handler
// run at once (from the connection's read callback) may go on with the next
// requests of the same read on its coroutine (next_batch_request).
void run_handler_task(Server& server, std::shared_ptr<Exchange> ex, Connection* batch = nullptr);
// For the runner of the task running at once from a connection's read
// callback: the next request parsed from that read, now its task's (the
// task holds it, as run_handler_task's); nullptr when there is none, or
// when the caller is not that task or cannot take another request (its
// Future was seen, a cancellation waits). Requests stay one at a time and
// in order: the next one is parsed only once the last was answered.
std::shared_ptr<Exchange> next_batch_request(TaskSystem& sys);
// When next_batch_request had nothing: makes the batch task calling its
// server's parked runner (see Server::parked_runner) if it may be one, and
// returns true: the caller suspends it (sys.suspend) and its next() returns
// the first request of a later read, or nothing once the server stops.
bool park_batch_runner(TaskSystem& sys);
// The server's parked runner, taken (for the first request of a read, run
// at once from the read callback), or nullptr: then start a runner as ever.
Task* take_parked_runner(Server& server, Connection* batch);
// Resumes it now with the nvalues on top of the runtime's stack as its
// next()'s results, serving the read of `batch` as its batch.
void run_parked_runner(Server& server, Task* t, Connection* batch, int nvalues);
// The same for the event style's batch (emit_whole_request): the next whole
// request of the read (one with a body still coming, or trailers, goes as
// its events, in tasks of their own); the server's pending map holds it.
std::shared_ptr<Exchange> next_event_request(TaskSystem& sys);
int pull_event_fast(Server& server, std::shared_ptr<Exchange>* out);
// The same for http.serve's batch (src/bind/http.cpp fast::next_request):
// as next_batch_request, for the common case only; nullptr sends the caller
// to the classic next().
std::shared_ptr<Exchange> pull_request_fast();
// What both take: the next request for the batch task calling, or nullptr.
std::shared_ptr<Exchange> pull_batch_request(TaskSystem& sys, Task** task);
// Runs task t now; with `batch`, t may take the next requests of that
// connection's read (next_batch_request, next_event_request).
void run_batch_now(TaskSystem& sys, Task* t, Connection* batch);
// Cancels the handler task of an exchange, if it still runs.
void cancel_handler(Server& server, Exchange& ex);

// Lua bindings (src/bind/http.cpp; open_http is declared in lua/modules.h).
// Pushes the header table of a request: lower-case names, repeated headers
// joined per RFC 9110 (", "; "; " for cookie), set-cookie as a list.
void push_headers(lua_State* L, const Request& req);
// The same for any field list (a request's trailers).
void push_fields(lua_State* L, const HeaderList& headers);
// Pushes a request's headers packed in one string, for the event style's
// payload (lib/HttpServer.lua makes payload.headers from it with
// unpackHeaders when first read): one string instead of a table per request.
void push_packed_headers(lua_State* L, const Request& req);
// Pushes res (a userdata) for the task runner of lib/http.lua, which makes
// req around it (the request line is read from it when first asked for).
void push_request(lua_State* L, const std::shared_ptr<Exchange>& ex);

}  // namespace evo::http
