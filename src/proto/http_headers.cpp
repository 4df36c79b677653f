#include "proto/http_headers.h"

#include "proto/http_response.h"

#include <array>

namespace evo::http {

const std::string* find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

// A name character lower-cased in the low byte, with kNotToken set for what
// is no token character (kTokenChars): one load per character both checks
// and lower-cases it, and the flags are or-ed together, checked once.
constexpr uint16_t kNotToken = 0x100;
constexpr std::array<uint16_t, 256> kLowerToken = [] {
  std::array<uint16_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (!kTokenChars[c]) {
      t[c] = kNotToken;
    } else {
      t[c] = static_cast<uint16_t>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
  }
  return t;
}();

}  // namespace

const char* HeaderCollector::name_piece(HeaderList& headers, const char* at, size_t len, size_t max_headers) {
  if (in_value_ || headers.empty()) {
    if (headers.size() >= max_headers) return "too many headers";
    headers.emplace_back();
    in_value_ = false;
  }
  // Checked here, not left to llhttp: as built (not LLHTTP_STRICT_MODE) it
  // lets spaces into a name ("H ost: x", "Expect : x"). Lower-cased and
  // checked in one pass into a buffer, then one append: no second pass over
  // the string (a name is one piece, almost always shorter than the buffer).
  std::string& name = headers.back().first;
  char buf[64];
  while (len > 0) {
    size_t n = len < sizeof(buf) ? len : sizeof(buf);
    uint16_t seen = 0;
    for (size_t i = 0; i < n; ++i) {
      uint16_t c = kLowerToken[static_cast<unsigned char>(at[i])];
      buf[i] = static_cast<char>(c);
      seen |= c;
    }
    if ((seen & kNotToken) != 0) return "invalid character in a header name";
    name.append(buf, n);
    at += n;
    len -= n;
  }
  return nullptr;
}

const char* HeaderCollector::value_piece(HeaderList& headers, uint64_t offset, const char* at, size_t len) {
  // No scan for NUL, CR or LF here: llhttp (without lenient flags, which
  // neither parser sets) refuses them itself before a value piece reaches
  // us, in every value state (plain, Connection, Content-Length,
  // Transfer-Encoding: its tables allow HTAB, SP..~ and obs-text only); a
  // CR or LF ends the piece. tests/cpp/http_parser_test.cpp pins it.
  if (in_value_ && offset != value_end_) return "obsolete line folding";
  value_end_ = offset + len;
  in_value_ = true;
  if (headers.empty()) headers.emplace_back();
  headers.back().second.append(at, len);
  return nullptr;
}

}  // namespace evo::http
