// libFuzzer target: the JSON decoder (simdjson, as src/bind/json.cpp drives
// it), the error locator (proto/json_syntax) and the encoder's writers
// (proto/json_write). Run by `make test-fuzz`.
//
// For every input:
//   - simdjson and find_syntax_error agree on whether it is JSON (the
//     locator must find an error exactly when the decoder refuses);
//   - a refused input gets an offset inside the text, a line, a column and
//     an excerpt without crashing;
//   - an accepted document, written back with json::Writer, parses again
//     to an equal document (the encode of what was decoded decodes to the
//     same value);
//   - the input's bytes written as one string literal: the writer flags
//     invalid UTF-8 exactly, and valid text reads back the same.
#include <simdjson.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/json_syntax.h"
#include "proto/json_write.h"

namespace {

constexpr size_t kMaxDepth = 64;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

void write(simdjson::dom::element e, evo::json::Writer& w) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::ARRAY: {
      w.put('[');
      bool first = true;
      simdjson::dom::array a = e.get_array().value_unsafe();  // a copy: the result object is a temporary
      for (auto item : a) {
        if (!first) w.put(',');
        first = false;
        write(item, w);
      }
      w.put(']');
      return;
    }
    case element_type::OBJECT: {
      w.put('{');
      bool first = true;
      simdjson::dom::object o = e.get_object().value_unsafe();
      for (auto kv : o) {
        if (!first) w.put(',');
        first = false;
        require(w.string(kv.key), "a decoded key is valid UTF-8");
        w.put(':');
        write(kv.value, w);
      }
      w.put('}');
      return;
    }
    case element_type::STRING:
      require(w.string(e.get_string().value_unsafe()), "a decoded string is valid UTF-8");
      return;
    case element_type::INT64:
      w.integer(e.get_int64().value_unsafe());
      return;
    case element_type::UINT64:
      w.unsigned_integer(e.get_uint64().value_unsafe());
      return;
    case element_type::DOUBLE:
      w.number(e.get_double().value_unsafe());
      return;
    case element_type::BOOL:
      w.append(e.get_bool().value_unsafe() ? "true" : "false");
      return;
    case element_type::NULL_VALUE:
      w.append("null");
      return;
  }
}

bool is_number(simdjson::dom::element e) {
  auto t = e.type();
  return t == simdjson::dom::element_type::INT64 || t == simdjson::dom::element_type::UINT64 ||
         t == simdjson::dom::element_type::DOUBLE;
}

// Numbers compare by value: an integral double is written as an integer.
bool same_number(simdjson::dom::element a, simdjson::dom::element b) {
  using simdjson::dom::element_type;
  if (a.type() != element_type::DOUBLE && b.type() != element_type::DOUBLE) {
    if (a.type() == b.type()) {
      return a.type() == element_type::INT64 ? a.get_int64().value_unsafe() == b.get_int64().value_unsafe()
                                             : a.get_uint64().value_unsafe() == b.get_uint64().value_unsafe();
    }
    return false;
  }
  double x = a.get_double().value_unsafe();
  double y = b.get_double().value_unsafe();
  return x == y && std::signbit(x) == std::signbit(y);
}

bool equal(simdjson::dom::element a, simdjson::dom::element b) {
  using simdjson::dom::element_type;
  if (is_number(a) && is_number(b)) return same_number(a, b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case element_type::ARRAY: {
      auto x = a.get_array().value_unsafe();
      auto y = b.get_array().value_unsafe();
      auto i = x.begin();
      auto j = y.begin();
      for (; i != x.end() && j != y.end(); ++i, ++j) {
        if (!equal(*i, *j)) return false;
      }
      return i == x.end() && j == y.end();
    }
    case element_type::OBJECT: {
      auto x = a.get_object().value_unsafe();
      auto y = b.get_object().value_unsafe();
      auto i = x.begin();
      auto j = y.begin();
      for (; i != x.end() && j != y.end(); ++i, ++j) {
        if (i.key() != j.key() || !equal(i.value(), j.value())) return false;
      }
      return i == x.end() && j == y.end();
    }
    case element_type::STRING:
      return a.get_string().value_unsafe() == b.get_string().value_unsafe();
    case element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    default:
      return true;  // null
  }
}

// The input's bytes as one string: the writer says whether they are UTF-8
// (as the scalar validator does), and when they are its literal reads back
// as the same bytes.
void check_string_writer(std::string_view text, simdjson::dom::parser& parser) {
  evo::json::Writer w;
  bool ok = w.string(text);
  require(ok == evo::json::valid_utf8(text), "Writer::string and valid_utf8 agree");
  if (!ok) return;
  simdjson::padded_string literal(std::string_view(w.data(), w.size()));
  auto back = parser.parse(literal);
  require(back.error() == simdjson::SUCCESS, "a written string literal parses");
  require(back.value_unsafe().get_string().value_unsafe() == text, "a written string reads back the same");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static simdjson::dom::parser parser;
  static simdjson::dom::parser again;
  // As the binding does: simdjson's limit a little above, the exact one
  // (the locator's) applied on top.
  static bool ready = parser.allocate(1 << 16, kMaxDepth + 2) == simdjson::SUCCESS &&
                      again.allocate(1 << 16, kMaxDepth + 2) == simdjson::SUCCESS;
  require(ready, "parsers allocated");
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_string_writer(text, again);
  simdjson::padded_string padded(text);
  auto doc = parser.parse(padded);
  auto found = evo::json::find_syntax_error(text, kMaxDepth);
  if (doc.error() != simdjson::SUCCESS) {
    require(found.has_value(), "the locator finds an error where simdjson refuses");
    require(found->offset <= size, "the error offset is inside the text");
    auto pos = evo::json::position_of(text, found->offset);
    require(pos.line >= 1 && pos.column >= 1, "line and column are 1-based");
    require(!evo::json::excerpt(text, found->offset).empty(), "an excerpt");
    // Integers beyond 64 bits alone: the copy with ".0" after each parses.
    std::vector<size_t> big;
    if (!evo::json::find_syntax_error(text, kMaxDepth, &big) && !big.empty()) {
      simdjson::padded_string fixed(evo::json::insert_fractions(text, big));
      require(again.parse(fixed).error() == simdjson::SUCCESS, "big integers parse as doubles");
    }
    return 0;
  }
  if (found.has_value()) {
    require(found->message.rfind("nesting too deep", 0) == 0, "the locator accepts what simdjson accepts");
    return 0;
  }
  evo::json::Writer w;
  write(doc.value_unsafe(), w);
  std::string out(w.data(), w.size());
  require(!evo::json::find_syntax_error(out, kMaxDepth).has_value(), "the encoder writes valid JSON");
  simdjson::padded_string padded_out(out);
  auto doc2 = again.parse(padded_out);
  require(doc2.error() == simdjson::SUCCESS, "what was encoded decodes");
  require(equal(doc.value_unsafe(), doc2.value_unsafe()), "decode(encode(decode(x))) equals decode(x)");
  return 0;
}
