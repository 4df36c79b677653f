// libFuzzer target: the packed field lists of the event-style HTTP server
// (src/proto/packed_fields), which Lua can hand back to unpackHeaders as any
// string. Run by `make test-fuzz`.
//
// The input is a packed string. Invariants: unpacking never reads past the
// input (ASan) and, when it succeeds, packing the fields gives back exactly
// the input (the packing is canonical); the fields split from the input are
// packed and unpacked back to themselves.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "proto/packed_fields.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<evo::http::HeaderList> fields = evo::http::unpack_fields(input);
  std::string packed;
  if (fields) {
    evo::http::pack_fields(*fields, packed);
    if (packed != input) std::abort();
  }
  // Any fields (the input cut in name/value pairs at each NUL) round-trip.
  evo::http::HeaderList made;
  size_t at = 0;
  while (at < size) {
    size_t end = input.find('\0', at);
    if (end == std::string_view::npos) end = size;
    std::string_view part = input.substr(at, end - at);
    made.emplace_back(part.substr(0, part.size() / 2), part.substr(part.size() / 2));
    at = end + 1;
  }
  evo::http::pack_fields(made, packed);
  std::optional<evo::http::HeaderList> back = evo::http::unpack_fields(packed);
  if (!back || *back != made) std::abort();
  return 0;
}
