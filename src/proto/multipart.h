// multipart/form-data (RFC 7578 on RFC 2046's multipart syntax): a sans-I/O
// streaming parser. Bytes are fed in pieces of any size and split anywhere;
// the parser reports each part's headers, its body in pieces, and its end to
// a Sink, holding back only what might be the start of a boundary (so a
// 200 MB file passes through in the pieces it arrived in, never whole).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::multipart {

// What a part's headers say.
struct Part {
  std::string name;      // Content-Disposition's name
  std::string filename;  // its filename (filename* preferred) when has_filename
  bool has_filename = false;
  std::string content_type;                                  // the part's Content-Type; "" when absent
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names, in order
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_part(const Part& part) = 0;
  virtual void on_data(std::string_view bytes) = 0;  // never empty
  virtual void on_part_end() = 0;
};

struct Limits {
  size_t max_header_bytes = 16 * 1024;  // one part's header block
};

class Parser {
 public:
  explicit Parser(std::string_view boundary, Limits limits = {});

  // Feeds the next bytes of the body. False once the body is malformed
  // (error() says how); bytes after the closing boundary are ignored.
  bool feed(std::string_view data, Sink& sink);
  // The body ended: true when the closing boundary was seen, else false
  // with error() set.
  bool finish();

  [[nodiscard]] bool done() const { return state_ == State::Epilogue; }
  [[nodiscard]] bool failed() const { return state_ == State::Failed; }
  [[nodiscard]] const std::string& error() const { return error_; }
  // Bytes held back between feeds (at most a boundary line or a header block).
  [[nodiscard]] size_t buffered() const { return buf_.size(); }

  // RFC 2046 5.1.1: 1 to 70 characters of bchars, not ending with a space.
  static bool valid_boundary(std::string_view boundary);

 private:
  enum class State { Preamble, AfterDelimiter, Headers, Body, Epilogue, Failed };

  size_t run(std::string_view in, Sink& sink);
  size_t after_delimiter(std::string_view in, size_t pos);
  size_t headers(std::string_view in, size_t pos, Sink& sink);
  size_t body(std::string_view in, size_t pos, Sink& sink);
  bool parse_headers(std::string_view block);
  size_t fail(std::string message);

  std::string delimiter_;  // CRLF "--" boundary
  std::string buf_;        // bytes held back from earlier feeds
  State state_ = State::Preamble;
  Limits limits_;
  Part part_;
  std::string error_;
  bool progressed_ = false;    // run() moved to another state (loop again)
  size_t header_scanned_ = 0;  // bytes of the current header block searched for its end
};

// Content-Disposition's parameters into part (name, filename, filename*,
// name*); quoted strings unescaped (\" and \\ only: browsers send Windows
// paths with bare backslashes). Exposed for the tests.
void parse_disposition(std::string_view value, Part& part);

}  // namespace evo::multipart
