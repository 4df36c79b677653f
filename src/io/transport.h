// Transport: the one connection object under every byte stream in Evo — net
// streams (TCP, Unix sockets), process pipes, HTTP connections, WebSockets
// after an upgrade (nginx's ngx_connection_t, Redis's connection).
//
// A transport is a socket (a libuv stream handle in the evented Io mode, a
// plain descriptor in the blocking one) with an optional TLS session, one
// input buffer that compacts, one corked output buffer (written with
// uv_try_write first, then one libuv write at a time), and one path for
// files (sendfile(2) in bounded chunks driven by writability; pread + TLS
// under a session). Its user — an HTTP connection, a Lua Stream — decides
// what the bytes mean: it is told when input arrives and when output moves
// (TransportUser), and reads and writes the buffers itself. An upgrade moves
// the transport to another user: no dup(), no second handle.
//
// The transport never calls its user back from a call the user made: only
// from libuv's callbacks. A user checks drained()/pending() after flush().
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/handle.h"
#include "core/scheduler.h"
#include "proto/tls.h"

namespace evo {

class Transport;

// The libuv handle under an evented transport, and what libuv refers to
// while a write or shutdown is in flight (the request and the bytes), so
// all of it lives until the close callback, even when the transport (a Lua
// userdata, a connection) is gone first.
class UvStreamHandle final : public NativeHandle {
 public:
  enum class Kind : uint8_t { Tcp, Pipe, Tty };
  UvStreamHandle(uv_loop_t* loop, Kind kind, int* status, int fd_for_tty = -1, bool ipc = false);
  uv_handle_t* uv_handle() override { return &h_.handle; }
  void release() override;  // through its transport's user
  uv_stream_t* stream() { return &h_.stream; }
  uv_tcp_t* tcp() { return &h_.tcp; }
  uv_pipe_t* pipe() { return &h_.pipe; }
  [[nodiscard]] Kind kind() const { return kind_; }
  Transport* owner = nullptr;
  // The requests are made on first use: most answers fit the socket buffer
  // and go out by uv_try_write, with no request, and a shutdown comes once,
  // so an idle connection does not carry 272 bytes of them.
  uv_write_t* write_req();
  uv_shutdown_t* shutdown_req();
  std::string writing;  // the bytes of the write in flight

 protected:
  void on_closed() override;

 private:
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h_{};
  Kind kind_;
  std::unique_ptr<uv_write_t> write_req_;
  std::unique_ptr<uv_shutdown_t> shutdown_req_;
};

// Who uses a transport. Called only from libuv callbacks.
class TransportUser {
 public:
  virtual void on_input() = 0;  // input grew, or the end or an error came
  virtual void on_output() {}   // a write completed: pending() fell
  virtual void on_shutdown_done(int /*status*/) {}
  virtual void on_transport_closed() {}  // the handle is gone
  virtual void release_transport() = 0;  // the runtime's exit sweep: close as the owner would

 protected:
  ~TransportUser() = default;
};

// The seams io_uring carries a socket transport through (--io=uring,
// src/io/uring_io.cpp): an evented socket transport reads through a
// RingRead instead of uv_read_start, and writes and half-closes through a
// RingWrite instead of uv_write/uv_shutdown, when the run's Io installed
// RingSockets. Close stays on the libuv handle. Each owns the memory the
// kernel reads or writes and outlives the transport until the kernel is
// done with it.
class RingRead {
 public:
  virtual void start() = 0;        // a (multishot) receive into the transport
  virtual void pause() = 0;        // asks the kernel to stop it (on_ring_final follows)
  virtual void settle() = 0;       // pause, and wait here until it stopped
  virtual void notify_soon() = 0;  // on_ring_notify from the loop, soon
  // on_ring_final(0) at the next loop turn, after the tasks woken in this one.
  virtual void end_next_turn() = 0;
  virtual void detach() = 0;          // the transport is gone: pause, tell it nothing more
  virtual void set_ref(bool on) = 0;  // whether a receive keeps the loop alive
 protected:
  ~RingRead() = default;
};

class RingWrite {
 public:
  // Takes bytes[from..] (the string is swapped out) and sends all of it,
  // one entry at a time; on_ring_sent(status) follows once it is all
  // taken or failed. Nothing left to send: on_ring_sent(0) from the loop.
  virtual void send(std::string& bytes, size_t from) = 0;
  [[nodiscard]] virtual size_t unsent() const = 0;  // of the send in flight
  // Stops the send in flight and waits here until the kernel is done with
  // it; the bytes it did not send are handed back (nobody is called).
  virtual std::string settle() = 0;
  // Moves len bytes of file_fd from offset to the socket through a pipe
  // (IORING_OP_SPLICE file -> pipe -> socket, linked), as one send in
  // flight; on_ring_spliced(bytes moved, or a libuv status) follows. settle()
  // stops it (what it moved is lost to the count).
  virtual void splice(int file_fd, int64_t offset, size_t len) = 0;
  virtual void shutdown() = 0;  // a half-close; on_ring_shutdown(status) follows
  // Closes the descriptor (IORING_OP_CLOSE) of a transport without a libuv
  // handle, once no send is in flight; on_ring_closed() follows from the
  // loop, unless the transport detaches first.
  virtual void close_fd() = 0;
  virtual void detach() = 0;  // the transport is gone: cancel, tell it nothing more
 protected:
  ~RingWrite() = default;
};

// Accepts on a listening socket through the ring (the listener of
// listen_on_loop, src/io/evented_io.cpp, when the run has RingSockets).
class RingAccept {
 public:
  // Accepted descriptors (or -errno) go to each from the loop: one
  // multishot entry while `many`, else one connection. A new start
  // replaces the callback; the entry is re-armed when the kernel ends it.
  virtual void start(bool many, std::function<void(int fd_or_error)> each) = 0;
  virtual void stop() = 0;    // cancels the entry; each is not called again
  virtual void detach() = 0;  // the listener is gone (stop, and let go)
 protected:
  ~RingAccept() = default;
};

class RingSockets {
 public:
  virtual RingRead* attach_read(Transport* t, int fd) = 0;    // nullptr: libuv reads
  virtual RingWrite* attach_write(Transport* t, int fd) = 0;  // nullptr: libuv writes
  // nullptr: libuv accepts. forget runs if the ring goes first. by_readiness:
  // the queue is shared or outlives the process (uring_io.cpp says why).
  virtual RingAccept* attach_accept(int fd, bool by_readiness, std::function<void()> forget) = 0;
  // Whether a socket can be carried by the ring alone (Transport::on_ring):
  // receives and sends both on it.
  [[nodiscard]] virtual bool own_sockets() const = 0;
  // The runtime's sweep of script handles (at exit, between tests): every
  // open transport without a libuv handle is released as its owner would
  // (libuv's walk finds the others).
  virtual void release_all() = 0;

 protected:
  ~RingSockets() = default;
};

class Transport final : public Corkable {
 public:
  // Set by the uring Io for its run (nullptr otherwise).
  static inline RingSockets* ring_sockets = nullptr;
  // Under RingWrite: whether a flush tries a send(2) first and puts only
  // what the socket did not take on the ring (EVO_URING_SEND=try), or puts
  // all of it on the ring, sent with the loop turn's batch (the default:
  // one io_uring_enter for every connection's answers; docs/io.md has the
  // figures).
  static inline bool ring_send_tries = false;
  // Under RingWrite: files go file -> pipe -> socket with IORING_OP_SPLICE
  // (EVO_URING_SPLICE=1) instead of sendfile(2) bursts (docs/io.md has the
  // measurements that chose the default).
  static inline bool ring_splice = false;

  // Over an open libuv stream handle (the evented Io mode; taken over).
  // on_ring: reads may go through the uring Io's ring (sockets); a child's
  // standard streams keep libuv's reads (their socketpair is a pipe to the
  // script: see process.cpp).
  explicit Transport(UvStreamHandle* handle, bool on_ring = true);
  // Over a plain descriptor (the blocking Io mode; closed with the transport).
  explicit Transport(int fd);
  // Over a connected socket that only the uring Io's ring reads, writes and
  // closes (IORING_OP_CLOSE): no libuv handle, so libuv never registers the
  // descriptor (no epoll_ctl, no ioctl per connection). The transport owns
  // the descriptor; it is evented() as a libuv one is. nullptr (fd left
  // open) when the run has no ring that can carry sockets.
  static std::unique_ptr<Transport> on_ring(uv_loop_t* loop, int fd);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  void set_user(TransportUser* user) { user_ = user; }
  // A descriptor the transport must leave open when it closes (fd 0, 1, 2:
  // process.stdin/stdout/stderr over the process's own standard streams).
  void set_owns_fd(bool owns) { owns_fd_ = owns; }
  [[nodiscard]] bool evented() const { return handle_ != nullptr || ring_loop_ != nullptr; }
  // A flush only queues the output on the uring Io's ring, which sends it
  // with the loop turn's batch: corking it for the turn would gain nothing.
  [[nodiscard]] bool sends_with_turn() const { return ring_write_ != nullptr && !ring_send_tries; }
  // Read, written and closed through the ring alone (on_ring()).
  [[nodiscard]] bool ring_only() const { return ring_loop_ != nullptr; }
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] uv_stream_t* uv_stream() const { return handle_ != nullptr ? handle_->stream() : nullptr; }
  [[nodiscard]] uv_loop_t* loop() const;
  // Whether the transport keeps the loop alive (libuv's handle ref; an
  // idle pooled client connection does not), reads through the ring too.
  void set_ref(bool on);
  // Closes the socket (a write in flight is abandoned; a file send ends
  // with UV_ECANCELED).
  void close();

  // ---- input: plaintext not yet consumed by the user
  [[nodiscard]] std::string_view input() const { return std::string_view(in_).substr(in_pos_); }
  [[nodiscard]] size_t buffered() const { return in_.size() - in_pos_; }
  // Drops n bytes; the buffer compacts once what was read is most of it.
  void consume(size_t n);
  std::string take_input();
  [[nodiscard]] bool eof() const { return eof_; }
  [[nodiscard]] int read_error() const { return read_error_; }
  [[nodiscard]] bool at_end() const { return eof_ || read_error_ != 0 || fd_ < 0; }
  // Evented: reads are delivered (on_input) while on. Off: the kernel buffers.
  void set_reading(bool on);
  [[nodiscard]] bool reading() const { return reading_; }
  // One read(2) straight from the descriptor (the blocking mode, or an
  // evented transport where the caller cannot wait): true when it brought
  // data, the end or an error; false when nothing was there.
  bool read_now();
  // Waits up to timeout seconds (<= 0: for ever) for the descriptor to be
  // readable (or writable); false on timeout.
  bool wait_fd(bool writable, double timeout);
  // Releases the input buffer's memory when it is empty and large (an idle
  // connection keeps no peak-sized buffer).
  void trim();
  void release_buffers();

  // ---- output: a corked buffer; flush() sends it
  std::string& output() { return out_; }
  void write(std::string_view bytes) { out_.append(bytes); }
  // Evented: writes what it can now (uv_try_write), the rest with one libuv
  // write; then a file queued behind the output. Never calls the user.
  void flush();
  // Evented: flush() deferred to the end of the loop's current dispatch
  // (Scheduler::cork): the writes of one turn leave together. Nothing to
  // do while a write is in flight (its completion sends the output).
  void cork(Scheduler& s) {
    if (evented() && !closed_ && !write_in_flight_ && !file_) s.cork(this);
  }
  // Corkable: the deferred flush. A failure is told to the user
  // (on_output) and stays in write_error() for its next call.
  void flush_corked() override;
  // Blocking: writes all of the output and any queued TLS records; false on
  // a failure (write_error()) or a timeout (write_error() 0).
  bool flush_blocking(double timeout);
  // Writes, with blocking writes, everything still queued: the rest of a
  // libuv write in flight, then the output. For a process that is ending
  // (nothing will run the loop again), just before close(): libuv would
  // otherwise write the in-flight rest itself. False on a failure.
  bool finish_writes_now();
  // Bytes handed over and not yet taken by the socket.
  [[nodiscard]] size_t pending() const;
  [[nodiscard]] bool write_in_flight() const { return write_in_flight_; }
  [[nodiscard]] bool drained() const { return pending() == 0 && !write_in_flight_ && file_ == nullptr; }
  [[nodiscard]] int write_error() const { return write_error_; }
  // Bytes the socket has taken so far: a send timeout looks for progress.
  [[nodiscard]] uint64_t sent() const { return sent_; }
  // Seconds a blocking write may wait for the socket (<= 0: for ever).
  double write_timeout = 0;

  // ---- files
  using FileDone = std::function<void(int64_t result)>;  // bytes sent, or a negative libuv status
  static constexpr int64_t kPending = -1000000;
  // Sends length bytes of fd from offset after the output before them
  // (owns_fd: closed when done). Returns the bytes sent when that finished
  // now (done is not called then), or kPending: done(result) follows from a
  // libuv callback, or from close(). Plain sockets use sendfile(2), a chunk
  // at a time while the socket takes it; under TLS the file is read and
  // encrypted a chunk at a time, below the high-water mark. On a closed
  // transport: UV_ECANCELED now.
  int64_t send_file(int fd, int64_t offset, int64_t length, bool owns_fd, FileDone done);
  [[nodiscard]] bool file_in_flight() const { return file_ != nullptr; }
  // Drops a file send (done(UV_ECANCELED) runs).
  void cancel_file();

  // ---- shutdown: once the output is written, a half-close (close_notify
  // first under TLS). Evented: on_shutdown_done(status) follows; returns 0
  // or a libuv error now. Blocking: done when it returns.
  int shutdown();

  // ---- TLS: from now on the bytes on the wire are this session's records.
  void start_tls(std::unique_ptr<tls::Session> session);
  void adopt_tls(std::unique_ptr<tls::Session> session) { tls_ = std::move(session); }
  [[nodiscard]] tls::Session* tls() const { return tls_.get(); }

  // ---- from the handle's callbacks
  void on_read(ssize_t nread, const char* data);
  void on_write_done(int status);
  void on_shutdown(int status);
  void on_handle_closed();
  void release();
  // ---- from a RingRead's completions
  void on_ring_data(const char* data, size_t n);
  // No receive is in the kernel any more: status 0 the end of input, < 0 a
  // libuv status, > 0 stopped without an end (paused, out of buffers).
  void on_ring_final(int status);
  void on_ring_notify();
  // ---- from a RingWrite's completions (the libuv callbacks' equivalents)
  void on_ring_sent(int status) { on_write_done(status); }
  // The process is exiting (os.exit): the output corked behind the send
  // that completed goes on the ring too; nobody is told.
  void on_ring_sent_at_exit();
  void on_ring_spliced(int64_t moved);
  void on_ring_shutdown(int status) { on_shutdown(status); }
  // The ring closed the descriptor (close_fd): libuv's close callback
  // equivalent.
  void on_ring_closed();
  void forget_ring() {  // the ring is gone: nothing more is read or written
    ring_ = nullptr;
    ring_armed_ = false;
    ring_write_ = nullptr;
  }

  static constexpr size_t kCompactAt = size_t{16} * 1024;
  static constexpr size_t kFileChunk = size_t{64} * 1024;    // read for TLS or a full socket
  static constexpr size_t kSendfileBurst = size_t{1} << 20;  // per turn of the loop (sendfile_max_chunk)

 private:
  struct FileSend {
    int fd;
    int64_t offset;
    int64_t left;
    int64_t sent;
    bool owns_fd;
    FileDone done;
    // Bytes at the front of the output that were written before the file
    // but were still corked behind a write in flight when it was queued:
    // they go out before it (the rest of the output goes after it).
    size_t head = 0;
  };
  void absorb(const char* data, size_t n);
  bool write_all_now(const char* data, size_t n, double timeout);
  // Continues the file send; true when it finished (or failed) now.
  bool pump_file(int64_t* result);
  void finish_file(int64_t result, bool notify);
  // Writes up to limit bytes from the front of the output.
  void start_write(size_t limit = SIZE_MAX);
  int write_out(bool try_now, bool call_back,
                size_t written = 0);  // written: sent already (not with try_now)

  void tell_input();
  int start_shutdown();
  void send_rest_now();
  void send_now(std::string& rest);
  // The bytes of the write in flight: the libuv handle's (libuv refers to
  // them after the transport is gone), or the transport's own on the ring.
  std::string& writing() { return handle_ != nullptr ? handle_->writing : writing_; }
  // What the socket takes now, without waiting: bytes, or a libuv status
  // (UV_EAGAIN when it takes nothing).
  int try_write(const char* data, size_t n);

  UvStreamHandle* handle_ = nullptr;
  uv_loop_t* ring_loop_ = nullptr;   // on_ring(): no handle, the ring carries everything
  std::string writing_;              // writing() without a handle
  RingRead* ring_ = nullptr;         // reads through io_uring
  bool ring_armed_ = false;          // a receive is in the kernel
  RingWrite* ring_write_ = nullptr;  // sends and the half-close through io_uring
  bool unnotified_ = false;          // input came while not reading: the user is told on the next start
  bool eof_deferred_ = false;        // the end came with the input before it: told one loop turn later
  TransportUser* user_ = nullptr;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool closed_ = false;
  bool eof_ = false;
  bool reading_ = false;
  bool write_in_flight_ = false;
  bool splicing_ = false;  // the write in flight is a ring splice of the file
  bool shutting_down_ = false;
  int read_error_ = 0;
  int write_error_ = 0;
  uint64_t sent_ = 0;
  size_t in_flight_ = 0;  // bytes of the libuv write in flight (not yet in sent_)
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  std::unique_ptr<tls::Session> tls_;
  std::unique_ptr<FileSend> file_;  // on the heap: most transports never send a file
};

}  // namespace evo
