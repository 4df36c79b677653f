#include "modules/stream.h"
#include "modules/tls_lua.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

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

constexpr const char* kStreamMeta = "evo.Stream";

// libuv reads into this and Stream::on_read copies out at once, so one slab
// serves every stream (the loop is single-threaded).
char g_read_slab[64 * 1024];

void alloc_cb(uv_handle_t* /*h*/, size_t /*suggested*/, uv_buf_t* buf) {
  buf->base = g_read_slab;
  buf->len = sizeof(g_read_slab);
}

UvStreamHandle* handle_of(uv_stream_t* s) {
  return static_cast<UvStreamHandle*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(s)));
}

void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  UvStreamHandle* h = handle_of(s);
  if (h->owner != nullptr) {
    h->owner->on_read(nread, buf->base);
  } else {
    uv_read_stop(s);
  }
}

// A write in flight: its strings stay anchored in the registry until libuv
// is done with them.
struct WriteReq {
  uv_write_t req{};
  lua_State* L = nullptr;
  int anchor = LUA_NOREF;
  std::string owned;  // or bytes of its own (TLS records)
};

void write_cb(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(reinterpret_cast<WriteReq*>(req));
  luaL_unref(w->L, LUA_REGISTRYINDEX, w->anchor);
  UvStreamHandle* h = handle_of(req->handle);
  if (h != nullptr && h->owner != nullptr) h->owner->on_write_done(status);
}

void shutdown_cb(uv_shutdown_t* req, int status) {
  std::unique_ptr<uv_shutdown_t> owned(req);
  UvStreamHandle* h = handle_of(req->handle);
  if (h != nullptr && h->owner != nullptr) h->owner->on_shutdown_done(status);
}

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

uint64_t to_ms(double seconds) { return static_cast<uint64_t>(std::llround(seconds * 1000.0)); }

}  // namespace

// ------------------------------------------------------------- UvStreamHandle

UvStreamHandle::UvStreamHandle(uv_loop_t* loop, Kind kind, int* status, int fd_for_tty, bool ipc)
    : kind_(kind) {
  switch (kind) {
    case Kind::Tcp:
      *status = uv_tcp_init(loop, &h_.tcp);
      break;
    case Kind::Pipe:
      *status = uv_pipe_init(loop, &h_.pipe, ipc ? 1 : 0);
      break;
    case Kind::Tty:
      *status = uv_tty_init(loop, &h_.tty, fd_for_tty, 0);
      break;
  }
}

void UvStreamHandle::release() { release_through(owner); }

void UvStreamHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

// ---------------------------------------------------------------------- Stream

Stream::Stream(TaskSystem& sys, UvStreamHandle* handle) : sys_(sys), handle_(handle) {
  handle_->owner = this;
  uv_os_fd_t fd = -1;
  if (uv_fileno(handle_->uv_handle(), &fd) == 0) fd_ = fd;
}

Stream::Stream(TaskSystem& sys, int fd) : sys_(sys), fd_(fd), owns_fd_(true) {}

Stream::~Stream() {
  close();
  if (handle_ != nullptr) handle_->owner = nullptr;
}

uv_stream_t* Stream::uv_stream() const { return handle_ != nullptr ? handle_->stream() : nullptr; }

void Stream::close() {
  if (closed_) return;
  closed_ = true;
  fail_waiters("Closed", "the stream was closed");
  if (timer_ != nullptr) {
    timer_->stream = nullptr;
    timer_->close();
    timer_ = nullptr;
  }
  if (handle_ != nullptr) {
    handle_->close();  // pending writes complete with ECANCELED first
  } else if (owns_fd_ && fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = -1;
}

void Stream::on_handle_closed() {
  handle_ = nullptr;
  fd_ = -1;
}

void Stream::on_timer_closed() { timer_ = nullptr; }

void Stream::set_timeouts(double read_seconds, double write_seconds) {
  read_timeout_ = read_seconds;
  write_timeout_ = write_seconds;
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
  const size_t avail = buffered();
  const char* p = buf_.data() + pos_;
  switch (req.kind) {
    case ReadRequest::Kind::Chunk:
      if (avail > 0) {
        size_t take = (req.n > 0 && req.n < avail) ? req.n : avail;
        lua_pushlstring(L, p, take);
        consume(take);
        return 1;
      }
      break;
    case ReadRequest::Kind::Exactly:
      if (avail >= req.n) {
        lua_pushlstring(L, p, req.n);
        consume(req.n);
        return 1;
      }
      if (eof_ && avail > 0) {
        // EOF in the middle of the read: an error, with what did arrive.
        lua_pushnil(L);
        errors::push_error(
            L, "EOF",
            "end of stream after " + std::to_string(avail) + " of " + std::to_string(req.n) + " bytes");
        lua_pushlstring(L, p, avail);
        lua_setfield(L, -2, "partial");
        consume(avail);
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
        consume(len + delim.size());
        return 1;
      }
      if (avail > kMaxLine) {
        consume(kMaxLine);  // the too-long prefix; the same amount whatever the chunking
        return push_error_result(L, "LineTooLong",
                                 "no delimiter within " + std::to_string(kMaxLine) + " bytes");
      }
      if (eof_ && avail > 0) {  // the last line, without its terminator
        lua_pushlstring(L, p, avail);
        consume(avail);
        return 1;
      }
      break;
    }
    case ReadRequest::Kind::All:
      if (eof_) {
        lua_pushlstring(L, p, avail);
        consume(avail);
        return 1;
      }
      break;
    case ReadRequest::Kind::Handshake:
      if (tls_ != nullptr && tls_->handshake_done()) {
        lua_pushboolean(L, 1);
        return 1;
      }
      if (tls_ != nullptr && tls_->failed()) break;
      if (eof_) return push_error_result(L, "EOF", "the connection closed during the TLS handshake");
      break;
  }
  if (tls_ != nullptr && tls_->failed()) {
    return push_error_result(L, tls_->verify_failed() ? "TLSVerifyFailed" : "TLSError", tls_->error());
  }
  if (read_error_ != 0) return push_uv_error_result(L, read_error_);
  if (eof_) {
    lua_pushnil(L);  // a clean end: nil, and no error
    return 1;
  }
  return 0;
}

int Stream::read(lua_State* L, ReadRequest req, int yieldable_idx) {
  if (closed_) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (int n = try_read(L, req); n > 0) return done_now(L, n);
  if (reader_ != nullptr) return luaL_error(L, "another task is already reading from this stream");
  Task* t = handle_ != nullptr ? sys_.waiter(L, yieldable_idx) : nullptr;
  if (t == nullptr) return read_blocking(L, req);
  if (sys_.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  want_data();  // may fail at once (a write-only pipe): then answer now
  if (read_error_ != 0 || eof_) {
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
}

void Stream::want_data() {
  if (reading_ || handle_ == nullptr || eof_ || read_error_ != 0) return;
  int rc = uv_read_start(handle_->stream(), alloc_cb, read_cb);
  if (rc != 0) {
    read_error_ = rc;
    if (reader_ != nullptr) wake_reader_if_ready();
    return;
  }
  reading_ = true;
}

void Stream::on_read(ssize_t nread, const char* data) {
  if (nread > 0) {
    absorb(data, static_cast<size_t>(nread));
    bool reader_needs_more = reader_ != nullptr && read_req_.kind == ReadRequest::Kind::All;
    if (buffered() > kMaxBuffered && !reader_needs_more) {  // flow control: let the kernel buffer
      uv_read_stop(handle_->stream());
      reading_ = false;
    }
  } else if (nread < 0) {
    if (nread == UV_EOF) {
      eof_ = true;
    } else {
      read_error_ = static_cast<int>(nread);
    }
    uv_read_stop(handle_->stream());
    reading_ = false;
  }
  wake_reader_if_ready();
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
  if (fd_ < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (int fl = ::fcntl(fd_, F_GETFL); fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
    read_error_ = UV_EBADF;  // a write-only pipe: poll() would wait forever
  }
  if (reading_ && handle_ != nullptr) {  // read the descriptor directly for now
    uv_read_stop(handle_->stream());
    reading_ = false;
  }
  for (;;) {
    if (int n = try_read(L, req); n > 0) return done_now(L, n);
    int pushed = 0;
    if (!fill_blocking(L, read_timeout_, pushed)) return done_now(L, pushed);
  }
}

bool Stream::fill_blocking(lua_State* L, double timeout, int& pushed) {
  for (;;) {
    pollfd pfd{fd_, POLLIN, 0};
    int ms = timeout > 0 ? static_cast<int>(to_ms(timeout)) : -1;
    int ready = ::poll(&pfd, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      pushed = push_error_result(L, "Timeout", "no data within the read timeout");
      return false;
    }
    if (read_once()) return true;
  }
}

// One read(2) into the buffer: true when it brought data, the end or an
// error (recorded); false when there was nothing yet (EINTR, EAGAIN).
bool Stream::read_once() {
  char chunk[64 * 1024];
  ssize_t got = ::read(fd_, chunk, sizeof(chunk));
  if (got > 0) {
    absorb(chunk, static_cast<size_t>(got));
  } else if (got == 0) {
    eof_ = true;
  } else if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
    return false;
  } else {
    read_error_ = uv_translate_sys_error(errno);
  }
  return true;
}

bool Stream::read_available_blocking() {
  if (at_end()) return false;
  read_once();
  return !at_end();
}

// --------------------------------------------------------------- writing

int Stream::write(lua_State* L, int first, int last, int yieldable_idx) {
  if (closed_) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (write_error_ != 0) return done_now(L, push_uv_error_result(L, write_error_));
  for (int i = first; i <= last; ++i) {
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER) {
      luaL_argerror(L, i - first + 1, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, i)));
    }
  }
  if (handle_ == nullptr) return write_blocking(L, first, last);
  // A due cancellation comes before the data goes out, never after.
  if (Task* now = sys_.waiter(L, yieldable_idx); now != nullptr && sys_.take_cancel(now)) {
    lua_pushboolean(L, 0);
    return 1;
  }

  if (tls_ != nullptr) {
    std::string records = encrypt_args(L, first, last);
    if (tls_->failed()) return done_now(L, push_error_result(L, "TLSError", tls_->error()));
    if (int rc = send_raw(std::move(records)); rc != 0) return done_now(L, push_uv_error_result(L, rc));
    if (uv_stream_get_write_queue_size(handle_->stream()) <= high_water_) {
      lua_pushboolean(L, 1);
      return done_now(L, 1);
    }
    return wait_as_writer(L, yieldable_idx, WriterWait::BelowHighWater);
  }

  // One vectored write; the strings stay anchored until it completes.
  int count = last - first + 1;
  std::vector<uv_buf_t> bufs;
  bufs.reserve(static_cast<size_t>(count));
  lua_createtable(L, count, 0);
  for (int i = first; i <= last; ++i) {
    size_t len = 0;
    const char* s = lua_tolstring(L, i, &len);
    bufs.push_back(uv_buf_init(const_cast<char*>(s), static_cast<unsigned int>(len)));
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i - first + 1);
  }
  auto req = std::make_unique<WriteReq>();
  req->L = sys_.L();
  req->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc =
      uv_write(&req->req, handle_->stream(), bufs.data(), static_cast<unsigned int>(bufs.size()), write_cb);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, req->anchor);
    return done_now(L, push_uv_error_result(L, rc));
  }
  static_cast<void>(req.release());  // write_cb takes it back
  ++pending_writes_;
  if (uv_stream_get_write_queue_size(handle_->stream()) <= high_water_) {
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  // Backpressure: wait until the queue drains below the high-water mark.
  return wait_as_writer(L, yieldable_idx, WriterWait::BelowHighWater);
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
  if (what != WriterWait::ShutDown && write_timeout_ > 0) set_deadline(false, write_timeout_);
  return sys_.suspend(L, t);
}

void Stream::cancel_write(Task* /*t*/, void* arg) {
  auto* s = static_cast<Stream*>(arg);
  s->writer_ = nullptr;
  s->clear_deadline(false);
}

void Stream::on_write_done(int status) {
  if (pending_writes_ > 0) --pending_writes_;
  if (status < 0 && status != UV_ECANCELED && write_error_ == 0) write_error_ = status;
  wake_writer_if_ready();
}

void Stream::wake_writer_if_ready() {
  if (writer_ == nullptr || handle_ == nullptr) return;
  lua_State* L = sys_.L();
  bool ready = false;
  switch (writer_wait_) {
    case WriterWait::BelowHighWater:
      ready = write_error_ != 0 || uv_stream_get_write_queue_size(handle_->stream()) <= high_water_;
      break;
    case WriterWait::Flushed:
      ready = write_error_ != 0 || pending_writes_ == 0;
      break;
    case WriterWait::ShutDown:
      return;  // on_shutdown_done wakes it
  }
  if (!ready) return;
  Task* t = writer_;
  writer_ = nullptr;
  clear_deadline(false);
  int n = 1;
  if (write_error_ != 0) {
    n = push_uv_error_result(L, write_error_);
  } else {
    lua_pushboolean(L, 1);
  }
  sys_.wake(t, writer_id_, n);
}

int Stream::write_blocking(lua_State* L, int first, int last) {
  if (fd_ < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  if (tls_ != nullptr) {
    std::string records = encrypt_args(L, first, last);
    if (tls_->failed()) return done_now(L, push_error_result(L, "TLSError", tls_->error()));
    if (!write_all_blocking(records.data(), records.size())) {
      if (write_error_ == 0) {
        return done_now(L, push_error_result(L, "Timeout", "could not write within the write timeout"));
      }
      return done_now(L, push_uv_error_result(L, write_error_));
    }
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  std::vector<iovec> iov;
  for (int i = first; i <= last; ++i) {
    size_t len = 0;
    const char* s = lua_tolstring(L, i, &len);
    if (len > 0) iov.push_back(iovec{const_cast<char*>(s), len});
  }
  size_t idx = 0;
  while (idx < iov.size()) {
    ssize_t n =
        ::writev(fd_, iov.data() + idx, static_cast<int>(std::min<size_t>(iov.size() - idx, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd pfd{fd_, POLLOUT, 0};
        int ms = write_timeout_ > 0 ? static_cast<int>(to_ms(write_timeout_)) : -1;
        int ready = ::poll(&pfd, 1, ms);
        if (ready == 0)
          return done_now(L, push_error_result(L, "Timeout", "could not write within the write timeout"));
        continue;
      }
      write_error_ = uv_translate_sys_error(errno);
      return done_now(L, push_uv_error_result(L, write_error_));
    }
    auto left = static_cast<size_t>(n);
    while (idx < iov.size() && left >= iov[idx].iov_len) {
      left -= iov[idx].iov_len;
      ++idx;
    }
    if (idx < iov.size() && left > 0) {
      iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
      iov[idx].iov_len -= left;
    }
  }
  lua_pushboolean(L, 1);
  return done_now(L, 1);
}

int Stream::flush(lua_State* L, int yieldable_idx) {
  if (handle_ == nullptr || pending_writes_ == 0 || closed_) {
    if (write_error_ != 0) return done_now(L, push_uv_error_result(L, write_error_));
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
  if (tls_ != nullptr) {  // close_notify goes before the TCP half-close
    tls_->close();
    if (handle_ != nullptr) {
      send_tls_output();
    } else {
      std::string records;
      tls_->take_output(&records);
      write_all_blocking(records.data(), records.size());
    }
  }
  if (handle_ == nullptr) {
    // The peer already gone (ENOTCONN) counts as shut down, as in the evented path.
    if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTSOCK && errno != ENOTCONN) {
      return done_now(L, push_uv_error_result(L, uv_translate_sys_error(errno)));
    }
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  auto req = std::make_unique<uv_shutdown_t>();
  int rc = uv_shutdown(req.get(), handle_->stream(), shutdown_cb);
  if (rc == UV_ENOTCONN) {
    lua_pushboolean(L, 1);
    return done_now(L, 1);
  }
  if (rc != 0) return done_now(L, push_uv_error_result(L, rc));
  static_cast<void>(req.release());  // shutdown_cb takes it back
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

int64_t send_file_blocking(int out_fd, int in_fd, int64_t offset, int64_t length, double timeout,
                           const std::atomic<bool>* stop) {
  int64_t sent = 0;
  auto off = static_cast<off_t>(offset);
  while (sent < length) {
    if (stop != nullptr && stop->load()) return sent;
    ssize_t n =
        ::sendfile(out_fd, in_fd, &off, static_cast<size_t>(std::min<int64_t>(length - sent, 1 << 20)));
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n == 0) break;  // the file ended early
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return uv_translate_sys_error(errno);
    pollfd pfd{out_fd, POLLOUT, 0};
    // Short polls when cancellable, so a cancelled job notices soon.
    int ms = stop != nullptr ? 100 : (timeout > 0 ? static_cast<int>(to_ms(timeout)) : -1);
    int r = ::poll(&pfd, 1, ms);
    if (r == 0 && stop == nullptr) return UV_ETIMEDOUT;
  }
  return sent;
}

SendfileJob* SendfileJob::start(uv_loop_t* loop, int out_fd, int in_fd, int64_t offset, int64_t length,
                                bool owns_in_fd, Done done, int* error) {
  std::unique_ptr<SendfileJob> job(
      new SendfileJob());  // NOLINT(cppcoreguidelines-owning-memory): private constructor
  job->in_fd_ = in_fd;
  job->owns_in_fd_ = owns_in_fd;
  job->out_fd_ = ::dup(out_fd);
  if (job->out_fd_ < 0) {
    *error = uv_translate_sys_error(errno);
    return nullptr;
  }
  job->offset_ = offset;
  job->length_ = length;
  job->done_ = std::move(done);
  job->req_.data = job.get();
  *error = uv_queue_work(loop, &job->req_, work, after);
  if (*error != 0) return nullptr;
  return job.release();  // after() takes it back
}

SendfileJob::~SendfileJob() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (owns_in_fd_ && in_fd_ >= 0) ::close(in_fd_);
}

void SendfileJob::stop() {
  stop_.store(true);
  uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
}

void SendfileJob::work(uv_work_t* req) {
  auto* j = static_cast<SendfileJob*>(req->data);
  j->result_ = send_file_blocking(j->out_fd_, j->in_fd_, j->offset_, j->length_, 0, &j->stop_);
}

void SendfileJob::after(uv_work_t* req, int status) {
  std::unique_ptr<SendfileJob> j(static_cast<SendfileJob*>(req->data));
  j->done_(status != 0 ? status : j->result_);
}

int Stream::sendfile(lua_State* L, int in_fd, int64_t offset, int64_t length, int yieldable_idx) {
  if (closed_ || fd_ < 0) return done_now(L, push_error_result(L, "Closed", "the stream is closed"));
  Task* t = handle_ != nullptr ? sys_.waiter(L, yieldable_idx) : nullptr;
  if (t == nullptr) {
    int64_t r = send_file_blocking(fd_, in_fd, offset, length, write_timeout_, nullptr);
    if (r == UV_ETIMEDOUT)
      return done_now(L, push_error_result(L, "Timeout", "could not write within the write timeout"));
    if (r < 0) return done_now(L, push_uv_error_result(L, static_cast<int>(r)));
    lua_pushinteger(L, static_cast<lua_Integer>(r));
    return done_now(L, 1);
  }
  if (sys_.take_cancel(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  // A late result (after a cancellation) carries a stale wait id: dropped.
  auto wait = std::make_shared<uint32_t>(0);
  TaskSystem* sys = &sys_;
  int error = 0;
  SendfileJob* job = SendfileJob::start(
      handle_->uv_handle()->loop, fd_, in_fd, offset, length, /*owns_in_fd=*/false,
      [sys, t, wait](int64_t result) {
        lua_State* ML = sys->L();
        if (result < 0) {
          sys->wake(t, *wait, push_uv_error_result(ML, static_cast<int>(result)));
        } else {
          lua_pushinteger(ML, static_cast<lua_Integer>(result));
          sys->wake(t, *wait, 1);
        }
      },
      &error);
  if (job == nullptr) return done_now(L, push_uv_error_result(L, error));
  *wait = sys_.begin_wait(
      t, [](Task*, void* arg) { static_cast<SendfileJob*>(arg)->stop(); }, job);
  return sys_.suspend(L, t);
}

// --------------------------------------------------------------- timeouts

// The reader and the writer each have their own deadline; one timer is
// armed for the earlier of the two, and stopped when neither waits.
void Stream::set_deadline(bool reader, double seconds) {
  if (handle_ == nullptr) return;
  uint64_t at = uv_now(handle_->uv_handle()->loop) + to_ms(seconds);
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
  if (handle_ == nullptr) return;
  uv_loop_t* loop = handle_->uv_handle()->loop;
  if (timer_ == nullptr) timer_ = NativeHandle::release_to_loop(std::make_unique<StreamTimer>(loop, this));
  uint64_t now = uv_now(loop);
  timer_->start(next > now ? next - now : 0);
}

void Stream::on_timeout() {
  uint64_t now = handle_ != nullptr ? uv_now(handle_->uv_handle()->loop) : 0;
  if (reader_ != nullptr && reader_deadline_ != 0 && reader_deadline_ <= now) {
    Task* t = reader_;
    reader_ = nullptr;
    reader_deadline_ = 0;
    sys_.wake_error(t, reader_id_, "Timeout", "no data within the read timeout");
  }
  if (writer_ != nullptr && writer_deadline_ != 0 && writer_deadline_ <= now) {
    Task* t = writer_;
    writer_ = nullptr;
    writer_deadline_ = 0;
    sys_.wake_error(t, writer_id_, "Timeout", "could not write within the write timeout");
  }
  reschedule_timer();
}

// -------------------------------------------------------------------- TLS

void Stream::start_tls(std::unique_ptr<tls::Session> session) {
  tls_ = std::move(session);
  // Whatever arrived before TLS started is already ciphertext.
  std::string early = take_buffer();
  if (!early.empty()) absorb(early.data(), early.size());
  if (handle_ != nullptr) {
    send_tls_output();
  } else {
    std::string records;
    tls_->take_output(&records);
    write_all_blocking(records.data(), records.size());
  }
}

void Stream::absorb(const char* data, size_t n) {
  if (tls_ == nullptr) {
    buf_.append(data, n);
    return;
  }
  bool ok = tls_->feed(std::string_view(data, n));
  tls_->read(&buf_);
  if (tls_->peer_closed()) eof_ = true;
  // Handshake replies, or the alert that ends a failed session.
  if (handle_ != nullptr) {
    send_tls_output();
  } else {
    std::string records;
    tls_->take_output(&records);
    write_all_blocking(records.data(), records.size());
  }
  if (!ok && read_error_ == 0) read_error_ = UV_EPROTO;
}

void Stream::send_tls_output() {
  if (tls_ == nullptr || !tls_->has_output() || handle_ == nullptr) return;
  std::string records;
  tls_->take_output(&records);
  send_raw(std::move(records));
}

int Stream::send_raw(std::string bytes) {
  if (bytes.empty()) return 0;
  auto req = std::make_unique<WriteReq>();
  req->L = sys_.L();
  req->owned = std::move(bytes);
  uv_buf_t buf = uv_buf_init(req->owned.data(), static_cast<unsigned int>(req->owned.size()));
  int rc = uv_write(&req->req, handle_->stream(), &buf, 1, write_cb);
  if (rc != 0) return rc;
  static_cast<void>(req.release());  // write_cb takes it back
  ++pending_writes_;
  return 0;
}

bool Stream::write_all_blocking(const char* data, size_t n) {
  size_t done = 0;
  while (done < n && fd_ >= 0) {
    ssize_t w = ::write(fd_, data + done, n - done);
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd_, POLLOUT, 0};
      int ms = write_timeout_ > 0 ? static_cast<int>(to_ms(write_timeout_)) : -1;
      if (::poll(&pfd, 1, ms) == 0) return false;
      continue;
    }
    write_error_ = uv_translate_sys_error(errno);
    return false;
  }
  return done == n;
}

// The strings at first..last, encrypted: the TLS records to send.
std::string Stream::encrypt_args(lua_State* L, int first, int last) {
  for (int i = first; i <= last; ++i) {
    size_t len = 0;
    const char* s = lua_tolstring(L, i, &len);
    tls_->write(std::string_view(s, len));
  }
  std::string records;
  tls_->take_output(&records);
  return records;
}

int Stream::handshake(lua_State* L, int yieldable_idx) {
  if (tls_ == nullptr) return luaL_error(L, "handshake: the stream has no TLS session");
  ReadRequest req;
  req.kind = ReadRequest::Kind::Handshake;
  return read(L, std::move(req), yieldable_idx);
}

// ------------------------------------------------------------ Lua binding

namespace {

ReadRequest::Kind kind_of(const char* s) {
  if (std::strcmp(s, "line") == 0) return ReadRequest::Kind::Line;
  if (std::strcmp(s, "until") == 0) return ReadRequest::Kind::Until;
  if (std::strcmp(s, "all") == 0) return ReadRequest::Kind::All;
  if (std::strcmp(s, "exactly") == 0) return ReadRequest::Kind::Exactly;
  return ReadRequest::Kind::Chunk;
}

// read(s, kind, arg, yieldable): kind "chunk" (arg: max bytes or nil),
// "exactly" (arg: n), "line", "until" (arg: delimiter), "all".
int s_read(lua_State* L) {
  Stream* s = check_stream(L, 1);
  ReadRequest req;
  req.kind = kind_of(luaL_checkstring(L, 2));
  switch (req.kind) {
    case ReadRequest::Kind::Chunk:
      req.n = lua_isnoneornil(L, 3) ? 0 : static_cast<size_t>(luaL_checkinteger(L, 3));
      break;
    case ReadRequest::Kind::Exactly: {
      lua_Integer n = luaL_checkinteger(L, 3);
      luaL_argcheck(L, n >= 0, 1, "byte count must be >= 0");
      req.n = static_cast<size_t>(n);
      break;
    }
    case ReadRequest::Kind::Line:
      req.delim = "\n";
      break;
    case ReadRequest::Kind::Until: {
      size_t len = 0;
      const char* d = luaL_checklstring(L, 3, &len);
      luaL_argcheck(L, len > 0, 1, "delimiter must not be empty");
      req.delim.assign(d, len);
      break;
    }
    case ReadRequest::Kind::All:
      break;
  }
  return s->read(L, std::move(req), 4);
}

// write(s, yieldable, ...)
int s_write(lua_State* L) {
  Stream* s = check_stream(L, 1);
  int top = lua_gettop(L);
  if (top < 3) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 1);
    return 2;
  }
  return s->write(L, 3, top, 2);
}

int s_flush(lua_State* L) { return check_stream(L, 1)->flush(L, 2); }
int s_shutdown(lua_State* L) { return check_stream(L, 1)->shutdown(L, 2); }

int s_close(lua_State* L) {
  check_stream(L, 1)->close();
  return 0;
}

int s_settimeout(lua_State* L) {
  Stream* s = check_stream(L, 1);
  double r = luaL_optnumber(L, 2, 0);
  double w = luaL_optnumber(L, 3, r);
  s->set_timeouts(r, w);
  return 0;
}

int s_set_high_water(lua_State* L) {
  Stream* s = check_stream(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n > 0, 2, "must be > 0");
  s->set_high_water(static_cast<size_t>(n));
  return 0;
}

int s_is_closed(lua_State* L) {
  lua_pushboolean(L, check_stream(L, 1)->closed() ? 1 : 0);
  return 1;
}

int s_fileno(lua_State* L) {
  lua_pushinteger(L, check_stream(L, 1)->fd());
  return 1;
}

// drainBoth(a, b) -> everything a and b carry until both end, read
// together with poll() so a writer filling one pipe never stalls on the
// other. Blocking; for process.exec in the blocking Io mode.
int s_drain_both(lua_State* L) {
  Stream* s[2] = {check_stream(L, 1), check_stream(L, 2)};
  while (!s[0]->at_end() || !s[1]->at_end()) {
    pollfd pfd[2];
    nfds_t n = 0;
    Stream* which[2];
    for (Stream* x : s) {
      if (!x->at_end()) {
        pfd[n] = pollfd{x->fd(), POLLIN, 0};
        which[n++] = x;
      }
    }
    if (::poll(pfd, n, -1) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) which[i]->read_available_blocking();
    }
  }
  for (Stream* x : s) {
    std::string all = x->take_buffer();
    lua_pushlstring(L, all.data(), all.size());
  }
  return 2;
}

// sendfile(s, fd, offset, length, yieldable)
int s_sendfile(lua_State* L) {
  Stream* s = check_stream(L, 1);
  int fd = static_cast<int>(luaL_checkinteger(L, 2));
  lua_Integer offset = luaL_checkinteger(L, 3);
  lua_Integer length = luaL_checkinteger(L, 4);
  luaL_argcheck(L, offset >= 0 && length >= 0, 3, "offset and length must be >= 0");
  return s->sendfile(L, fd, offset, length, 5);
}

// starttls(s, context, servername|nil): a client session when servername is
// given (or the context is a client's), else a server session.
int s_starttls(lua_State* L) {
  Stream* s = check_stream(L, 1);
  std::shared_ptr<tls::Context> ctx = check_tls_context(L, 2);
  if (s->tls() != nullptr) return luaL_error(L, "starttls: the stream already has TLS");
  std::unique_ptr<tls::Session> session =
      ctx->is_server() ? tls::Session::accept(ctx) : tls::Session::connect(ctx, luaL_optstring(L, 3, ""));
  if (session->failed()) {
    lua_pushnil(L);
    errors::push_error(L, "TLSError", session->error());
    return 2;
  }
  s->start_tls(std::move(session));
  lua_pushboolean(L, 1);
  return 1;
}

// handshake(s, yieldable) -> (true, true) | (true, nil, err) | (false) | yields
int s_handshake(lua_State* L) { return check_stream(L, 1)->handshake(L, 2); }

// tlsInfo(s) -> {alpn, servername} | nil
int s_tls_info(lua_State* L) {
  tls::Session* t = check_stream(L, 1)->tls();
  if (t == nullptr) return 0;
  lua_createtable(L, 0, 2);
  std::string alpn = t->alpn_selected();
  lua_pushlstring(L, alpn.data(), alpn.size());
  lua_setfield(L, -2, "alpn");
  std::string name = t->servername();
  lua_pushlstring(L, name.data(), name.size());
  lua_setfield(L, -2, "servername");
  return 1;
}

// setRef(s, on): whether the stream keeps the process alive (an idle pooled
// client connection must not; libuv's handle ref).
int s_set_ref(lua_State* L) {
  Stream* s = check_stream(L, 1);
  if (uv_stream_t* h = s->uv_stream(); h != nullptr) {
    if (lua_toboolean(L, 2) != 0) {
      uv_ref(reinterpret_cast<uv_handle_t*>(h));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(h));
    }
  }
  return 0;
}

int s_buffered(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_stream(L, 1)->buffered()));
  return 1;
}

}  // namespace

void push_stream(lua_State* L, std::unique_ptr<Stream> stream) {
  Boxed<Stream>::push(L, std::move(stream), kStreamMeta);
}

Stream* check_stream(lua_State* L, int idx) { return Boxed<Stream>::check(L, idx, kStreamMeta); }

int open_stream_natives(lua_State* L) {
  if (luaL_newmetatable(L, kStreamMeta) != 0) {
    lua_pushcfunction(L, Boxed<Stream>::gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);  // methods, filled in by lib/net.lua
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "Stream");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"read", s_read},
      {"write", s_write},
      {"flush", s_flush},
      {"shutdown", s_shutdown},
      {"close", s_close},
      {"settimeout", s_settimeout},
      {"setHighWater", s_set_high_water},
      {"isClosed", s_is_closed},
      {"fileno", s_fileno},
      {"buffered", s_buffered},
      {"drainBoth", s_drain_both},
      {"sendfile", s_sendfile},
      {"starttls", s_starttls},
      {"handshake", s_handshake},
      {"tlsInfo", s_tls_info},
      {"setRef", s_set_ref},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  luaL_getmetatable(L, kStreamMeta);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "methods");
  lua_pop(L, 1);
  return 1;
}

}  // namespace evo
