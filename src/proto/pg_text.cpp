#include "proto/pg_text.h"

namespace evo::pg {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A recursive-descent reader over one literal; pos only moves forward.
class ArrayReader {
 public:
  ArrayReader(std::string_view s, char delim) : s_(s), delim_(delim) {}

  bool parse(ArrayItem& out) {
    skip_dimensions();
    if (!array(out, 1)) return false;
    skip_space();
    return pos_ == s_.size();
  }

 private:
  static bool space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  void skip_space() {
    while (pos_ < s_.size() && space(s_[pos_])) ++pos_;
  }
  // "[1:3][0:1]=" before the braces when a lower bound is not 1.
  void skip_dimensions() {
    if (pos_ >= s_.size() || s_[pos_] != '[') return;
    size_t eq = s_.find('=', pos_);
    if (eq != std::string_view::npos) pos_ = eq + 1;
  }

  bool array(ArrayItem& out, int depth) {
    if (depth > kMaxArrayDepth) return false;
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '{') return false;
    ++pos_;
    out.kind = ArrayItem::Kind::Array;
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      ArrayItem item;
      skip_space();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == '{') {
        if (!array(item, depth + 1)) return false;
      } else if (!element(item)) {
        return false;
      }
      out.items.push_back(std::move(item));
      skip_space();
      if (pos_ >= s_.size()) return false;
      char c = s_[pos_++];
      if (c == '}') return true;
      if (c != delim_) return false;
    }
  }

  bool element(ArrayItem& out) {
    out.kind = ArrayItem::Kind::Text;
    if (s_[pos_] == '"') return quoted(out.text);
    size_t start = pos_;
    bool escaped = false;
    std::string& t = out.text;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == delim_ || c == '}' || c == '{' || c == '"') break;
      if (c == '\\') {
        if (++pos_ >= s_.size()) return false;
        escaped = true;
        c = s_[pos_];
      }
      t.push_back(c);
      ++pos_;
    }
    // Unquoted trailing whitespace is not part of the value.
    while (!t.empty() && space(t.back()) && !escaped) t.pop_back();
    if (pos_ == start) return false;
    if (!escaped && t.size() == 4 && (t == "NULL" || t == "null" || t == "Null")) {
      out.kind = ArrayItem::Kind::Null;
      t.clear();
    }
    return true;
  }

  bool quoted(std::string& t) {
    ++pos_;  // the opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (pos_ >= s_.size()) return false;
        c = s_[pos_++];
      }
      t.push_back(c);
    }
    return false;
  }

  std::string_view s_;
  char delim_;
  size_t pos_ = 0;
};

}  // namespace

bool decode_bytea_hex(std::string_view text, std::string& out) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || (text.size() % 2) != 0) return false;
  out.clear();
  out.reserve((text.size() - 2) / 2);
  for (size_t i = 2; i < text.size(); i += 2) {
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return true;
}

bool parse_array(std::string_view text, char delim, ArrayItem& out) {
  out = ArrayItem{};
  return ArrayReader(text, delim).parse(out);
}

}  // namespace evo::pg
