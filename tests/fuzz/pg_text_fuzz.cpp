// libFuzzer target: the postgres module's text decoders (src/proto/pg_text):
// bytea's hex format and array literals. Run by `make test-fuzz`.
//
// Input: a delimiter byte, then the text. For any input neither may crash,
// recurse past kMaxArrayDepth or read out of bounds, and:
//  - a decoded bytea is half the hex digits long;
//  - a parsed array is an Array at the root, nested no deeper than the limit,
//    and only Array items have items.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/pg_text.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void walk(const evo::pg::ArrayItem& item, int depth) {
  check(depth <= evo::pg::kMaxArrayDepth);
  if (item.kind != evo::pg::ArrayItem::Kind::Array) {
    check(item.items.empty());
    return;
  }
  for (const auto& sub : item.items) walk(sub, sub.kind == evo::pg::ArrayItem::Kind::Array ? depth + 1 : depth);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char delim = (data[0] & 1) != 0 ? ';' : ',';
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string bytes;
  if (evo::pg::decode_bytea_hex(text, bytes)) check(bytes.size() * 2 + 2 == text.size());
  evo::pg::ArrayItem root;
  if (evo::pg::parse_array(text, delim, root)) {
    check(root.kind == evo::pg::ArrayItem::Kind::Array);
    walk(root, 1);
  }
  return 0;
}
