// ResponseParser: HTTP/1.x responses from bytes, on llhttp in response mode,
// for the client (http.request) and ws.connect. Sans-I/O: the caller feeds
// what it reads from a connection and takes the body out as it is parsed, so
// a body is never held whole and its size can be checked as bytes arrive.
//
// Strict where a lenient client can be fooled: a Content-Length that is not
// plain digits ("0x3", "2.5"), two different ones, Content-Length with
// Transfer-Encoding, a chunk size that overflows, CR, LF or NUL inside a
// header value, obs-fold, a header name that is not a token, a status code
// that is not three digits, an HTTP version other than 1.x, and a header
// block over the limit are all errors. Interim responses (1xx other than 101)
// are skipped; a 101 ends the parse (what follows belongs to the new
// protocol). A response to HEAD has no body whatever its headers say, and
// neither have 1xx, 204 and 304 responses.
#pragma once

#include <llhttp.h>

#include "proto/http_headers.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::http {

struct ResponseLimits {
  size_t max_header_bytes = size_t{64} * 1024;  // status line and headers together
  size_t max_headers = 200;
  size_t max_interim = 32;  // 1xx responses before the final one
};

// How the end of a response's body is found.
enum class Framing {
  None,      // no body (HEAD, 1xx, 204, 304, Content-Length: 0...)
  Length,    // Content-Length bytes
  Chunked,   // Transfer-Encoding: chunked
  UntilEof,  // until the server closes the connection
};

struct Response {
  int status = 0;
  std::string reason;
  int version_major = 1;
  int version_minor = 1;
  HeaderList headers;       // names lower-cased, in order
  bool keep_alive = false;  // the connection may carry another request afterwards
  bool upgrade = false;     // 101 with Upgrade: what follows is another protocol
  Framing framing = Framing::None;
  uint64_t content_length = 0;  // with Framing::Length

  // The value of the first header with this (lower-case) name, or nothing.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

class ResponseParser {
 public:
  enum class Result { NeedMore, Complete, Error };

  explicit ResponseParser(ResponseLimits limits = ResponseLimits());
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Starts over for the response to a new request; `head_request`: that
  // request was a HEAD (its response has no body).
  void reset(bool head_request = false);

  // Parses from `data`. NeedMore: all of it consumed. Complete: the final
  // response is over; *consumed tells how much of `data` it used (the rest is
  // not part of it: for a 101, the new protocol's first bytes). Error: see
  // error(). Body bytes go to body() as they are parsed: take them out
  // between calls. Once the final response's head is parsed, headers_done()
  // is true and response() holds it.
  Result feed(std::string_view data, size_t* consumed);

  // The connection ended. Complete when that ends the response (a body that
  // runs until the end), Error otherwise (with eof() true).
  Result finish();

  [[nodiscard]] bool headers_done() const { return headers_done_; }
  [[nodiscard]] bool complete() const { return complete_; }
  [[nodiscard]] const Response& response() const { return res_; }
  std::string& body() { return body_; }
  // The trailer fields of a chunked body (names lower-cased), once complete().
  HeaderList& trailers() { return trailers_; }
  [[nodiscard]] uint64_t body_bytes() const { return body_bytes_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  // True when the error is that the connection ended too early.
  [[nodiscard]] bool eof() const { return eof_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  int fail(std::string reason);
  // Where header lines go: the head's, or after it a chunked body's trailers.
  HeaderList& fields() { return headers_done_ ? trailers_ : res_.headers; }
  bool count_header_bytes(size_t len);
  static ResponseParser* self(llhttp_t* p) { return static_cast<ResponseParser*>(p->data); }

  ResponseLimits limits_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  Response res_;
  std::string body_;
  HeaderList trailers_;
  bool head_request_ = false;
  size_t header_bytes_ = 0;
  HeaderCollector headers_;
  uint64_t feed_base_ = 0;          // stream offset of the data being parsed
  const char* feed_ptr_ = nullptr;  // ... and its address
  bool headers_done_ = false;
  bool complete_ = false;
  bool interim_ = false;  // the message being parsed is a 1xx other than 101
  bool started_ = false;  // some bytes arrived
  size_t interim_count_ = 0;
  uint64_t body_bytes_ = 0;
  std::string error_;
  bool eof_ = false;
};

}  // namespace evo::http
