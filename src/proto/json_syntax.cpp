#include "proto/json_syntax.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace evo::json {
namespace {

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 when it is not one.
size_t utf8_length(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> unsigned { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) { return at(k) >= lo && at(k) <= hi; };
  unsigned c = at(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// "character 'x'" for printable ASCII, the character itself for valid
// UTF-8, else "byte 0xNN": what a message calls the byte at s[i].
std::string describe(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c >= 0x20 && c < 0x7F) return std::string("character '") + static_cast<char>(c) + "'";
  if (size_t n = utf8_length(s, i); n > 0) return "character '" + std::string(s.substr(i, n)) + "'";
  static const char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

class Scanner {
 public:
  Scanner(std::string_view s, size_t max_depth, std::vector<size_t>* big_ints)
      : s_(s), max_depth_(max_depth), big_ints_(big_ints) {}

  std::optional<SyntaxError> run() {
    bool want_value = true;  // else: a value just ended
    for (;;) {
      if (want_value) {
        if (!value()) return error_;
        want_value = pending_value_;
        continue;
      }
      if (stack_.empty()) {
        skip_ws();
        if (i_ < s_.size()) {
          fail(i_, "unexpected " + describe(s_, i_) + " after the JSON value");
          return error_;
        }
        return std::nullopt;
      }
      if (!after_value(want_value)) return error_;
    }
  }

 private:
  // Parses one value, or only the opening of a container (then
  // pending_value_ says whether a first element must follow).
  bool value() {
    skip_ws();
    pending_value_ = false;
    if (i_ == s_.size()) return fail(i_, "unexpected end of input: expected a value");
    unsigned char c = s_[i_];
    switch (c) {
      case '[':
      case '{':
        return open(c);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        if (c == '-' || is_digit(c)) return number();
        return fail(i_, "unexpected " + describe(s_, i_) + ": expected a value");
    }
  }

  bool open(unsigned char c) {
    if (stack_.size() >= max_depth_) {
      return fail(
          i_, "nesting too deep: more than " + std::to_string(max_depth_) + " levels of arrays and objects");
    }
    stack_.push_back(static_cast<char>(c));
    ++i_;
    skip_ws();
    char close = c == '[' ? ']' : '}';
    if (i_ < s_.size() && s_[i_] == close) {
      ++i_;
      stack_.pop_back();
      return true;
    }
    if (c == '{' && !key()) return false;
    pending_value_ = true;
    return true;
  }

  // After a value inside a container: ',' then the next element, or the
  // closing bracket.
  bool after_value(bool& want_value) {
    skip_ws();
    char top = stack_.back();
    const char* expected = top == '[' ? "expected ',' or ']'" : "expected ',' or '}'";
    if (i_ == s_.size()) return fail(i_, std::string("unexpected end of input: ") + expected);
    char c = s_[i_];
    if (c == ',') {
      ++i_;
      if (top == '{' && !key()) return false;
      want_value = true;
      return true;
    }
    if (c == (top == '[' ? ']' : '}')) {
      ++i_;
      stack_.pop_back();
      return true;
    }
    return fail(i_, "unexpected " + describe(s_, i_) + ": " + expected);
  }

  bool key() {
    skip_ws();
    if (i_ == s_.size()) return fail(i_, "unexpected end of input: expected a string key");
    if (s_[i_] != '"') return fail(i_, "unexpected " + describe(s_, i_) + ": expected a string key");
    if (!string()) return false;
    skip_ws();
    if (i_ == s_.size()) return fail(i_, "unexpected end of input: expected ':'");
    if (s_[i_] != ':') return fail(i_, "unexpected " + describe(s_, i_) + ": expected ':'");
    ++i_;
    return true;
  }

  bool string() {
    ++i_;  // the opening quote
    for (;;) {
      if (i_ == s_.size()) return fail(i_, "unexpected end of input: unterminated string");
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c == '\\') {
        if (!escape()) return false;
      } else if (c < 0x20) {
        return fail(i_, "control character " + describe(s_, i_) + " in a string: it must be escaped");
      } else if (c < 0x80) {
        ++i_;
      } else {
        size_t n = utf8_length(s_, i_);
        if (n == 0) return fail(i_, "invalid UTF-8 in a string");
        i_ += n;
      }
    }
  }

  // Reads \uXXXX at i_; -1 when the four hex digits are not there.
  long hex4(size_t at) const {
    if (at + 6 > s_.size() || s_[at] != '\\' || s_[at + 1] != 'u') return -1;
    long v = 0;
    for (size_t k = 2; k < 6; ++k) {
      int h = hex_value(s_[at + k]);
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    return v;
  }

  bool escape() {
    size_t start = i_;
    if (i_ + 1 == s_.size()) return fail(i_ + 1, "unexpected end of input: unterminated string");
    char e = s_[i_ + 1];
    switch (e) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        i_ += 2;
        return true;
      case 'u':
        break;
      default:
        return fail(i_, "invalid escape: backslash followed by " + describe(s_, i_ + 1) +
                            " (the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
    }
    long cp = hex4(start);
    if (cp < 0) return fail(start, "invalid \\u escape: expected four hex digits");
    i_ = start + 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return fail(start, "lone surrogate " + std::string(s_.substr(start, 6)) +
                             ": a low surrogate without a high one");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      long low = hex4(i_);
      if (low < 0xDC00 || low > 0xDFFF) {
        return fail(start, "lone surrogate " + std::string(s_.substr(start, 6)) +
                               ": not followed by a low surrogate \\uDC00-\\uDFFF");
      }
      i_ += 6;
    }
    return true;
  }

  bool digits() {
    size_t from = i_;
    while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
    return i_ > from;
  }

  bool number() {
    size_t start = i_;
    bool negative = s_[i_] == '-';
    if (negative) ++i_;
    if (i_ == s_.size() || !is_digit(s_[i_])) return fail(i_, "invalid number: expected a digit");
    if (s_[i_] == '0') {
      ++i_;
      if (i_ < s_.size() && is_digit(s_[i_])) return fail(i_, "invalid number: leading zero");
    } else {
      digits();
    }
    size_t int_end = i_;
    bool integer = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      integer = false;
      if (!digits()) return fail(i_, "invalid number: expected a digit after '.'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      integer = false;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) return fail(i_, "invalid number: expected a digit in the exponent");
    }
    std::string_view text = s_.substr(start, i_ - start);
    if (integer) {
      // What fits in int64 or uint64 is exact; the decoder refuses the rest.
      std::string_view mag = s_.substr(start + (negative ? 1 : 0), int_end - start - (negative ? 1 : 0));
      std::string_view limit = negative ? "9223372036854775808" : "18446744073709551615";
      if (mag.size() > limit.size() || (mag.size() == limit.size() && mag > limit)) {
        // Past 64 bits it can still become a double, unless it is past those too.
        if (mag.size() > 308 && std::isinf(std::strtod(std::string(text).c_str(), nullptr))) {
          return fail(start, "number out of range: " + std::string(text) + " is beyond the largest double");
        }
        if (big_ints_ != nullptr) {
          big_ints_->push_back(i_);
          return true;
        }
        return fail(start, "number out of range: " + std::string(text) + " does not fit in 64 bits");
      }
      return true;
    }
    std::string copy(text);
    if (std::isinf(std::strtod(copy.c_str(), nullptr))) {
      return fail(start, "number out of range: " + copy + " is beyond the largest double");
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) {
      size_t k = 0;
      while (k < word.size() && i_ + k < s_.size() && s_[i_ + k] == word[k]) ++k;
      return fail(i_ + k, "invalid literal: expected '" + std::string(word) + "'");
    }
    i_ += word.size();
    return true;
  }

  void skip_ws() {
    while (i_ < s_.size() && is_ws(s_[i_])) ++i_;
  }

  bool fail(size_t at, std::string message) {
    error_ = SyntaxError{at, std::move(message)};
    return false;
  }

  std::string_view s_;
  size_t max_depth_;
  std::vector<size_t>* big_ints_;
  size_t i_ = 0;
  bool pending_value_ = false;
  std::vector<char> stack_;
  std::optional<SyntaxError> error_;
};

bool is_char_start(unsigned char c) { return (c & 0xC0) != 0x80; }

}  // namespace

std::optional<SyntaxError> find_syntax_error(std::string_view text, size_t max_depth,
                                             std::vector<size_t>* big_integer_ends) {
  return Scanner(text, max_depth, big_integer_ends).run();
}

std::string insert_fractions(std::string_view text, const std::vector<size_t>& offsets) {
  std::string out;
  out.reserve(text.size() + 2 * offsets.size());
  size_t from = 0;
  for (size_t at : offsets) {
    out.append(text.substr(from, at - from));
    out.append(".0");
    from = at;
  }
  out.append(text.substr(from));
  return out;
}

Position position_of(std::string_view text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  Position p{1, 1};
  for (size_t i = 0; i < offset; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++p.line;
      p.column = 1;
    } else if (is_char_start(c)) {
      ++p.column;
    }
  }
  return p;
}

std::string excerpt(std::string_view text, size_t offset, size_t width) {
  if (offset > text.size()) offset = text.size();
  size_t begin = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  begin = (begin == std::string_view::npos || (offset == 0 && text.empty())) ? 0 : begin + 1;
  if (offset == 0) begin = 0;
  size_t end = text.find('\n', offset);
  if (end == std::string_view::npos) end = text.size();
  // Characters before the offset on this line; keep at most width/2 of them.
  std::vector<size_t> starts;  // byte offsets of characters in [begin, offset)
  for (size_t i = begin; i < offset; ++i) {
    if (is_char_start(static_cast<unsigned char>(text[i]))) starts.push_back(i);
  }
  size_t keep_before = width / 2;
  size_t from = starts.size() > keep_before ? starts[starts.size() - keep_before] : begin;
  std::string line;
  size_t caret = 0;
  size_t chars = 0;
  for (size_t i = from; i < end && chars < width;) {
    auto c = static_cast<unsigned char>(text[i]);
    if (i < offset) ++caret;
    ++chars;
    // One character per step; control characters and bytes that are not
    // UTF-8 are shown as ' ' and '?' so the message stays one clean line.
    size_t n = c < 0x80 ? 1 : utf8_length(text, i);
    if (n == 0) {
      line += '?';
      n = 1;
    } else if (c < 0x20 || c == 0x7F) {
      line += ' ';
    } else {
      line.append(text.substr(i, n));
    }
    i += n;
  }
  if (from > begin) {
    line.insert(0, "...");
    caret += 3;
  }
  return line + "\n" + std::string(caret, ' ') + "^";
}

}  // namespace evo::json
