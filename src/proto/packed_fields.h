// A field list (a request's headers) packed in one string and back: for
// each field its name's and its value's lengths (two uint32_t, native byte
// order), then the name and the value. The event-style HTTP server hands a
// request's headers to Lua this way — one string rather than a table per
// request — and builds the table only when a handler reads it
// (lib/HttpServer.lua, src/bind/http.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "proto/http_headers.h"

namespace evo::http {

// Packs the fields into out (replacing what it held; its capacity is reused).
// (Inline: it runs for every request, and its caller is in another file.)
inline void pack_fields(const HeaderList& fields, std::string& out) {
  using Lengths = std::array<uint32_t, 2>;
  size_t size = 0;
  for (const auto& [name, value] : fields) size += sizeof(Lengths) + name.size() + value.size();
  out.resize(size);  // (one size check, then plain copies)
  char* p = out.data();
  for (const auto& [name, value] : fields) {
    Lengths lengths = {static_cast<uint32_t>(name.size()), static_cast<uint32_t>(value.size())};
    std::memcpy(p, lengths.data(), sizeof(lengths));
    p = std::ranges::copy(value, std::ranges::copy(name, p + sizeof(lengths)).out).out;
  }
}

// The fields of a packed string, or nothing when it is not one (cut short,
// or lengths running past its end). A packed string unpacks to the fields
// it was made from, and only one string packs to given fields.
std::optional<HeaderList> unpack_fields(std::string_view packed);

}  // namespace evo::http
