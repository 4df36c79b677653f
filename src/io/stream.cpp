#include "io/stream.h"

#include <fcntl.h>

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/handle.h"
#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/runtime.h"

namespace evo {

// Read and write timeouts of an evented stream: one timer, armed for the
// earlier of the two deadlines.
class StreamTimer final : public NativeHandle {
 public:
  StreamTimer(uv_loop_t* loop, Stream* s) : stream(s) { uv_timer_init(loop, &timer_); }
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&timer_); }
  [[nodiscard]] bool internal() const override { return true; }
  void start(uint64_t ms) { uv_timer_start(&timer_, on_fire, ms, 0); }
  void stop() { uv_timer_stop(&timer_); }
  Stream* stream;

 protected:
  // Closed by the runtime's exit sweep before its stream: let the stream know.
  void on_closed() override {
    if (stream != nullptr) stream->on_timer_closed();
  }

 private:
  static void on_fire(uv_timer_t* t) {
    auto* self = static_cast<StreamTimer*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(t)));
    if (self->stream != nullptr) self->stream->on_timeout();
  }
  uv_timer_t timer_{};
};

namespace {

int push_error_result(lua_State* L, const char* code, const std::string& message) {
  lua_pushnil(L);
  errors::push_error(L, code, message);
  return 2;
}

int push_uv_error_result(lua_State* L, int status) {
  lua_pushnil(L);
  errors::push_uv_error(L, status);
  return 2;
}

// (true, results...): the protocol's "done now" answer.
int done_now(lua_State* L, int n) {
  lua_pushboolean(L, 1);
  lua_insert(L, -(n + 1));
  return n + 1;
}

int push_timeout(lua_State* L) {
  return push_error_result(L, "Timeout", "could not write within the write timeout");
}

uint64_t to_ms(double seconds) { return static_cast<uint64_t>(std::llround(seconds * 1000.0)); }

}  // namespace

// ---------------------------------------------------------------------- Stream

Stream::Stream(TaskSystem& sys, UvStreamHandle* handle) : Stream(sys, std::make_unique<Transport>(handle)) {}

Stream::Stream(TaskSystem& sys, int fd) : Stream(sys, std::make_unique<Transport>(fd)) {}

Stream::Stream(TaskSystem& sys, std::unique_ptr<Transport> transport) : sys_(sys), t_(std::move(transport)) {
  t_->set_user(this);
}

Stream::~Stream() {
  close();
  t_->set_user(nullptr);
}

void Stream::close() {
  if (closed_) return;
  closed_ = true;
  fail_waiters("Closed", "the stream was closed");
  if (timer_ != nullptr) {
    timer_->stream = nullptr;
    timer_->close();
    timer_ = nullptr;
  }
  if (stdio_) t_->finish_writes_now();  // standard output is never dropped
  t_->close();
  if (on_close_) {
    auto done = std::move(on_close_);
    on_close_ = nullptr;
    done();
  }
}

void Stream::set_stdio(FILE* file, void (*on_epipe)(), std::function<void()> on_close) {
  stdio_ = true;
  stdio_file_ = file;
  on_epipe_ = on_epipe;
  on_close_ = std::move(on_close);
}

bool Stream::queue_if_busy(std::string_view bytes) {
  if (closed_ || !t_->evented() || t_->drained()) return false;
  t_->write(bytes);
  t_->flush();
  return true;
}

// A write's failure for Lua: (nil, err). A standard stream whose reader is
// gone may end the process here instead (on_epipe).
int Stream::push_write_error(lua_State* L, int status) {
  if (status == UV_EPIPE && on_epipe_ != nullptr) on_epipe_();
  return push_uv_error_result(L, status);
}

void Stream::on_timer_closed() { timer_ = nullptr; }

void Stream::set_timeouts(double read_seconds, double write_seconds) {
  read_timeout_ = read_seconds;
  write_timeout_ = write_seconds;
  t_->write_timeout = write_seconds;
}

void Stream::fail_waiters(const char* code, const std::string& message) {
  if (sys_.closed()) {  // at exit: the waiting tasks are being collected too
    reader_ = nullptr;
    writer_ = nullptr;
    return;
  }
  if (reader_ != nullptr) {
    Task* t = reader_;
    reader_ = nullptr;
    clear_deadline(true);
    sys_.wake_error(t, reader_id_, code, message);
  }
  if (writer_ != nullptr) {
    Task* t = writer_;
    writer_ = nullptr;
    clear_deadline(false);
    sys_.wake_error(t, writer_id_, code, message);
  }
}

// --------------------------------------------------------------- reading

int Stream::try_read(lua_State* L, const ReadRequest& req) {
  std::string_view in = t_->input();
  const size_t avail = in.size();
  const char* p = in.data();
  const bool eof = t_->eof();
  tls::Session* tls = t_->tls();
  switch (req.kind) {
    case ReadRequest::Kind::Chunk:
      if (avail > 0) {
        size_t take = (req.n > 0 && req.n < avail) ? req.n : avail;
        lua_pushlstring(L, p, take);
        t_->consume(take);
        return 1;
      }
      break;
    case ReadRequest::Kind::Exactly:
      if (avail >= req.n) {
        lua_pushlstring(L, p, req.n);
        t_->consume(req.n);
        return 1;
      }
      if (eof && avail > 0) {
        // EOF in the middle of the read: an error, with what did arrive.
        lua_pushnil(L);
        errors::push_error(
            L, "EOF",
            "end of stream after " + std::to_string(avail) + " of " + std::to_string(req.n) + " bytes");
        lua_pushlstring(L, p, avail);
        lua_setfield(L, -2, "partial");
        t_->consume(avail);
        return 2;
      }
      break;
    case ReadRequest::Kind::Line:
    case ReadRequest::Kind::Until: {
      const std::string& delim = req.delim;
      const void* hit = avail >= delim.size() ? memmem(p, avail, delim.data(), delim.size()) : nullptr;
      if (hit != nullptr) {
        size_t len = static_cast<const char*>(hit) - p;
        size_t record = len;
        if (req.kind == ReadRequest::Kind::Line && record > 0 && p[record - 1] == '\r') --record;
        lua_pushlstring(L, p, record);
        t_->consume(len + delim.size());
        return 1;
      }
      if (avail > kMaxLine) {
        t_->consume(kMaxLine);  // the too-long prefix; the same amount whatever the chunking
        return push_error_result(L, "LineTooLong",
                                 "no delimiter within " + std::to_string(kMaxLine) + " bytes");
      }
      if (eof && avail > 0) {  // the last line, without its terminator
        lua_pushlstring(L, p, avail);
        t_->consume(avail);
        return 1;
      }
      break;
    }
    case ReadRequest::Kind::All:
      if (eof) {
        lua_pushlstring(L, p, avail);
        t_->consume(avail);
        return 1;
      }
      break;
    case ReadRequest::Kind::Handshake:
      if (tls != nullptr && tls->handshake_done()) {
        lua_pushboolean(L, 1);
        return 1;
      }
      if (tls != nullptr && tls->failed()) break;
      if (eof) return push_error_result(L, "EOF", "the connection closed during the TLS handshake");
      break;
  }
  if (tls != nullptr && tls->failed()) {
    return push_error_result(L, tls->verify_failed() ? "TLSVerifyFailed" : "TLSError", tls->error());
  }
  if (t_->read_error() != 0) return push_uv_error_result(L, t_->read_error());
  if (eof) {
    lua_pushnil(L);  // a clean end: nil, and no error
    return 1;
  }
  return 0;
}

int Stream::read(lua_State* L, ReadRequest req, int yieldable_idx) {
  if (closed_) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (int n = try_read(L, req); n > 0) return done_now(L, n);
  if (reader_ != nullptr) return luaL_error(L, "another task is already reading from this stream");
  Task* t = t_->evented() ? sys_.waiter(L, yieldable_idx) : nullptr;
  if (t == nullptr) return read_blocking(L, req);
  if (sys_.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  want_data();  // may fail at once (a write-only pipe): then answer now
  if (t_->read_error() != 0 || t_->eof()) {
    int n = try_read(L, req);
    if (n > 0) return done_now(L, n);
  }
  reader_ = t;
  read_req_ = std::move(req);
  reader_id_ = sys_.begin_wait(t, cancel_read, this);
  if (read_timeout_ > 0) set_deadline(true, read_timeout_);
  return sys_.suspend(L, t);
}

void Stream::cancel_read(Task* /*t*/, void* arg) {
  auto* s = static_cast<Stream*>(arg);
  s->reader_ = nullptr;
  s->clear_deadline(true);
  if (s->read_on_demand_) s->t_->set_reading(false);
}

void Stream::want_data() { t_->set_reading(true); }

void Stream::on_input() {
  // Flow control: past kMaxBuffered the kernel buffers, unless a reader
  // waits for everything.
  bool reader_needs_more = reader_ != nullptr && read_req_.kind == ReadRequest::Kind::All;
  if (t_->buffered() > kMaxBuffered && !reader_needs_more) t_->set_reading(false);
  wake_reader_if_ready();
  if (read_on_demand_ && reader_ == nullptr) t_->set_reading(false);
}

void Stream::wake_reader_if_ready() {
  if (reader_ == nullptr) return;
  lua_State* L = sys_.L();
  int n = try_read(L, read_req_);
  if (n == 0) {
    want_data();
    return;
  }
  Task* t = reader_;
  reader_ = nullptr;
  clear_deadline(true);
  sys_.wake(t, reader_id_, n);
}

int Stream::read_blocking(lua_State* L, const ReadRequest& req) {
  if (t_->fd() < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (int fl = ::fcntl(t_->fd(), F_GETFL); fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
    return done_now(L, push_uv_error_result(L, UV_EBADF));  // a write-only pipe: poll() would wait forever
  }
  t_->set_reading(false);  // read the descriptor directly for now
  t_->flush();             // what a task corked goes before the wait for an answer
  for (;;) {
    if (int n = try_read(L, req); n > 0) return done_now(L, n);
    if (!t_->wait_fd(false, read_timeout_)) {
      return done_now(L, push_error_result(L, "Timeout", "no data within the read timeout"));
    }
    t_->read_now();
  }
}

bool Stream::read_available_blocking() {
  if (t_->at_end()) return false;
  t_->flush();
  t_->read_now();
  return !t_->at_end();
}

// --------------------------------------------------------------- writing

int Stream::write(lua_State* L, int first, int last, int yieldable_idx) {
  for (int i = first; i <= last; ++i) {
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER) {
      luaL_argerror(L, i - first + 1, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, i)));
    }
  }
  return write_with(L, yieldable_idx, [L, first, last](std::string& out) {
    for (int i = first; i <= last; ++i) {
      size_t len = 0;
      const char* s = lua_tolstring(L, i, &len);
      out.append(s, len);
    }
  });
}

int Stream::write(lua_State* L, std::string_view bytes, int yieldable_idx) {
  return write_with(L, yieldable_idx, [bytes](std::string& out) { out.append(bytes); });
}

template <class Append>
int Stream::write_with(lua_State* L, int yieldable_idx, const Append& append) {
  if (closed_) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (t_->write_error() != 0) return done_now(L, push_write_error(L, t_->write_error()));
  if (stdio_file_ != nullptr) std::fflush(stdio_file_);  // what print() holds goes first
  // A due cancellation comes before the data goes out, never after.
  Task* now = t_->evented() ? sys_.waiter(L, yieldable_idx) : nullptr;
  if (now != nullptr && sys_.take_cancel(now)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  append(t_->output());
  if (!t_->evented()) return write_blocking(L);
  if (now != nullptr && !stdio_ && t_->pending() <= high_water_ &&
      (t_->tls() == nullptr || !t_->tls()->failed())) {
    // Corked: a task's writes leave together when the loop's current drain
    // ends (one system call for all the messages one read brought), not
    // one by one. Only for a task, which can wait: code that cannot may
    // block on the descriptor next (a read with poll()), so its bytes go
    // now; standard streams keep their place before print()'s output.
    t_->cork(sys_.scheduler());
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  t_->flush();
  if (t_->write_error() != 0) return done_now(L, push_write_error(L, t_->write_error()));
  if (t_->tls() != nullptr && t_->tls()->failed()) {
    return done_now(L, push_error_result(L, "TLSError", t_->tls()->error()));
  }
  if (t_->pending() <= high_water_) {
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  // Backpressure: wait until the output drains below the high-water mark.
  return wait_as_writer(L, yieldable_idx, WriterWait::BelowHighWater);
}

int Stream::write_blocking(lua_State* L) {
  if (t_->fd() < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (!t_->flush_blocking(write_timeout_)) {
    if (t_->write_error() == 0) return done_now(L, push_timeout(L));
    return done_now(L, push_write_error(L, t_->write_error()));
  }
  if (t_->tls() != nullptr && t_->tls()->failed()) {
    return done_now(L, push_error_result(L, "TLSError", t_->tls()->error()));
  }
  lua_pushboolean(L, 1);
  return done_now(L, 1);
}

// Waits as the stream's writer until `what` happens (wake_writer_if_ready
// and on_shutdown_done answer). Where the caller cannot wait, or another
// task already waits to write, answers true now: the bytes are queued anyway.
int Stream::wait_as_writer(lua_State* L, int yieldable_idx, WriterWait what) {
  Task* t = sys_.waiter(L, yieldable_idx);
  if (t == nullptr || writer_ != nullptr) {
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  if (sys_.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  writer_ = t;
  writer_wait_ = what;
  writer_id_ = sys_.begin_wait(t, cancel_write, this);
  arm_write_deadline();
  return sys_.suspend(L, t);
}

void Stream::cancel_write(Task* /*t*/, void* arg) {
  auto* s = static_cast<Stream*>(arg);
  s->writer_ = nullptr;
  s->clear_deadline(false);
  if (s->writer_wait_ == WriterWait::File) s->t_->cancel_file();  // the rest of the file stays unsent
}

void Stream::on_output() { wake_writer_if_ready(); }

void Stream::wake_writer_if_ready() {
  if (writer_ == nullptr) return;
  lua_State* L = sys_.L();
  int error = t_->write_error();
  bool ready = false;
  switch (writer_wait_) {
    case WriterWait::BelowHighWater:
      ready = error != 0 || t_->pending() <= high_water_;
      break;
    case WriterWait::Flushed:
      ready = error != 0 || t_->drained();
      break;
    case WriterWait::ShutDown:
    case WriterWait::File:
      return;  // on_shutdown_done / the file's completion wakes it
  }
  if (!ready) return;
  Task* t = writer_;
  writer_ = nullptr;
  clear_deadline(false);
  int n = 1;
  if (error != 0) {
    n = push_write_error(L, error);
  } else {
    lua_pushboolean(L, 1);
  }
  sys_.wake(t, writer_id_, n);
}

int Stream::flush(lua_State* L, int yieldable_idx) {
  if (closed_) {
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  if (stdio_file_ != nullptr) std::fflush(stdio_file_);
  if (!t_->evented()) return write_blocking(L);
  t_->flush();
  if (t_->drained() || t_->write_error() != 0) {
    if (t_->write_error() != 0) return done_now(L, push_write_error(L, t_->write_error()));
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  return wait_as_writer(L, yieldable_idx, WriterWait::Flushed);
}

int Stream::shutdown(lua_State* L, int yieldable_idx) {
  if (closed_) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (Task* now = sys_.waiter(L, yieldable_idx); now != nullptr && sys_.take_cancel(now)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int rc = t_->shutdown();
  // The peer already gone (ENOTCONN) counts as shut down, in both modes.
  if (!t_->evented() || rc == UV_ENOTCONN) {
    if (rc != 0 && rc != UV_ENOTCONN) return done_now(L, push_uv_error_result(L, rc));
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  if (rc != 0) return done_now(L, push_uv_error_result(L, rc));
  return wait_as_writer(L, yieldable_idx, WriterWait::ShutDown);
}

void Stream::on_shutdown_done(int status) {
  if (writer_ == nullptr || writer_wait_ != WriterWait::ShutDown) return;
  lua_State* L = sys_.L();
  Task* t = writer_;
  writer_ = nullptr;
  clear_deadline(false);
  int n = 1;
  if (status < 0 && status != UV_ENOTCONN) {
    n = push_uv_error_result(L, status);
  } else {
    lua_pushboolean(L, 1);
  }
  sys_.wake(t, writer_id_, n);
}

// --------------------------------------------------------------- sendfile

int Stream::sendfile(lua_State* L, int in_fd, int64_t offset, int64_t length, int yieldable_idx) {
  if (closed_ || t_->fd() < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (t_->file_in_flight()) return luaL_error(L, "another task is already sending a file on this stream");
  Task* t = t_->evented() ? sys_.waiter(L, yieldable_idx) : nullptr;
  if (t != nullptr && sys_.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (t_->evented() && t == nullptr) {
    // An evented stream where the caller cannot wait: read and queue it.
    std::string data(static_cast<size_t>(length), '\0');
    ssize_t n = ::pread(in_fd, data.data(), data.size(), offset);
    if (n < 0) return done_now(L, push_uv_error_result(L, uv_translate_sys_error(errno)));
    t_->write(std::string_view(data.data(), static_cast<size_t>(n)));
    t_->flush();
    lua_pushinteger(L, static_cast<lua_Integer>(n));
    return done_now(L, 1);
  }
  // The completion finds this stream through its writer wait; a cancelled
  // wait drops the file (cancel_write), so it never outlives the task.
  Stream* self = this;
  int64_t r = t_->send_file(in_fd, offset, length, /*owns_fd=*/false, [self](int64_t result) {
    if (self->writer_ == nullptr || self->writer_wait_ != WriterWait::File) return;
    lua_State* ML = self->sys_.L();
    Task* w = self->writer_;
    self->writer_ = nullptr;
    self->clear_deadline(false);
    if (result < 0) {
      self->sys_.wake(w, self->writer_id_, push_uv_error_result(ML, static_cast<int>(result)));
    } else {
      lua_pushinteger(ML, static_cast<lua_Integer>(result));
      self->sys_.wake(w, self->writer_id_, 1);
    }
  });
  if (r != Transport::kPending) {
    if (r == UV_ETIMEDOUT) return done_now(L, push_timeout(L));
    if (r < 0) return done_now(L, push_uv_error_result(L, static_cast<int>(r)));
    lua_pushinteger(L, static_cast<lua_Integer>(r));
    return done_now(L, 1);
  }
  writer_ = t;
  writer_wait_ = WriterWait::File;
  writer_id_ = sys_.begin_wait(t, cancel_write, this);
  arm_write_deadline();
  return sys_.suspend(L, t);
}

// --------------------------------------------------------------- timeouts

// The writer's deadline measures the peer's progress (as nginx's
// send_timeout): it passes only when the peer took nothing for the whole
// write timeout, however long the write as a whole takes.
void Stream::arm_write_deadline() {
  if (write_timeout_ <= 0) return;
  writer_sent_mark_ = t_->sent();
  writer_pending_mark_ = t_->pending();
  set_deadline(false, write_timeout_);
}

// The reader and the writer each have their own deadline; one timer is
// armed for the earlier of the two, and stopped when neither waits.
void Stream::set_deadline(bool reader, double seconds) {
  if (!t_->evented()) return;
  uint64_t at = uv_now(t_->loop()) + to_ms(seconds);
  (reader ? reader_deadline_ : writer_deadline_) = at;
  reschedule_timer();
}

void Stream::clear_deadline(bool reader) {
  (reader ? reader_deadline_ : writer_deadline_) = 0;
  reschedule_timer();
}

void Stream::reschedule_timer() {
  uint64_t next = 0;
  for (uint64_t d : {reader_deadline_, writer_deadline_}) {
    if (d != 0 && (next == 0 || d < next)) next = d;
  }
  if (next == 0) {
    if (timer_ != nullptr) timer_->stop();
    return;
  }
  if (!t_->evented()) return;
  uv_loop_t* loop = t_->loop();
  if (timer_ == nullptr) timer_ = NativeHandle::release_to_loop(std::make_unique<StreamTimer>(loop, this));
  uint64_t now = uv_now(loop);
  timer_->start(next > now ? next - now : 0);
}

void Stream::on_timeout() {
  uint64_t now = t_->evented() ? uv_now(t_->loop()) : 0;
  if (reader_ != nullptr && reader_deadline_ != 0 && reader_deadline_ <= now) {
    Task* t = reader_;
    reader_ = nullptr;
    reader_deadline_ = 0;
    if (read_on_demand_) t_->set_reading(false);
    sys_.wake_error(t, reader_id_, "Timeout", "no data within the read timeout");
  }
  if (writer_ != nullptr && writer_deadline_ != 0 && writer_deadline_ <= now &&
      (t_->sent() > writer_sent_mark_ || t_->pending() < writer_pending_mark_)) {
    arm_write_deadline();  // the peer took some meanwhile: another period
  } else if (writer_ != nullptr && writer_deadline_ != 0 && writer_deadline_ <= now) {
    Task* t = writer_;
    bool file = writer_wait_ == WriterWait::File;
    writer_ = nullptr;
    writer_deadline_ = 0;
    if (file) t_->cancel_file();
    sys_.wake_error(t, writer_id_, "Timeout", "could not write within the write timeout");
  }
  reschedule_timer();
}

// -------------------------------------------------------------------- TLS

void Stream::start_tls(std::unique_ptr<tls::Session> session) { t_->start_tls(std::move(session)); }

int Stream::handshake(lua_State* L, int yieldable_idx) {
  if (t_->tls() == nullptr) return luaL_error(L, "handshake: the stream has no TLS session");
  ReadRequest req;
  req.kind = ReadRequest::Kind::Handshake;
  return read(L, std::move(req), yieldable_idx);
}

}  // namespace evo
