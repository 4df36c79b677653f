#include "proto/multipart.h"

#include <string.h>  // memmem (GNU)

#include <algorithm>
#include <cctype>

namespace evo::multipart {
namespace {

constexpr size_t kMaxPadding = 256;  // transport padding after a boundary

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Finds needle in hay from pos: glibc's memmem (two-way, vectorised first
// byte), much faster than a naive search over binary uploads.
size_t find(std::string_view hay, std::string_view needle, size_t pos) {
  if (pos > hay.size()) return std::string_view::npos;
  const void* at = memmem(hay.data() + pos, hay.size() - pos, needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos : static_cast<const char*>(at) - hay.data();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 8187 ext-value: charset'language'percent-encoded; the bytes decoded
// (UTF-8 in practice; other charsets are passed through undecoded).
std::string ext_value(std::string_view v) {
  size_t q1 = v.find('\'');
  size_t q2 = q1 == std::string_view::npos ? q1 : v.find('\'', q1 + 1);
  if (q2 != std::string_view::npos) v = v.substr(q2 + 1);
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2])));
      i += 2;
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

// One parameter value at s[i...]: a quoted string or a bare run up to ';'.
// Advances i past it.
std::string param_value(std::string_view s, size_t& i) {
  std::string out;
  if (i < s.size() && s[i] == '"') {
    ++i;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
      out.push_back(s[i++]);
    }
    if (i < s.size()) ++i;                    // the closing quote
    while (i < s.size() && s[i] != ';') ++i;  // junk after it
    return out;
  }
  size_t end = s.find(';', i);
  if (end == std::string_view::npos) end = s.size();
  out = std::string(trim(s.substr(i, end - i)));
  i = end;
  return out;
}

}  // namespace

void parse_disposition(std::string_view value, Part& part) {
  size_t i = value.find(';');
  bool have_ext_filename = false;
  bool have_ext_name = false;
  while (i != std::string_view::npos && i < value.size()) {
    while (i < value.size() && (value[i] == ';' || is_space(value[i]))) ++i;
    size_t eq = value.find_first_of("=;", i);
    if (eq == std::string_view::npos || value[eq] == ';') {  // a parameter without a value
      i = eq;
      continue;
    }
    std::string key = lower(trim(value.substr(i, eq - i)));
    i = eq + 1;
    while (i < value.size() && is_space(value[i])) ++i;
    std::string v = param_value(value, i);
    if (key == "name" && !have_ext_name) {
      part.name = std::move(v);
    } else if (key == "name*") {
      part.name = ext_value(v);
      have_ext_name = true;
    } else if (key == "filename" && !have_ext_filename) {
      part.filename = std::move(v);
      part.has_filename = true;
    } else if (key == "filename*") {
      part.filename = ext_value(v);
      part.has_filename = true;
      have_ext_filename = true;
    }
  }
}

bool Parser::valid_boundary(std::string_view b) {
  if (b.empty() || b.size() > 70 || b.back() == ' ') return false;
  static constexpr std::string_view kExtra = "'()+_,-./:=? ";
  return std::all_of(b.begin(), b.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || kExtra.find(c) != std::string_view::npos;
  });
}

// The buffer starts with a CRLF of our own: a body that opens with its
// first boundary (no preamble) then matches the delimiter like every later
// boundary does.
Parser::Parser(std::string_view boundary, Limits limits)
    : delimiter_("\r\n--" + std::string(boundary)), buf_("\r\n"), limits_(limits) {}

size_t Parser::fail(std::string message) {
  state_ = State::Failed;
  error_ = std::move(message);
  return 0;
}

bool Parser::feed(std::string_view data, Sink& sink) {
  if (state_ == State::Failed) return false;
  if (state_ == State::Epilogue) return true;
  if (buf_.empty()) {  // the common case in a body: parse the piece where it lies
    size_t used = run(data, sink);
    if (state_ == State::Failed) return false;
    if (state_ != State::Epilogue) buf_.assign(data.substr(used));
    return true;
  }
  buf_.append(data);
  size_t used = run(buf_, sink);
  if (state_ == State::Failed) return false;
  if (state_ == State::Epilogue) {
    buf_.clear();
  } else {
    buf_.erase(0, used);
  }
  return true;
}

bool Parser::finish() {
  if (state_ == State::Epilogue) return true;
  if (state_ != State::Failed) fail("the body ended before the closing boundary");
  return false;
}

// Runs the states over in from its start; returns how much was consumed
// (the rest is kept for the next feed).
size_t Parser::run(std::string_view in, Sink& sink) {
  size_t pos = 0;
  for (;;) {
    progressed_ = false;
    switch (state_) {
      case State::Preamble: {
        size_t at = find(in, delimiter_, pos);
        if (at == std::string_view::npos) {  // keep what may begin the first delimiter
          return std::max(pos, in.size() - std::min(in.size() - pos, delimiter_.size() - 1));
        }
        pos = at + delimiter_.size();
        state_ = State::AfterDelimiter;
        progressed_ = true;
        break;
      }
      case State::AfterDelimiter:
        pos = after_delimiter(in, pos);
        break;
      case State::Headers:
        pos = headers(in, pos, sink);
        break;
      case State::Body:
        pos = body(in, pos, sink);
        break;
      case State::Epilogue:
        return in.size();
      case State::Failed:
        return 0;
    }
    if (!progressed_) return pos;
  }
}

// After "--boundary": "--" closes the body; else optional padding and CRLF
// open a part's headers.
size_t Parser::after_delimiter(std::string_view in, size_t pos) {
  if (in.size() - pos < 2) return pos;
  if (in[pos] == '-' && in[pos + 1] == '-') {
    state_ = State::Epilogue;
    progressed_ = true;
    return in.size();
  }
  size_t j = pos;
  while (j < in.size() && is_space(in[j])) ++j;
  if (j - pos > kMaxPadding) return fail("too much padding after a boundary");
  if (in.size() - j < 2) return pos;
  if (in[j] != '\r' || in[j + 1] != '\n') return fail("a boundary line does not end with CRLF");
  state_ = State::Headers;
  header_scanned_ = 0;
  progressed_ = true;
  return j + 2;
}

size_t Parser::headers(std::string_view in, size_t pos, Sink& sink) {
  if (in.size() - pos < 2) return pos;
  size_t end;
  size_t next;
  if (in[pos] == '\r' && in[pos + 1] == '\n') {  // no headers at all
    end = pos;
    next = pos + 2;
  } else {
    // Bytes already searched are not searched again: a header block that
    // trickles in byte by byte costs linear time, not quadratic.
    size_t at = find(in, "\r\n\r\n", pos + header_scanned_);
    if (at == std::string_view::npos) {
      header_scanned_ = in.size() - pos >= 3 ? in.size() - pos - 3 : 0;
      // Its end may be the last three bytes, split from the fourth.
      if (in.size() - pos > limits_.max_header_bytes + 1) return fail("a part's headers are too large");
      return pos;
    }
    end = at + 2;
    next = at + 4;
  }
  if (end - pos > limits_.max_header_bytes) return fail("a part's headers are too large");
  part_ = Part{};
  if (!parse_headers(in.substr(pos, end - pos))) return 0;
  sink.on_part(part_);
  state_ = State::Body;
  progressed_ = true;
  return next;
}

// The header lines of a part, each ending with CRLF; a line starting with
// whitespace continues the previous one (obsolete folding, tolerated).
bool Parser::parse_headers(std::string_view block) {
  auto& hs = part_.headers;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    if (!line.empty() && is_space(line.front()) && !hs.empty()) {
      hs.back().second += ' ';
      hs.back().second += trim(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || trim(line.substr(0, colon)).empty()) {
      fail("a malformed header line in a part");
      return false;
    }
    hs.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  for (const auto& [name, value] : hs) {
    if (name == "content-disposition") parse_disposition(value, part_);
    if (name == "content-type") part_.content_type = value;
  }
  return true;
}

// A part's body up to the next delimiter; without one in sight, everything
// but a tail that could be its beginning (from a CR within the last
// delimiter-length bytes).
size_t Parser::body(std::string_view in, size_t pos, Sink& sink) {
  size_t at = find(in, delimiter_, pos);
  if (at != std::string_view::npos) {
    if (at > pos) sink.on_data(in.substr(pos, at - pos));
    sink.on_part_end();
    state_ = State::AfterDelimiter;
    progressed_ = true;
    return at + delimiter_.size();
  }
  size_t tail = std::min(in.size() - pos, delimiter_.size() - 1);
  size_t cr = in.find('\r', in.size() - tail);
  size_t end = cr == std::string_view::npos ? in.size() : cr;
  if (end > pos) sink.on_data(in.substr(pos, end - pos));
  return std::max(end, pos);
}

}  // namespace evo::multipart
