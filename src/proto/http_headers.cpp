#include "proto/http_headers.h"

#include "proto/http_response.h"

#include <array>

namespace evo::http {

HeaderList::HeaderList(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  for (const auto& [name, value] : fields) emplace_back(name, value);
}

void HeaderList::emplace_back(std::string_view name, std::string_view value) {
  start_field();
  append_name(name.data(), name.size());
  append_value(value.data(), value.size());
}

void HeaderList::insert_front(std::string_view name, std::string_view value) {
  emplace_back(name, value);
  Span s = spans_.back();
  spans_.pop_back();
  spans_.insert(spans_.begin(), s);
}

void HeaderList::set_value(size_t i, std::string_view value) {
  // (The old value's bytes stay unused in the buffer until clear().)
  spans_[i].value = end32();
  spans_[i].value_len = static_cast<uint32_t>(value.size());
  bytes_.append(value);
}

void HeaderList::resize(size_t n) {
  if (n >= spans_.size()) return;
  spans_.resize(n);
  if (n == 0) bytes_.clear();
}

void HeaderList::trim_last_value() {
  Span& s = spans_.back();
  while (s.value_len > 0) {
    char c = bytes_[s.value + s.value_len - 1];
    if (c != ' ' && c != '\t') break;
    --s.value_len;
  }
}

bool operator==(const HeaderList& a, const HeaderList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
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
    headers.start_field();
    in_value_ = false;
  }
  // Checked here, not left to llhttp: as built (not LLHTTP_STRICT_MODE) it
  // lets spaces into a name ("H ost: x", "Expect : x"). Lower-cased and
  // checked in one pass over the piece once appended, in place. (Lowered
  // on the stack first, the append's wide load of bytes just stored one by
  // one stalled, there being no store-to-load forwarding for it: 43% of
  // this function's time under a pipelined server.) A refused name leaves
  // its bytes: the message is refused whole.
  char* out = headers.append_name(at, len);
  uint16_t seen = 0;
  for (size_t i = 0; i < len; ++i) {
    uint16_t c = kLowerToken[static_cast<unsigned char>(at[i])];
    out[i] = static_cast<char>(c);
    seen |= c;
  }
  if ((seen & kNotToken) != 0) return "invalid character in a header name";
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
  if (headers.empty()) headers.start_field();
  headers.append_value(at, len);
  return nullptr;
}

}  // namespace evo::http
