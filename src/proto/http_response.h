// Building HTTP/1.1 responses: status lines, header validation, the cached
// Date header. Pure functions over strings, shared by the server's fast path
// (res:send) and its streaming path (res:status/header/write).
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace evo::http {

// "OK", "Not Found"... for a status code; "Unknown" for codes without one.
std::string_view reason_phrase(int status);

// tchar (RFC 9110 5.6.2), the characters of a token such as a header name,
// as a table: one load per character on the hot path.
inline constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();
inline bool is_token_char(unsigned char c) { return kTokenChars[c]; }

// A header name is a token (RFC 9110 5.1): no spaces, controls or separators.
bool valid_header_name(std::string_view name);

// A header value set from Lua must not contain CR, LF or NUL: those are how a
// response is split or smuggled. Other controls are refused too, except tab.
bool valid_header_value(std::string_view value);

// "HTTP/1.1 404 Not Found\r\n" appended to out.
void append_status_line(std::string& out, int status, std::string_view reason = {});

// "Name: value\r\n" appended to out (the caller has validated both).
void append_header(std::string& out, std::string_view name, std::string_view value);

// The value of a Date header for this second, e.g. "Sun, 22 Nov 2026 03:40:00 GMT".
// Cached: formatted once per second whatever the request rate.
class DateCache {
 public:
  const std::string& now();  // for the current time
  // "Date: <now>\r\n", the whole header line: one append per response.
  // (Inline, as ok_line: every response asks, and the second rarely changed.)
  const std::string& line() {
    at(static_cast<int64_t>(std::time(nullptr)));
    return line_;
  }
  // "HTTP/1.1 200 OK\r\n" and line(): the usual response's first two lines in one append.
  const std::string& ok_line() {
    at(static_cast<int64_t>(std::time(nullptr)));
    return ok_line_;
  }
  const std::string& at(int64_t unix_seconds) {  // for a given second (tests)
    if (unix_seconds != second_) format(unix_seconds);
    return value_;
  }
  [[nodiscard]] uint64_t formats() const { return formats_; }  // how often it formatted

 private:
  void format(int64_t unix_seconds);
  int64_t second_ = -1;
  uint64_t formats_ = 0;
  std::string value_;
  std::string line_;
  std::string ok_line_;
};

}  // namespace evo::http
