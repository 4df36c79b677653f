// HttpRequestParser: HTTP/1.1 requests from bytes, on llhttp (Node's parser),
// with the limits and the request-smuggling defences a server needs.
//
// Feed it what arrives on a connection; it stops after each complete
// request (so pipelined requests are handled one at a time, in order) and
// reports the first error as the status a server must answer with before
// closing the connection: 400 malformed (including every smuggling attempt:
// Content-Length with Transfer-Encoding, duplicate or invalid Content-Length,
// bad chunk sizes, obs-fold, bare LF, NUL), 413 body too large, 414 URI too
// long, 431 header block too large.
#pragma once

#include <llhttp.h>

#include "proto/http_headers.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::http {

struct Limits {
  size_t max_header_bytes = size_t{16} * 1024;  // request line and headers together
  size_t max_uri = size_t{8} * 1024;
  size_t max_body = size_t{8} * 1024 * 1024;
};

struct Request {
  std::string method;
  std::string target;  // as sent: path and query
  int version_major = 1;
  int version_minor = 1;
  HeaderList headers;   // names lower-cased, in order
  HeaderList trailers;  // a chunked body's trailer fields (same form), once the body ended
  std::string body;
  bool keep_alive = true;
  bool upgrade = false;
  bool chunked = false;
  bool expect_continue = false;

  // Empties every field as in a new Request, keeping the strings' and
  // lists' capacity (a parser and a recycled exchange reuse them).
  // (A field added to Request must be added here.)
  void clear();

  // The value of the first header with this (lower-case) name, or nothing.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

class RequestParser {
 public:
  enum class Result { NeedMore, Complete, HeadersComplete, Error };

  explicit RequestParser(Limits limits = Limits());
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from `data`. Returns Complete when a whole request is ready
  // (request()), with *consumed the bytes used: the rest belongs to the next
  // request (pipelining). HeadersComplete: the headers of a request with a
  // body are ready; call resume_body() and go on feeding, the body arriving
  // in request().body (the caller may take it out between feeds). NeedMore:
  // all consumed, feed more. Error: answer error_status() and close.
  Result feed(std::string_view data, size_t* consumed);

  // After a Complete request has been handled: start the next one.
  void next();
  // After HeadersComplete: go on with the body.
  void resume_body();
  // Between requests (an idle keep-alive connection): the emptied buffers
  // kept for the next request are freed.
  void release_idle_memory();

  [[nodiscard]] const Request& request() const { return *req_; }
  Request& request() { return *req_; }
  // Exchanges the request being parsed (a Complete one) for `other`, an
  // emptied one whose buffers the parser reuses: two pointers, where
  // swapping two Requests' strings cost ~90 instructions a request.
  void swap_request(std::unique_ptr<Request>& other) noexcept { req_.swap(other); }
  [[nodiscard]] int error_status() const { return error_status_; }
  [[nodiscard]] const std::string& error_reason() const { return error_reason_; }
  // True once the request's headers are complete (before its body).
  [[nodiscard]] bool headers_done() const { return headers_done_; }
  // True while part of a request line or header section has been parsed.
  [[nodiscard]] bool in_head() const { return in_head_; }

 private:
  static llhttp_settings_t* settings();  // the callbacks below, one table shared by every parser
  static int on_message_begin(llhttp_t* p);
  static int on_method(llhttp_t* p, const char* at, size_t len);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_version(llhttp_t* p, const char* at, size_t len);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_complete(llhttp_t* p);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  int fail(int status, std::string reason);
  bool absolute_form();
  llhttp_errno_t execute(const char* data, size_t len);
  // Every byte from the request line's first (or the trailers' first) to
  // `end`, line ends, colons and whitespace included, counts against
  // max_header_bytes; `at` starts the count when none is running.
  bool within_header_limit(const char* at, const char* end);
  // Where header lines go: the header section, or after it (a chunked
  // body's end) the trailers, kept apart so they never pass for headers.
  HeaderList& fields() { return headers_done_ ? req_->trailers : req_->headers; }
  [[nodiscard]] uint64_t offset_of(const char* at) const {
    return feed_base_ + static_cast<uint64_t>(at - feed_ptr_);
  }
  static RequestParser* self(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }

  Limits limits_;
  llhttp_t parser_{};
  std::unique_ptr<Request> req_ = std::make_unique<Request>();  // never null
  bool in_head_ = false;     // in a request line and headers (or trailers), counting
  uint64_t head_start_ = 0;  // the stream offset of their first byte
  uint64_t method_end_ = 0;  // stream offsets: after the method, after the target
  uint64_t url_end_ = 0;
  bool version_seen_ = false;
  // Chunk extensions are checked here and never reach llhttp, whose 8.x
  // refuses valid ones (";a=1;b=2"): at a chunk-size line, the size's hex
  // digits go to llhttp, the extensions (from BWS or ';' to the CR) are
  // collected in chunk_ext_ and checked at the CR, which goes on to llhttp.
  enum class ChunkLine { None, Size, Ext };
  ChunkLine chunk_line_ = ChunkLine::None;
  bool chunk_paused_ = false;  // llhttp paused after a chunk: a size line is next
  bool last_chunk_ = false;
  std::string chunk_ext_;
  HeaderCollector headers_;
  uint64_t feed_base_ = 0;          // stream offset of the data being parsed (bytes consumed before)
  const char* feed_ptr_ = nullptr;  // ... and its address
  bool headers_done_ = false;
  bool complete_ = false;
  int content_length_headers_ = 0;
  int host_headers_ = 0;
  bool saw_expect_ = false;  // an Expect header came: on_headers_complete looks for it
  uint64_t body_bytes_ = 0;
  bool saw_transfer_encoding_ = false;
  int error_status_ = 0;
  std::string error_reason_;
};

}  // namespace evo::http
