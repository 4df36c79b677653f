// The load generator's wire formats, sans I/O: an HTTP/1.1 response reader
// (status line, headers, Content-Length or chunked framing) and a reader of
// the frames a WebSocket server sends, plus the client frame writer.
//
// Both readers are built for a load generator: they keep no per-response
// state beyond a few integers, never allocate after construction, and copy
// bytes only when a response head is split across reads. They check what
// decides the framing strictly (a malformed response is an error, never a
// guess), and skip what a benchmark does not need (header values other than
// the framing ones, bodies, reason phrases).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loadgen {

// ------------------------------------------------------------------ HTTP/1.1

class ResponseReader {
 public:
  // What one complete response was.
  struct Response {
    int status = 0;
    bool close = false;  // "Connection: close": the server ends the connection after it
  };
  // A 101 response ends the HTTP part of the stream (WebSocket upgrade): the
  // reader stops there and the caller takes the rest of the bytes.
  enum class Step : uint8_t { Response, NeedMore, Upgraded, Error };

  // `max_head`: the longest response head accepted (status line and headers).
  explicit ResponseReader(size_t max_head = 8192);

  // Reads from `data`, stopping after one complete response (Step::Response,
  // *response filled), at the end of the data (NeedMore), after a 101 head
  // (Upgraded) or at a malformed response (Error, error() says why). *used is
  // how many bytes were taken; call again with the rest.
  Step next(const char* data, size_t size, size_t* used, Response* response);

  // For a WebSocket handshake: the Sec-WebSocket-Accept value expected in a
  // 101 response; accept_ok() tells whether the last head had it.
  void expect_accept(std::string_view value) {
    expected_accept_ = value;
    memo_size_ = 0;
  }
  [[nodiscard]] bool accept_ok() const { return h_.accept_ok; }
  [[nodiscard]] bool upgrade_ok() const { return h_.upgrade_ok; }

  [[nodiscard]] const char* error() const { return error_; }
  void reset();

 private:
  enum class State : uint8_t {
    Head,
    Body,
    ChunkSize,
    ChunkExtension,
    ChunkSizeLF,
    ChunkData,
    ChunkDataCR,
    ChunkDataLF,
    TrailerStart,
    TrailerLine,
    TrailerEndLF,
    Failed
  };
  enum class HeadStep : uint8_t { Done, NeedMore, Error };

  Step read_head(const char* data, size_t size, size_t* used, Response* response);
  HeadStep parse_head(const char* data, size_t size, size_t* consumed);
  bool parse_status_line(std::string_view line);
  bool parse_header(std::string_view line);
  bool start_body(Response* response, Step* step);
  Step read_chunked(const char* data, size_t size, size_t* used, Response* response);
  Step fail(const char* why);

  State state_ = State::Head;
  std::vector<char> head_;  // a head split across reads, gathered here
  size_t head_size_ = 0;
  // What a head said.
  struct Head {
    int status = 0;
    int64_t content_length = -1;
    bool chunked = false;
    bool close = false;
    bool other_coding = false;
    bool accept_ok = false;
    bool upgrade_ok = false;
  };
  Head h_;  // the head being parsed, or last parsed
  // The last head parsed straight from a read, kept to recognise the next:
  // a server answers a benchmark with the same head again and again, and a
  // byte-identical head needs no parsing (it says exactly the same).
  std::array<char, 512> memo_{};
  size_t memo_size_ = 0;
  Head memo_head_;
  // The body being skipped.
  uint64_t remaining_ = 0;
  int chunk_digits_ = 0;
  std::string expected_accept_;
  const char* error_ = nullptr;
};

// ----------------------------------------------------------------- WebSocket

// The frame a client sends: masked (RFC 6455 5.3), FIN set, text or binary.
// Writes the frame for `payload` with masking key `mask` to `out`, which must
// hold frame_size(payload.size()) bytes, and returns the bytes written.
size_t frame_size(size_t payload);
size_t write_client_frame(char* out, std::string_view payload, bool binary, std::array<uint8_t, 4> mask);

// Reads the frames a server sends (unmasked). It reports each whole message's
// length and hands over payload bytes as they come, so that the caller can
// check them without the reader keeping a copy.
class FrameReader {
 public:
  enum class Step : uint8_t { Payload, Message, NeedMore, Control, Error };
  struct Piece {
    std::string_view payload;   // Payload: the next bytes of the current message
    uint64_t message_size = 0;  // Message: the whole message's length
    uint8_t opcode = 0;         // Message: 1 text, 2 binary; Control: 8, 9 or 10
  };

  // Reads from `data`: returns after each piece of payload (Payload), at the
  // end of a message (Message), after a control frame (Control: its payload
  // is skipped) or at the end of the data (NeedMore). *used is how many bytes
  // were taken.
  Step next(const char* data, size_t size, size_t* used, Piece* piece);

  [[nodiscard]] const char* error() const { return error_; }
  void reset() { *this = FrameReader(); }

 private:
  bool parse_header(const uint8_t* h, size_t size, size_t* header_size);
  Step fail(const char* why);
  bool reject(const char* why);  // fail() for parse_header

  std::array<uint8_t, 14> header_{};
  size_t header_have_ = 0;
  bool in_payload_ = false;
  bool fin_ = false;
  bool control_ = false;
  uint8_t opcode_ = 0;          // of the frame being read
  uint8_t message_opcode_ = 0;  // of the message (its first frame)
  bool in_message_ = false;
  uint64_t remaining_ = 0;
  uint64_t message_size_ = 0;
  bool failed_ = false;
  const char* error_ = nullptr;
};

// base64 of SHA-1(key + GUID), the Sec-WebSocket-Accept of a key (OpenSSL).
std::string websocket_accept(std::string_view key);
// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
std::string websocket_key();

}  // namespace loadgen
