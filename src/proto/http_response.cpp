#include "proto/http_response.h"

#include <algorithm>
#include <cstring>
#include <ctime>

namespace evo::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

// Four characters a step, their table entries and-ed: no branch per
// character (a byte loop took about 9 instructions a character).
bool valid_header_name(std::string_view name) {
  const auto* p = reinterpret_cast<const unsigned char*>(name.data());
  size_t n = name.size();
  bool ok = n != 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ok &= kTokenChars[p[i]] & kTokenChars[p[i + 1]] & kTokenChars[p[i + 2]] & kTokenChars[p[i + 3]];
  }
  for (; i < n; ++i) ok &= kTokenChars[p[i]];
  return ok;
}

namespace {

bool valid_value_byte(unsigned char c) { return (c >= 0x20 || c == '\t') && c != 0x7f; }

uint64_t load8(const char* p) {
  uint64_t w = 0;
  std::memcpy(&w, p, 8);
  return w;
}

uint32_t load4(const char* p) {
  uint32_t w = 0;
  std::memcpy(&w, p, 4);
  return w;
}

// Whether a byte of w is below 0x20 (a control, the tab too) or DEL: a byte
// below 0x20 borrows in w - 0x20..., a DEL becomes 0 after the xor; either
// sets the byte's high bit where the byte itself had none.
bool has_control(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  uint64_t below = (w - kOnes * 0x20) & ~w & kHighs;
  uint64_t x = w ^ (kOnes * 0x7f);
  uint64_t del = (x - kOnes) & ~x & kHighs;
  return (below | del) != 0;
}

}  // namespace

// Eight bytes at a time, the last word overlapping the one before (a value
// of 4 to 7 bytes is two overlapping halves of one word); byte by byte only
// when a word has a control, which may be an allowed tab, or for a value
// shorter than 4 bytes.
bool valid_header_value(std::string_view value) {
  const char* p = value.data();
  size_t n = value.size();
  if (n >= 8) {
    bool clean = true;
    size_t i = 0;
    for (; i + 8 <= n && clean; i += 8) clean = !has_control(load8(p + i));
    if (clean && (i == n || !has_control(load8(p + n - 8)))) return true;
  } else if (n >= 4) {
    if (!has_control(load4(p) | (static_cast<uint64_t>(load4(p + n - 4)) << 32))) return true;
  }
  return std::ranges::all_of(value, [](char c) { return valid_value_byte(static_cast<unsigned char>(c)); });
}

void append_status_line(std::string& out, int status, std::string_view reason) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason.empty() ? reason_phrase(status) : reason;
  out += "\r\n";
}

// One resize and plain copies instead of four appends, each of which checks
// the capacity: this runs for every header of every response. The separator
// and the line end are copied without their literal's NUL: the string's
// size already counts them and std::string keeps its own terminator.
void append_header(std::string& out, std::string_view name, std::string_view value) {
  constexpr std::string_view kSeparator = ": ";
  constexpr std::string_view kLineEnd = "\r\n";
  size_t at = out.size();
  out.resize(at + name.size() + kSeparator.size() + value.size() + kLineEnd.size());
  // memcpy, not std::ranges::copy: GCC made a byte loop of the latter.
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  std::memcpy(p, kSeparator.data(), kSeparator.size());
  p += kSeparator.size();
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  std::memcpy(p, kLineEnd.data(), kLineEnd.size());
}

const std::string& DateCache::now() { return at(static_cast<int64_t>(std::time(nullptr))); }

void DateCache::format(int64_t unix_seconds) {
  second_ = unix_seconds;
  ++formats_;
  auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  value_.assign(buf, n);
  line_ = "Date: " + value_ + "\r\n";
  ok_line_ = "HTTP/1.1 200 OK\r\n" + line_;
}

}  // namespace evo::http
