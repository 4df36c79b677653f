#include "proto/resp.h"

#include <charconv>
#include <cstring>

namespace evo::resp {
namespace {

// A decimal int64 filling all of `s` ("-" allowed, no "+", no spaces).
bool parse_int(std::string_view s, int64_t* out) {
  if (s.empty() || s.front() == '+') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// RESP3 doubles: decimal or exponent form, "inf", "-inf", "nan".
bool parse_double(std::string_view s, double* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool is_big_number(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_aggregate(char t) { return t == '*' || t == '%' || t == '~' || t == '|' || t == '>'; }
bool is_blob(char t) { return t == '$' || t == '!' || t == '='; }
// Maps and attributes hold a key and a value per declared entry.
int64_t per_entry(char t) { return t == '%' || t == '|' ? 2 : 1; }

}  // namespace

bool Item::aggregate() const { return is_aggregate(static_cast<char>(type)) && !null; }

int64_t Item::children() const { return aggregate() ? integer * per_entry(static_cast<char>(type)) : 0; }

// ------------------------------------------------------------------ Parser

void Parser::feed(std::string_view data) {
  // The consumed prefix goes now, while only a partial reply (usually a few
  // bytes, or nothing) is left to move.
  if (start_ > 0) {
    buf_.erase(0, start_);
    pos_ -= start_;
    start_ = 0;
  }
  buf_.append(data);
}

Parser::Step Parser::fail(std::string message) {
  invalid_ = true;
  error_ = std::move(message);
  return Step::Invalid;
}

// Scans one item at pos_: a scalar (Item), an aggregate's header (Opened:
// its elements follow), or not all there yet. pos_ moves only past whole
// headers and scalars, so NeedMore resumes at the same item.
Parser::Step Parser::scan_item() {
  const char* base = buf_.data() + pos_;
  size_t avail = buf_.size() - pos_;
  size_t window = std::min(avail, limits_.max_line + 2);
  const void* nl = window > 1 ? std::memchr(base + 1, '\n', window - 1) : nullptr;
  if (nl == nullptr) {
    return avail > limits_.max_line + 1 ? fail("a RESP line is longer than the limit") : Step::NeedMore;
  }
  size_t eol = static_cast<size_t>(static_cast<const char*>(nl) - base);  // offset of '\n'
  if (eol < 2 || base[eol - 1] != '\r') return fail("a RESP line does not end with CRLF");
  char t = base[0];
  std::string_view line(base + 1, eol - 2);
  size_t next = eol + 1;
  int64_t n = 0;
  double d = 0;
  switch (t) {
    case '+':
    case '-':
      if (line.find('\r') != std::string_view::npos) return fail("CR inside a RESP simple string");
      break;
    case ':':
      if (!parse_int(line, &n)) return fail("a RESP integer is not a number");
      break;
    case '(':
      if (!is_big_number(line)) return fail("a RESP big number is not a number");
      break;
    case ',':
      if (!parse_double(line, &d)) return fail("a RESP double is not a number");
      break;
    case '#':
      if (line != "t" && line != "f") return fail("a RESP boolean is not t or f");
      break;
    case '_':
      if (!line.empty()) return fail("a RESP null has a payload");
      break;
    case '$':
    case '!':
    case '=': {
      if (!parse_int(line, &n)) return fail("a RESP length is not a number");
      if (n == -1 && t == '$') break;  // RESP2's null bulk
      if (n < 0) return fail("a RESP length is negative");
      if (static_cast<uint64_t>(n) > limits_.max_bulk) return fail("a RESP string is longer than the limit");
      auto len = static_cast<size_t>(n);
      if (avail - next < len + 2) return Step::NeedMore;
      if (base[next + len] != '\r' || base[next + len + 1] != '\n') {
        return fail("a RESP string does not end with CRLF");
      }
      if (t == '=' && (len < 4 || base[next + 3] != ':')) return fail("a RESP verbatim string has no format");
      next += len + 2;
      break;
    }
    case '*':
    case '%':
    case '~':
    case '|':
    case '>': {
      if (!parse_int(line, &n)) return fail("a RESP count is not a number");
      if (n == -1 && t == '*') break;  // RESP2's null array
      if (n < 0) return fail("a RESP count is negative");
      if (n > limits_.max_elements) return fail("a RESP aggregate has more elements than the limit");
      pos_ += next;
      if (t == '|' && n == 0) return Step::Opened;  // an empty attribute annotates what follows
      if (n == 0) return Step::Item;
      if (stack_.size() >= limits_.max_depth) return fail("RESP aggregates nest deeper than the limit");
      stack_.push_back(Frame{n * per_entry(t), t == '|'});
      return Step::Opened;
    }
    default:
      return fail("an unknown RESP type byte");
  }
  pos_ += next;
  return Step::Item;
}

// One element ended: counts it against the open aggregates, closing those
// it completes (a closed aggregate is an element of its parent, except an
// attribute, which annotates the element after it).
bool Parser::finish_element() {
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    if (--f.remaining > 0) return false;
    bool attribute = f.attribute;
    stack_.pop_back();
    if (attribute) return false;
  }
  return true;
}

Parser::Status Parser::poll() {
  if (ready_) return Status::Ready;
  if (invalid_) return Status::Invalid;
  while (pos_ < buf_.size()) {
    switch (scan_item()) {
      case Step::NeedMore:
        return Status::NeedMore;
      case Step::Invalid:
        return Status::Invalid;
      case Step::Opened:
        break;
      case Step::Item:
        if (finish_element()) {
          ready_ = true;
          return Status::Ready;
        }
        break;
    }
  }
  return Status::NeedMore;
}

Reader Parser::reply() const { return Reader(std::string_view(buf_).substr(start_, pos_ - start_)); }

void Parser::consume() {
  if (!ready_) return;
  ready_ = false;
  start_ = pos_;
  if (start_ == buf_.size()) {  // nothing partial left: reuse the buffer from its start
    buf_.clear();
    start_ = pos_ = 0;
  }
}

// ------------------------------------------------------------------ Reader

Item Reader::next() {
  Item item;
  const char* base = bytes_.data() + pos_;
  size_t eol = bytes_.find('\n', pos_) - pos_;  // framed: always there
  char t = base[0];
  item.type = static_cast<Type>(t);
  std::string_view line(base + 1, eol - 2);
  size_t next = eol + 1;
  if (t == '+' || t == '-' || t == '(' || t == ',') item.text = line;
  if (t == ':') parse_int(line, &item.integer);
  if (t == ',') parse_double(line, &item.number);
  if (t == '#') item.integer = line == "t" ? 1 : 0;
  if (t == '_') item.null = true;
  if (is_blob(t) || is_aggregate(t)) {
    parse_int(line, &item.integer);
    item.null = item.integer == -1;
  }
  if (is_blob(t) && !item.null) {
    auto len = static_cast<size_t>(item.integer);
    item.text = std::string_view(base + next, len);
    if (t == '=') item.text.remove_prefix(4);  // "txt:" / "mkd:"
    next += len + 2;
  }
  pos_ += next;
  return item;
}

// ----------------------------------------------------------------- encoding

void encode_command(std::string& out, std::span<const std::string_view> args) {
  char num[24];
  auto put_len = [&](char tag, size_t n) {
    out.push_back(tag);
    auto [end, ec] = std::to_chars(num, num + sizeof num, n);
    out.append(num, end);
    out.append("\r\n", 2);
  };
  put_len('*', args.size());
  for (std::string_view a : args) {
    put_len('$', a.size());
    out.append(a);
    out.append("\r\n", 2);
  }
}

}  // namespace evo::resp
