#include "proto/packed_fields.h"

#include <array>
#include <cstdint>
#include <cstring>

namespace evo::http {

namespace {
using Lengths = std::array<uint32_t, 2>;
}  // namespace

std::optional<HeaderList> unpack_fields(std::string_view packed) {
  HeaderList fields;
  while (!packed.empty()) {
    Lengths lengths{};
    if (packed.size() < sizeof(lengths)) return std::nullopt;
    std::memcpy(lengths.data(), packed.data(), sizeof(lengths));
    packed.remove_prefix(sizeof(lengths));
    // (Compared one at a time: their sum could wrap where size_t is 32 bits.)
    if (lengths[0] > packed.size() || lengths[1] > packed.size() - lengths[0]) return std::nullopt;
    fields.emplace_back(packed.substr(0, lengths[0]), packed.substr(lengths[0], lengths[1]));
    packed.remove_prefix(static_cast<size_t>(lengths[0]) + lengths[1]);
  }
  return fields;
}

}  // namespace evo::http
