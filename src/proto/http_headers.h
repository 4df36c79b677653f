// Header lines of an HTTP/1 message as llhttp hands them over, in pieces (a
// piece ends where a read ended): one implementation for the request parser
// and the response parser. Names are lower-cased and must be tokens (RFC
// 9110 5.1: whitespace before the colon is a smuggling vector, RFC 9112
// 5.1); values must hold no NUL, CR or LF (llhttp refuses them: see
// value_piece); and since the pieces of one value are contiguous in the
// stream, a gap between two means llhttp skipped a line break inside the
// value: an obs-fold continuation (RFC 9112 5.2), refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // names lower-cased, in order

// The value of the first header with this (lower-case) name, or nullptr.
const std::string* find_header(const HeaderList& headers, std::string_view name);

class HeaderCollector {
 public:
  void reset() {
    in_value_ = false;
    value_end_ = 0;
  }
  // A piece of a header name; returns nullptr, or why it is refused. A new
  // header beyond max_headers is refused too.
  const char* name_piece(HeaderList& headers, const char* at, size_t len, size_t max_headers = SIZE_MAX);
  // A piece of a value that starts at stream offset `offset`.
  const char* value_piece(HeaderList& headers, uint64_t offset, const char* at, size_t len);
  // A value is complete (even an empty one): the next name starts a header.
  void value_done() { in_value_ = true; }

 private:
  bool in_value_ = false;
  uint64_t value_end_ = 0;  // stream offset just after the value's last piece
};

}  // namespace evo::http
