// The transport (see transport.h): socket, TLS, buffers, files.
#include "io/transport.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

namespace evo {

namespace {

// libuv reads into this and Transport::on_read copies out at once, so one
// slab serves every transport (the loop is single-threaded).
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
  if (h != nullptr && h->owner != nullptr) {
    h->owner->on_read(nread, buf->base);
  } else {
    uv_read_stop(s);
  }
}

void write_cb(uv_write_t* req, int status) {
  auto* h = static_cast<UvStreamHandle*>(req->data);
  if (h->owner != nullptr) {
    h->owner->on_write_done(status);
  } else {
    h->writing.clear();
  }
}

void shutdown_cb(uv_shutdown_t* req, int status) {
  auto* h = static_cast<UvStreamHandle*>(req->data);
  if (h->owner != nullptr) h->owner->on_shutdown(status);
}

int ms_of(double seconds) { return seconds > 0 ? static_cast<int>(std::llround(seconds * 1000.0)) : -1; }

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

void UvStreamHandle::release() {
  if (owner != nullptr) {
    owner->release();
  } else {
    close();
  }
}

uv_write_t* UvStreamHandle::write_req() {
  if (!write_req_) write_req_ = std::make_unique<uv_write_t>();
  return write_req_.get();
}

uv_shutdown_t* UvStreamHandle::shutdown_req() {
  if (!shutdown_req_) shutdown_req_ = std::make_unique<uv_shutdown_t>();
  return shutdown_req_.get();
}

void UvStreamHandle::on_closed() {
  if (owner != nullptr) owner->on_handle_closed();
}

// ------------------------------------------------------------------ Transport

Transport::Transport(UvStreamHandle* handle, bool on_ring) : handle_(handle) {
  handle_->owner = this;
  uv_os_fd_t fd = -1;
  if (uv_fileno(handle_->uv_handle(), &fd) == 0) fd_ = fd;
  if (on_ring && ring_sockets != nullptr && fd_ >= 0 && handle_->kind() != UvStreamHandle::Kind::Tty &&
      uv_is_readable(handle_->stream()) != 0) {
    // Readable sockets only: a pipe keeps libuv's reads, and a child's
    // stdin (a socketpair libuv made write-only) refuses them as libuv does.
    struct stat st {};
    bool socket =
        handle_->kind() == UvStreamHandle::Kind::Tcp || (::fstat(fd_, &st) == 0 && S_ISSOCK(st.st_mode));
    if (socket) {
      ring_ = ring_sockets->attach_read(this, fd_);
      ring_write_ = ring_sockets->attach_write(this, fd_);
    }
  }
}

Transport::Transport(int fd) : fd_(fd), owns_fd_(true) {}

std::unique_ptr<Transport> Transport::on_ring(uv_loop_t* loop, int fd) {
  if (ring_sockets == nullptr || !ring_sockets->own_sockets() || fd < 0) return nullptr;
  auto t = std::make_unique<Transport>(fd);
  t->ring_loop_ = loop;
  t->ring_ = ring_sockets->attach_read(t.get(), fd);
  t->ring_write_ = ring_sockets->attach_write(t.get(), fd);
  if (t->ring_ == nullptr || t->ring_write_ == nullptr) {
    // The caller keeps the descriptor (and makes a libuv handle for it).
    if (t->ring_ != nullptr) t->ring_->detach();
    if (t->ring_write_ != nullptr) t->ring_write_->detach();
    t->ring_ = nullptr;
    t->ring_write_ = nullptr;
    t->ring_loop_ = nullptr;
    t->owns_fd_ = false;
    return nullptr;
  }
  return t;
}

Transport::~Transport() {
  user_ = nullptr;  // being destroyed: nobody to tell
  close();
  if (handle_ != nullptr) handle_->owner = nullptr;
  if (ring_write_ != nullptr) {
    ring_write_->detach();  // a close still on the ring tells nobody
    ring_write_ = nullptr;
  }
}

uv_loop_t* Transport::loop() const { return handle_ != nullptr ? handle_->uv_handle()->loop : ring_loop_; }

int Transport::try_write(const char* data, size_t n) {
  if (handle_ != nullptr) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(n));
    return uv_try_write(handle_->stream(), &buf, 1);
  }
  for (;;) {
    ssize_t w = ::send(fd_, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0) return static_cast<int>(w);
    if (errno == EINTR) continue;
    return uv_translate_sys_error(errno == EWOULDBLOCK ? EAGAIN : errno);
  }
}

void Transport::close() {
  if (closed_) return;
  if (leave_cork()) {
    // Corked output goes first, as it would have gone at once uncorked
    // (what the socket does not take now is dropped with the handle).
    if (ring_write_ != nullptr && !write_in_flight_ && !file_) {
      // Straight to the socket: a ring send would only be settled below.
      std::string none;
      send_now(none);
    } else {
      flush();
    }
  }
  closed_ = true;
  reading_ = false;
  if (ring_ != nullptr) {
    ring_->detach();  // frees itself once the kernel is done with its buffers
    ring_ = nullptr;
  }
  if (ring_write_ != nullptr) {
    if (write_in_flight_) send_rest_now();
    if (ring_loop_ != nullptr) {
      ring_write_->close_fd();  // on_ring_closed() follows; the op stays until then
    } else {
      ring_write_->detach();
      ring_write_ = nullptr;
    }
  }
  if (file_) finish_file(UV_ECANCELED, true);
  if (handle_ != nullptr) {
    handle_->close();  // a write in flight completes with UV_ECANCELED first
  } else if (owns_fd_ && fd_ >= 0 && (ring_loop_ == nullptr || ring_write_ == nullptr)) {
    ::close(fd_);  // (a ring-only transport whose ring is gone closes its own)
  }
  fd_ = -1;
}

void Transport::on_ring_sent_at_exit() {
  write_in_flight_ = false;
  sent_ += in_flight_;
  writing().clear();
  if (closed_ || file_) return;
  if (!out_.empty() || (tls_ != nullptr && tls_->has_output())) start_write();
}

void Transport::on_ring_closed() {
  ring_write_ = nullptr;  // the op lets go of itself after this call
  ring_loop_ = nullptr;   // as a libuv transport's handle_ after its close callback
  fd_ = -1;
  closed_ = true;
  if (user_ != nullptr) user_->on_transport_closed();  // last: the user may let go of this transport
}

// Closing with a send on the ring: the evented Io would have written
// most of it with uv_try_write by now, and libuv drops the rest of a write
// in flight at close. The same here: the send stops (what the kernel took
// is taken), and what the socket takes now of the rest and of the output
// corked behind it goes; the remainder is dropped.
void Transport::send_rest_now() {
  std::string rest = ring_write_->settle();
  write_in_flight_ = false;
  splicing_ = false;
  send_now(rest);
}

// rest, then the output (encrypted under TLS): what the socket takes now.
void Transport::send_now(std::string& rest) {
  if (write_error_ != 0 || fd_ < 0) return;
  if (tls_ != nullptr) {
    if (!out_.empty()) tls_->write(out_);
    tls_->take_output(&rest);
  } else {
    rest += out_;
  }
  out_.clear();
  size_t done = 0;
  while (done < rest.size()) {
    ssize_t n = ::send(fd_, rest.data() + done, rest.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
    sent_ += static_cast<uint64_t>(n);
  }
}

void Transport::set_ref(bool on) {
  if (handle_ != nullptr) {
    auto* h = handle_->uv_handle();
    if (on) {
      uv_ref(h);
    } else {
      uv_unref(h);
    }
  }
  if (ring_ != nullptr) ring_->set_ref(on);
}

void Transport::on_handle_closed() {
  handle_ = nullptr;
  fd_ = -1;
  closed_ = true;
  if (user_ != nullptr) user_->on_transport_closed();  // last: the user may let go of this transport
}

void Transport::release() {
  if (user_ != nullptr) {
    user_->release_transport();
  } else {
    close();
  }
}

// --------------------------------------------------------------------- input

void Transport::consume(size_t n) {
  in_pos_ += n;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ >= kCompactAt && in_pos_ >= in_.size() / 2) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

std::string Transport::take_input() {
  std::string rest = in_.substr(in_pos_);
  in_.clear();
  in_pos_ = 0;
  return rest;
}

void Transport::trim() {
  if (in_pos_ == in_.size() && in_.capacity() > kCompactAt) {
    std::string().swap(in_);
    in_pos_ = 0;
  }
  if (out_.empty() && out_.capacity() > kCompactAt) std::string().swap(out_);
  if (evented() && !write_in_flight_ && writing().capacity() > kCompactAt) std::string().swap(writing());
}

// Gives back the memory of every empty buffer, small ones too, which trim()
// keeps for the next request: for a connection idle long enough that
// keeping them would cost more than making them again.
void Transport::release_buffers() {
  const size_t kInline = std::string().capacity();  // what a string holds without the heap
  if (in_pos_ == in_.size() && in_.capacity() > kInline) {
    std::string().swap(in_);
    in_pos_ = 0;
  }
  if (out_.empty() && out_.capacity() > kInline) std::string().swap(out_);
  if (evented() && !write_in_flight_ && writing().capacity() > kInline) std::string().swap(writing());
}

void Transport::set_reading(bool on) {
  if (!evented() || closed_ || on == reading_) return;
  if (ring_ != nullptr) {
    reading_ = on && !eof_ && read_error_ == 0;
    // Input (or the end) that came in while not reading: told from the
    // loop, as any input.
    if (on && unnotified_) ring_->notify_soon();
    if (!reading_) {
      if (ring_armed_) ring_->pause();
      return;
    }
    if (!ring_armed_) {
      ring_armed_ = true;
      ring_->start();
    }
    return;
  }
  if (!on) {
    uv_read_stop(handle_->stream());
    reading_ = false;
    return;
  }
  if (eof_ || read_error_ != 0) return;
  int rc = uv_read_start(handle_->stream(), alloc_cb, read_cb);
  if (rc != 0) {
    read_error_ = rc;  // a write-only pipe, say: the caller sees it at once
    return;
  }
  reading_ = true;
}

void Transport::on_read(ssize_t nread, const char* data) {
  if (closed_) return;
  if (nread > 0) {
    absorb(data, static_cast<size_t>(nread));
  } else if (nread < 0) {
    if (nread == UV_EOF) {
      eof_ = true;
    } else {
      read_error_ = static_cast<int>(nread);
    }
    uv_read_stop(handle_->stream());
    reading_ = false;
  } else {
    return;
  }
  if (user_ != nullptr) user_->on_input();
}

// ----------------------------------------------------- reads through the ring

void Transport::tell_input() {
  if (!reading_) {
    unnotified_ = true;  // a receive that was still in the kernel when reading stopped
    return;
  }
  unnotified_ = false;
  if (user_ != nullptr) user_->on_input();
}

void Transport::on_ring_data(const char* data, size_t n) {
  if (closed_) return;
  absorb(data, n);
  tell_input();
}

void Transport::on_ring_final(int status) {
  ring_armed_ = false;
  if (closed_) return;
  if (status == 0 && !eof_ && read_error_ == 0 && reading_ && !eof_deferred_) {
    // The end arrived in the same batch as the input before it. libuv tells
    // it from a later read callback, after the tasks that input woke have
    // run (a client that sends a request and shuts its side down gets its
    // answer, instead of an end seen while its handler runs: "client left").
    // Do the same: tell it a loop turn later.
    eof_deferred_ = true;
    ring_->end_next_turn();
    return;
  }
  if (status <= 0 && !eof_ && read_error_ == 0) {
    // The end of input or an error, as libuv's read callback reports them.
    if (status == 0) {
      eof_ = true;
    } else {
      read_error_ = status;
    }
    bool was_reading = reading_;
    reading_ = false;
    if (!was_reading) {
      unnotified_ = true;
      return;
    }
    unnotified_ = false;
    if (user_ != nullptr) user_->on_input();  // last: the user may let go of this transport
    return;
  }
  // Stopped without an end (paused, out of buffers): on again if wanted.
  if (reading_ && !at_end()) {
    ring_armed_ = true;
    ring_->start();
  }
}

void Transport::on_ring_notify() {
  // Reading again, or asked to while the end was already in: the end is
  // told once, as libuv's read callback tells it.
  if (closed_ || !unnotified_ || (!reading_ && !at_end())) return;
  unnotified_ = false;
  if (user_ != nullptr) user_->on_input();
}

// Bytes from the wire into the input (decrypted under TLS; handshake
// replies and alerts go straight out).
void Transport::absorb(const char* data, size_t n) {
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  if (tls_ == nullptr) {
    in_.append(data, n);
    return;
  }
  bool ok = tls_->feed(std::string_view(data, n));
  tls_->read(&in_);
  if (tls_->peer_closed()) eof_ = true;
  if (tls_->has_output()) {
    if (evented()) {
      flush();
    } else {
      std::string records;
      tls_->take_output(&records);
      write_all_now(records.data(), records.size(), 0);
    }
  }
  if (!ok && read_error_ == 0) read_error_ = UV_EPROTO;
}

bool Transport::read_now() {
  if (fd_ < 0) return true;
  if (ring_ != nullptr && ring_armed_) {
    // A receive in the kernel would race this read: stop it first.
    reading_ = false;
    ring_->settle();
    if (buffered() > 0 || at_end()) return true;
  }
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

bool Transport::wait_fd(bool writable, double timeout) {
  if (!writable && ring_ != nullptr && ring_armed_) {
    // A receive in the kernel would take what poll() waits for.
    reading_ = false;
    ring_->settle();
    if (buffered() > 0 || at_end()) return true;
  }
  for (;;) {
    pollfd pfd{fd_, static_cast<short>(writable ? POLLOUT : POLLIN), 0};
    int r = ::poll(&pfd, 1, ms_of(timeout));
    if (r < 0 && errno == EINTR) continue;
    return r != 0;
  }
}

// -------------------------------------------------------------------- output

size_t Transport::pending() const {
  size_t queued = 0;
  if (write_in_flight_ && ring_write_ != nullptr) {
    queued = ring_write_->unsent();
  } else if (write_in_flight_ && handle_ != nullptr) {
    queued = uv_stream_get_write_queue_size(handle_->stream());
  }
  return out_.size() + queued;
}

void Transport::flush() {
  if (!evented() || closed_ || write_in_flight_) return;
  if (file_) return;  // the bytes before the file went out when it was queued; later ones follow it
  if (!out_.empty() || (tls_ != nullptr && tls_->has_output())) start_write();
}

void Transport::flush_corked() {
  flush();
  if (write_error_ != 0 && user_ != nullptr && !closed_) user_->on_output();
}

// Hands the output (encrypted under TLS) to the socket: what it takes now,
// then the rest with one libuv write. Most answers fit the socket buffer:
// written with no write request, no callback and no poll change.
void Transport::start_write(size_t limit) {
  std::string& w = writing();
  w.clear();
  size_t n = std::min(limit, out_.size());
  if (tls_ != nullptr) {
    if (n > 0) tls_->write(std::string_view(out_).substr(0, n));
    out_.erase(0, n);
    tls_->take_output(&w);
  } else if (n == out_.size() && (ring_write_ == nullptr || ring_send_tries)) {
    // Most answers: the socket takes the whole output at once. Written from
    // out_ itself, so a connection keeps one buffer between requests, not
    // the two that trading places leaves (each keeping its capacity).
    // (Sends on the uring Io's ring go with the loop turn's batch instead.)
    int wrote = n > 0 ? try_write(out_.data(), n) : 0;
    if (wrote < 0 && wrote != UV_EAGAIN) {
      out_.clear();  // dropped, as write_out drops them
      if (write_error_ == 0) write_error_ = wrote;
      return;
    }
    size_t done = wrote > 0 ? static_cast<size_t>(wrote) : 0;
    sent_ += done;
    if (done == n) {
      out_.clear();
      return;
    }
    w.swap(out_);  // the rest goes by one libuv write, from where the socket stopped
    out_.clear();
    int rc = write_out(/*try_now=*/false, /*call_back=*/false, done);
    if (rc != 0 && write_error_ == 0) write_error_ = rc;
    return;
  } else {
    w.assign(out_, 0, n);
    out_.erase(0, n);
  }
  if (w.empty()) return;
  int rc = write_out(/*try_now=*/true, /*call_back=*/false);
  if (rc != 0 && write_error_ == 0) write_error_ = rc;
}

// Writes writing(): what the socket takes now (try_now), the rest with
// one libuv write — always one when call_back, even for nothing left, so its
// completion comes back. 0, or a libuv error (the bytes are dropped).
int Transport::write_out(bool try_now, bool call_back, size_t written) {
  std::string& w = writing();
  size_t done = written;
  if (try_now && (ring_write_ == nullptr || ring_send_tries)) {
    int wrote = try_write(w.data(), w.size());
    if (wrote < 0 && wrote != UV_EAGAIN) {
      w.clear();
      return wrote;
    }
    done = wrote > 0 ? static_cast<size_t>(wrote) : 0;
    sent_ += done;
    if (done == w.size() && !call_back) {
      w.clear();
      return 0;
    }
  }
  if (ring_write_ != nullptr) {
    // The rest goes on the ring: submitted with the loop turn's batch, its
    // completion (all of it sent) is on_ring_sent. (Always so without a
    // libuv handle.)
    in_flight_ = w.size() - done;
    write_in_flight_ = true;
    ring_write_->send(w, done);
    return 0;
  }
  uv_buf_t buf = uv_buf_init(w.data() + done, static_cast<unsigned>(w.size() - done));
  uv_write_t* req = handle_->write_req();
  req->data = handle_;
  int rc = uv_write(req, handle_->stream(), &buf, 1, write_cb);
  if (rc != 0) {
    w.clear();
    return rc;
  }
  write_in_flight_ = true;
  in_flight_ = w.size() - done;
  return 0;
}

void Transport::on_write_done(int status) {
  write_in_flight_ = false;
  writing().clear();
  if (closed_) return;
  if (status < 0) {
    if (status != UV_ECANCELED && write_error_ == 0) write_error_ = status;
    if (file_) finish_file(write_error_ != 0 ? write_error_ : status, true);
    if (shutting_down_ && !closed_) {
      // The half-close waited for this write: it ends with its failure.
      shutting_down_ = false;
      if (user_ != nullptr) user_->on_shutdown_done(write_error_ != 0 ? write_error_ : status);
    }
  } else {
    sent_ += in_flight_;
    if (file_ && file_->head > 0) {
      // The output written before the file, corked behind the write that
      // just completed: it goes first.
      size_t head = file_->head;
      file_->head = 0;
      start_write(head);
    }
    if (file_ && !write_in_flight_) {
      int64_t result = 0;
      if (pump_file(&result)) finish_file(result, true);
    }
    if (!write_in_flight_ && !file_ && !closed_) {
      if (!out_.empty() || (tls_ != nullptr && tls_->has_output())) start_write();
      if (shutting_down_ && !write_in_flight_ && out_.empty()) {
        shutting_down_ = false;
        int rc = start_shutdown();
        if (rc != 0 && user_ != nullptr) user_->on_shutdown_done(rc);
      }
    }
  }
  if (user_ != nullptr && !closed_) user_->on_output();
}

bool Transport::write_all_now(const char* data, size_t n, double timeout) {
  size_t done = 0;
  while (done < n && fd_ >= 0) {
    ssize_t w = ::send(fd_, data + done, n - done, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = ::write(fd_, data + done, n - done);
    if (w > 0) {
      done += static_cast<size_t>(w);
      sent_ += static_cast<uint64_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(true, timeout)) return false;
      continue;
    }
    write_error_ = uv_translate_sys_error(errno);
    return false;
  }
  return done == n;
}

bool Transport::flush_blocking(double timeout) {
  if (fd_ < 0) return false;
  if (tls_ != nullptr) {
    if (!out_.empty()) tls_->write(out_);
    out_.clear();
    std::string records;
    tls_->take_output(&records);
    return write_all_now(records.data(), records.size(), timeout);
  }
  bool ok = write_all_now(out_.data(), out_.size(), timeout);
  out_.clear();
  return ok;
}

bool Transport::finish_writes_now() {
  if (closed_ || fd_ < 0) return false;
  if (ring_write_ != nullptr && write_in_flight_) {
    // The ring's send stops first (what it sent is counted), then its rest
    // goes out here, in order.
    std::string rest = ring_write_->settle();
    write_in_flight_ = false;
    sent_ += in_flight_ - std::min(in_flight_, rest.size());
    if (!write_all_now(rest.data(), rest.size(), 0)) return false;
  } else if (handle_ != nullptr && write_in_flight_) {
    // libuv counts down the bytes of a write it has not yet written: they
    // are the tail of the bytes in flight.
    const std::string& w = handle_->writing;
    size_t left = std::min(uv_stream_get_write_queue_size(handle_->stream()), w.size());
    if (!write_all_now(w.data() + (w.size() - left), left, 0)) return false;
  }
  if (out_.empty() && (tls_ == nullptr || !tls_->has_output())) return true;
  return flush_blocking(0);
}

// --------------------------------------------------------------------- files

int64_t Transport::send_file(int fd, int64_t offset, int64_t length, bool owns_fd, FileDone done) {
  if (closed_) {
    // Nothing goes out any more, and nothing would end the send (a write
    // still in flight completes without looking at files once closed).
    if (owns_fd && fd >= 0) ::close(fd);
    return UV_ECANCELED;
  }
  file_ = std::make_unique<FileSend>(FileSend{fd, offset, length, 0, owns_fd, std::move(done)});
  if (!evented()) {
    // Blocking: all of it now.
    int64_t result = 0;
    if (!flush_blocking(write_timeout)) {
      result = write_error_ != 0 ? write_error_ : UV_ETIMEDOUT;
    } else {
      while (file_->left > 0 && result == 0) {
        if (tls_ == nullptr) {
          auto off = static_cast<off_t>(file_->offset);
          ssize_t n = ::sendfile(fd_, fd, &off, static_cast<size_t>(std::min<int64_t>(file_->left, 1 << 20)));
          if (n > 0) {
            file_->offset += n;
            file_->left -= n;
            file_->sent += n;
            sent_ += static_cast<uint64_t>(n);
            continue;
          }
          if (n == 0) break;
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_fd(true, write_timeout)) result = UV_ETIMEDOUT;
            continue;
          }
          result = uv_translate_sys_error(errno);
        } else {
          std::string chunk(static_cast<size_t>(std::min<int64_t>(file_->left, kFileChunk)), '\0');
          ssize_t n = ::pread(fd, chunk.data(), chunk.size(), file_->offset);
          if (n <= 0) {
            if (n < 0) result = uv_translate_sys_error(errno);
            break;
          }
          chunk.resize(static_cast<size_t>(n));
          file_->offset += n;
          file_->left -= n;
          file_->sent += n;
          out_ = std::move(chunk);
          if (!flush_blocking(write_timeout)) result = write_error_ != 0 ? write_error_ : UV_ETIMEDOUT;
        }
      }
      if (result == 0) result = file_->sent;
    }
    finish_file(result, false);
    return result;
  }
  // Evented: the output before the file goes first. On a plain socket it
  // goes with MSG_MORE: the head and the file leave in the same segments.
  if (tls_ == nullptr && !write_in_flight_ && !out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_MORE | MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<uint64_t>(n);
      out_.erase(0, static_cast<size_t>(n));
    }
  }
  if (!write_in_flight_ && (!out_.empty() || (tls_ != nullptr && tls_->has_output()))) start_write();
  if (write_in_flight_) {
    // on_write_done goes on with the file, after the output corked behind
    // that write (the output written from now on goes after the file).
    file_->head = out_.size();
    return kPending;
  }
  int64_t result = 0;
  if (pump_file(&result)) {
    finish_file(result, false);
    return result;
  }
  return kPending;
}

// Sends the file on: sendfile(2) while the socket takes it (at most a burst
// per turn of the loop), else one chunk read and written through libuv,
// whose completion is the next turn. True when the file is done (or failed):
// *result is the bytes sent or the error.
bool Transport::pump_file(int64_t* result) {
  FileSend& f = *file_;
  if (write_error_ != 0) {
    *result = write_error_;
    return true;
  }
  bool yield = false;  // the burst is used up: continue from a write's completion
  if (tls_ == nullptr && ring_write_ != nullptr && ring_splice) {
    // On the ring: the kernel moves a pipe's worth, waiting for the socket
    // itself; its completion is the next turn of the file.
    if (f.left == 0) {
      *result = f.sent;
      return true;
    }
    write_in_flight_ = true;
    splicing_ = true;
    in_flight_ = 0;
    ring_write_->splice(f.fd, f.offset, static_cast<size_t>(std::min<int64_t>(f.left, kFileChunk * 16)));
    return false;
  }
  if (tls_ == nullptr) {
    int64_t budget = kSendfileBurst;
    while (f.left > 0 && budget > 0) {
      auto off = static_cast<off_t>(f.offset);
      ssize_t n = ::sendfile(fd_, f.fd, &off, static_cast<size_t>(std::min(f.left, budget)));
      if (n > 0) {
        f.offset += n;
        f.left -= n;
        f.sent += n;
        budget -= n;
        sent_ += static_cast<uint64_t>(n);
        continue;
      }
      if (n == 0) {  // the file ended early
        *result = f.sent;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      *result = uv_translate_sys_error(errno);
      return true;
    }
    if (f.left == 0) {
      *result = f.sent;
      return true;
    }
    yield = budget <= 0;
  } else if (f.left == 0) {
    *result = f.sent;
    return true;
  }
  // A chunk through libuv: it writes what the socket takes and calls back
  // when all is written (the writability a full socket waits for).
  std::string& w = writing();
  w.assign(static_cast<size_t>(std::min<int64_t>(f.left, kFileChunk)), '\0');
  ssize_t n = ::pread(f.fd, w.data(), w.size(), f.offset);
  if (n <= 0) {
    w.clear();
    *result = n < 0 ? uv_translate_sys_error(errno) : f.sent;
    return true;
  }
  w.resize(static_cast<size_t>(n));
  f.offset += n;
  f.left -= n;
  f.sent += n;
  if (tls_ != nullptr) {
    tls_->write(w);
    w.clear();
    tls_->take_output(&w);
  }
  // Its completion is the next turn of the file (a yielding burst skips the
  // try: the loop gets its turn first).
  if (int rc = write_out(/*try_now=*/!yield, /*call_back=*/true); rc != 0) {
    *result = rc;
    return true;
  }
  return false;
}

void Transport::on_ring_spliced(int64_t moved) {
  splicing_ = false;
  if (moved > 0 && file_) {
    file_->offset += moved;
    file_->left -= moved;
    file_->sent += moved;
    sent_ += static_cast<uint64_t>(moved);
  } else if (moved == 0 && file_) {
    file_->left = 0;  // the file ended early: done with what was sent
  }
  on_write_done(moved < 0 ? static_cast<int>(moved) : 0);
}

void Transport::finish_file(int64_t result, bool notify) {
  if (splicing_ && ring_write_ != nullptr) {
    // The kernel's worker looks the file's descriptor up by number: it must
    // be done with it before the descriptor closes.
    ring_write_->settle();
    splicing_ = false;
    write_in_flight_ = false;
  }
  FileSend f = std::move(*file_);
  file_.reset();
  if (f.owns_fd && f.fd >= 0) ::close(f.fd);
  if (notify && f.done) f.done(result);
}

void Transport::cancel_file() {
  if (file_) finish_file(UV_ECANCELED, true);
}

// ------------------------------------------------------------------ shutdown

int Transport::shutdown() {
  if (tls_ != nullptr) {
    // Output corked behind a write in flight is encrypted first: it goes
    // before the close_notify, which goes before the TCP half-close.
    if (!file_ && !out_.empty()) {
      tls_->write(out_);
      out_.clear();
    }
    tls_->close();
  }
  if (!evented()) {
    if (tls_ != nullptr) flush_blocking(write_timeout);
    if (fd_ >= 0 && ::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTSOCK && errno != ENOTCONN) {
      return uv_translate_sys_error(errno);
    }
    return 0;
  }
  flush();
  if (write_in_flight_ || file_ || !out_.empty()) {
    shutting_down_ = true;  // after the output (on_write_done)
    return 0;
  }
  return start_shutdown();
}

// The half-close itself: through the ring when the transport writes there.
int Transport::start_shutdown() {
  if (ring_write_ != nullptr) {
    ring_write_->shutdown();
    return 0;
  }
  uv_shutdown_t* req = handle_->shutdown_req();
  req->data = handle_;
  return uv_shutdown(req, handle_->stream(), shutdown_cb);
}

void Transport::on_shutdown(int status) {
  if (user_ != nullptr && !closed_) user_->on_shutdown_done(status);
}

// ----------------------------------------------------------------------- TLS

void Transport::start_tls(std::unique_ptr<tls::Session> session) {
  tls_ = std::move(session);
  // Whatever arrived before TLS started is already ciphertext.
  std::string early = take_input();
  if (!early.empty()) absorb(early.data(), early.size());
  if (evented()) {
    flush();
  } else {
    flush_blocking(write_timeout);
  }
}

}  // namespace evo
