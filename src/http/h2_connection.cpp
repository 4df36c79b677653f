// HTTP/2 in the server (see h2_connection.h).
#include "http/h2_connection.h"

#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>

#include "lua/errors.h"
#include "lua/runtime.h"
#include "lua/tasks.h"

namespace evo::http {

namespace {

constexpr size_t kFileChunk = size_t{64} * 1024;  // a sendFile read

uint64_t to_ms(double seconds) {
  return seconds > 0 ? static_cast<uint64_t>(std::llround(seconds * 1000.0)) : 0;
}

bool no_body_status(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

// The session's clock is the loop's: rate limits and stalled_since() in the
// same milliseconds as the sweep.
h2::Options session_options(const Server& server, uv_loop_t* loop) {
  h2::Options o = server.config().h2;
  o.clock = [loop] { return uv_now(loop); };
  return o;
}

// Header lines ("Name: value\r\n"..., validated) as fields, by view.
void append_line_fields(std::string_view head, std::vector<h2::Field>& fields) {
  while (!head.empty()) {
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    fields.push_back({line.substr(0, colon), value});
  }
}

}  // namespace

// ------------------------------------------------------------ stream

H2Stream::~H2Stream() { close_file(); }

// The response head: the handler's header lines (already validated by
// Exchange::header_error, as for HTTP/1.1) become the HPACK field list, by
// view: ex.head, the date and the digits stay put until the session has
// copied them.
void H2Stream::submit(Exchange& ex, bool end_stream) {
  ex.headers_sent = true;
  if (conn_ == nullptr) return;
  std::vector<h2::Field>& fields = conn_->fields_;
  fields.clear();
  fields.push_back({"date", conn_->server_->date().now()});
  char digits[24];
  if (ex.has_length && !no_body_status(ex.status)) {
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), ex.length);
    fields.push_back({"content-length", std::string_view(digits, static_cast<size_t>(end - digits))});
  }
  append_line_fields(ex.head, fields);
  conn_->session_.submit_response_fields(id_, ex.status, fields, end_stream);
  ex.head.clear();
  end_sent_ = end_stream;
}

void H2Stream::send_head(Exchange& ex) {
  bool empty = ex.head_request() || no_body_status(ex.status) ||
               (ex.has_length && ex.length == 0 && ex.trailers.empty());
  submit(ex, empty);
}

// A 1xx before the response: HEADERS without END_STREAM (RFC 9113 8.1).
void H2Stream::send_informational(Exchange& ex, int status, std::string_view lines) {
  if (conn_ == nullptr || ex.headers_sent) return;
  std::vector<h2::Field>& fields = conn_->fields_;
  fields.clear();
  append_line_fields(lines, fields);
  conn_->session_.submit_informational(id_, status, fields);
  conn_->flush();
}

// The end of the body: END_STREAM on the last DATA, or the trailers'
// HEADERS (which carry END_STREAM) after it.
void H2Stream::end_body(Exchange& ex) {
  end_sent_ = true;
  if (ex.trailers.empty()) {
    conn_->session_.end(id_);
  } else {
    conn_->session_.submit_trailers(id_, ex.trailers);
  }
}

void H2Stream::write_body(Exchange& ex, std::string_view chunk) {
  if (chunk.empty() || end_sent_ || conn_ == nullptr) return;
  ex.written += chunk.size();
  conn_->session_.write(id_, chunk);
}

void H2Stream::finish(Exchange& ex) {
  if (ex.finished) return;
  if (!ex.headers_sent) {
    if (!ex.has_length) {
      ex.has_length = true;
      ex.length = 0;
    }
    send_head(ex);
  }
  if (conn_ != nullptr && !end_sent_) {
    end_sent_ = true;
    // A declared length that was not met: the client must not take the
    // body as whole (RFC 9113 8.1.1).
    if (ex.has_length && ex.written != ex.length && !ex.head_request()) {
      conn_->session_.reset_stream(id_, h2::InternalError);
    } else {
      end_body(ex);
    }
  }
  ended(ex);
}

void H2Stream::send_whole(Exchange& ex, std::string_view body) {
  ex.has_length = true;
  ex.length = body.size();
  bool empty = (body.empty() && ex.trailers.empty()) || ex.head_request() || no_body_status(ex.status);
  submit(ex, empty);
  if (!empty && conn_ != nullptr) {
    ex.written = body.size();
    conn_->session_.write(id_, body);
    end_body(ex);
  }
  ended(ex);
}

// The response is complete: the body the handler never read goes back to
// the peer's window (the rest of it is dropped as it comes).
void H2Stream::ended(Exchange& ex) {
  ex.finished = true;
  if (conn_ == nullptr) return;
  Server& server = *conn_->server_;
  if (server.config().events) server.pending.erase(ex.id);
  if (unconsumed_ > 0) {
    conn_->session_.consume(id_, unconsumed_);
    unconsumed_ = 0;
  }
  conn_->flush();
}

bool H2Stream::congested() const {
  if (conn_ == nullptr) return false;
  size_t mark = conn_->server_->config().high_water;
  return conn_->session_.buffered(id_) > mark || conn_->t_.pending() > mark;
}

void H2Stream::wait_writable(Task* t, uint32_t id) {
  writer_ = t;
  writer_id_ = id;
  flush();
}

void H2Stream::body_consumed() {
  if (conn_ == nullptr || unconsumed_ == 0) return;
  conn_->session_.consume(id_, unconsumed_);  // WINDOW_UPDATE: the peer may send more
  unconsumed_ = 0;
  conn_->flush();
}

void H2Stream::flush() {
  if (conn_ != nullptr) conn_->flush();
}

void H2Stream::wake_writer(const char* error) {
  if (writer_ == nullptr || conn_ == nullptr) return;
  Task* t = writer_;
  writer_ = nullptr;
  TaskSystem& sys = conn_->server_->tasks();
  if (error != nullptr) {
    sys.wake_error(t, writer_id_, "Closed", error);
    return;
  }
  lua_pushboolean(sys.L(), 1);
  sys.wake(t, writer_id_, 1);
}

// ---- res:sendFile over HTTP/2: the file is read in pieces into the
// stream's queue while it is below the high-water mark, so memory stays
// bounded by the mark whatever the peer's window (the file is read on the
// loop, as the transport does for TLS).
int64_t H2Stream::send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) {
  file_fd_ = fd;
  file_offset_ = offset;
  file_left_ = length;
  file_done_ = std::move(done);
  // While in this call the file's end is recorded, not called back: the
  // caller has not begun to wait yet, and learns it from the result.
  file_sync_ = true;
  file_status_ = pump_file();
  if (file_status_ == 1) flush();  // (may read on, and finish, the file)
  file_sync_ = false;
  if (file_status_ == 1) return Transport::kPending;
  file_done_ = nullptr;
  return file_status_;  // 0 or a libuv error, as Connection::send_file
}

void H2Stream::file_finished(int status) {
  if (file_sync_) {
    file_status_ = status;
    return;
  }
  std::function<void(int)> done = std::move(file_done_);
  file_done_ = nullptr;
  if (done) done(status);
}

// 0: all queued; 1: more to read later; < 0: a read error (libuv code).
int H2Stream::pump_file() {
  if (file_fd_ < 0 || conn_ == nullptr) return file_fd_ < 0 ? 0 : UV_ECANCELED;
  size_t mark = conn_->server_->config().high_water;
  std::string chunk;
  while (file_left_ > 0 && conn_->session_.buffered(id_) < mark) {
    chunk.resize(static_cast<size_t>(std::min<int64_t>(file_left_, kFileChunk)));
    ssize_t n = ::pread(file_fd_, chunk.data(), chunk.size(), file_offset_);
    if (n <= 0) {
      close_file();
      return n < 0 ? uv_translate_sys_error(errno) : UV_EPIPE;  // an error, or the file shrank
    }
    file_offset_ += n;
    file_left_ -= n;
    conn_->session_.write(id_, std::string_view(chunk.data(), static_cast<size_t>(n)));
  }
  if (file_left_ > 0) return 1;
  close_file();
  return 0;
}

// From the connection: the queue drained; more of the file, or its end.
void H2Stream::file_progress() {
  if (file_fd_ < 0) return;
  int status = pump_file();
  if (status != 1) file_finished(status);
}

void H2Stream::close_file() {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
}

void H2Stream::cancel_file() {
  close_file();
  file_done_ = nullptr;
}

void H2Stream::close() {
  if (conn_ == nullptr) return;
  conn_->session_.reset_stream(id_, h2::InternalError);
  conn_->flush();
}

void H2Stream::cut(Exchange& ex) {
  ex.finished = true;
  if (conn_ != nullptr && conn_->server_->config().events) conn_->server_->pending.erase(ex.id);
  close();
}

// ------------------------------------------------------------ connection

H2Connection::H2Connection(std::shared_ptr<Server> server, Transport& t, Connection& owner)
    : server_(std::move(server)),
      t_(t),
      owner_(owner),
      session_(h2::Role::Server, *this, session_options(*server_, server_->runtime().loop())) {
  idle_since_ = uv_now(server_->runtime().loop());
}

H2Connection::~H2Connection() {
  for (auto& [id, ex] : streams_) {
    auto* s = stream_of(ex);
    s->conn_ = nullptr;
    ex->conn = nullptr;
  }
}

void H2Connection::start(const std::shared_ptr<Exchange>& upgraded) {
  if (upgraded != nullptr) {
    std::optional<std::string_view> settings = upgraded->req->header("http2-settings");
    if (!settings || !session_.upgrade(*settings, upgraded->head_request())) {
      close();
      return;
    }
    upgraded->id = server_->next_id();
    upgraded->remote_ip = owner_.remote_ip_;
    upgraded->remote_port = owner_.remote_port_;
    upgraded->req->version_major = 2;
    upgraded->req->version_minor = 0;
    upgraded->stream = std::make_unique<H2Stream>(this, 1);
    upgraded->conn = upgraded->stream.get();
    streams_[1] = upgraded;
    idle_since_ = 0;
    touched_.push_back(upgraded);
    stream_of(upgraded)->touched_ = true;
    process();
  }
  flush();
  on_input();
}

bool H2Connection::runs_handler(const Task* t) const {
  return std::any_of(streams_.begin(), streams_.end(),
                     [t](const auto& kv) { return kv.second->handler == t; });
}

void H2Connection::on_input() {
  if (closing_) return;
  if (t_.read_error() != 0) {
    close();  // reset, or a TLS failure: nobody to answer
    return;
  }
  if (t_.buffered() > 0) {
    std::string_view in = t_.input();
    ++in_session_;
    bool more = session_.receive(in.data(), in.size());
    --in_session_;
    t_.consume(in.size());
    if (!more) t_.set_reading(false);
    process();
    flush();
    if (closing_) return;
  }
  // The peer's end of the stream: nothing more can arrive, the streams
  // cannot complete.
  if (t_.eof()) close();
}

void H2Connection::on_output() {
  if (closing_) return;
  if (t_.write_error() != 0) {
    close();
    return;
  }
  flush();
}

// The socket is gone: the streams still open learn it, then the owner
// removes itself from the server, destroying this connection.
void H2Connection::on_transport_closed() {
  closing_ = true;
  std::vector<std::shared_ptr<Exchange>> open;
  open.reserve(streams_.size());
  for (auto& [id, ex] : streams_) open.push_back(ex);
  for (auto& ex : touched_) open.push_back(ex);  // (closed streams not yet processed)
  streams_.clear();
  touched_.clear();
  for (auto& ex : open) lost(ex, h2::Cancel);
  owner_.on_transport_closed();  // last: destroys this
}

void H2Connection::release_transport() { close(); }

void H2Connection::close() {
  if (closing_) return;
  closing_ = true;
  owner_.close();  // on_transport_closed follows, from libuv
}

void H2Connection::shutdown() {
  if (closing_) return;
  if (shutdown_at_ == 0) shutdown_at_ = uv_now(server_->runtime().loop());
  session_.shutdown();
  flush();
}

// The send timeout (the peer holds its window at zero, or takes none of our
// bytes), the idle timeout (no stream for idleTimeout: GOAWAY), and the
// graceful shutdown's wait for the PING ACK.
void H2Connection::sweep(uint64_t now) {
  if (closing_) return;
  const ServerConfig& cfg = server_->config();
  uint64_t send_ms = to_ms(cfg.send_timeout);
  uint64_t stalled = session_.stalled_since();
  if (send_ms > 0 && stalled != 0 && now - stalled >= send_ms) {
    close();
    return;
  }
  if (t_.drained() || t_.sent() != sent_mark_) {
    sent_mark_ = t_.sent();
    sent_at_ = now;
  } else if (send_ms > 0 && now - sent_at_ >= send_ms) {
    close();
    return;
  }
  if (shutdown_at_ != 0 && now - shutdown_at_ >= 1000) {
    session_.finish_shutdown();  // the peer did not answer the PING
    flush();
    if (now - shutdown_at_ >= 1000 + std::max<uint64_t>(send_ms, 1000) && streams_.empty()) close();
    return;
  }
  uint64_t idle_ms = to_ms(cfg.idle_timeout);
  if (idle_ms > 0 && idle_since_ != 0 && now - idle_since_ >= idle_ms) shutdown();
}

// ---- session callbacks: they record; process() acts.

void H2Connection::touch(int32_t stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  H2Stream* s = stream_of(it->second);
  if (s->touched_) return;
  s->touched_ = true;
  touched_.push_back(it->second);
}

void H2Connection::on_request(int32_t stream, h2::RequestHead&& head, bool end_stream) {
  auto ex = std::make_shared<Exchange>();
  Request& r = *ex->req;
  r.method = std::move(head.method);
  r.target = std::move(head.path);
  r.version_major = 2;
  r.version_minor = 0;
  r.headers = std::move(head.headers);
  // Handlers read the origin from the Host header, as over HTTP/1.1.
  if (!head.authority.empty() && !r.header("host")) r.headers.insert_front("host", head.authority);
  ex->id = server_->next_id();
  ex->remote_ip = owner_.remote_ip_;
  ex->remote_port = owner_.remote_port_;
  ex->body_done = end_stream;
  ex->stream = std::make_unique<H2Stream>(this, stream);
  ex->conn = ex->stream.get();
  streams_[stream] = std::move(ex);
  idle_since_ = 0;
  touch(stream);
}

void H2Connection::on_data(int32_t stream, std::string_view data) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  Exchange& ex = *it->second;
  H2Stream* s = stream_of(it->second);
  s->received_ += data.size();
  if (ex.finished || ex.body_error_status != 0) {
    session_.consume(stream, data.size());  // nobody will read it
    return;
  }
  if (s->received_ > server_->config().limits.max_body) {
    ex.body_error_status = 413;
    ex.body_error = "the request body is larger than maxBodyBytes";
    session_.consume(stream, data.size());
    touch(stream);
    return;
  }
  ex.body.append(data);
  if (server_->config().events) {
    session_.consume(stream, data.size());  // the event style takes the body whole
  } else {
    s->unconsumed_ += data.size();
  }
  touch(stream);
}

// The request's trailing HEADERS (nghttp2 checked they end the stream;
// the session bounded them by max_header_list_size).
void H2Connection::on_trailers(int32_t stream, h2::HeaderList&& trailers) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  it->second->req->trailers = std::move(trailers);
}

void H2Connection::on_end_stream(int32_t stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  it->second->body_done = true;
  touch(stream);
}

void H2Connection::on_stream_close(int32_t stream, uint32_t code) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  H2Stream* s = stream_of(it->second);
  touch(stream);  // (keeps the exchange in touched_)
  s->gone_ = true;
  s->close_code_ = code;
  streams_.erase(it);
  if (streams_.empty()) idle_since_ = uv_now(server_->runtime().loop());
}

void H2Connection::on_send_progress(int32_t /*stream*/, size_t /*buffered*/) { progressed_ = true; }

// What the callbacks recorded, outside the session: new streams start their
// handler, body readers wake, streams that ended abort their handler.
//
// Corked: a handler that answers at once (res:send) would otherwise flush
// the session and write the socket on its own, one write per stream; the
// batch's output goes out in one write by the caller's flush() after this.
bool H2Connection::process() {
  if (touched_.empty()) return false;
  std::vector<std::shared_ptr<Exchange>> batch;
  batch.swap(touched_);
  struct Cork {
    int& n;
    explicit Cork(int& c) : n(++c) {}
    ~Cork() { --n; }
  } cork(corked_);
  for (auto& ex : batch) {
    H2Stream* s = stream_of(ex);
    s->touched_ = false;
    if (s->gone_) {
      if (s->dispatched_ || s->close_code_ == h2::NoError) lost(ex, s->close_code_);
      continue;
    }
    if (!s->dispatched_) {
      dispatch(ex);
      continue;
    }
    wake_body_reader(*server_, *ex);
    if (server_->config().events && ex->body_done && !s->finished_emitted_) {
      s->finished_emitted_ = true;
      emit_finished(*server_, *ex);
    }
  }
  return true;
}

void H2Connection::dispatch(const std::shared_ptr<Exchange>& ex) {
  H2Stream* s = stream_of(ex);
  s->dispatched_ = true;
  if (!server_->config().events) {
    run_handler_task(*server_, ex);
    return;
  }
  server_->pending[ex->id] = ex;
  emit_started(*server_, *ex);
  if (ex->body_done) {
    s->finished_emitted_ = true;
    emit_finished(*server_, *ex);
  }
}

// The stream is gone (both sides done, reset, or the connection lost): its
// exchange is detached, and a handler still answering is cancelled.
void H2Connection::lost(const std::shared_ptr<Exchange>& ex, uint32_t code) {
  H2Stream* s = stream_of(ex);
  if (s->conn_ == nullptr) return;
  s->wake_writer("the stream was closed");
  TaskSystem& sys = server_->tasks();
  if (ex->body_reader != nullptr && !sys.closed()) {
    Task* t = ex->body_reader;
    ex->body_reader = nullptr;
    sys.wake_error(t, ex->body_reader_id, "Closed", "the stream was closed");
  }
  bool file = s->file_fd_ >= 0;
  s->close_file();
  s->conn_ = nullptr;
  ex->conn = nullptr;
  if (file) s->file_finished(UV_ECANCELED);
  if (ex->finished && code == h2::NoError) return;
  cancel_handler(*server_, *ex);
  if (server_->config().events) {
    server_->pending.erase(ex->id);
    report_abort(*server_, *ex);
  }
}

// Writes what the session has, while the transport's queue is below the
// mark (HTTP/2's windows bound what stays queued in the session). Runs the
// work output made possible (writers, files) and what the session's
// callbacks recorded, until nothing moves.
void H2Connection::flush() {
  if (in_session_ > 0 || corked_ > 0 || flushing_ || closing_) return;
  flushing_ = true;
  size_t mark = server_->config().high_water;
  bool moved = true;
  while (moved && !closing_) {
    size_t taken = 0;
    ++in_session_;
    while (t_.pending() < mark) {
      size_t n = session_.take_output(t_.output(), mark);
      if (n == 0) break;
      taken += n;
    }
    --in_session_;
    if (taken > 0) t_.flush();
    if (t_.write_error() != 0) {
      flushing_ = false;
      close();
      return;
    }
    bool worked = after_output();
    worked = process() || worked;
    moved = taken > 0 || worked;
  }
  flushing_ = false;
  if (!closing_ && session_.finished() && t_.drained()) close();
}

// Streams that may go on now that output moved: writers below the mark,
// files to read further.
bool H2Connection::after_output() {
  bool any = progressed_;
  progressed_ = false;
  bool worked = false;
  std::vector<std::shared_ptr<Exchange>> ready;
  for (auto& [id, ex] : streams_) {
    H2Stream* s = stream_of(ex);
    if ((s->writer_ != nullptr && !s->congested()) || (any && s->file_fd_ >= 0)) ready.push_back(ex);
  }
  for (auto& ex : ready) {
    H2Stream* s = stream_of(ex);
    if (s->file_fd_ >= 0) s->file_progress();
    if (s->writer_ != nullptr && !s->congested()) s->wake_writer(nullptr);
    worked = true;
  }
  return worked;
}

}  // namespace evo::http
