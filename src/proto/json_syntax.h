// json_syntax: a strict RFC 8259 checker that says *where* a JSON text goes
// wrong. The decoder (simdjson) is fast but reports only an error class; this
// scanner runs on the error path alone to find the byte offset of the first
// mistake and name it. It accepts exactly what the decoder accepts (the fuzz
// target evo_fuzz_json checks that): UTF-8 only, no BOM, no trailing commas,
// no leading zeros, escapes as the RFC lists them, surrogate escapes in
// pairs, integers within 64 bits, doubles within range.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evo::json {

struct SyntaxError {
  size_t offset;        // byte offset of the first offending byte (text.size() at end of input)
  std::string message;  // e.g. "expected ',' or ']'"
};

// The first error in `text`, or nullopt when it is one valid JSON value
// surrounded by whitespace. Containers nested deeper than max_depth are an
// error at the bracket that goes one level too deep.
// With big_integer_ends, integers beyond 64 bits are not an error: the
// offset just past each one is appended there instead (the decoder then
// reads them as doubles, as JavaScript does, by re-parsing a copy with ".0"
// after each).
std::optional<SyntaxError> find_syntax_error(std::string_view text, size_t max_depth,
                                             std::vector<size_t>* big_integer_ends = nullptr);

// text with ".0" inserted at each of the offsets (ascending).
std::string insert_fractions(std::string_view text, const std::vector<size_t>& offsets);

struct Position {
  size_t line;    // 1-based
  size_t column;  // 1-based, counted in characters (UTF-8 sequences), not bytes
};

Position position_of(std::string_view text, size_t offset);

// The line holding `offset`, cut to at most `width` characters around it,
// and a second line with a caret under the offending character:
//   {"a": 1,}
//           ^
std::string excerpt(std::string_view text, size_t offset, size_t width = 60);

}  // namespace evo::json
