// json_write: the output half of the JSON encoder, with no Lua in it: one
// growing buffer and the writers for strings (escaping, UTF-8 checked),
// integers and doubles (shortest text that reads back to the same double).
// The Lua binding (src/bind/json.cpp) walks tables and calls these; the fuzz
// target walks a decoded document with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace evo::json {

class Writer {
 public:
  Writer() = default;

  [[nodiscard]] const char* data() const { return data_.get(); }
  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t capacity() const { return cap_; }
  void clear() { size_ = 0; }
  // Rolls the output back to an earlier size (a table re-encoded another way).
  void truncate(size_t size) { size_ = size; }
  // Frees the memory when it has grown past `keep` bytes (a huge document
  // should not pin its buffer in a thread for ever).
  void trim(size_t keep);

  // Makes room for n more bytes; the raw writers below assume it.
  void reserve(size_t n) {
    if (cap_ - size_ < n) grow(n);
  }
  void put(char c) {
    reserve(1);
    data_.get()[size_++] = c;
  }
  void put_unchecked(char c) { data_.get()[size_++] = c; }
  void append(std::string_view s) {
    reserve(s.size());
    std::memcpy(data_.get() + size_, s.data(), s.size());
    size_ += s.size();
  }

  // A JSON string literal with its quotes. False (and nothing written past
  // the opening quote is kept meaningful) when s is not valid UTF-8.
  bool string(std::string_view s);
  void integer(int64_t v);
  void unsigned_integer(uint64_t v);
  // A finite double: integral values below 2^53 as integers ("3"), the rest
  // in the shortest form that reads back exactly ("0.1", "1e+300"). The
  // caller rejects NaN and infinities.
  void number(double v);
  // newline + depth * indent
  void newline(std::string_view indent, int depth);

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  void grow(size_t n);

  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
  size_t cap_ = 0;
};

// True when s is valid UTF-8 (RFC 3629).
bool valid_utf8(std::string_view s);

}  // namespace evo::json
