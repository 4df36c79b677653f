// Header lines of an HTTP/1 message as llhttp hands them over, in pieces (a
// piece ends where a read ended): one implementation for the request parser
// and the response parser. Names are lower-cased and must be tokens (RFC
// 9110 5.1: whitespace before the colon is a smuggling vector, RFC 9112
// 5.1); values must hold no NUL, CR or LF (llhttp refuses them: see
// value_piece); and since the pieces of one value are contiguous in the
// stream, a gap between two means llhttp skipped a line break inside the
// value: an obs-fold continuation (RFC 9112 5.2), refused.
#pragma once

#include <strings.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evo::http {

// A message's header (or trailer) fields, in order: every name and value
// back to back in one buffer, each field two spans of it. One buffer for a
// request's fields, kept by clear() for the next request, where a list of
// std::string pairs made and freed two strings a field, and a malloc and a
// free for each name or value over 15 bytes (a browser's request has a
// dozen). Fields read as {first: name, second: value} string_views, valid
// until the list changes. Names are lower-cased by whoever collects them
// (HeaderCollector), not by the list.
class HeaderList {
 public:
  struct Field {
    std::string_view first;   // the name
    std::string_view second;  // the value
    friend bool operator==(const Field& a, const Field& b) {
      return a.first == b.first && a.second == b.second;
    }
  };

  // (It keeps the field it reads, so `for (auto& [name, value] : list)` works;
  // a reference from *it lives as long as the iterator, not the list.)
  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Field;
    using difference_type = std::ptrdiff_t;
    using pointer = const Field*;
    using reference = const Field&;
    const_iterator() = default;
    const_iterator(const HeaderList* list, size_t i) : list_(list), i_(i) {}
    reference operator*() const {
      field_ = (*list_)[i_];
      return field_;
    }
    pointer operator->() const { return &**this; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator was = *this;
      ++i_;
      return was;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.i_ == b.i_; }

   private:
    const HeaderList* list_ = nullptr;
    size_t i_ = 0;
    mutable Field field_;
  };
  using iterator = const_iterator;

  HeaderList() = default;
  HeaderList(std::initializer_list<std::pair<std::string_view, std::string_view>> fields);

  [[nodiscard]] size_t size() const { return spans_.size(); }
  [[nodiscard]] bool empty() const { return spans_.empty(); }
  Field operator[](size_t i) const {
    const Span& s = spans_[i];
    return {{bytes_.data() + s.name, s.name_len}, {bytes_.data() + s.value, s.value_len}};
  }
  [[nodiscard]] Field front() const { return (*this)[0]; }
  [[nodiscard]] Field back() const { return (*this)[spans_.size() - 1]; }
  [[nodiscard]] const_iterator begin() const { return {this, 0}; }
  [[nodiscard]] const_iterator end() const { return {this, spans_.size()}; }

  // (name and value must not point into this list: appending may move its bytes.)
  void emplace_back(std::string_view name, std::string_view value);
  void push_back(const Field& f) { emplace_back(f.first, f.second); }
  void insert_front(std::string_view name, std::string_view value);
  void set_value(size_t i, std::string_view value);
  // Fewer fields: the last ones go (n > size() is a no-op).
  void resize(size_t n);
  // No field; the buffers are kept.
  void clear() {
    spans_.clear();
    bytes_.clear();
  }
  // How many fields, and how many bytes of them, fit without growing.
  [[nodiscard]] size_t capacity() const { return spans_.capacity(); }
  [[nodiscard]] size_t byte_capacity() const { return bytes_.capacity(); }
  void swap(HeaderList& other) noexcept {
    bytes_.swap(other.bytes_);
    spans_.swap(other.spans_);
  }
  friend bool operator==(const HeaderList& a, const HeaderList& b);

  // Collecting fields piece by piece (HeaderCollector): a new, empty field;
  // then its name's pieces, then its value's (each appended to the last
  // field, whose bytes are the buffer's last).
  void start_field() { spans_.push_back({end32(), 0, end32(), 0}); }
  // (Returns where the piece went: the collector lower-cases it in place.)
  char* append_name(const char* at, size_t n) {
    size_t from = bytes_.size();
    bytes_.append(at, n);
    spans_.back().name_len += static_cast<uint32_t>(n);
    spans_.back().value = end32();
    return bytes_.data() + from;
  }
  void append_value(const char* at, size_t n) {
    bytes_.append(at, n);
    spans_.back().value_len += static_cast<uint32_t>(n);
  }
  // The last field's value without its trailing spaces and tabs.
  void trim_last_value();

 private:
  struct Span {
    uint32_t name, name_len, value, value_len;
  };
  [[nodiscard]] uint32_t end32() const { return static_cast<uint32_t>(bytes_.size()); }
  std::string bytes_;
  std::vector<Span> spans_;
};

// Whether two strings are equal ignoring ASCII case: field names (RFC 9110
// 5.1) and the tokens of some values.
inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The value of the first header with this (lower-case) name, or nothing.
std::optional<std::string_view> find_header(const HeaderList& headers, std::string_view name);

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
