// Stream: a buffered reader and writer in one object (Zig's buffer-in-the-
// interface), over a TCP connection, a Unix socket, a pipe or a terminal:
// Lua's side of a Transport (src/io/transport.h), which owns the socket,
// the TLS session and the buffers.
//
// Every operation is colourless. With a libuv handle (the evented Io mode)
// and a task that can suspend, reads wait for data and writes wait only under
// backpressure, suspending just that task. Otherwise (the blocking Io mode,
// or where Lua cannot yield) the same operation is a plain syscall on the
// descriptor, with poll() for timeouts. Both paths share the buffers, so a
// stream can be used from both kinds of context.
#pragma once

#include <uv.h>
#include <lua.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/handle.h"
#include "io/transport.h"
#include "lua/tasks.h"
#include "proto/tls.h"

namespace evo {

class StreamTimer;

struct ReadRequest {
  enum class Kind : uint8_t { Chunk, Exactly, Line, Until, All, Handshake };
  Kind kind = Kind::Chunk;
  size_t n = 0;
  std::string delim;
};

// The Lua-facing reader and writer over a Transport: read requests, the
// reader's and the writer's waits (each with its deadline), backpressure.
class Stream final : public TransportUser {
 public:
  // A stream over an open libuv stream handle (takes ownership of it)...
  Stream(TaskSystem& sys, UvStreamHandle* handle);
  // ...or over a plain descriptor (the blocking Io mode; closed with the stream)...
  Stream(TaskSystem& sys, int fd);
  // ...or over a transport handed over (an HTTP connection after an upgrade).
  Stream(TaskSystem& sys, std::unique_ptr<Transport> transport);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Each returns the count of values pushed ((true, results...)), or yields;
  // the task is later resumed with (true, results...) or (false) when cancelled.
  int read(lua_State* L, ReadRequest req, int yieldable_idx);
  int write(lua_State* L, int first, int last, int yieldable_idx);
  // The same for bytes a native made (a WebSocket frame): no Lua string for them.
  int write(lua_State* L, std::string_view bytes, int yieldable_idx);
  int flush(lua_State* L, int yieldable_idx);
  int shutdown(lua_State* L, int yieldable_idx);
  // Sends `length` bytes of the open file `in_fd` from `offset`, after the
  // output before it: sendfile(2) in bounded chunks as the socket takes
  // them (read and encrypted under TLS). The caller keeps in_fd.
  int sendfile(lua_State* L, int in_fd, int64_t offset, int64_t length, int yieldable_idx);
  void close();

  // TLS: from now on the bytes on the wire are this session's records; reads
  // see the plaintext, writes are encrypted. handshake() waits until the
  // session is established (or answers its failure).
  void start_tls(std::unique_ptr<tls::Session> session);
  int handshake(lua_State* L, int yieldable_idx);
  [[nodiscard]] tls::Session* tls() const { return t_->tls(); }

  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] int fd() const { return t_->fd(); }
  [[nodiscard]] uv_stream_t* uv_stream() const { return t_->uv_stream(); }
  // Whether the stream keeps the process alive (Transport::set_ref).
  void set_ref(bool on) { t_->set_ref(on); }
  void set_timeouts(double read_seconds, double write_seconds);
  void set_high_water(size_t bytes) { high_water_ = bytes; }
  [[nodiscard]] size_t buffered() const { return t_->buffered(); }

  // A standard stream (process.stdout/stderr, src/bind/stdio.cpp). `file`:
  // C's FILE on the same descriptor (print, io.write), flushed before each
  // write so that what it holds goes first. `on_epipe`: called when a write
  // finds the reader gone (stdout ends the process, as print does). On
  // close, what is still queued is written first, blocking: never lost.
  // `on_close` runs once, when the stream closes.
  void set_stdio(FILE* file, void (*on_epipe)(), std::function<void()> on_close);
  // Reads only while a reader waits (process.stdin): idle, it neither keeps
  // the loop alive nor takes input meant for a child or a later reader.
  void set_read_on_demand(bool on) { read_on_demand_ = on; }
  // With a write in flight or output queued (evented): appends `bytes`
  // behind them and returns true. Else false: the caller writes them itself.
  // C's stdio (main.cpp) calls it so that print() after a write keeps its place.
  bool queue_if_busy(std::string_view bytes);
  // Writes what is still queued now, blocking (the process is ending).
  bool finish_writes() { return closed_ || t_->finish_writes_now(); }

  // For reading two pipes at once in the blocking way (process.exec): reads
  // whatever is there now (at most one read); false once at EOF or failed.
  bool read_available_blocking();
  [[nodiscard]] bool at_end() const { return t_->at_end(); }
  std::string take_buffer() { return t_->take_input(); }

  // TransportUser
  void on_input() override;
  void on_output() override;
  void on_shutdown_done(int status) override;
  void on_transport_closed() override {}
  void release_transport() override { close(); }

  void on_timeout();
  void on_timer_closed();

  static constexpr size_t kMaxBuffered = size_t{1} << 20;  // stop reading from the kernel beyond this
  static constexpr size_t kMaxLine = size_t{1}
                                     << 20;  // a line (or delimited record) longer than this is an error

 private:
  // Pushes the results of `req` from the buffer and returns their count, or
  // returns 0 when more data is needed. Never yields.
  int try_read(lua_State* L, const ReadRequest& req);
  int read_blocking(lua_State* L, const ReadRequest& req);
  int write_blocking(lua_State* L);
  // Both writes: `append(out)` adds the bytes to the output once the write may go ahead.
  template <class Append>
  int write_with(lua_State* L, int yieldable_idx, const Append& append);
  void want_data();
  enum class WriterWait : uint8_t { BelowHighWater, Flushed, ShutDown, File };
  int wait_as_writer(lua_State* L, int yieldable_idx, WriterWait what);
  void set_deadline(bool reader, double seconds);
  void arm_write_deadline();
  void clear_deadline(bool reader);
  void reschedule_timer();
  void wake_reader_if_ready();
  void wake_writer_if_ready();
  void fail_waiters(const char* code, const std::string& message);
  int push_write_error(lua_State* L, int status);
  static void cancel_read(Task* t, void* arg);
  static void cancel_write(Task* t, void* arg);

  TaskSystem& sys_;
  std::unique_ptr<Transport> t_;
  StreamTimer* timer_ = nullptr;
  bool closed_ = false;
  double read_timeout_ = 0;
  uint64_t reader_deadline_ = 0;  // uv_now() milliseconds; 0: none
  uint64_t writer_deadline_ = 0;
  double write_timeout_ = 0;
  size_t high_water_ = size_t{64} * 1024;

  Task* reader_ = nullptr;
  uint32_t reader_id_ = 0;
  ReadRequest read_req_;
  Task* writer_ = nullptr;
  uint32_t writer_id_ = 0;
  WriterWait writer_wait_ = WriterWait::BelowHighWater;
  uint64_t writer_sent_mark_ = 0;   // the transport's sent() and pending() when the
  size_t writer_pending_mark_ = 0;  // writer's deadline was armed: progress since?

  bool read_on_demand_ = false;
  bool stdio_ = false;
  FILE* stdio_file_ = nullptr;
  void (*on_epipe_)() = nullptr;
  std::function<void()> on_close_;
};

// Lua binding: a userdata "evo.Stream" holding a std::unique_ptr<Stream>.
void push_stream(lua_State* L, std::unique_ptr<Stream> stream);
Stream* check_stream(lua_State* L, int idx);
int open_stream_natives(lua_State* L);

}  // namespace evo
