// The HTTP/1.1 server engine (see http_server.h for the state machine).
#include "modules/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <unistd.h>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "modules/stream.h"

#include "lua/errors.h"
#include "lua/events.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo::http {

namespace {

uint64_t to_ms(double seconds) {
  return seconds > 0 ? static_cast<uint64_t>(std::llround(seconds * 1000.0)) : 0;
}

// How much unparsed input a busy connection buffers before it stops reading:
// enough for a deep pipeline of requests, bounded against a flood.
constexpr size_t kMaxQueuedInput = size_t{256} * 1024;

// The payload fields every request event carries: requestID, method, path, query.
void request_fields(lua_State* L, const Exchange& e) {
  events::field(L, "requestID", static_cast<double>(e.id));
  events::field(L, "method", e.req.method);
  std::string_view target(e.req.target);
  size_t q = target.find('?');
  events::field(L, "path", target.substr(0, q));
  events::field(L, "query", q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
}

}  // namespace

// ------------------------------------------------------------ exchange

bool Exchange::add_header(std::string_view name, std::string_view value, std::string* error) {
  if (!valid_header_name(name)) {
    *error = "invalid header name '" + std::string(name) + "'";
    return false;
  }
  if (!valid_header_value(value)) {
    *error = "invalid header value for '" + std::string(name) + "' (CR, LF or NUL)";
    return false;
  }
  if (name.size() == 14 && strncasecmp(name.data(), "content-length", 14) == 0) {
    uint64_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9') {
        *error = "invalid Content-Length '" + std::string(value) + "'";
        return false;
      }
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    has_length = true;
    length = n;
    return true;  // written by send_head, from `length`
  }
  if (name.size() == 10 && strncasecmp(name.data(), "connection", 10) == 0) {
    if (value.size() == 5 && strncasecmp(value.data(), "close", 5) == 0) close_after = true;
    return true;  // written by send_head
  }
  if (name.size() == 17 && strncasecmp(name.data(), "transfer-encoding", 17) == 0) return true;  // ours
  append_header(head, name, value);
  return true;
}

// ------------------------------------------------------------ handles

class Listener final : public NativeHandle {
 public:
  Listener(uv_loop_t* loop, std::shared_ptr<Server> server) : server_(std::move(server)) {
    uv_tcp_init(loop, &tcp_);
  }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&tcp_); }
  void release() override { server_->abort_all(); }  // the server and its connections
  uv_tcp_t* tcp() { return &tcp_; }
  Server* server() { return server_.get(); }

 protected:
  void on_closed() override { server_->on_listener_closed(); }

 private:
  uv_tcp_t tcp_{};
  std::shared_ptr<Server> server_;
};

// The server and its timer each may go first (the runtime's exit sweep
// closes the timer directly): each forgets the other when it goes.
class SweepTimer final : public NativeHandle {
 public:
  SweepTimer(uv_loop_t* loop, Server* server) : server_(server) { uv_timer_init(loop, &timer_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  [[nodiscard]] bool internal() const override { return true; }
  void start(uint64_t every_ms) {
    uv_timer_start(&timer_, on_tick, every_ms, every_ms);
    uv_unref(uv_handle());  // the connections keep the loop alive, not the sweep
  }
  void forget_server() { server_ = nullptr; }

 protected:
  void on_closed() override {
    if (server_ != nullptr) server_->sweep_ = nullptr;
  }

 private:
  static void on_tick(uv_timer_t* t) {
    auto* self = static_cast<SweepTimer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(t)));
    if (self->server_ != nullptr) self->server_->sweep();
  }
  uv_timer_t timer_{};
  Server* server_;
};

// ------------------------------------------------------------ server

Server::Server(Runtime& rt, ServerConfig config)
    : rt_(rt), config_(std::move(config)), read_buffer_(std::make_unique<char[]>(kReadBufferSize)) {}

Server::~Server() {
  if (sweep_ != nullptr) {
    sweep_->forget_server();
    sweep_->close();
  }
  release_lua();
}

TaskSystem& Server::tasks() { return rt_.tasks(); }

int Server::listen(const char* host, int port, int backlog) {
  sockaddr_storage addr{};
  if (uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    return UV_EINVAL;
  }
  auto l = std::make_unique<Listener>(rt_.loop(), shared_from_this());
  int rc = uv_tcp_bind(l->tcp(), reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(l->tcp()), backlog, on_connection);
  Listener* raw = NativeHandle::release_to_loop(std::move(l));
  if (rc != 0) {
    raw->close();
    return rc;
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(raw->tcp(), reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  host_ = host;
  listener_ = raw;

  // One timer enforces every connection's deadlines, at a quarter of the
  // shortest timeout (bounded to 50 ms..1 s): a connection costs no timer.
  double shortest = 0;
  for (double t :
       {config_.header_timeout, config_.idle_timeout, config_.body_timeout, config_.send_timeout}) {
    if (t > 0 && (shortest == 0 || t < shortest)) shortest = t;
  }
  uint64_t every = shortest > 0 ? std::clamp<uint64_t>(to_ms(shortest) / 4, 50, 1000) : 1000;
  sweep_ = NativeHandle::release_to_loop(std::make_unique<SweepTimer>(rt_.loop(), this));
  sweep_->start(every);
  return 0;
}

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* l = static_cast<Listener*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(listener)));
  Server* self = l->server();
  if (status < 0 || self->stopping_) return;
  int rc = 0;
  auto conn = std::make_unique<Connection>(self->shared_from_this(), &rc);
  if (rc != 0) return;
  Connection* c = NativeHandle::release_to_loop(std::move(conn));
  if (uv_accept(listener, c->stream()) != 0) {
    c->close();
    return;
  }
  c->start();
}

void Server::attach(Connection* c) {
  c->next = first_;
  if (first_ != nullptr) first_->prev = c;
  first_ = c;
  ++connections_;
}

void Server::detach(Connection* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (first_ == c) first_ = c->next;
  c->prev = c->next = nullptr;
  --connections_;
  maybe_done();
}

void Server::stop(std::function<void()> done) {
  if (done) on_stopped_ = std::move(done);
  if (stopping_) {
    maybe_done();
    return;
  }
  stopping_ = true;
  if (listener_ != nullptr) listener_->close();  // on_listener_closed follows
  // Idle connections go now; the others finish their current response and
  // close after it (their "Connection: close" says so).
  for (Connection* c = first_; c != nullptr;) {
    Connection* next = c->next;
    if (c->idle()) {
      c->close();  // nothing in flight either way: no linger
    } else {
      c->close_soon();
    }
    c = next;
  }
  maybe_done();
}

void Server::abort_all() {
  stopping_ = true;
  if (listener_ != nullptr) listener_->close();
  for (Connection* c = first_; c != nullptr; c = c->next) c->close();
}

void Server::on_listener_closed() {
  listener_ = nullptr;
  if (object_ref != LUA_NOREF && config_.events) {
    events::emit_task(rt_, object_ref, "SERVER_STOPPED_LISTENING", runner_ref, [this](lua_State* L) {
      events::field(L, "port", static_cast<double>(port_));
      events::field(L, "host", host_);
    });
  }
  maybe_done();
}

void Server::maybe_done() {
  if (!stopping_ || connections_ != 0) return;
  if (sweep_ != nullptr) {
    sweep_->forget_server();
    sweep_->close();
    sweep_ = nullptr;
  }
  if (on_stopped_) {
    auto done = std::move(on_stopped_);
    on_stopped_ = nullptr;
    done();
  }
  // Nothing will call into Lua any more: let the Lua objects go.
  if (listener_ == nullptr) release_lua();
}

void Server::release_lua() {
  lua_State* L = rt_.L();
  if (L == nullptr) return;
  for (int* ref : {&object_ref, &handler_ref, &runner_ref}) {
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
  }
}

void Server::sweep() {
  uint64_t now = uv_now(rt_.loop());
  for (Connection* c = first_; c != nullptr;) {
    Connection* next = c->next;  // the deadlines may close c
    if (c->send_deadline != 0 && c->send_deadline <= now) c->on_send_deadline();
    if (!c->closing() && c->deadline != 0 && c->deadline <= now) c->on_deadline();
    c = next;
  }
}

// ------------------------------------------------------------ connection

Connection::Connection(std::shared_ptr<Server> server, int* status)
    : server_(std::move(server)), parser_(server_->config().limits) {
  *status = uv_tcp_init(server_->runtime().loop(), &tcp_);
  if (*status == 0) server_->attach(this);
}

Connection::~Connection() {
  if (prev != nullptr || next != nullptr || server_->first_ == this) server_->detach(this);
}

void Connection::start() {
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int len = sizeof(peer);
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
      uv_ip6_name(in6, ip, sizeof(ip));
      remote_port_ = ntohs(in6->sin6_port);
    } else {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&peer);
      uv_ip4_name(in, ip, sizeof(ip));
      remote_port_ = ntohs(in->sin_port);
    }
    remote_ip_ = ip;
  }
  if (server_->config().tls != nullptr) tls_ = tls::Session::accept(server_->config().tls);
  set_reading(true);
  update_deadline();
}

void Connection::on_closed() {
  connection_lost();
  if (server_->first_ == this || prev != nullptr || next != nullptr) server_->detach(this);
}

// The connection is gone (closed, reset): whoever still holds its exchange
// learns it, and the event style reports the abort.
void Connection::connection_lost() {
  if (file_job_ != nullptr) {
    *file_job_owner_ = nullptr;  // its completion no longer reaches this connection
    file_job_->stop();
    file_job_ = nullptr;
  }
  if (file_) {
    ::close(file_->fd);
    auto done = std::move(file_->done);
    file_.reset();
    done(UV_ECANCELED);
  }
  if (writer_ != nullptr) {
    Task* t = writer_;
    writer_ = nullptr;
    server_->tasks().wake_error(t, writer_id_, "Closed", "the connection was closed");
  }
  if (current_ == nullptr) return;
  std::shared_ptr<Exchange> ex = std::move(current_);
  ex->conn = nullptr;
  cancel_handler(*ex);
  if (ex->body_reader != nullptr) {
    Task* t = ex->body_reader;
    ex->body_reader = nullptr;
    server_->tasks().wake_error(t, ex->body_reader_id, "Closed", "the connection was closed");
  }
  if (!ex->finished && server_->config().events) {
    server_->pending.erase(ex->id);
    report_abort(*ex);
  }
}

// The event style hears once that a request's client went away.
void Connection::report_abort(Exchange& ex) {
  if (ex.abort_reported || ex.finished || !server_->config().events) return;
  ex.abort_reported = true;
  if (server_->object_ref == LUA_NOREF) return;
  uint32_t id = ex.id;
  events::emit_task(server_->runtime(), server_->object_ref, "HTTP_CONNECTION_ABORTED", server_->runner_ref,
                    [id](lua_State* L) { events::field(L, "requestID", static_cast<double>(id)); });
}

void Connection::on_alloc(uv_handle_t* h, size_t /*suggested*/, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(NativeHandle::from(h));
  // One buffer per server: what a read brings is parsed at once, and only a
  // partial request is copied out, so idle connections hold no buffer.
  buf->base = c->server_->read_buffer();
  buf->len = Server::kReadBufferSize;
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(s)));
  if (nread > 0) {
    c->received(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (nread == 0) return;
  c->eof_ = true;
  c->set_reading(false);
  if (nread != UV_EOF) {
    c->client_left();  // reset or failed: nobody to answer
    return;
  }
  switch (c->state_) {
    case State::Closing:
      // Else finish_closing sees eof_ after the flush; but a TLS session
      // that never completed its handshake has nothing it could flush.
      if (c->shut_down_ || (c->tls_ != nullptr && !c->tls_->handshake_done())) c->close();
      return;
    case State::Body: {
      // Half-closed mid-body: the handler learns it from req:read() and may
      // still answer.
      Exchange& ex = *c->current_;
      ex.body_error_status = 400;
      ex.body_error = "the connection ended before the request body did";
      ex.close_after = true;
      c->wake_body_reader(ex);
      c->report_abort(ex);
      return;
    }
    case State::Responding:
      // The client left while its handler runs (as Node's server does by
      // default): the handler is cancelled and the connection closes, so a
      // flood of clients that ask and leave holds no descriptors.
      c->client_left();
      return;
    case State::Draining:
      c->close_soon();  // the rest of a body nobody wants will not come
      return;
    default:
      // Between requests: what was asked in full before the end is still
      // answered, and what is owed is written (advance closes after it).
      c->advance();
  }
}

// The client is gone (reset, or left while its handler ran): its handler
// sees Canceled at its next blocking call, the socket closes now.
void Connection::client_left() {
  if (current_ != nullptr) {
    report_abort(*current_);
    cancel_handler(*current_);
  }
  close();
}

void Connection::cancel_handler(Exchange& ex) {
  if (ex.handler == nullptr || server_->tasks().closed()) return;
  Task* t = ex.handler;
  ex.handler = nullptr;
  server_->tasks().cancel(t);
}

// TLS: the records in, the plaintext into the input buffer, handshake
// replies out. False when the session failed (its alert is on its way).
bool Connection::decrypt(const char* data, size_t n) {
  bool ok = tls_->feed(std::string_view(data, n));
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  tls_->read(&in_);
  if (tls_->has_output() || !ok) flush();
  if (!ok) {
    state_ = State::Closing;
    flush();
    if (!write_in_flight_) close();
    return false;
  }
  return true;
}

void Connection::received(const char* data, size_t n) {
  if (state_ == State::Closing) return;                                       // lingering: input is dropped
  if (state_ == State::Body || state_ == State::Draining) update_deadline();  // the body moves
  if (tls_ != nullptr) {
    size_t before = in_.size() - in_pos_;
    if (!decrypt(data, n)) return;
    if (in_.size() - in_pos_ == before) return;  // handshake records only
    advance();
    return;
  }
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  in_.append(data, n);
  advance();
}

// Parses and dispatches as far as possible: every request the input holds is
// answered in order, those whose handler answers at once in this same call,
// and the responses go out in one write at the end.
void Connection::advance() {
  if (in_advance_) return;
  in_advance_ = true;
  do {
    stopped_for_output_ = false;
    while (parse_step()) {
    }
    flush();  // answers written at once drain the output: parsing may go on
  } while (stopped_for_output_ && !congested() && state_ == State::Waiting);
  in_advance_ = false;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  // After the client's end, once every request it sent in full is answered
  // (what is left cannot become a request), the connection closes.
  if (eof_ && state_ == State::Waiting && !stopped_for_output_ && current_ == nullptr) {
    close_soon();
    return;
  }
  if (state_ != State::Closing && state_ != State::Upgraded) {
    // Read while there is room: a handler slow to take its body, or a client
    // pipelining faster than we answer, stops the reading until we catch up.
    bool room = in_.size() - in_pos_ < kMaxQueuedInput && !congested();
    if (state_ == State::Body && current_ != nullptr && !server_->config().events) {
      room = room && current_->body.size() < server_->config().high_water;
    }
    set_reading(room && !eof_);
    update_deadline();
  }
}

// One step of the state machine; true to go on.
bool Connection::parse_step() {
  if (state_ == State::Responding || state_ == State::Closing || state_ == State::Upgraded) return false;
  if (in_pos_ == in_.size()) return false;
  // Answers not yet taken by the client bound what is read and dispatched:
  // a deep pipeline waits in the input (bounded too) instead of piling
  // responses up in memory.
  if (state_ == State::Waiting && congested()) {
    stopped_for_output_ = true;
    return false;
  }
  std::string_view input(in_.data() + in_pos_, in_.size() - in_pos_);
  size_t used = 0;
  RequestParser::Result r = parser_.feed(input, &used);
  in_pos_ += used;
  switch (r) {
    case RequestParser::Result::NeedMore:
      if (state_ == State::Body || state_ == State::Draining) feed_body();
      return false;
    case RequestParser::Result::Error:
      if (state_ == State::Waiting) {
        fail_request(parser_.error_status());
      } else if (current_ != nullptr) {
        // The body went wrong after the handler started: it learns from
        // req:read(); the connection cannot be reused.
        current_->body_error_status = parser_.error_status();
        current_->body_error = parser_.error_reason();
        current_->close_after = true;
        wake_body_reader(*current_);
        if (state_ == State::Draining || current_->finished) close_soon();
      } else {
        close_soon();
      }
      return false;
    case RequestParser::Result::HeadersComplete:
      parser_.resume_body();
      dispatch(false);
      return true;
    case RequestParser::Result::Complete:
      if (state_ == State::Waiting) {
        dispatch(true);
      } else {
        feed_body();
        request_completed();
      }
      return state_ == State::Waiting;
  }
  return false;
}

// Moves what the parser collected of the body into the exchange.
void Connection::feed_body() {
  std::string& got = parser_.request().body;
  if (got.empty()) return;
  if (state_ == State::Body && current_ != nullptr) {
    if (current_->body.empty()) {
      current_->body.swap(got);
    } else {
      current_->body.append(got);
    }
    wake_body_reader(*current_);
  }
  got.clear();  // Draining: the handler has answered; the rest is dropped
}

// The request's last byte has arrived.
void Connection::request_completed() {
  if (state_ == State::Draining) {
    parser_.next();
    state_ = State::Waiting;
    return;
  }
  if (current_ == nullptr) return;
  std::shared_ptr<Exchange> ex = current_;
  ex->body_done = true;
  state_ = State::Responding;
  wake_body_reader(*ex);
  if (server_->config().events) emit_finished(*ex);  // may answer at once (finish() moves on)
  if (current_ == ex && ex->finished) response_done(*ex);
}

void Connection::dispatch(bool complete) {
  served_any_ = true;
  auto ex = std::make_shared<Exchange>();
  ex->req = std::move(parser_.request());
  parser_.request().body.clear();
  ex->id = server_->next_id();
  ex->remote_ip = remote_ip_;
  ex->remote_port = remote_port_;
  ex->conn = this;
  ex->head.swap(head_spare_);
  ex->body_done = complete;
  if (!ex->req.keep_alive || server_->stopping_) ex->close_after = true;
  current_ = ex;
  state_ = complete ? State::Responding : State::Body;
  deadline = 0;  // the handler's time is its own (a body's pieces have their deadline)
  if (!complete) update_deadline();

  if (server_->config().events) {
    server_->pending[ex->id] = ex;
    if (server_->object_ref != LUA_NOREF) {
      Exchange* e = ex.get();
      events::emit_task(server_->runtime(), server_->object_ref, "HTTP_REQUEST_STARTED", server_->runner_ref,
                        [e](lua_State* L) { request_fields(L, *e); });
    }
    if (complete && current_ == ex) emit_finished(*ex);
  } else {
    run_task(ex);
  }
  // The handler may have answered already (the usual case): go on at once.
  if (current_ == ex && ex->finished && (complete || state_ == State::Draining)) {
    if (complete) response_done(*ex);
  }
}

void Connection::response_done(Exchange& ex) {
  // The exchange is over for the connection; Lua may still hold it.
  ex.conn = nullptr;
  bool close_now = ex.close_after;
  current_ = nullptr;
  if (close_now) {
    close_soon();
    return;
  }
  parser_.next();
  state_ = State::Waiting;
}

// The engine's own answer to a request it could not parse; then close.
// (The parser's reason stays out of the answer: nothing to tell an attacker.)
void Connection::fail_request(int status) {
  std::string& o = out_;
  append_status_line(o, status);
  append_header(o, "Date", server_->date().now());
  append_header(o, "Content-Type", "text/plain; charset=utf-8");
  std::string body = std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n";
  append_header(o, "Content-Length", std::to_string(body.size()));
  append_header(o, "Connection", "close");
  o += "\r\n";
  o += body;
  close_soon();
}

void Connection::on_deadline() {
  deadline = 0;
  switch (waiting_for) {
    case Wait::Linger:
      close();  // the linger after a last response is over
      return;
    case Wait::Body:
      body_timed_out();
      return;
    case Wait::Idle:
      close();  // an idle keep-alive connection: nothing to say
      return;
    case Wait::Header:
      if (state_ != State::Waiting) return;
      // A TLS client that did not even finish its handshake cannot be told
      // anything; others hear they were too slow (slowloris).
      if (tls_ != nullptr && !tls_->handshake_done()) {
        close();
      } else {
        fail_request(408);
      }
      return;
  }
}

// No piece of the request body for body_timeout: the handler's read fails
// with 408 (it may still answer); one that is not reading is cancelled and
// the engine answers 408 itself if nothing went out yet. Then the connection
// closes: the rest of the body will not be read.
void Connection::body_timed_out() {
  if (state_ == State::Draining || current_ == nullptr) {
    close_soon();
    return;
  }
  std::shared_ptr<Exchange> ex = current_;
  ex->body_error_status = 408;
  ex->body_error = "no request body within bodyTimeout";
  ex->close_after = true;
  if (ex->body_reader != nullptr) {
    wake_body_reader(*ex);
    return;
  }
  cancel_handler(*ex);
  if (server_->config().events) {
    server_->pending.erase(ex->id);
    report_abort(*ex);
  }
  if (ex->headers_sent) {
    cut(*ex);
    return;
  }
  ex->head.clear();
  ex->status = 408;
  ex->reason.clear();
  ex->head = "Content-Type: text/plain; charset=utf-8\r\n";
  ex->body_done = true;
  send_whole(*ex, "408 Request Timeout\n");
}

// The header or idle deadline of a connection between requests. While
// output is still being written neither applies: the send deadline does.
void Connection::update_deadline() {
  const ServerConfig& cfg = server_->config();
  uint64_t now = uv_now(server_->runtime().loop());
  if (state_ == State::Body || state_ == State::Draining) {
    deadline = cfg.body_timeout > 0 ? now + to_ms(cfg.body_timeout) : 0;
    waiting_for = Wait::Body;
    return;
  }
  if (state_ != State::Waiting) return;
  bool mid_request = in_pos_ != in_.size() || !served_any_;
  if (output_pending() && !mid_request) {
    deadline = 0;
    return;
  }
  if (mid_request) {
    if (deadline == 0 || waiting_for != Wait::Header) {
      deadline = cfg.header_timeout > 0 ? now + to_ms(cfg.header_timeout) : 0;
    }
    waiting_for = Wait::Header;
  } else if (waiting_for != Wait::Idle || deadline == 0) {
    deadline = cfg.idle_timeout > 0 ? now + to_ms(cfg.idle_timeout) : 0;
    waiting_for = Wait::Idle;
  }
}

// Bytes handed over but not yet taken by the peer's socket.
size_t Connection::unsent() const {
  size_t queued =
      write_in_flight_ ? uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_)) : 0;
  return out_.size() + queued;
}

void Connection::arm_send_deadline() {
  double t = server_->config().send_timeout;
  if (send_deadline != 0 || t <= 0) return;
  send_deadline = uv_now(server_->runtime().loop()) + to_ms(t);
  send_mark_ = unsent();
}

// sendTimeout passed: a peer that took some of the output meanwhile gets
// another period; one that took nothing is cut off (nginx's send_timeout).
void Connection::on_send_deadline() {
  send_deadline = 0;
  if (!output_pending()) return;
  size_t left = unsent();
  if (file_in_flight_ || left < send_mark_) {
    arm_send_deadline();
    send_mark_ = left;
    return;
  }
  client_left();
}

void Connection::emit_finished(Exchange& ex) {
  if (server_->object_ref == LUA_NOREF) return;
  Exchange* e = &ex;
  events::emit_task(server_->runtime(), server_->object_ref, "HTTP_REQUEST_FINISHED", server_->runner_ref,
                    [e](lua_State* L) {
                      request_fields(L, *e);
                      push_headers(L, e->req);
                      lua_setfield(L, -2, "headers");
                      events::field(L, "body", e->body);
                      e->body.clear();
                    });
}

void Connection::wake_body_reader(Exchange& ex) {
  if (ex.body_reader == nullptr) return;
  bool ready = !ex.body.empty() || ex.body_done || ex.body_error_status != 0;
  if (!ready) return;
  Task* t = ex.body_reader;
  ex.body_reader = nullptr;
  TaskSystem& sys = server_->tasks();
  lua_State* L = sys.L();
  if (!ex.body.empty()) {
    lua_pushlstring(L, ex.body.data(), ex.body.size());
    ex.body.clear();
    sys.wake(t, ex.body_reader_id, 1);
    body_consumed();
  } else if (ex.body_error_status != 0) {
    lua_pushnil(L);
    errors::push_error(L, body_error_code(ex.body_error_status), ex.body_error);
    lua_pushinteger(L, ex.body_error_status);
    lua_setfield(L, -2, "status");
    sys.wake(t, ex.body_reader_id, 2);
  } else {
    lua_pushnil(L);
    sys.wake(t, ex.body_reader_id, 1);
  }
}

void Connection::body_consumed() {
  if (state_ == State::Body && !reading_ && !eof_ && !in_advance_) advance();
}

void Connection::send_continue(Exchange& ex) {
  // Never a 1xx to an HTTP/1.0 client (RFC 9110 15.2).
  if (ex.continue_sent || !ex.req.expect_continue || ex.headers_sent || ex.req.version_minor == 0) return;
  ex.continue_sent = true;
  out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  flush();
}

// ------------------------------------------------------------ responses

void Connection::send_head(Exchange& ex) {
  ex.headers_sent = true;
  std::string& o = out_;
  bool no_body_status = (ex.status >= 100 && ex.status < 200) || ex.status == 204 || ex.status == 304;
  if (no_body_status) ex.has_length = false;
  if (server_->stopping_) ex.close_after = true;
  bool http10 = ex.req.version_major == 1 && ex.req.version_minor == 0;
  if (!ex.has_length && !no_body_status) {
    if (http10) {
      ex.close_after = true;  // the end of the body is the end of the connection
    } else {
      ex.chunked = true;
    }
  }
  // A body the handler did not read (or that never came, with 100-continue
  // not sent) leaves the connection unusable for a next request unless the
  // rest of the body can be drained; unsent 100-continue means it won't come.
  if (!ex.body_done && ex.req.expect_continue && !ex.continue_sent) ex.close_after = true;

  if (ex.status == 200 && ex.reason.empty()) {
    o += "HTTP/1.1 200 OK\r\n";
  } else {
    append_status_line(o, ex.status, ex.reason);
  }
  append_header(o, "Date", server_->date().now());
  if (ex.has_length) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), ex.length);
    o += "Content-Length: ";
    o.append(digits, end);
    o += "\r\n";
  }
  if (ex.chunked) o += "Transfer-Encoding: chunked\r\n";
  if (ex.close_after) {
    o += "Connection: close\r\n";
  } else if (http10) {
    o += "Connection: keep-alive\r\n";
  }
  o += ex.head;
  o += "\r\n";
  // The head buffer goes back to the connection, its capacity kept for the
  // next exchange (no allocation per response).
  ex.head.clear();
  if (head_spare_.capacity() < ex.head.capacity()) head_spare_.swap(ex.head);
}

void Connection::write_body(Exchange& ex, std::string_view chunk) {
  if (chunk.empty() || ex.head_request()) return;
  if (ex.status == 204 || ex.status == 304) return;
  ex.written += chunk.size();
  if (ex.chunked) {
    char size[24];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    out_.append(size, static_cast<size_t>(n));
    out_.append(chunk);
    out_ += "\r\n";
  } else {
    out_.append(chunk);
  }
}

void Connection::finish(Exchange& ex) {
  if (ex.finished) return;
  if (!ex.headers_sent) {
    if (!ex.has_length) {
      ex.has_length = true;
      ex.length = 0;
    }
    send_head(ex);
  }
  if (ex.chunked && !ex.head_request()) out_ += "0\r\n\r\n";
  // A declared length that was not met leaves the framing broken: close.
  if (ex.has_length && !ex.head_request() && ex.written != ex.length && ex.status != 204 &&
      ex.status != 304) {
    ex.close_after = true;
  }
  ex.finished = true;
  if (server_->config().events) server_->pending.erase(ex.id);
  if (current_.get() != &ex) return;
  if (ex.body_done || ex.close_after) {  // (closing: the unread rest of the body does not matter)
    response_done(ex);
  } else {
    // The handler answered before the body ended: drop the rest of it.
    state_ = State::Draining;
    ex.conn = nullptr;
    current_ = nullptr;
  }
  if (!in_advance_) advance();
}

void Connection::send_whole(Exchange& ex, std::string_view body) {
  ex.has_length = true;
  ex.length = body.size();
  send_head(ex);
  write_body(ex, body);
  finish(ex);
}

bool Connection::congested() const { return pending_output() > server_->config().high_water; }

void Connection::wait_writable(Task* t, uint32_t id) {
  writer_ = t;
  writer_id_ = id;
  flush();
}

void Connection::flush() {
  if (file_in_flight_) return;  // the file goes first; its completion flushes
  bool tls_pending = tls_ != nullptr && tls_->has_output();
  if (write_in_flight_ || (out_.empty() && !tls_pending)) {
    if (!write_in_flight_ && out_.empty() && state_ == State::Closing) finish_closing();
    return;
  }
  if (tls_ != nullptr) {
    if (!out_.empty()) tls_->write(out_);
    out_.clear();
    writing_.clear();
    tls_->take_output(&writing_);
    if (writing_.empty()) return;
  } else {
    writing_.swap(out_);
    out_.clear();
  }
  // Most answers fit the socket buffer: written now, with no write request,
  // no callback and no poll change (libuv re-arms the poll after every
  // queued write). Only what does not fit waits for the socket.
  uv_buf_t buf = uv_buf_init(writing_.data(), static_cast<unsigned>(writing_.size()));
  int wrote = uv_try_write(stream(), &buf, 1);
  if (wrote == static_cast<int>(writing_.size())) {
    writing_.clear();
    written_now();
    return;
  }
  if (wrote < 0 && wrote != UV_EAGAIN) {
    writing_.clear();
    abort();
    return;
  }
  size_t done = wrote > 0 ? static_cast<size_t>(wrote) : 0;
  buf = uv_buf_init(writing_.data() + done, static_cast<unsigned>(writing_.size() - done));
  write_req_.data = this;
  int rc = uv_write(&write_req_, stream(), &buf, 1, on_write);
  if (rc != 0) {
    writing_.clear();
    abort();
    return;
  }
  write_in_flight_ = true;
  arm_send_deadline();
}

// A task waiting in res:write (or for all output, before an upgrade) goes on
// once the output has drained far enough.
void Connection::wake_writer_if_ready() {
  if (writer_ == nullptr || !(drain_all_ ? drained() : !congested())) return;
  Task* t = writer_;
  writer_ = nullptr;
  drain_all_ = false;
  lua_pushboolean(server_->tasks().L(), 1);
  server_->tasks().wake(t, writer_id_, 1);
}

// Everything handed over was written at once: what on_write would do next.
void Connection::written_now() {
  if (!write_in_flight_) send_deadline = 0;
  wake_writer_if_ready();
  if (file_ && out_.empty()) {
    start_file_send();
    return;
  }
  if (!out_.empty()) {
    flush();
  } else if (state_ == State::Closing) {
    finish_closing();
  }
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  c->write_in_flight_ = false;
  c->writing_.clear();
  if (status != 0) {
    c->abort();
    return;
  }
  if (c->closing()) return;
  c->wake_writer_if_ready();
  if (c->file_ && c->out_.empty()) {
    c->start_file_send();
    return;
  }
  if (!c->out_.empty() || (c->tls_ != nullptr && c->tls_->has_output())) {
    c->flush();
    return;
  }
  c->send_deadline = 0;  // all taken: nothing to time out
  if (c->state_ == State::Closing) {
    c->finish_closing();
    return;
  }
  // Output drained: parsing and reading go on (a pipelining client waits
  // on us), and the connection's own deadline applies again.
  if (c->state_ != State::Upgraded && !c->in_advance_) c->advance();
}

void Connection::close_soon() {
  if (closing()) return;
  if (state_ == State::Closing) return;
  if (current_ != nullptr && !current_->finished) {
    // A response is in progress: it ends the connection when done.
    current_->close_after = true;
    if (state_ == State::Upgraded) {
      state_ = State::Closing;
      flush();
    }
    return;
  }
  state_ = State::Closing;
  deadline = 0;
  flush();
}

void Connection::cut(Exchange& ex) {
  ex.finished = true;
  ex.conn = nullptr;
  if (server_->config().events) server_->pending.erase(ex.id);
  if (current_.get() == &ex) current_ = nullptr;
  state_ = State::Closing;
  deadline = 0;
  flush();
}

// Everything is written: half-close, and give the peer a moment to read the
// last response before the socket goes (closing with unread input would
// reset the connection and could destroy the response in flight).
void Connection::finish_closing() {
  if (closing() || shut_down_) return;
  if (tls_ != nullptr && !tls_->failed() && !tls_close_sent_) {
    tls_close_sent_ = true;  // close_notify, then the TCP half-close
    tls_->close();
    flush();
    if (write_in_flight_) return;
  }
  shut_down_ = true;
  shutdown_req_.data = this;
  if (eof_ || uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
    close();
    return;
  }
  set_reading(true);  // read (and drop) until the peer closes, or the linger ends
  deadline = uv_now(server_->runtime().loop()) + 2000;
  waiting_for = Wait::Linger;
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  if (c->closing()) return;
  if (status != 0 || c->eof_) c->close();
}

void Connection::abort() {
  if (!closing()) close();
}

void Connection::set_reading(bool on) {
  if (on == reading_ || closing()) return;
  reading_ = on;
  if (on) {
    uv_read_start(stream(), on_alloc, on_read);
  } else {
    uv_read_stop(stream());
  }
}

// ------------------------------------------------------------ sendfile

void Connection::send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) {
  file_ = PendingFile{fd, offset, length, std::move(done)};
  if (out_.empty() && !write_in_flight_) {
    start_file_send();
  } else {
    flush();  // on_write starts it once the head is out
  }
}

void Connection::start_file_send() {
  PendingFile f = std::move(*file_);
  file_.reset();
  uv_os_fd_t sock = -1;
  uv_fileno(uv_handle(), &sock);
  auto owner = std::make_shared<Connection*>(this);
  int error = 0;
  SendfileJob* job = SendfileJob::start(
      server_->runtime().loop(), sock, f.fd, f.offset, f.length, /*owns_in_fd=*/true,
      [owner, length = f.length, done = f.done](int64_t result) {
        Connection* c = *owner;
        if (c != nullptr) {
          c->file_in_flight_ = false;
          c->file_job_ = nullptr;
        }
        int rc = result < 0 ? static_cast<int>(result) : (result < length ? UV_EPIPE : 0);
        if (c == nullptr && rc == 0) rc = UV_ECANCELED;
        done(rc);
      },
      &error);
  if (job == nullptr) {
    f.done(error);
    return;
  }
  file_in_flight_ = true;
  arm_send_deadline();
  file_job_ = job;
  file_job_owner_ = std::move(owner);
}

std::unique_ptr<Stream> Connection::detach_to_stream(Exchange& ex, int* error) {
  *error = 0;
  uv_os_fd_t fd = -1;
  if (uv_fileno(uv_handle(), &fd) != 0 || (fd = ::dup(fd)) < 0) {
    *error = UV_EBADF;
    return nullptr;
  }
  int status = 0;
  auto h = std::make_unique<UvStreamHandle>(server_->runtime().loop(), UvStreamHandle::Kind::Tcp, &status);
  if (status == 0) status = uv_tcp_open(h->tcp(), fd);
  if (status != 0) {
    ::close(fd);
    *error = status;
    return nullptr;
  }
  UvStreamHandle* handle = NativeHandle::release_to_loop(std::move(h));
  auto stream = std::make_unique<Stream>(server_->tasks(), handle);
  if (tls_ != nullptr) stream->adopt_tls(std::move(tls_));
  if (in_pos_ < in_.size()) stream->preload(std::string_view(in_).substr(in_pos_));
  in_.clear();
  in_pos_ = 0;
  // The exchange is over; the connection steps aside without a word.
  ex.finished = true;
  ex.conn = nullptr;
  current_ = nullptr;
  state_ = State::Upgraded;
  set_reading(false);
  close();
  return stream;
}

void Connection::run_task(const std::shared_ptr<Exchange>& ex) {
  TaskSystem& sys = server_->tasks();
  lua_State* L = sys.L();
  lua_rawgeti(L, LUA_REGISTRYINDEX, server_->runner_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, server_->handler_ref);
  // runner(handler, res, method, path, query) builds req in Lua, where its
  // keys are constants: cheaper than setting them one by one from C.
  push_request(L, ex);
  // Straight from the read callback the handler runs at once, so those that
  // answer without waiting answer before the next pipelined request is read;
  // from inside another task it is queued like any new task.
  bool now = sys.resuming == nullptr;
  Task* t = sys.spawn_pooled(L, 5, !now);
  ex->handler = t;  // until the runner's done(): a client that leaves cancels it
  if (now) sys.run_now(t);
}

}  // namespace evo::http
