// Stream: a buffered reader and writer in one object (Zig's buffer-in-the-
// interface), over a TCP connection, a Unix socket, a pipe or a terminal.
//
// Every operation is colourless. With a libuv handle (the evented Io mode)
// and a task that can suspend, reads wait for data and writes wait only under
// backpressure, suspending just that task. Otherwise (the blocking Io mode,
// or where Lua cannot yield) the same operation is a plain syscall on the
// descriptor, with poll() for timeouts. Both paths share the buffer, so a
// stream can be used from both kinds of context.
#pragma once

#include <uv.h>
#include <lua.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/handle.h"
#include "lua/tasks.h"
#include "modules/tls.h"

namespace evo {

class UvStreamHandle;
class StreamTimer;

struct ReadRequest {
  enum class Kind : uint8_t { Chunk, Exactly, Line, Until, All, Handshake };
  Kind kind = Kind::Chunk;
  size_t n = 0;
  std::string delim;
};

class Stream {
 public:
  // A stream over an open libuv stream handle (takes ownership of it)...
  explicit Stream(TaskSystem& sys, UvStreamHandle* handle);
  // ...or over a plain descriptor (the blocking Io mode; closed with the stream).
  Stream(TaskSystem& sys, int fd);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Each returns the count of values pushed ((true, results...)), or yields;
  // the task is later resumed with (true, results...) or (false) when cancelled.
  int read(lua_State* L, ReadRequest req, int yieldable_idx);
  int write(lua_State* L, int first, int last, int yieldable_idx);
  int flush(lua_State* L, int yieldable_idx);
  int shutdown(lua_State* L, int yieldable_idx);
  // Sends `length` bytes of the open file `in_fd` from `offset` with
  // sendfile(2): no copy through user space. Evented: on the thread pool,
  // after earlier writes have gone out (the Lua side flushes first).
  int sendfile(lua_State* L, int in_fd, int64_t offset, int64_t length, int yieldable_idx);
  void close();

  // TLS: from now on the bytes on the wire are this session's records; reads
  // see the plaintext, writes are encrypted. handshake() waits until the
  // session is established (or answers its failure).
  void start_tls(std::unique_ptr<tls::Session> session);
  int handshake(lua_State* L, int yieldable_idx);
  // For a socket taken over from the HTTP server (a WebSocket upgrade): its
  // established TLS session, and the plaintext already read past the request.
  void adopt_tls(std::unique_ptr<tls::Session> session) { tls_ = std::move(session); }
  void preload(std::string_view plaintext) { buf_.append(plaintext); }
  [[nodiscard]] tls::Session* tls() const { return tls_.get(); }

  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] uv_stream_t* uv_stream() const;
  void set_timeouts(double read_seconds, double write_seconds);
  void set_high_water(size_t bytes) { high_water_ = bytes; }
  [[nodiscard]] size_t buffered() const { return buf_.size() - pos_; }

  // For reading two pipes at once in the blocking way (process.exec): reads
  // whatever is there now (at most one read); false once at EOF or failed.
  bool read_available_blocking();
  [[nodiscard]] bool at_end() const { return eof_ || read_error_ != 0 || fd_ < 0; }
  std::string take_buffer() {
    std::string out = buf_.substr(pos_);
    buf_.clear();
    pos_ = 0;
    return out;
  }

  // From the libuv handle's callbacks.
  void on_read(ssize_t nread, const char* data);
  void on_write_done(int status);
  void on_shutdown_done(int status);
  void on_timeout();
  void on_handle_closed();
  void on_timer_closed();

  static constexpr size_t kMaxBuffered = size_t{1} << 20;  // stop reading from the kernel beyond this
  static constexpr size_t kMaxLine = size_t{1}
                                     << 20;  // a line (or delimited record) longer than this is an error

 private:
  // Pushes the results of `req` from the buffer and returns their count, or
  // returns 0 when more data is needed. Never yields.
  int try_read(lua_State* L, const ReadRequest& req);
  int read_blocking(lua_State* L, const ReadRequest& req);
  int write_blocking(lua_State* L, int first, int last);
  bool fill_blocking(lua_State* L, double timeout, int& pushed);
  bool read_once();
  // Drops n read bytes. The buffer compacts once the read part is most of
  // it, so a long read loop keeps only what it has not read yet.
  void consume(size_t n) {
    pos_ += n;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ >= kCompactAt && pos_ >= buf_.size() / 2) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }
  static constexpr size_t kCompactAt = size_t{16} * 1024;
  void want_data();
  // Takes bytes from the wire into the read buffer (decrypting under TLS).
  void absorb(const char* data, size_t n);
  // Puts bytes on the wire as they are (TLS records), owned by the write.
  int send_raw(std::string bytes);
  void send_tls_output();
  bool write_all_blocking(const char* data, size_t n);
  std::string encrypt_args(lua_State* L, int first, int last);
  enum class WriterWait : uint8_t { BelowHighWater, Flushed, ShutDown };
  int wait_as_writer(lua_State* L, int yieldable_idx, WriterWait what);
  void set_deadline(bool reader, double seconds);
  void clear_deadline(bool reader);
  void reschedule_timer();
  void wake_reader_if_ready();
  void wake_writer_if_ready();
  void fail_waiters(const char* code, const std::string& message);
  static void cancel_read(Task* t, void* arg);
  static void cancel_write(Task* t, void* arg);

  TaskSystem& sys_;
  UvStreamHandle* handle_ = nullptr;
  StreamTimer* timer_ = nullptr;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool closed_ = false;
  bool eof_ = false;
  int read_error_ = 0;
  int write_error_ = 0;
  bool reading_ = false;
  std::string buf_;
  size_t pos_ = 0;
  double read_timeout_ = 0;
  uint64_t reader_deadline_ = 0;  // uv_now() milliseconds; 0: none
  uint64_t writer_deadline_ = 0;
  double write_timeout_ = 0;
  size_t high_water_ = size_t{64} * 1024;
  size_t pending_writes_ = 0;

  std::unique_ptr<tls::Session> tls_;
  Task* reader_ = nullptr;
  uint32_t reader_id_ = 0;
  ReadRequest read_req_;
  Task* writer_ = nullptr;
  uint32_t writer_id_ = 0;
  WriterWait writer_wait_ = WriterWait::BelowHighWater;
};

// The libuv handle under an evented Stream. Owned by libuv once opened; it
// lives until its close callback, even if the Stream (a Lua userdata) is
// collected first.
class UvStreamHandle final : public NativeHandle {
 public:
  enum class Kind : uint8_t { Tcp, Pipe, Tty };
  UvStreamHandle(uv_loop_t* loop, Kind kind, int* status, int fd_for_tty = -1, bool ipc = false);
  uv_handle_t* uv_handle() override { return &h_.handle; }
  void release() override;  // through its Stream, which fails its waiters
  uv_stream_t* stream() { return &h_.stream; }
  uv_tcp_t* tcp() { return &h_.tcp; }
  uv_pipe_t* pipe() { return &h_.pipe; }
  [[nodiscard]] Kind kind() const { return kind_; }
  Stream* owner = nullptr;

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
};

// Sends `length` bytes of in_fd from `offset` to out_fd with sendfile(2),
// waiting with poll() while the socket is full (for thread-pool jobs and the
// blocking Io mode). Returns bytes sent, or a negative libuv status; `stop`
// ends it early (checked between polls of at most 100 ms).
int64_t send_file_blocking(int out_fd, int in_fd, int64_t offset, int64_t length, double timeout,
                           const std::atomic<bool>* stop);

// sendfile(2) on the thread pool, for evented streams and HTTP connections:
// `length` bytes of in_fd from `offset` to a duplicate of out_fd, so the
// socket stays valid for the job even when its owner closes it meanwhile.
// done(result) runs on the loop thread: the bytes sent, or a negative libuv
// status. stop() ends the job early (within 100 ms); done still runs.
class SendfileJob {
 public:
  using Done = std::function<void(int64_t result)>;
  // The running job, or nullptr with *error (done is not called then). With
  // owns_in_fd the job closes in_fd when it ends (or fails to start).
  static SendfileJob* start(uv_loop_t* loop, int out_fd, int in_fd, int64_t offset, int64_t length,
                            bool owns_in_fd, Done done, int* error);
  void stop();

  SendfileJob(const SendfileJob&) = delete;
  SendfileJob& operator=(const SendfileJob&) = delete;
  ~SendfileJob();

 private:
  SendfileJob() = default;
  static void work(uv_work_t* req);
  static void after(uv_work_t* req, int status);

  uv_work_t req_{};
  int out_fd_ = -1;  // our duplicate
  int in_fd_ = -1;
  bool owns_in_fd_ = false;
  int64_t offset_ = 0;
  int64_t length_ = 0;
  int64_t result_ = 0;
  std::atomic<bool> stop_{false};
  Done done_;
};

// Lua binding: a userdata "evo.Stream" holding a std::unique_ptr<Stream>.
void push_stream(lua_State* L, std::unique_ptr<Stream> stream);
Stream* check_stream(lua_State* L, int idx);
int open_stream_natives(lua_State* L);

}  // namespace evo
