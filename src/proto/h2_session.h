// HTTP/2 (RFC 9113), sans I/O, on nghttp2's classic API (Debian's 1.52).
//
// A Session is one end of one HTTP/2 connection. It never touches a socket:
//   receive(bytes)      what the peer sent; events come back through Handler
//   take_output(out)    what to send, appended to a string: every frame
//                       ready now, corked into one large write
// and the caller's calls (submit_response, write, end, consume, ...) only
// queue frames that the next take_output() serialises.
//
// How the HTTP server drives it (not wired yet; docs/http2.md):
//   - one Session per TCP/TLS connection (ALPN "h2", h2c by prior knowledge,
//     or an HTTP/1.1 "Upgrade: h2c" handed over with upgrade()), owned by the
//     connection, which feeds on_input bytes to receive() and, after every
//     receive() and every call made on the session, writes take_output()
//     through the transport (only while the transport's output is not
//     backed up: HTTP/2's windows bound what is queued here);
//   - on_request starts one task per stream with the usual req/res; req's
//     body reads pull from on_data pieces and call consume() as the handler
//     takes them (WINDOW_UPDATE only then: backpressure); res writes call
//     write() and wait while buffered(stream) is above a high-water mark,
//     resumed by on_send_progress; res:finish() is end() or submit_trailers();
//   - on_stream_close ends the stream's task (cancelled when the code is not
//     NoError); a connection whose stalled_since() is older than the send
//     timeout is closed (the peer holds its window at zero); server:close()
//     calls shutdown() and closes the connection once finished().
// The client does the same with submit_request() and on_response.
//
// Handler callbacks run inside receive() and take_output(). They may call
// any Session method except destroying the Session.
//
// Defences (Options; docs/http2.md lists what nghttp2 1.52 has and what is
// added here). Frame headers are checked before nghttp2 sees the frame:
// CONTINUATION count and header-block size, and the rates of PING,
// SETTINGS, PRIORITY and RST_STREAM frames over a sliding window. Resets the
// server sends on its own (refused streams, stream protocol errors) count
// with the peer's RST_STREAMs against the rapid-reset limit. Decoded header
// lists over max_header_list_size are dropped (431 for a request). A
// violation sends GOAWAY with the code (ENHANCE_YOUR_CALM for floods) and
// ignores everything after it; failure() says which limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/http_headers.h"

struct nghttp2_session;

namespace evo::h2 {

using http::HeaderList;  // names lower-case, in order, duplicates kept

enum class Role : uint8_t { Server, Client };

// RFC 9113 section 7: the codes of RST_STREAM and GOAWAY.
enum ErrorCode : uint32_t {
  NoError = 0x0,
  ProtocolError = 0x1,
  InternalError = 0x2,
  FlowControlError = 0x3,
  SettingsTimeout = 0x4,
  StreamClosed = 0x5,
  FrameSizeError = 0x6,
  RefusedStream = 0x7,
  Cancel = 0x8,
  CompressionError = 0x9,
  ConnectError = 0xa,
  EnhanceYourCalm = 0xb,
  InadequateSecurity = 0xc,
  Http11Required = 0xd,
};
// "PROTOCOL_ERROR", ... ("UNKNOWN" for others).
const char* error_name(uint32_t code);

// At most `count` events within any `window_ms` milliseconds; one more is a
// flood. count 0 turns the check off.
struct RateLimit {
  uint32_t count = 0;
  uint32_t window_ms = 10000;
};

struct Options {
  // ---- advertised in our SETTINGS, enforced on what we receive
  uint32_t max_concurrent_streams = 100;  // more are refused (RST_STREAM REFUSED_STREAM)
  // Decoded header list, counted as RFC 9113 6.5.2 does: name + value + 32
  // per field. nginx allows 32 KiB of request header buffers by default.
  uint32_t max_header_list_size = 32 * 1024;
  uint32_t max_frame_size = 16384;                // the largest frame payload we accept (RFC minimum)
  uint32_t header_table_size = 4096;              // HPACK dynamic table the peer's encoder may use
  uint32_t initial_window_size = 256 * 1024;      // per stream: unconsumed body per stream
  uint32_t connection_window_size = 1024 * 1024;  // all streams together

  // ---- defences
  // The encoded size of one header block (HEADERS or PUSH_PROMISE and its
  // CONTINUATIONs) and the number of CONTINUATION frames in it: the
  // CONTINUATION flood (CVE-2024-27316). Over either: GOAWAY ENHANCE_YOUR_CALM.
  uint32_t max_header_block_bytes = 64 * 1024;
  uint32_t max_continuations = 8;
  // Rapid reset (CVE-2023-44487, and the "made you reset" variant): the
  // peer's RST_STREAMs plus the resets the session sends on its own.
  RateLimit rapid_reset{200, 10000};
  RateLimit ping{100, 10000};        // PINGs needing an ACK
  RateLimit settings{100, 10000};    // SETTINGS needing an ACK
  RateLimit priority{1000, 10000};   // PRIORITY frames (ignored: RFC 9218 signalled)
  RateLimit empty_data{100, 10000};  // DATA with no payload and no END_STREAM
  // nghttp2's own guards: queued SETTINGS/PING ACKs the peer does not read
  // (GOAWAY then), and entries per SETTINGS frame.
  uint32_t max_outbound_ack = 1000;
  uint32_t max_settings_entries = 32;
  // The largest DATA payload we send (at most the peer's max frame size).
  uint32_t max_data_frame = 16384;

  // Client, h2c by Upgrade: upgrade_client() will send our SETTINGS
  // (nghttp2_session_upgrade2 submits them itself), so the constructor
  // does not, or they would go twice.
  bool client_upgrade = false;

  // Monotonic milliseconds, for the rate limits and stalled_since(). Tests
  // pass a fake clock; empty means std::chrono::steady_clock.
  std::function<uint64_t()> clock;
};

// A request's header block: the pseudo-headers and the regular headers.
struct RequestHead {
  std::string method;
  std::string scheme;
  std::string authority;
  std::string path;
  std::string protocol;  // :protocol of an extended CONNECT (RFC 8441); usually empty
  HeaderList headers;
};

// A header field by view, for callers that hold the strings elsewhere (the
// server's response head): nothing is copied before nghttp2 copies it.
struct Field {
  std::string_view name;  // any case: HTTP/2 sends it lower-cased
  std::string_view value;
};

class NvList;  // the pairs handed to nghttp2 (h2_session.cpp)

struct ResponseHead {
  int status = 0;
  HeaderList headers;
};

// What the caller implements. Every method has a do-nothing default.
class Handler {
 public:
  virtual ~Handler() = default;
  // Server: a new stream's request. end_stream: no body follows.
  virtual void on_request(int32_t /*stream*/, RequestHead&& /*head*/, bool /*end_stream*/) {}
  // Client: the final response of one of our streams (1xx are skipped).
  virtual void on_response(int32_t /*stream*/, ResponseHead&& /*head*/, bool /*end_stream*/) {}
  // A piece of the body. It stays counted against the receive windows
  // until the caller calls consume(stream, n): that is the backpressure.
  virtual void on_data(int32_t /*stream*/, std::string_view /*data*/) {}
  virtual void on_trailers(int32_t /*stream*/, HeaderList&& /*trailers*/) {}
  // The peer finished its side of the stream (after body and trailers).
  virtual void on_end_stream(int32_t /*stream*/) {}
  // The stream is gone. NoError: both sides finished; otherwise the
  // RST_STREAM code (from either side), or, when the connection ends with
  // streams still open, failure() (CANCEL after a goaway() of the caller's).
  // Exactly once for every stream on_request reported or submit_request
  // returned; never from the destructor.
  virtual void on_stream_close(int32_t /*stream*/, uint32_t /*code*/) {}
  // Queued body went out: `buffered` bytes of the stream remain queued.
  virtual void on_send_progress(int32_t /*stream*/, size_t /*buffered*/) {}
  // The peer sent GOAWAY: streams above last_stream_id were not processed.
  virtual void on_goaway(uint32_t /*code*/, int32_t /*last_stream_id*/, std::string_view /*debug*/) {}
};

class Session {
 public:
  // Queues the connection preface (client) and our SETTINGS.
  Session(Role role, Handler& handler, Options options = Options());
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // ------------------------------------------------------------ input
  // Bytes from the peer, any split. False when the session reads no more:
  // an Evo limit tripped (failure() says which; the GOAWAY waits in the
  // output), nghttp2 failed fatally, or the session is closing. Protocol
  // errors nghttp2 finds itself surface in failure() once take_output() has
  // serialised their GOAWAY. Either way: after every receive(), send
  // take_output(), and close the connection once finished().
  bool receive(const char* data, size_t len);

  // The peer's body bytes the caller has used: sends WINDOW_UPDATEs.
  void consume(int32_t stream, size_t n);

  // ------------------------------------------------------------ output
  // Appends the frames ready to send to *out, stopping once about `max`
  // bytes were added (the rest stays for the next call). Returns the bytes
  // appended.
  size_t take_output(std::string& out, size_t max = size_t{256} * 1024);
  [[nodiscard]] bool want_write() const;
  [[nodiscard]] bool want_read() const;
  // Nothing more to read or write: close the connection.
  [[nodiscard]] bool finished() const { return !want_read() && !want_write(); }

  // ------------------------------------------------------------ streams
  // Server: the response head. end_stream: no body (HEAD, 204, 304...).
  // Otherwise the body follows with write() and end() or submit_trailers().
  // False when the stream is gone or already answered.
  bool submit_response(int32_t stream, int status, const HeaderList& headers, bool end_stream);
  // The same with fields by view (no copy before nghttp2's).
  bool submit_response_fields(int32_t stream, int status, std::span<const Field> headers, bool end_stream);
  // Server: an informational (1xx, not 101) response before the final
  // one: a HEADERS frame without END_STREAM (RFC 9113 8.1). False when the
  // stream is gone, already answered, or the status is not 100..199 / 101.
  bool submit_informational(int32_t stream, int status, std::span<const Field> headers);
  // Client: a new stream; its id, or -1 when the session takes no more
  // requests (GOAWAY, failed). Pseudo-headers come from `head`.
  int32_t submit_request(const RequestHead& head, bool end_stream);
  // Queues body bytes, sent as the peer's windows allow.
  bool write(int32_t stream, std::string_view data);
  // Ends the body after what is queued (END_STREAM on the last DATA).
  bool end(int32_t stream);
  // Ends the body with trailers after what is queued.
  bool submit_trailers(int32_t stream, const HeaderList& trailers);
  // Body bytes queued on the stream, not yet serialised.
  [[nodiscard]] size_t buffered(int32_t stream) const;
  // RST_STREAM with this code; on_stream_close follows.
  void reset_stream(int32_t stream, uint32_t code);
  // True while the stream is open in this session.
  [[nodiscard]] bool has_stream(int32_t stream) const { return streams_.contains(stream); }
  [[nodiscard]] size_t stream_count() const { return streams_.size(); }

  // ------------------------------------------------------------ connection
  // GOAWAY now with this code: no new streams; open ones are abandoned.
  void goaway(uint32_t code);
  // Graceful close. Server: a GOAWAY announcing the shutdown and a PING;
  // when its ACK comes back (one round trip, so requests in flight are
  // counted) the final GOAWAY names the last stream processed, open streams
  // finish, and then finished() is true. Client: GOAWAY; our streams finish.
  void shutdown();
  // Sends the final GOAWAY now (a caller's timer, when the peer never
  // answers the PING).
  void finish_shutdown();

  // Since when (clock ms) queued body has been waiting for the peer's
  // window (stream or connection) to open; 0 when nothing waits. The
  // caller closes the connection when this is older than its send timeout.
  [[nodiscard]] uint64_t stalled_since() const;

  // The GOAWAY code this side sent because of the peer (a protocol error,
  // a limit), NoError when none; what() in failure_reason().
  [[nodiscard]] uint32_t failure() const { return failure_code_; }
  [[nodiscard]] const std::string& failure_reason() const { return failure_reason_; }

  // ------------------------------------------------------------ h2c
  // Server: takes over a connection after an HTTP/1.1 request with
  // "Upgrade: h2c" and its HTTP2-Settings header (RFC 7540 3.2). The request
  // becomes stream 1, already complete: the caller has it and answers with
  // submit_response(1, ...) once the 101 went out. head_request: it was HEAD.
  // False when the header is not valid base64url SETTINGS.
  bool upgrade(std::string_view http2_settings, bool head_request);
  // Client: the HTTP2-Settings value for an upgrade request with these
  // options, and, after the server's 101, the switch (stream 1 is the
  // upgrade request, its response arrives as on_response(1, ...)).
  static std::string settings_header(const Options& options);
  // head_request: the upgrade request was HEAD (its response has no body).
  bool upgrade_client(bool head_request = false);

  // ------------------------------------------------------------ the peer's SETTINGS
  // Whether the peer's first SETTINGS frame has arrived: until then its
  // limits are unknown (a client pool waits for them before deciding that
  // a connection has room for another stream).
  [[nodiscard]] bool peer_settings_received() const { return peer_settings_received_; }
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS: streams past it wait in
  // the session until one closes. 2^32-1 when the peer set none; 100
  // (nghttp2's assumption) until its SETTINGS come.
  [[nodiscard]] uint32_t peer_max_concurrent_streams() const;

  // For tests and the fuzzer: total bytes queued in stream buffers.
  [[nodiscard]] size_t buffered_total() const { return buffered_total_; }

  struct Stream;  // per-stream state (h2_session.cpp)
  class Flood;    // a sliding-window rate counter (h2_session.cpp)

 private:
  friend struct Callbacks;
  uint64_t now() const;
  void fail(uint32_t code, const std::string& reason);
  bool check_frame_header(const uint8_t* hd);
  bool new_or_open_stream(const uint8_t* hd);
  bool feed(const uint8_t* data, size_t len);
  bool answer(int32_t stream, int status, const NvList& nv, bool end_stream);
  void resume(int32_t stream, Stream& s);
  void update_stalls();
  void note_reset();
  void close_all();

  Role role_;
  Handler& handler_;
  Options opts_;
  nghttp2_session* ng_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  size_t buffered_total_ = 0;

  // The frame splitter in front of nghttp2 (receive()).
  size_t preface_left_ = 0;
  uint8_t head_[9] = {};
  size_t head_len_ = 0;
  size_t payload_left_ = 0;
  bool in_block_ = false;          // a header block waits for CONTINUATIONs
  uint32_t last_peer_stream_ = 0;  // the highest stream id the client opened (server role)
  uint32_t block_bytes_ = 0;
  uint32_t block_continuations_ = 0;

  std::unique_ptr<Flood> resets_, pings_, settings_, priorities_, empty_data_;
  std::vector<int32_t> own_resets_;  // resets the caller asked for: not counted
  uint32_t pending_failure_ = 0;     // a limit tripped inside a callback
  std::string pending_reason_;
  uint32_t failure_code_ = NoError;
  std::string failure_reason_;
  bool local_goaway_ = false;  // goaway() was the caller's: not a failure
  bool goaway_received_ = false;
  bool peer_settings_received_ = false;
  bool dead_ = false;  // nghttp2 returned a fatal error
  bool shutting_down_ = false;
  bool final_goaway_ = false;
  std::vector<int32_t> progressed_;  // streams whose queue shrank (on_send_progress)
};

}  // namespace evo::h2
