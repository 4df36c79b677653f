// pg_text: decoders for PostgreSQL's text output formats that are not plain
// scalars — bytea in hex format ("\x4142") and array literals
// ("{1,NULL,\"a b\"}", "{{1,2},{3,4}}", "[0:1]={7,8}"). Sans-I/O: the postgres
// binding (src/bind/postgres.cpp) decodes each element with its own type's
// rules; these only split and unescape.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace evo::pg {

// bytea's hex output ("\x" then two hex digits per byte) into its bytes.
// Returns false on anything else (the escape format, odd length, a bad digit).
bool decode_bytea_hex(std::string_view text, std::string& out);

// One element of an array literal: NULL, a scalar's text (unescaped), or a
// nested array (a dimension of a multi-dimensional array).
struct ArrayItem {
  enum class Kind { Null, Text, Array } kind = Kind::Null;
  std::string text;
  std::vector<ArrayItem> items;
};

// Parses an array literal with the element delimiter `delim` (',' for all
// types but box). Leading dimension decorations ("[1:3]=") are skipped.
// Returns false on malformed input (unbalanced braces, trailing garbage,
// nesting deeper than kMaxArrayDepth).
constexpr int kMaxArrayDepth = 6;  // PostgreSQL's MAXDIM
bool parse_array(std::string_view text, char delim, ArrayItem& out);

}  // namespace evo::pg
