// Binary-to-text encodings: base64 (RFC 4648 §4 and the URL-safe alphabet of
// §5), hex, and the text form of UUIDs (RFC 9562). Pure functions, no
// allocation beyond the output, table-driven; no Lua, no libuv.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace evo::encoding {

// Why a decode failed, and at which input offset (0-based; the message
// counts from 1, as Lua does: "invalid base64 character '!' at position 5").
struct DecodeError {
  enum class Kind : uint8_t { None, BadChar, BadLength, BadPadding } kind = Kind::None;
  size_t offset = 0;
  char ch = 0;  // the offending character (BadChar)
  [[nodiscard]] std::string message(const char* what) const;
};

// base64 of `in`, appended to `out`. Standard alphabet with '=' padding, or
// (url) the URL-safe alphabet '-' '_' without padding.
void base64_encode(std::string_view in, bool url, std::string* out);
[[nodiscard]] constexpr size_t base64_encoded_size(size_t n, bool url) {
  return url ? (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1) : (n + 2) / 3 * 4;
}

// Decodes base64 into `out` (appended). Standard: ASCII whitespace (space,
// \t, \r, \n) is skipped, so MIME and PEM bodies decode; padding must be
// complete ("QQ==") or absent entirely ("QQ"). URL-safe: '-' and '_'
// instead of '+' and '/', no whitespace, padding optional. Any other
// character, a misplaced '=' or a lone trailing character fails. Trailing
// bits that are not zero ("QR==") are accepted, as most decoders do.
bool base64_decode(std::string_view in, bool url, std::string* out, DecodeError* err);

// Lowercase hex of `in`, appended to `out`.
void hex_encode(std::string_view in, std::string* out);
// Decodes hex (either case); fails on odd length or a non-hex digit.
bool hex_decode(std::string_view in, std::string* out, DecodeError* err);

// UUIDs: 16 bytes <-> "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lowercase out;
// either case in). parse accepts exactly that 36-character form.
void uuid_format(const uint8_t bytes[16], char out[36]);
bool uuid_parse(std::string_view text, uint8_t bytes[16]);

}  // namespace evo::encoding
