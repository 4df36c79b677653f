// The HTTP/1.1 server engine (see server.h for the state machine).
#include "http/server.h"
#include "http/h2_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <unistd.h>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "io/io.h"
#include "io/stream.h"
#include "io/workers.h"

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

// A response head buffer larger than this is not kept for the next one.
constexpr size_t kKeepHeadBytes = size_t{4} * 1024;

// The payload fields every request event carries: requestID, method, path, query.
void request_fields(lua_State* L, const Exchange& e) {
  events::field(L, "requestID", static_cast<double>(e.id));
  events::field(L, "method", e.req->method);
  std::string_view target(e.req->target);
  size_t q = target.find('?');
  events::field(L, "path", target.substr(0, q));
  events::field(L, "query", q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
}

}  // namespace

// ------------------------------------------------------------ exchange

// ------------------------------------------------------------ exchange slots

constinit thread_local ExchangeSlot* g_exchange_slots = nullptr;
constinit thread_local size_t g_exchange_slot_count = 0;

namespace {
// Slot 0 is never used: a zero ExchangeRef names nothing. get() reads the
// vector's data through g_exchange_slots (set again whenever it grows).
//
// At a thread's end (at process exit, for the main thread) its thread_local
// objects are destroyed before the static ones. A Runtime held by a static
// object (the fuzz targets hold theirs so) closes its Lua state after this
// table is gone, and a server's finalizer then frees its pooled exchanges:
// the destructor leaves no slot behind (count 0), so release_slot() leaves
// the table alone (tests/cpp/exchange_slots_test.cpp).
struct SlotTable {
  std::vector<ExchangeSlot> slots;
  std::vector<uint32_t> free;
  SlotTable() = default;
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;
  ~SlotTable() {
    g_exchange_slots = nullptr;
    g_exchange_slot_count = 0;
  }
};
thread_local SlotTable g_slot_table;
}  // namespace

ExchangeRef ExchangeRef::of(Exchange& ex) {
  if (ex.slot == 0) {
    SlotTable& t = g_slot_table;
    if (t.free.empty()) {
      if (t.slots.empty()) t.slots.emplace_back();  // (slot 0)
      ex.slot = static_cast<uint32_t>(t.slots.size());
      t.slots.emplace_back();
      g_exchange_slots = t.slots.data();
      g_exchange_slot_count = t.slots.size();
    } else {
      ex.slot = t.free.back();
      t.free.pop_back();
    }
    t.slots[ex.slot].ex = &ex;
  }
  return ExchangeRef{ex.slot, g_exchange_slots[ex.slot].gen};
}

Exchange::~Exchange() { release_slot(); }

void Exchange::release_slot() {
  if (slot == 0) return;
  // (A slot at or past the count: the thread's table is gone, see SlotTable.)
  if (slot < g_exchange_slot_count) {
    SlotTable& t = g_slot_table;
    ExchangeSlot& s = t.slots[slot];
    s.ex = nullptr;
    ++s.gen;  // every res that named this exchange now finds nothing
    t.free.push_back(slot);
  }
  slot = 0;
}

void Exchange::recycle() {
  // The slot stays this exchange's, its generation moved on: every res that
  // named it now finds nothing, as after release_slot(), without giving the
  // slot up and taking it again for the next request's res.
  if (slot != 0) ++g_exchange_slots[slot].gen;
  // Field by field (assigning a fresh ExchangeState moves every string and
  // list: it cost more than the allocation saved). Clearing keeps the
  // buffers' capacity. Every field of ExchangeState must be here.
  req->clear();
  id = 0;
  // remote_ip and remote_port stay: dispatch copies them only when they
  // differ (a connection's own spare has them already).
  conn = nullptr;
  stream.reset();
  handler = nullptr;
  body.clear();
  body_done = false;
  body_error_status = 0;
  body_error.clear();
  continue_sent = false;
  body_reader = nullptr;
  body_reader_id = 0;
  status = 200;
  reason.clear();
  head.clear();
  has_length = false;
  length = 0;
  headers_sent = false;
  chunked = false;
  finished = false;
  written = 0;
  close_after = false;
  abort_reported = false;
  trailers.clear();
}

std::string Exchange::header_error(std::string_view name, std::string_view value) {
  if (!valid_header_name(name)) return "invalid header name '" + std::string(name) + "'";
  if (!valid_header_value(value))
    return "invalid header value for '" + std::string(name) + "' (CR, LF or NUL)";
  if (name.size() == 14 && strncasecmp(name.data(), "content-length", 14) == 0) {
    bool ok = !value.empty();
    uint64_t n = 0;
    for (char c : value) {
      if (!ok) break;
      auto d = static_cast<uint64_t>(c - '0');
      ok = c >= '0' && c <= '9' && n <= (UINT64_MAX - d) / 10;  // no wrap past 2^64 - 1
      n = n * 10 + d;
    }
    if (!ok) return "invalid Content-Length '" + std::string(value) + "'";
  }
  return {};
}

// Checks a header and adds it in one pass (every header of every response
// goes through here): the name's length picks the few names that need more
// than a check and a copy. header_error() says why it refused one.
bool Exchange::add_header_if_valid(std::string_view name, std::string_view value, bool checked,
                                   bool* as_line) {
  if (as_line != nullptr) *as_line = false;
  if (!checked && !valid_header_value(value)) return false;
  // (A name matching one of these is a token.)
  switch (name.size()) {
    case 14:
      if (strncasecmp(name.data(), "content-length", 14) == 0) {
        uint64_t n = 0;
        for (char c : value) {
          auto d = static_cast<uint64_t>(c - '0');
          if (c < '0' || c > '9' || n > (UINT64_MAX - d) / 10) return false;  // no wrap past 2^64 - 1
          n = n * 10 + d;
        }
        if (value.empty()) return false;
        has_length = true;
        length = n;
        return true;  // written by send_head, from `length`
      }
      break;
    case 10:
      if (strncasecmp(name.data(), "connection", 10) == 0) {
        if (value.size() == 5 && strncasecmp(value.data(), "close", 5) == 0) close_after = true;
        return true;  // written by send_head
      }
      break;
    case 17:
      if (strncasecmp(name.data(), "transfer-encoding", 17) == 0) return true;  // ours
      break;
    default:
      break;
  }
  // "name: value\r\n", the name a token (RFC 9110 5.1); refused, the head
  // is as it was.
  if (!checked && !valid_header_name(name)) return false;
  if (as_line != nullptr) *as_line = true;
  // The line made on the stack and appended once: growing the head with
  // resize() first cost a call more and a memset of the line.
  char line[256];
  size_t size = name.size() + value.size() + 4;
  if (size > sizeof(line)) {
    head.append(name).append(": ").append(value).append("\r\n");
    return true;
  }
  char* p = line;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  p[0] = ':';
  p[1] = ' ';
  std::memcpy(p + 2, value.data(), value.size());
  p += 2 + value.size();
  p[0] = '\r';
  p[1] = '\n';
  head.append(line, size);
  return true;
}

namespace {

// Fields a sender must not put in trailers (RFC 9110 6.5.1): they frame or
// route the message, control the request, authenticate, or steer caching
// and processing, and a recipient may already have acted on the headers.
// HTTP/1 connection fields are here too (HTTP/2 forbids them anywhere).
bool forbidden_trailer(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "age",
      "authorization",
      "cache-control",
      "connection",
      "content-encoding",
      "content-length",
      "content-range",
      "content-type",
      "cookie",
      "date",
      "expect",
      "expires",
      "host",
      "keep-alive",
      "location",
      "max-forwards",
      "pragma",
      "proxy-authenticate",
      "proxy-authorization",
      "proxy-connection",
      "range",
      "retry-after",
      "set-cookie",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
      "vary",
      "www-authenticate",
  };
  return std::ranges::any_of(kNames, [name](std::string_view f) { return equals_ignoring_case(f, name); });
}

}  // namespace

std::string Exchange::trailer_error(std::string_view name, std::string_view value) {
  if (!valid_header_name(name)) return "invalid trailer name '" + std::string(name) + "'";
  if (!valid_header_value(value))
    return "invalid trailer value for '" + std::string(name) + "' (CR, LF or NUL)";
  if (forbidden_trailer(name))
    return "'" + std::string(name) + "' is not allowed in trailers (RFC 9110 6.5.1)";
  return {};
}

// ------------------------------------------------------------ handles

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
  void kick() { uv_timer_start(&timer_, on_tick, 0, uv_timer_get_repeat(&timer_)); }

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

Server::Server(Runtime& rt, ServerConfig config) : rt_(rt), config_(std::move(config)) {}

Server::~Server() {
  workers::forget(this);
  if (sweep_ != nullptr) {
    sweep_->forget_server();
    sweep_->close();
  }
  release_lua();
}

TaskSystem& Server::tasks() { return rt_.tasks(); }

int Server::listen(const char* host, int port, int backlog) {
  sockaddr_storage addr{};
  if (!parse_ip(host, port, &addr)) return UV_EINVAL;
  ListenSpec spec;
  spec.addr = reinterpret_cast<const sockaddr*>(&addr);
  spec.addr_len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  spec.backlog = backlog;
  int rc = 0;
  // The evented Io's listener in every mode: the engine runs on the loop's
  // callbacks (handlers are tasks or events), never on a blocked caller.
  listener_ = listen_on_loop(rt_.loop(), spec, &rc);
  if (listener_ == nullptr) return rc;
  if (workers::active()) {
    workers::on_drain(this, [w = weak_from_this()] {
      if (auto s = w.lock()) s->drain(1.0);
    });
  }
  listener_->accept_each([this](IoResult r) { on_connection(std::move(r)); });
  listener_->on_release([this] { abort_all(); });  // the exit sweep: the server and its connections
  listening_ = shared_from_this();  // a listening server lives on without its Lua object, as in Node
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(listener_->fd(), reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  host_ = host;

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

void Server::on_connection(IoResult r) {
  if (!r.ok() || stopping_) return;  // EMFILE and the like: the next one may succeed
  connections_.push_front(std::make_unique<Connection>(shared_from_this(), std::move(r.transport)));
  connections_.front()->self = connections_.begin();
  connections_.front()->start();
}

bool Server::runs_handler(const Task* t) const {
  return std::any_of(connections_.begin(), connections_.end(), [t](const std::unique_ptr<Connection>& c) {
    if (c->h2() != nullptr) return c->h2()->runs_handler(t);
    return c->current() != nullptr && c->current()->handler == t;
  });
}

void Server::reap_soon() {
  reap_ = true;
  if (sweep_ != nullptr) sweep_->kick();
}

// The connection is over (its socket closed): it goes now. The caller
// touches it no more.
void Server::remove(Connection* c) {
  auto keep = shared_from_this();  // the connection may hold the last reference
  connections_.erase(c->self);
  maybe_done();
}

void Server::stop(std::function<void()> done) {
  auto keep = shared_from_this();  // closing the listener may drop the last reference
  if (done) on_stopped_ = std::move(done);
  if (stopping_) {
    maybe_done();
    return;
  }
  stopping_ = true;
  release_parked_runner();
  close_listener();
  // Idle connections go now; the others finish their current response and
  // close after it (their "Connection: close" says so).
  for (auto& c : connections_) {
    // Answers corked for this loop turn go now, so that idle() sees the
    // connection as it is (one answered in this turn is idle).
    c->flush_now();
    if (c->state() == Connection::State::Upgraded) {
      reap_soon();  // its transport went on; it goes at the next sweep
    } else if (c->h2() != nullptr) {
      c->h2()->shutdown();  // GOAWAY; open streams finish
    } else if (c->idle() && drain_idle_ms_ > 0) {
      c->waiting_for = Connection::Wait::Idle;  // the sweep closes it then
      c->deadline = uv_now(rt_.loop()) + drain_idle_ms_;
    } else if (c->idle()) {
      c->close();  // nothing in flight either way: no linger
    } else if (drain_idle_ms_ > 0 && c->state() == Connection::State::Waiting) {
      // A request is arriving: it is answered, with "Connection: close".
    } else {
      c->close_soon();
    }
  }
  maybe_done();
}

void Server::drain(double idle_seconds) {
  drain_idle_ms_ = std::max<uint64_t>(1, to_ms(idle_seconds));
  stop(nullptr);
}

void Server::abort_all() {
  auto keep = shared_from_this();  // closing the listener may drop the last reference
  stopping_ = true;
  release_parked_runner();
  close_listener();
  for (auto& c : connections_) {
    if (c->state() != Connection::State::Upgraded) c->close();
  }
}

void Server::close_listener() {
  if (listener_ == nullptr) return;
  workers::forget(this);
  listener_->close();
  listener_ = nullptr;
  listening_ = nullptr;  // the callers keep a reference of their own
  on_listener_closed();
}

void Server::on_listener_closed() {
  if (object_ref != LUA_NOREF && config_.events) {
    events::emit_task(rt_, object_ref, "SERVER_STOPPED_LISTENING", runner_ref, [this](lua_State* L) {
      events::field(L, "port", static_cast<double>(port_));
      events::field(L, "host", host_);
    });
  }
  maybe_done();
}

void Server::maybe_done() {
  if (!stopping_ || !connections_.empty()) return;
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
  release_parked_runner();
  for (int* ref : {&object_ref, &handler_ref, &runner_ref, &request_runner_ref}) {
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
  }
}

void Server::sweep() {
  uint64_t now = uv_now(rt_.loop());
  // Connections whose transport an upgrade took go now.
  if (reap_) {
    reap_ = false;
    connections_.remove_if(
        [](const std::unique_ptr<Connection>& c) { return c->state() == Connection::State::Upgraded; });
    maybe_done();
  }
  // (A connection closed here stays in the list until its handle has closed.)
  for (auto& c : connections_) {
    if (c->state() == Connection::State::Upgraded) continue;
    if (c->h2() != nullptr) {
      c->h2()->sweep(now);
      continue;
    }
    if (c->send_deadline != 0 && c->send_deadline <= now) c->on_send_deadline();
    if (!c->closed() && c->deadline != 0 && c->deadline <= now) c->on_deadline();
    // Idle keep-alive connections hold no buffer: thousands of them cost
    // their objects only. Here, not as each response ends, so a busy
    // connection keeps its buffers from one request to the next.
    if (!c->closed() && c->waiting_for == Connection::Wait::Idle && c->idle()) c->release_idle_memory();
  }
}

// ------------------------------------------------------------ connection

Connection::Connection(std::shared_ptr<Server> server, std::unique_ptr<Transport> transport)
    : server_(std::move(server)), t_(std::move(transport)) {
  t_->set_user(this);
}

Connection::~Connection() {
  if (t_ != nullptr) t_->set_user(nullptr);
  h2_ = nullptr;  // (before the transport it uses)
}

void Connection::start() {
  // (From the descriptor: under --io=uring the transport has no libuv handle.)
  int one = 1;
  ::setsockopt(t_->fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (::getpeername(t_->fd(), reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
      (peer.ss_family == AF_INET || peer.ss_family == AF_INET6)) {
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
  if (server_->config().tls != nullptr) t_->adopt_tls(tls::Session::accept(server_->config().tls));
  set_reading(true);
  update_deadline();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  deadline = 0;
  send_deadline = 0;
  // Answers corked for the loop turn (flush_soon) go first, as they would
  // have gone at once uncorked: a client whose end is read with its
  // requests, while a handler runs, still gets the answers before it.
  if (leave_cork()) t_->flush();
  t_->close();  // on_transport_closed follows, from libuv
}

// The socket is gone: whoever still holds the exchange learns it, then the
// connection ends.
void Connection::on_transport_closed() {
  closed_ = true;
  connection_lost();
  std::shared_ptr<Server> server = server_;
  server->remove(this);  // last: this connection is gone after it
}

// The connection is gone (closed, reset): whoever still holds its exchange
// learns it, and the event style reports the abort.
void Connection::connection_lost() {
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
void report_abort(Server& server, Exchange& ex) {
  if (ex.abort_reported || ex.finished || !server.config().events) return;
  ex.abort_reported = true;
  if (server.object_ref == LUA_NOREF) return;
  uint32_t id = ex.id;
  events::emit_task(
      server.runtime(), server.object_ref, "HTTP_CONNECTION_ABORTED", server.runner_ref,
      [id](lua_State* L) { events::field(L, "requestID", static_cast<double>(id)); }, 1);
}

void Connection::report_abort(Exchange& ex) { http::report_abort(*server_, ex); }

void Connection::on_input() {
  if (closed_) return;
  tls::Session* tls = t_->tls();
  if (t_->read_error() != 0) {
    if (tls != nullptr && tls->failed()) {
      // A TLS failure: its alert goes out, then the connection closes.
      state_ = State::Closing;
      deadline = 0;
      flush();
      if (t_->drained()) close();
      return;
    }
    client_left();  // reset or failed: nobody to answer
    return;
  }
  if (t_->buffered() > 0) received();
  if (state_ == State::Upgraded) return;  // a handler took the transport over
  if (t_->eof() && !eof_seen_ && !closed_) {
    eof_seen_ = true;
    on_end_of_input();
  }
}

// The client's end of the stream (FIN, or TLS close_notify).
void Connection::on_end_of_input() {
  set_reading(false);
  switch (state_) {
    case State::Closing:
      // Else finish_closing sees the end after the flush; but a TLS session
      // that never completed its handshake has nothing it could flush.
      if (shut_down_ || (t_->tls() != nullptr && !t_->tls()->handshake_done())) close();
      return;
    case State::Body: {
      // Half-closed mid-body: the handler learns it from req:read() and may
      // still answer.
      Exchange& ex = *current_;
      ex.body_error_status = 400;
      ex.body_error = "the connection ended before the request body did";
      ex.close_after = true;
      wake_body_reader(ex);
      report_abort(ex);
      return;
    }
    case State::Responding:
      // The client left while its handler runs (as Node's server does by
      // default): the handler is cancelled and the connection closes, so a
      // flood of clients that ask and leave holds no descriptors.
      client_left();
      return;
    case State::Draining:
      close_soon();  // the rest of a body nobody wants will not come
      return;
    default:
      // Between requests: what was asked in full before the end is still
      // answered, and what is owed is written (advance closes after it).
      advance();
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

void cancel_handler(Server& server, Exchange& ex) {
  if (ex.handler == nullptr || server.tasks().closed()) return;
  Task* t = ex.handler;
  ex.handler = nullptr;
  server.tasks().cancel(t);
}

void Connection::cancel_handler(Exchange& ex) { http::cancel_handler(*server_, ex); }

void Connection::received() {
  if (state_ == State::Closing) {  // lingering: input is dropped
    t_->consume(t_->buffered());
    return;
  }
  if (state_ == State::Body || state_ == State::Draining) update_deadline();  // the body moves
  // HTTP/2 is decided before the first request (one test per connection).
  if (!served_any_ && state_ == State::Waiting && server_->config().http2 && try_h2()) return;
  advance();
}

// HTTP/2 before the first request: ALPN chose "h2", or the input is the
// prior-knowledge preface (RFC 9113 3.3). True when the connection is
// HTTP/2 now, or when what came so far is the start of the preface.
bool Connection::try_h2() {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (tls::Session* tls = t_->tls(); tls != nullptr) {
    if (tls->alpn_selected() != "h2") return false;
  } else {
    std::string_view in = t_->input();
    size_t n = std::min(in.size(), kPreface.size());
    if (in.substr(0, n) != kPreface.substr(0, n)) return false;
    if (n < kPreface.size()) return true;  // the rest of the preface is on its way
  }
  become_h2(nullptr);
  return true;
}

// A complete cleartext request with "Upgrade: h2c" and HTTP2-Settings (RFC
// 7540 3.2) and no body: 101, then it is stream 1 of an HTTP/2 connection.
// False (served as HTTP/1.1) otherwise.
bool Connection::upgrade_h2c() {
  Request& r = parser_->request();
  std::optional<std::string_view> up = r.header("upgrade");
  if (t_->tls() != nullptr || !up || !equals_ignoring_case(*up, "h2c")) return false;
  if (!r.header("http2-settings") || !r.body.empty() || server_->stopping_) return false;
  served_any_ = true;
  auto ex = std::make_shared<Exchange>();
  *ex->req = std::move(r);
  ex->body_done = true;
  t_->output() += "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  become_h2(ex);
  return true;
}

// The transport goes to an H2Connection for good; this connection stays in
// the server's list as its shell (deadlines, stop, removal).
void Connection::become_h2(const std::shared_ptr<Exchange>& upgraded) {
  state_ = State::H2;
  deadline = 0;
  send_deadline = 0;
  h2_ = std::make_unique<H2Connection>(server_, *t_, *this);
  t_->set_user(h2_.get());
  h2_->start(upgraded);
}

// Parses and dispatches as far as possible: every request the input holds is
// answered in order, those whose handler answers at once in this same call,
// and the responses go out in one write at the end.
void Connection::advance() {
  if (in_advance_ || closed_ || state_ == State::Upgraded) return;
  in_advance_ = true;
  do {
    stopped_for_output_ = false;
    while (parse_step()) {
    }
    if (state_ == State::Upgraded) {  // a handler took the transport over
      in_advance_ = false;
      return;
    }
    if (stopped_for_output_) {
      flush();  // answers written at once drain the output: parsing may go on
    } else {
      flush_soon();
    }
  } while (stopped_for_output_ && !congested() && state_ == State::Waiting && !closed_);
  in_advance_ = false;
  if (closed_) return;
  // After the client's end, once every request it sent in full is answered
  // (what is left cannot become a request), the connection closes.
  if (t_->eof() && state_ == State::Waiting && !stopped_for_output_ && current_ == nullptr) {
    close_soon();
    return;
  }
  if (state_ != State::Closing) {
    // Read while there is room: a handler slow to take its body, or a client
    // pipelining faster than we answer, stops the reading until we catch up.
    bool room = t_->buffered() < kMaxQueuedInput && !congested();
    if (state_ == State::Body && current_ != nullptr && !server_->config().events) {
      room = room && current_->body.size() < server_->config().high_water;
    }
    set_reading(room && !t_->eof());
    update_deadline();
  }
}

// One step of the state machine; true to go on.
bool Connection::parse_step() {
  if (deferred_) {
    RequestParser::Result r = *deferred_;
    deferred_.reset();
    return on_parsed(r);
  }
  if (state_ == State::Responding || state_ == State::Closing || state_ == State::Upgraded ||
      state_ == State::H2) {
    return false;
  }
  if (t_->buffered() == 0) return false;
  // Answers not yet taken by the client bound what is read and dispatched:
  // a deep pipeline waits in the input (bounded too) instead of piling
  // responses up in memory.
  if (state_ == State::Waiting && congested()) {
    stopped_for_output_ = true;
    return false;
  }
  size_t used = 0;
  RequestParser::Result r = parser().feed(t_->input(), &used);
  t_->consume(used);
  return on_parsed(r);
}

// What the parser's result starts (parse_step; a result the FFI pull left
// for the classic path, pull_event_fast).
bool Connection::on_parsed(RequestParser::Result r) {
  switch (r) {
    case RequestParser::Result::NeedMore:
      if (state_ == State::Body || state_ == State::Draining) feed_body();
      return false;
    case RequestParser::Result::Error:
      if (state_ == State::Waiting) {
        fail_request(parser_->error_status());
      } else if (current_ != nullptr) {
        // The body went wrong after the handler started: it learns from
        // req:read(); the connection cannot be reused.
        current_->body_error_status = parser_->error_status();
        current_->body_error = parser_->error_reason();
        current_->close_after = true;
        wake_body_reader(*current_);
        if (state_ == State::Draining || current_->finished) close_soon();
      } else {
        close_soon();
      }
      return false;
    case RequestParser::Result::HeadersComplete:
      parser_->resume_body();
      dispatch(false);
      return true;
    case RequestParser::Result::Complete:
      if (state_ == State::Waiting) {
        if (parser_->request().upgrade && server_->config().http2 && upgrade_h2c()) return false;
        dispatch(true);
      } else {
        feed_body();
        request_completed();
      }
      // (Body or Draining after a batch's runner took a request with a
      // body, and its handler suspended: its body is fed next.)
      return true;
  }
  return false;
}

// Moves what the parser collected of the body into the exchange.
void Connection::feed_body() {
  std::string& got = parser_->request().body;
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
    parser_->next();
    state_ = State::Waiting;
    if (t_->buffered() == 0) server_->pool_parser(std::move(parser_));  // (as in response_done)
    return;
  }
  if (current_ == nullptr) return;
  std::shared_ptr<Exchange> ex = current_;
  if (!parser_->request().trailers.empty()) ex->req->trailers = std::move(parser_->request().trailers);
  ex->body_done = true;
  state_ = State::Responding;
  wake_body_reader(*ex);
  if (server_->config().events) emit_finished(*ex);  // may answer at once (finish() moves on)
  if (current_ == ex && ex->finished) response_done(*ex);
}

void Connection::dispatch(bool complete) {
  served_any_ = true;
  bool own = false;
  std::shared_ptr<Exchange> ex = new_exchange(&own);
  // A swap, not a move: the parser gets the recycled exchange's request
  // (emptied), buffers and all, back for the next request.
  parser_->swap_request(ex->req);
  ex->id = server_->next_id();
  uint32_t id = ex->id;
  // (A recycled exchange has them already: see recycle(). The connection's
  // own spare, the pipelined case, has this connection's: no compare.)
  if (!own && (ex->remote_port != remote_port_ || ex->remote_ip != remote_ip_)) {
    ex->remote_ip = remote_ip_;
    ex->remote_port = remote_port_;
  }
  ex->conn = this;
  // A recycled exchange kept its own head buffer (send_head leaves it there):
  // the spare goes only to a new exchange, or a smaller buffer.
  if (ex->head.capacity() < head_spare_.capacity()) ex->head.swap(head_spare_);
  ex->body_done = complete;
  if (!ex->req->keep_alive || server_->stopping_) ex->close_after = true;
  current_ = ex;
  state_ = complete ? State::Responding : State::Body;
  deadline = 0;  // the handler's time is its own (a body's pieces have their deadline)
  if (!complete) update_deadline();

  if (server_->config().events) {
    server_->pending[ex->id] = ex;
    // A whole request (the usual case): one task runs both its STARTED and
    // its FINISHED handler, looking them up in Lua — the batch's runner, when
    // it asked for the next request (pull_next). Otherwise one event now and
    // the other when the body has come.
    if (pulling_ && complete && ex->req->trailers.empty()) {
      pulled_ = std::move(ex);
    } else if (!(complete && emit_whole_request(*server_, *ex, this))) {
      emit_started(*server_, *ex);
      if (complete && current_ == ex) emit_finished(*ex);
    }
  } else {
    // (Given away: a batch's runner lets each request's exchange go once
    // answered, the first one too, while this call is still on the stack.)
    run_task(std::move(ex));
  }
  // The handler may have answered already (the usual case): go on at once.
  // (By id: after a batch another exchange may live at the same address.)
  Exchange* cur = current_.get();
  if (cur != nullptr && cur->id == id && cur->finished && (complete || state_ == State::Draining)) {
    if (complete) response_done(*cur);
  }
}

std::shared_ptr<Exchange> Connection::new_exchange(bool* own) {
  // use_count 1: only spare_ holds it (the task, the event style's table
  // and every `keep` let it go); a res still naming it holds only its slot.
  if (spare_ != nullptr && spare_.use_count() == 1) {
    spare_->recycle();
    *own = true;
    return std::move(spare_);
  }
  spare_ = nullptr;
  if (std::shared_ptr<Exchange> ex = server_->take_pooled_exchange()) return ex;
  return std::make_shared<Exchange>();
}

void Server::pool_exchange(std::shared_ptr<Exchange> ex) {
  const size_t kInline = std::string().capacity();
  if (exchange_pool_.size() >= kPooledExchanges || ex->head.capacity() > kKeepHeadBytes ||
      ex->req->body.capacity() > kInline || ex->body.capacity() > kInline ||
      ex->req->headers.capacity() > 16 || ex->req->headers.byte_capacity() > kKeepHeadBytes ||
      ex->req->trailers.byte_capacity() > kKeepHeadBytes || ex->trailers.byte_capacity() > kKeepHeadBytes)
    return;
  exchange_pool_.push_back(std::move(ex));
}

void Server::pool_parser(std::unique_ptr<RequestParser> p) {
  if (parser_pool_.size() >= kPooledExchanges) return;
  // (The buffers an exchange gave it stay for the next request, unless
  // they grew; a chunk extension's buffer, at most 4 KiB, stays too.)
  const Request& r = p->request();
  if (r.body.capacity() > std::string().capacity() || r.headers.capacity() > 16 ||
      r.headers.byte_capacity() > kKeepHeadBytes || r.trailers.byte_capacity() > kKeepHeadBytes ||
      r.target.capacity() > kKeepHeadBytes)
    p->release_idle_memory();
  parser_pool_.push_back(std::move(p));
}

std::unique_ptr<RequestParser> Server::take_parser() {
  if (parser_pool_.empty()) return std::make_unique<RequestParser>(config_.limits);
  std::unique_ptr<RequestParser> p = std::move(parser_pool_.back());
  parser_pool_.pop_back();
  return p;
}

std::shared_ptr<Exchange> Server::take_pooled_exchange() {
  // (The last one given is the likeliest to be let go by its task already.)
  if (exchange_pool_.empty() || exchange_pool_.back().use_count() != 1) return nullptr;
  std::shared_ptr<Exchange> ex = std::move(exchange_pool_.back());
  exchange_pool_.pop_back();
  ex->recycle();
  return ex;
}

void Connection::response_done(Exchange& ex) {
  // The exchange is over for the connection; Lua may still hold it.
  ex.conn = nullptr;
  bool close_now = ex.close_after;
  // Kept for the next request's dispatch (new_exchange) rather than freed:
  // by the connection while more of its input waits (pipelining), else by
  // the server, for whichever connection's request comes next.
  if (current_.get() == &ex) {
    if (t_->buffered() != 0) {
      spare_ = std::move(current_);
    } else {
      server_->pool_exchange(std::move(current_));
    }
  }
  current_ = nullptr;
  if (close_now) {
    close_soon();
    return;
  }
  parser_->next();
  state_ = State::Waiting;
  // (The request was parsed to its end: nothing of the next one is in it.)
  if (t_->buffered() == 0) server_->pool_parser(std::move(parser_));
}

// The engine's own answer to a request it could not parse; then close.
// (The parser's reason stays out of the answer: nothing to tell an attacker.)
void Connection::fail_request(int status) {
  std::string& o = t_->output();
  append_status_line(o, status);
  o += server_->date().line();
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
      if (t_->tls() != nullptr && !t_->tls()->handshake_done()) {
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
  ex->trailers.clear();
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
  // (A head begun and parsed as far as it came has left the input: the
  // parser knows, and the header deadline applies to it, not the idle one.)
  bool mid_request = t_->buffered() != 0 || !served_any_ || (parser_ != nullptr && parser_->in_head());
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
    // Idle between requests: buffers grown for a large request or response
    // are released, so an idle connection costs the same after a 1 MB
    // answer as before it.
    t_->trim();
    if (head_spare_.capacity() > kKeepHeadBytes) std::string().swap(head_spare_);
    if (spare_ != nullptr && spare_->head.capacity() > kKeepHeadBytes) std::string().swap(spare_->head);
  }
}

void Connection::release_idle_memory() {
  t_->release_buffers();
  if (head_spare_.capacity() > std::string().capacity()) std::string().swap(head_spare_);
  // The recycled exchange and the parser's emptied lists go too: a
  // connection that stays idle costs its Connection and transport only (a
  // busy one keeps them from one request to the next: the sweep runs once
  // a second at most).
  spare_ = nullptr;
  if (parser_ != nullptr) parser_->release_idle_memory();
}

void Connection::arm_send_deadline() {
  double t = server_->config().send_timeout;
  if (send_deadline != 0 || t <= 0 || closed_) return;
  send_deadline = uv_now(server_->runtime().loop()) + to_ms(t);
  send_mark_ = t_->pending();
  sent_mark_ = t_->sent();
}

// sendTimeout passed: a peer that took some of the output meanwhile gets
// another period; one that took nothing is cut off (nginx's send_timeout).
void Connection::on_send_deadline() {
  send_deadline = 0;
  if (closed_ || state_ == State::Upgraded || !output_pending()) return;
  if (t_->pending() < send_mark_ || t_->sent() > sent_mark_) {
    arm_send_deadline();
    return;
  }
  client_left();
}

// A request's values for the Lua runner that makes its payload
// (request_runner_ref): id, method, path, query, then for FINISHED the
// headers (packed: push_packed_headers) and the body.
int push_request_values(lua_State* L, Exchange& e, bool finished) {
  lua_pushnumber(L, static_cast<double>(e.id));
  lua_pushlstring(L, e.req->method.data(), e.req->method.size());
  std::string_view target(e.req->target);
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  lua_pushlstring(L, path.data(), path.size());
  lua_pushlstring(L, query.data(), query.size());
  if (!finished) return 4;
  push_packed_headers(L, *e.req);  // (the runner's payload unpacks them when read)
  lua_pushlstring(L, e.body.data(), e.body.size());
  e.body.clear();
  return 6;
}

namespace {

void fill_finished(lua_State* L, Exchange& e) {
  request_fields(L, e);
  push_headers(L, *e.req);
  lua_setfield(L, -2, "headers");
  if (!e.req->trailers.empty()) {  // (a chunked or HTTP/2 body's)
    push_fields(L, e.req->trailers);
    lua_setfield(L, -2, "trailers");
  }
  events::field(L, "body", e.body);
  e.body.clear();
}

}  // namespace

void emit_finished(Server& server, Exchange& ex) {
  if (server.object_ref == LUA_NOREF) return;
  Exchange* e = &ex;
  // Trailers are rare: their payload is made in C++ (the runner takes no more values).
  int values_runner = e->req->trailers.empty() ? server.request_runner_ref : LUA_NOREF;
  events::emit_task_values(
      server.runtime(), server.object_ref, "HTTP_REQUEST_FINISHED", values_runner,
      [e](lua_State* L) { return push_request_values(L, *e, true); }, server.runner_ref,
      [e](lua_State* L) { fill_finished(L, *e); }, 8);
}

// requestRunner(object, debugging, id, method, path, query, headers, body)
// in a pooled task, with no handler looked up: the runner looks up the
// handlers of both events itself, in Lua, where the lookups cost less
// (`debugging` says whether the silent default handler prints). Run at once
// from the read callback, it goes on with the next whole requests of the
// same read (next_event_request), as the task style's runner does.
bool emit_whole_request(Server& server, Exchange& ex, Connection* batch) {
  if (!ex.req->trailers.empty()) return false;
  TaskSystem& sys = server.tasks();
  if (server.request_runner_ref == LUA_NOREF || server.object_ref == LUA_NOREF || sys.blocking() ||
      sys.closed())
    return false;
  lua_State* L = sys.L();
  if (Task* parked = take_parked_runner(server, batch)) {
    run_parked_runner(server, parked, batch, push_request_values(L, ex, true));
    return true;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, server.request_runner_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, server.object_ref);
  lua_pushboolean(L, server.runtime().debug() ? 1 : 0);
  int n = push_request_values(L, ex, true);
  bool now = sys.resuming == nullptr;  // as run_handler_task
  Task* t = sys.spawn_pooled(L, 2 + n, !now);
  if (now) run_batch_now(sys, t, batch);
  return true;
}

void emit_started(Server& server, Exchange& ex) {
  if (server.object_ref == LUA_NOREF) return;
  Exchange* e = &ex;
  events::emit_task_values(
      server.runtime(), server.object_ref, "HTTP_REQUEST_STARTED", server.request_runner_ref,
      [e](lua_State* L) { return push_request_values(L, *e, false); }, server.runner_ref,
      [e](lua_State* L) { request_fields(L, *e); }, 4);
}

void Connection::emit_finished(Exchange& ex) { http::emit_finished(*server_, ex); }

void wake_body_reader(Server& server, Exchange& ex) {
  if (ex.body_reader == nullptr) return;
  bool ready = !ex.body.empty() || ex.body_done || ex.body_error_status != 0;
  if (!ready) return;
  Task* t = ex.body_reader;
  ex.body_reader = nullptr;
  TaskSystem& sys = server.tasks();
  lua_State* L = sys.L();
  if (!ex.body.empty()) {
    lua_pushlstring(L, ex.body.data(), ex.body.size());
    ex.body.clear();
    sys.wake(t, ex.body_reader_id, 1);
    if (ex.conn != nullptr) ex.conn->body_consumed();
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

void Connection::wake_body_reader(Exchange& ex) { http::wake_body_reader(*server_, ex); }

void Connection::body_consumed() {
  if (state_ == State::Body && !t_->reading() && !t_->eof() && !in_advance_) advance();
}

void Connection::send_continue(Exchange& ex) {
  // Never a 1xx to an HTTP/1.0 client (RFC 9110 15.2).
  if (ex.continue_sent || !ex.req->expect_continue || ex.headers_sent || ex.req->version_minor == 0) return;
  ex.continue_sent = true;
  t_->output() += "HTTP/1.1 100 Continue\r\n\r\n";
  flush();
}

void Connection::send_informational(Exchange& ex, int status, std::string_view lines) {
  // Never a 1xx to an HTTP/1.0 client (RFC 9110 15.2): it would take it
  // for the response.
  if (ex.headers_sent || ex.req->version_minor == 0) return;
  if (status == 100) ex.continue_sent = true;  // (req:read() sends no second one)
  std::string& o = t_->output();
  append_status_line(o, status);
  o.append(lines);
  o += "\r\n";
  flush();
}

// ------------------------------------------------------------ responses

namespace {

// "Trailer: a, b": the names the trailers will carry (RFC 9110 6.6.2).
void declare_trailers(std::string& o, const HeaderList& trailers) {
  o += "Trailer: ";
  for (size_t i = 0; i < trailers.size(); ++i) {
    std::string_view name = trailers[i].first;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = equals_ignoring_case(trailers[j].first, name);
    if (seen) continue;  // (a list value: one name)
    if (i > 0) o += ", ";
    o += name;
  }
  o += "\r\n";
}

// The last chunk, the trailer fields, and the end (RFC 9112 7.1.2).
void end_chunked_with_trailers(std::string& o, const HeaderList& trailers) {
  o += "0\r\n";
  for (const auto& [name, value] : trailers) append_header(o, name, value);
  o += "\r\n";
}

}  // namespace

namespace {

// n's decimal digits at p; returns their end. Two digits a step from a
// table of pairs (std::to_chars, as it does, but without the copy from
// its buffer: 45 instructions for a two-digit Content-Length).
char* put_decimal(char* p, uint64_t n) {
  static constexpr char kPairs[] =
      "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849"
      "5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
  size_t digits = 1;
  for (uint64_t power = 10; digits < 20 && n >= power; power *= 10) ++digits;  // (10^19 < 2^64 < 10^20)
  char* end = p + digits;
  char* q = end;
  while (n >= 100) {
    q -= 2;
    std::memcpy(q, kPairs + 2 * (n % 100), 2);
    n /= 100;
  }
  if (n >= 10) {
    std::memcpy(q - 2, kPairs + 2 * n, 2);
  } else {
    q[-1] = static_cast<char>('0' + n);
  }
  return end;
}

// The head of ex's response, then `body` when it is not empty and goes out
// as it is (not chunked, not a HEAD request's, not a 204's or 304's): one
// growth of the output for all of it. Returns whether the body went.
bool write_head(std::string& o, Exchange& ex, DateCache& date, bool stopping, std::string_view body) {
  ex.headers_sent = true;
  bool no_body_status = (ex.status >= 100 && ex.status < 200) || ex.status == 204 || ex.status == 304;
  if (no_body_status) ex.has_length = false;
  if (stopping) ex.close_after = true;
  bool http10 = ex.req->version_major == 1 && ex.req->version_minor == 0;
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
  if (!ex.body_done && ex.req->expect_continue && !ex.continue_sent) ex.close_after = true;

  // The head is written on the stack and appended once (with the body when
  // it fits too): each append checks the capacity out of line, and there were
  // five or six. A head that cannot fit is written into the output directly.
  std::string_view reason;
  if (ex.status != 200 || !ex.reason.empty()) {
    reason = ex.reason.empty() ? reason_phrase(ex.status) : std::string_view(ex.reason);
  }
  std::string_view date_line = reason.empty() ? date.ok_line() : date.line();
  std::string trailer_line;  // (rare: trailers declared before a chunked body)
  if (ex.chunked && !ex.trailers.empty()) declare_trailers(trailer_line, ex.trailers);
  // At most: "HTTP/1.1 " and 20 digits and a space, "Content-Length: " and
  // 20 digits and CRLF, the longer Connection line.
  constexpr std::string_view kLength = "Content-Length: ";
  constexpr std::string_view kChunked = "Transfer-Encoding: chunked\r\n";
  constexpr std::string_view kClose = "Connection: close\r\n";
  constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n";
  size_t need = 30 + reason.size() + 2 + date_line.size() + kLength.size() + 22 + kChunked.size() +
                trailer_line.size() + kKeepAlive.size() + ex.head.size() + 2;
  // What write_body would write as it is.
  bool with_body = !body.empty() && !ex.chunked && !ex.head_request() && ex.status != 204 && ex.status != 304;
  char stack[512];
  char* start = stack;
  if (need > sizeof(stack)) {
    size_t at = o.size();
    o.resize(at + need);
    start = o.data() + at;
  }
  char* p = start;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  if (!reason.empty()) {
    put("HTTP/1.1 ");
    p = put_decimal(p, static_cast<uint64_t>(ex.status));
    *p++ = ' ';
    put(reason);
    put("\r\n");
  }
  put(date_line);  // with the status line when it is "200 OK": made once a second
  if (ex.has_length) {
    put(kLength);
    p = put_decimal(p, ex.length);
    put("\r\n");
  }
  if (ex.chunked) {
    put(kChunked);
    if (!trailer_line.empty()) put(trailer_line);
  }
  if (ex.close_after) {
    put(kClose);
  } else if (http10) {
    put(kKeepAlive);
  }
  put(ex.head);
  put("\r\n");
  bool body_put =
      with_body && start == stack && body.size() <= sizeof(stack) - static_cast<size_t>(p - stack);
  if (body_put) put(body);
  if (start == stack) {
    o.append(stack, static_cast<size_t>(p - stack));
  } else {
    o.resize(static_cast<size_t>(p - o.data()));
  }
  if (with_body) {
    if (!body_put) o.append(body);
    ex.written += body.size();
  }
  // The head buffer stays with the exchange, its capacity kept: a connection
  // recycles its last exchange for the next request (no allocation and no
  // swap per response; trimmed with the connection's buffers when idle).
  ex.head.clear();
  return with_body;
}

}  // namespace

void Connection::send_head(Exchange& ex) {
  write_head(t_->output(), ex, server_->date(), server_->stopping_, {});
}

void Connection::write_body(Exchange& ex, std::string_view chunk) {
  if (chunk.empty() || ex.head_request()) return;
  if (ex.status == 204 || ex.status == 304) return;
  ex.written += chunk.size();
  std::string& o = t_->output();
  if (ex.chunked) {
    char size[24];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    o.append(size, static_cast<size_t>(n));
    o.append(chunk);
    o += "\r\n";
  } else {
    o.append(chunk);
  }
}

void Connection::finish(Exchange& ex) {
  if (ex.finished) return;
  if (!ex.headers_sent) {
    if (!ex.has_length && ex.trailers.empty()) {  // (trailers need a chunked body)
      ex.has_length = true;
      ex.length = 0;
    }
    send_head(ex);
  }
  if (ex.chunked && !ex.head_request()) {
    if (ex.trailers.empty()) {
      t_->output() += "0\r\n\r\n";
    } else {
      end_chunked_with_trailers(t_->output(), ex.trailers);
    }
  }
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

bool Connection::answers_quietly(const Exchange& ex) const {
  // in_advance_: the request was dispatched by the parse loop still running
  // (the handler answers at once), so finish() does not call advance();
  // close_after, HTTP/1.0 and stopping would close after the answer; an
  // unfinished body would leave the connection draining.
  return in_advance_ && !closed_ && state_ == State::Responding && current_.get() == &ex &&
         !server_->stopping_ && !ex.close_after && ex.body_done && !ex.headers_sent && ex.trailers.empty() &&
         ex.body_reader == nullptr && ex.req->version_major == 1 && ex.req->version_minor == 1 &&
         !ex.req->expect_continue;
}

void Connection::send_whole(Exchange& ex, std::string_view body) {
  if (!ex.trailers.empty() && !ex.has_length) {
    // Trailers go only after a chunked body: no Content-Length then (as Go
    // and Node do once trailers are declared).
    send_head(ex);
    write_body(ex, body);
    finish(ex);
    return;
  }
  ex.has_length = true;
  ex.length = body.size();
  // The body in the same growth of the output as the head, when it goes as it is.
  if (!write_head(t_->output(), ex, server_->date(), server_->stopping_, body)) write_body(ex, body);
  finish(ex);
}

bool Connection::congested() const { return pending_output() > server_->config().high_water; }

void Connection::wait_writable(Task* t, uint32_t id) {
  writer_ = t;
  writer_id_ = id;
  flush();
}

// The answers of one read leave with every other connection's of this loop
// turn: corked until the poll's callbacks are done (the scheduler's drain
// after the poll flushes), then written back to back. A client that
// pipelines on many connections is woken once for the turn's answers, not
// once per connection between the parsing of the next ones: ~5% less CPU
// per pipelined request ("One loop turn's answers leave together" in
// docs/performance.md). Output past the high-water mark, or behind a write
// in flight, is flushed as before: reading and parsing wait on it. (Under
// --io=uring a flush only queues the sends of the turn's batch already.)
void Connection::flush_soon() {
  if (!t_->evented() || t_->sends_with_turn() || t_->write_in_flight() || t_->pending() == 0 || congested()) {
    flush();
    return;
  }
  server_->tasks().scheduler().cork(this);
}

void Connection::flush_now() {
  if (leave_cork()) flush_corked();
}

void Connection::flush_corked() {
  flush();
  // What advance() did after its flush: with the output gone, an idle
  // connection's deadline (and buffer trimming) applies from now.
  if (!closed_ && !in_advance_) update_deadline();
}

void Connection::flush() {
  if (closed_ || state_ == State::Upgraded) return;
  t_->flush();
  if (t_->write_error() != 0) {
    close();
    return;
  }
  if (t_->write_in_flight()) arm_send_deadline();
  after_output();
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

// What may go on once output has moved: a waiting writer, the end of a
// closing connection.
void Connection::after_output() {
  wake_writer_if_ready();
  if (state_ == State::Closing && t_->drained()) finish_closing();
}

// A write completed (from the transport).
void Connection::on_output() {
  if (closed_) return;
  if (t_->write_error() != 0) {
    close();
    return;
  }
  if (t_->write_in_flight()) {
    arm_send_deadline();
  } else {
    send_deadline = 0;  // all taken: nothing to time out
  }
  after_output();
  if (closed_ || state_ == State::Closing || state_ == State::Upgraded) return;
  // Output drained below the mark: parsing and reading go on (a pipelining
  // client waits on us), and the connection's own deadline applies again.
  if (!congested() && !in_advance_) advance();
}

void Connection::close_soon() {
  if (closed_) return;
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
  if (closed_ || shut_down_) return;
  tls::Session* tls = t_->tls();
  if (tls != nullptr && !tls->failed() && !tls_close_sent_) {
    tls_close_sent_ = true;  // close_notify, then the TCP half-close
    tls->close();
    t_->flush();
    if (!t_->drained()) return;  // on_output comes back here
  }
  shut_down_ = true;
  if (t_->eof() || t_->shutdown() != 0) {
    close();
    return;
  }
  set_reading(true);  // read (and drop) until the peer closes, or the linger ends
  deadline = uv_now(server_->runtime().loop()) + 2000;
  waiting_for = Wait::Linger;
}

// ------------------------------------------------------------ files and upgrades

int64_t Connection::send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) {
  auto finish = [length](int64_t result) {
    return result < 0 ? static_cast<int>(result) : (result < length ? UV_EPIPE : 0);
  };
  int64_t r = t_->send_file(fd, offset, length, /*owns_fd=*/true,
                            [done = std::move(done), finish](int64_t result) { done(finish(result)); });
  if (t_->file_in_flight()) arm_send_deadline();
  if (r == Transport::kPending) return r;
  return finish(r);
}

std::unique_ptr<Stream> Connection::detach_to_stream(Exchange& ex) {
  // The exchange is over; the connection steps aside without a word.
  ex.finished = true;
  ex.conn = nullptr;
  current_ = nullptr;
  state_ = State::Upgraded;
  deadline = 0;
  send_deadline = 0;
  set_reading(false);
  t_->set_user(nullptr);
  auto stream = std::make_unique<Stream>(server_->tasks(), std::move(t_));
  server_->reap_soon();  // this connection ends once off the stack
  return stream;
}

namespace {
// The handler task a connection's dispatch runs at once, while it runs (see
// next_batch_request).
struct BatchContext {
  Connection* conn = nullptr;
  Task* task = nullptr;
};
thread_local BatchContext g_batch;
}  // namespace

// A batch's runner takes the next request: it is parsed now, and dispatch
// hands its exchange here (run_task) instead of starting a task.
std::shared_ptr<Exchange> Connection::pull_next() {
  if (closed_ || !in_advance_) return nullptr;
  pulling_ = true;
  while (pulled_ == nullptr && parse_step()) {
  }
  pulling_ = false;
  return std::move(pulled_);
}

// The next request for the batch task calling (both styles), or nullptr.
std::shared_ptr<Exchange> pull_batch_request(TaskSystem& sys, Task** task) {
  BatchContext b = g_batch;
  if (b.conn == nullptr || sys.resuming != b.task || !TaskSystem::can_take_next_job(b.task)) return nullptr;
  TaskSystem::hold(b.task, nullptr);  // the last request's exchange goes now (it was answered)
  *task = b.task;
  return b.conn->pull_next();
}

// The FFI's pulls (src/bind/http.cpp fast::next_event and
// fast::next_request): as next_event_request and next_batch_request for the
// common case, a whole request parsed from the input in the Waiting state,
// and nothing else, since an FFI call must not reach Lua (an event, a task,
// a close). Before parsing, anything unusual refuses (-1: the caller takes
// the classic pull); after it, any other result is kept in deferred_ for
// the classic pull (parse_step) to start, and refused. 1 with *out the
// exchange, 0 when the input holds none, -1 refused (both send the caller
// to the classic pull). An empty input is told first: under keep-alive
// every read's one request is followed by a call that finds nothing.
inline int Connection::pull_whole(Task* task, bool events, std::shared_ptr<Exchange>* out) {
  if (closed_ || state_ != State::Waiting) return -1;  // (an upgraded connection's transport is gone)
  if (t_->buffered() == 0) return 0;
  if (server_->config().events != events || server_->tasks().resuming != task ||
      !TaskSystem::can_take_next_job(task))
    return -1;
  if (!in_advance_ || deferred_ || pulled_ != nullptr || congested()) return -1;
  size_t used = 0;
  RequestParser::Result r = parser().feed(t_->input(), &used);
  t_->consume(used);
  if (r == RequestParser::Result::NeedMore) return 0;  // (Waiting: nothing to feed)
  if (r != RequestParser::Result::Complete || parser_->request().upgrade ||
      !parser_->request().trailers.empty()) {
    deferred_ = r;
    return -1;
  }
  // (The task style's last request's exchange goes now, as in
  // pull_batch_request; the event style holds nothing.)
  TaskSystem::hold(task, nullptr);
  pulling_ = true;
  dispatch(true);
  pulling_ = false;
  *out = std::move(pulled_);
  return *out != nullptr ? 1 : -1;
}

int pull_event_fast(Server& server, std::shared_ptr<Exchange>* out) {
  BatchContext b = g_batch;
  if (b.conn == nullptr || b.conn->server_.get() != &server) return -1;
  return b.conn->pull_whole(b.task, true, out);
}

namespace {
// A pulled request becomes the batch task's: a client that leaves cancels
// it, and what its res names lives while it runs.
void give_to_handler(Task* t, const std::shared_ptr<Exchange>& ex) {
  ex->handler = t;
  TaskSystem::hold(t, ex);
}
}  // namespace

std::shared_ptr<Exchange> pull_request_fast() {
  std::shared_ptr<Exchange> ex;
  Connection* c = g_batch.conn;
  if (c == nullptr || c->pull_whole(g_batch.task, false, &ex) != 1) return ex;
  give_to_handler(g_batch.task, ex);
  return ex;
}

std::shared_ptr<Exchange> next_batch_request(TaskSystem& sys) {
  Task* t = nullptr;
  std::shared_ptr<Exchange> ex = pull_batch_request(sys, &t);
  if (ex != nullptr) give_to_handler(t, ex);
  return ex;
}

std::shared_ptr<Exchange> next_event_request(TaskSystem& sys) {
  // (The server's pending map holds the exchange until it is answered, and
  // no task is its handler: a client that leaves is HTTP_CONNECTION_ABORTED,
  // not a cancellation of the batch.)
  Task* t = nullptr;
  return pull_batch_request(sys, &t);
}

void run_batch_now(TaskSystem& sys, Task* t, Connection* batch) {
  BatchContext outer = g_batch;
  g_batch = batch != nullptr ? BatchContext{batch, t} : BatchContext{};
  sys.run_now(t);
  g_batch = outer;
}

namespace {
void unpark_runner(Task* /*t*/, void* arg) { static_cast<Server*>(arg)->parked_runner = nullptr; }
}  // namespace

Task* take_parked_runner(Server& server, Connection* batch) {
  Task* t = server.parked_runner;
  if (t == nullptr || batch == nullptr || server.tasks().resuming != nullptr) return nullptr;
  server.parked_runner = nullptr;
  // (The wait's cancel hook unparks it and nothing of Evo's wakes it, but a
  // script's coroutine.resume of its coroutine can take it out of the wait.)
  return TaskSystem::waits_in(t, server.parked_wait) ? t : nullptr;
}

void run_parked_runner(Server& server, Task* t, Connection* batch, int nvalues) {
  BatchContext outer = g_batch;
  g_batch = BatchContext{batch, t};
  server.tasks().wake_results(t, server.parked_wait, nvalues, true);
  g_batch = outer;
}

bool park_batch_runner(TaskSystem& sys) {
  BatchContext b = g_batch;
  if (b.conn == nullptr || sys.resuming != b.task || sys.blocking() || !TaskSystem::can_take_next_job(b.task))
    return false;
  Server& server = *b.conn->server_;
  if (server.parked_runner != nullptr || server.stopping_) return false;
  if (server.anchored_runner != b.task) {  // (the same runner parks read after read: anchored once)
    sys.unanchor(server.runner_anchor);
    server.runner_anchor = sys.anchor(b.task);
    server.anchored_runner = b.task;
  }
  server.parked_runner = b.task;
  server.parked_wait = sys.begin_wait(b.task, unpark_runner, &server);
  return true;
}

void Server::release_parked_runner() {
  Task* t = parked_runner;
  parked_runner = nullptr;
  if (t != nullptr && !tasks().closed()) tasks().wake_results(t, parked_wait, 0, false);
  if (anchored_runner != nullptr) {  // (a woken task is alive until it finishes: anchored by its own ref)
    tasks().unanchor(runner_anchor);
    runner_anchor = LUA_NOREF;
    anchored_runner = nullptr;
  }
}

void run_handler_task(Server& server, std::shared_ptr<Exchange> ex, Connection* batch) {
  TaskSystem& sys = server.tasks();
  lua_State* L = sys.L();
  if (Task* parked = take_parked_runner(server, batch)) {
    push_request(L, ex);
    ex->handler = parked;  // as below
    TaskSystem::hold(parked, std::move(ex));
    run_parked_runner(server, parked, batch, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, server.runner_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, server.handler_ref);
  // runner(handler, ref) builds res and req in Lua, where their keys are constants:
  // cheaper than setting them one by one from C.
  push_request(L, ex);
  // Straight from the read callback the handler runs at once, so those that
  // answer without waiting answer before the next pipelined request is read;
  // from inside another task it is queued like any new task.
  bool now = sys.resuming == nullptr;
  Task* t = sys.spawn_pooled(L, 2, !now);
  ex->handler = t;                     // until the runner's done(): a client that leaves cancels it
  TaskSystem::hold(t, std::move(ex));  // what its res names (ExchangeRef) lives while it runs
  if (now) run_batch_now(sys, t, batch);
}

void Connection::run_task(std::shared_ptr<Exchange> ex) {
  if (pulling_) {
    pulled_ = std::move(ex);
    return;
  }
  run_handler_task(*server_, std::move(ex), this);
}

}  // namespace evo::http
