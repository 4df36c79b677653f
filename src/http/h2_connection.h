// HTTP/2 in the server: one h2::Session (src/proto/h2_session.h) on the
// connection's transport, each stream an Exchange with the same req/res as
// HTTP/1.1 (the bindings see only ExchangeIo).
//
// An HTTP/1 Connection becomes HTTP/2 before its first request (ALPN "h2",
// the prior-knowledge preface, or "Upgrade: h2c"): it hands its transport's
// user slot to an H2Connection it owns, and stays in the server's list as
// the shell the server stops, sweeps and removes.
//
// Session callbacks only record what happened; Lua runs after the session
// call returns (handlers start, body readers and writers wake), so a handler
// never re-enters nghttp2 from inside one of its callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/server.h"
#include "proto/h2_session.h"

namespace evo::http {

class H2Connection;

// One stream's side of an Exchange (owned by it: Exchange::stream).
class H2Stream final : public ExchangeIo {
 public:
  H2Stream(H2Connection* conn, int32_t id) : conn_(conn), id_(id) {}
  ~H2Stream() override;

  void send_head(Exchange& ex) override;
  void write_body(Exchange& ex, std::string_view chunk) override;
  void finish(Exchange& ex) override;
  void send_whole(Exchange& ex, std::string_view body) override;
  void send_continue(Exchange& /*ex*/) override {}  // HTTP/2 clients do not wait for 100
  void send_informational(Exchange& ex, int status, std::string_view lines) override;
  [[nodiscard]] bool congested() const override;
  void wait_writable(Task* t, uint32_t id) override;
  void cancel_wait_writable() override { writer_ = nullptr; }
  void body_consumed() override;
  void flush() override;
  int64_t send_file(int fd, int64_t offset, int64_t length, std::function<void(int)> done) override;
  void cancel_file() override;
  void close_soon() override { close(); }
  void close() override;  // resets this stream, not the connection
  [[nodiscard]] bool closed() const override { return conn_ == nullptr; }
  void cut(Exchange& ex) override;

 private:
  friend class H2Connection;
  void submit(Exchange& ex, bool end_stream);
  void end_body(Exchange& ex);
  void ended(Exchange& ex);
  int pump_file();
  void file_progress();
  void file_finished(int status);
  void wake_writer(const char* error);
  void close_file();

  H2Connection* conn_;  // nullptr once the stream or the connection is gone
  int32_t id_;
  size_t unconsumed_ = 0;  // body handed to the exchange, not yet consume()d
  uint64_t received_ = 0;  // body bytes received (maxBodyBytes)
  bool dispatched_ = false;
  bool end_sent_ = false;  // END_STREAM (or a reset) is queued
  bool finished_emitted_ = false;
  bool touched_ = false;     // in the connection's list of streams to look at
  bool gone_ = false;        // on_stream_close came
  uint32_t close_code_ = 0;  // its code
  Task* writer_ = nullptr;
  uint32_t writer_id_ = 0;
  // res:sendFile: read in pieces as the stream's queue drains.
  int file_fd_ = -1;
  int64_t file_offset_ = 0;
  int64_t file_left_ = 0;
  std::function<void(int)> file_done_;
  bool file_sync_ = false;  // inside send_file()
  int file_status_ = 0;
};

class H2Connection final : public TransportUser, private h2::Handler {
 public:
  H2Connection(std::shared_ptr<Server> server, Transport& t, Connection& owner);
  ~H2Connection() override;
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Feeds the input already read; `upgraded`: the HTTP/1.1 request of an
  // "Upgrade: h2c", stream 1.
  void start(const std::shared_ptr<Exchange>& upgraded);
  void shutdown();           // server:close(): GOAWAY, open streams finish
  void sweep(uint64_t now);  // the send timeout, the idle timeout
  [[nodiscard]] bool runs_handler(const Task* t) const;

  // TransportUser
  void on_input() override;
  void on_output() override;
  void on_transport_closed() override;
  void release_transport() override;

 private:
  friend class H2Stream;
  // h2::Handler (records only; see process())
  void on_request(int32_t stream, h2::RequestHead&& head, bool end_stream) override;
  void on_data(int32_t stream, std::string_view data) override;
  void on_trailers(int32_t stream, h2::HeaderList&& trailers) override;
  void on_end_stream(int32_t stream) override;
  void on_stream_close(int32_t stream, uint32_t code) override;
  void on_send_progress(int32_t stream, size_t buffered) override;

  static H2Stream* stream_of(const std::shared_ptr<Exchange>& ex) {
    return static_cast<H2Stream*>(ex->stream.get());
  }
  void touch(int32_t stream);
  bool process();  // what the callbacks recorded: dispatch, wake, abort
  void dispatch(const std::shared_ptr<Exchange>& ex);
  void lost(const std::shared_ptr<Exchange>& ex, uint32_t code);
  void flush();
  bool after_output();
  void close();

  std::shared_ptr<Server> server_;
  Transport& t_;
  Connection& owner_;
  h2::Session session_;
  std::unordered_map<int32_t, std::shared_ptr<Exchange>> streams_;
  std::vector<std::shared_ptr<Exchange>> touched_;
  std::vector<h2::Field> fields_;  // a response head's, reused (H2Stream::submit)
  bool progressed_ = false;        // on_send_progress came: files may read on
  int in_session_ = 0;             // inside a session call: output and Lua wait
  int corked_ = 0;                 // inside process(): its caller flushes once after
  bool flushing_ = false;
  bool closing_ = false;
  uint64_t idle_since_ = 0;   // uv_now when the last stream closed (0: streams open)
  uint64_t shutdown_at_ = 0;  // uv_now of shutdown()
  uint64_t sent_mark_ = 0;    // the transport's bytes sent at sent_at_
  uint64_t sent_at_ = 0;
};

}  // namespace evo::http
