// Cookies (RFC 6265): parsing the Cookie header a server receives, and the
// checks on the names and values a server sets. Sans-I/O, no allocation
// but the decoded values.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace evo::cookie {

// Calls each(name, value) for every pair of a Cookie header, in order, the
// way browsers and common servers read it (RFC 6265 5.4, tolerant): pairs
// are split on ';', whitespace (SP, HTAB) around names and values is
// trimmed, one pair of double quotes around a value is removed. A piece
// without '=' or with an empty name is skipped (it has no name to find it
// by). Values are passed raw: see decode.
void parse(std::string_view header, const std::function<void(std::string_view, std::string_view)>& each);

// Percent-decoding of a value ("%20" -> " "); malformed escapes stay as
// they are, as JavaScript's decodeURIComponent users expect of cookies.
std::string decode(std::string_view value);

// A name a server may set: an RFC 9110 token (no separators, no controls).
bool valid_name(std::string_view name);

// A value a server may set: RFC 6265 cookie-octets (printable ASCII but
// space, '"', ',', ';' and '\'), optionally in one pair of double quotes.
bool valid_value(std::string_view value);

}  // namespace evo::cookie
