// The WebSocket protocol (RFC 6455) with permessage-deflate (RFC 7692),
// sans I/O: bytes in, events and bytes out. The socket side lives elsewhere.
//
// A Session is one end of a connection after the opening handshake. feed()
// turns what the peer sent into Events (whole messages, reassembled and
// decompressed; pings, pongs, the close); the send_* calls append frames to
// an output buffer the caller writes to the socket (take_output()). Pings are
// answered and a received Close is echoed by the engine itself.
//
// The first protocol violation fails the connection (RFC 6455 7.1.7): feed()
// returns false, failure_code() says why, and a Close frame with that code is
// already in the output; the caller sends it and closes TCP. The codes used:
//   1002  protocol error: framing, masking, opcodes, reserved bits,
//         fragmentation, control frame rules, invalid close code or length
//   1007  invalid UTF-8 in a text message or a close reason, and compressed
//         data that does not inflate (the payload contradicts its framing)
//   1009  a frame or a message over Limits
// 1003 (unsupported data) is never used: text and binary are both accepted.
//
// The handshake helpers (accept_key, extension negotiation) are here too, so
// that everything a WebSocket implementation must get exactly right is in
// one tested place.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evo::ws {

enum class Role : uint8_t { Server, Client };
enum class Opcode : uint8_t { Continuation = 0, Text = 1, Binary = 2, Close = 8, Ping = 9, Pong = 10 };

// ------------------------------------------------------------------ handshake

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)) (RFC 6455 4.2.2).
std::string accept_key(std::string_view client_key);

// A fresh Sec-WebSocket-Key for a client: 16 random bytes, base64.
std::string make_client_key();

// True if the key is the base64 of 16 bytes (24 characters ending in "=="), as
// servers must check (RFC 6455 4.2.1); others are refused with 400. The value
// is taken as given: the HTTP parser has already trimmed surrounding spaces.
bool valid_client_key(std::string_view key);

// ------------------------------------------------------- permessage-deflate

// The agreed RFC 7692 parameters. Both ends of a connection hold the same
// values; each Session picks the half that applies to its role.
struct DeflateOptions {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
  bool operator==(const DeflateOptions&) const = default;
};

// Server side. Reads a Sec-WebSocket-Extensions request header (several
// headers joined with ", "); for the first permessage-deflate offer whose
// parameters are all known, well-formed and not repeated, fills *out and the
// response header value, e.g. "permessage-deflate; server_no_context_takeover",
// and returns true. Other extensions and unacceptable offers are skipped; a
// header that does not parse at all declines everything (false).
// The server grants what the client asks: the context takeover and window
// restrictions it requests, and echoes client_no_context_takeover and a
// client_max_window_bits value when offered.
bool negotiate_deflate(std::string_view offer_header, DeflateOptions* out, std::string* response_value);

// Client side: the offer to send ("permessage-deflate; client_max_window_bits").
std::string client_deflate_offer();

// Client side: reads the server's Sec-WebSocket-Extensions response, when the
// response has one. True with *out filled when it accepts exactly our offer;
// false when it is invalid (unknown extension or parameter, repeated or out of
// range values): the client must then fail the connection.
bool parse_deflate_response(std::string_view header, DeflateOptions* out);

// Messages shorter than this are sent uncompressed even with deflate agreed:
// below it the deflate block overhead and the CPU time outweigh any saving.
inline constexpr size_t kMinCompressedMessage = 32;

// ------------------------------------------------------------------- UTF-8

// Incremental UTF-8 validation (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), for text split anywhere, even inside a code point.
class Utf8Validator {
 public:
  // Checks the next piece; false from the first invalid byte on.
  bool feed(std::string_view piece);
  // True if everything fed is valid and ends on a whole code point.
  [[nodiscard]] bool complete() const { return !invalid_ && need_ == 0; }
  void reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;    // continuation bytes still expected
  uint8_t low_ = 0x80;  // allowed range of the next continuation byte
  uint8_t high_ = 0xBF;
  bool invalid_ = false;
};

bool valid_utf8(std::string_view text);

// --------------------------------------------------------------- compression

class ZStream;  // an owned zlib stream (ws_protocol.cpp), keeping zlib.h out of this header

// One direction's raw-deflate compressor (RFC 7692 7.2.1).
class Compressor {
 public:
  Compressor(int window_bits, bool no_context_takeover);
  Compressor(Compressor&& other) noexcept;
  Compressor& operator=(Compressor&& other) noexcept;
  ~Compressor();
  // Appends the compressed form of `data`, the next part of a message, to
  // *out, flushed to a byte boundary. With `last` the message ends: the
  // trailing 00 00 ff ff is removed, and the stream starts afresh when context
  // takeover is off.
  void compress(std::string_view data, bool last, std::string* out);

 private:
  std::unique_ptr<ZStream> stream_;
  bool no_context_takeover_;
};

// One direction's raw-inflate decompressor (RFC 7692 7.2.2), bounded.
class Decompressor {
 public:
  enum class Status : uint8_t { Ok, TooBig, Corrupt };
  Decompressor(int window_bits, bool no_context_takeover);
  Decompressor(Decompressor&& other) noexcept;
  Decompressor& operator=(Decompressor&& other) noexcept;
  ~Decompressor();
  // Inflates the next part of a compressed message, appending to *out, which
  // may not grow beyond `limit` (TooBig): a small frame cannot make it
  // allocate more than that, whatever it expands to.
  Status inflate(std::string_view data, size_t limit, std::string* out);
  // The message ended: inflates the 00 00 ff ff tail the sender removed, and
  // gets ready for the next message. Corrupt too if the message stopped
  // inside a DEFLATE block.
  Status finish_message(size_t limit, std::string* out);

 private:
  void restart_stream();

  std::unique_ptr<ZStream> stream_;
  bool no_context_takeover_;
  // The sender closed the DEFLATE stream (a block with BFINAL set, RFC 7692
  // 7.2.3.4): the rest of this message is ignored, a new stream follows.
  bool stream_ended_ = false;
};

// ------------------------------------------------------------------ session

struct Limits {
  size_t max_message = size_t{16} * 1024 * 1024;  // a whole message, after reassembly and decompression
  size_t max_frame = size_t{16} * 1024 * 1024;    // one frame's payload as sent (compressed)
};

// What the peer sent, as the engine reports it.
struct Event {
  enum class Kind : uint8_t { Message, Ping, Pong, Close } kind;
  bool binary = false;      // Message: binary or text
  std::string data;         // Message payload (reassembled, decompressed), ping/pong payload, close reason
  uint16_t close_code = 0;  // Close: the peer's code (1005 when the close frame had no code)
};

class Session {
 public:
  // `deflate`: the negotiated permessage-deflate parameters, or nullptr.
  explicit Session(Role role, Limits limits = Limits(), const DeflateOptions* deflate = nullptr);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = default;
  Session& operator=(Session&&) = default;
  ~Session();

  // Feeds bytes received from the peer, in pieces of any size; appends the
  // resulting events to *events. Returns false on a protocol error (events
  // found before it are still appended), and from then on. Once the peer's
  // Close has arrived, whatever follows is ignored.
  bool feed(std::string_view data, std::vector<Event>* events);

  // Outgoing frames are appended to the output buffer. Each call returns
  // false and sends nothing once a Close was sent (nothing may follow it), or
  // when it breaks the rules given below.
  //
  // A whole message in one frame; compressed when deflate was agreed and the
  // message is at least kMinCompressedMessage bytes. Text is sent as given
  // (the caller provides UTF-8). False while a fragmented message is open.
  bool send_message(std::string_view data, bool binary);
  // Streams a message in fragments: `first` opens it (false if one is already
  // open), later calls continue it (false if none is open), `fin` ends it.
  // With deflate every fragment is compressed. Control frames may be sent
  // between fragments.
  bool send_fragment(std::string_view data, bool binary, bool first, bool fin);
  // Control frames carry at most 125 bytes: longer payloads are refused (false),
  // not truncated.
  bool send_ping(std::string_view payload = {});
  bool send_pong(std::string_view payload);
  // Starts the closing handshake, once. Code 1005 (or 0) sends a Close without
  // a code; otherwise the code must be one a Close may carry (1000-1003,
  // 1007-1014, 3000-4999), else false. A reason longer than 123 bytes is cut
  // there (at a UTF-8 character boundary).
  bool send_close(uint16_t code, std::string_view reason);

  // The bytes to write to the socket; the buffer is emptied.
  std::string take_output();
  [[nodiscard]] bool has_output() const { return !out_.empty(); }
  // The same bytes in place, for a caller that copies them out and then
  // clears them: the buffer keeps its capacity for the next frame.
  [[nodiscard]] std::string_view output() const { return out_; }
  void clear_output() { out_.clear(); }

  // The closing handshake. closed(): both Close frames have been exchanged, or
  // the connection failed; the caller closes TCP once the output is written
  // (a server at once; a client after waiting briefly for the server to).
  [[nodiscard]] bool close_sent() const { return close_sent_; }
  [[nodiscard]] bool close_received() const { return close_received_; }
  [[nodiscard]] bool closed() const { return failed_ || (close_sent_ && close_received_); }

  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] uint16_t failure_code() const { return failure_code_; }
  [[nodiscard]] const std::string& failure_reason() const { return failure_reason_; }

 private:
  // The frame being received.
  struct Frame {
    Opcode opcode = Opcode::Continuation;
    bool fin = false;
    bool rsv1 = false;
    bool masked = false;
    std::array<uint8_t, 4> mask{};
    uint64_t length = 0;
    uint64_t received = 0;
  };

  bool read_header(const char** data, size_t* size);
  bool check_frame_start();
  bool check_frame_length();
  bool take_payload(const char* data, size_t size);
  bool check_inflated(Decompressor::Status status, size_t from);
  bool end_frame(std::vector<Event>* events);
  bool end_message(std::vector<Event>* events);
  bool handle_control(std::vector<Event>* events);
  bool handle_close(std::vector<Event>* events);
  bool fail(uint16_t code, std::string reason);

  void write_frame(Opcode opcode, bool fin, bool rsv1, std::string_view payload);
  void write_close(uint16_t code, std::string_view reason);
  std::array<uint8_t, 4> next_mask_key();

  Role role_;
  Limits limits_;
  std::optional<Compressor> compressor_;      // set when deflate was agreed
  std::optional<Decompressor> decompressor_;  // likewise

  // Receiving.
  std::array<uint8_t, 14> header_{};  // the longest header: 2 + 8 length + 4 mask
  size_t header_have_ = 0;
  bool in_payload_ = false;
  Frame frame_;
  bool in_message_ = false;  // a data message has started and not finished
  bool message_binary_ = false;
  bool message_compressed_ = false;
  std::string message_;
  Utf8Validator utf8_;
  std::string control_;   // a control frame's payload
  std::string unmasked_;  // a compressed piece, unmasked before inflating

  // Sending.
  std::string out_;
  std::string compressed_;  // an outgoing payload after deflate
  bool sending_fragmented_ = false;
  bool sending_compressed_ = false;
  std::array<uint8_t, 256> mask_pool_{};  // client masking keys, drawn from RAND_bytes 64 at a time
  size_t mask_pool_used_ = sizeof(mask_pool_);

  bool close_sent_ = false;
  bool close_received_ = false;
  bool failed_ = false;
  uint16_t failure_code_ = 0;
  std::string failure_reason_;
};

}  // namespace evo::ws
