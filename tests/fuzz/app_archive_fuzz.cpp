// libFuzzer target: the archive index of a one-file executable
// (src/proto/app_archive). Run by `make test-fuzz`.
//
// The input is taken as a whole file whose end is the trailer. For any input
// neither parser may crash or read out of bounds, and:
//  - a parsed trailer's index lies inside the file, after archive_start;
//  - every parsed entry's data lies inside the payload;
//  - serializing the parsed index again and parsing that gives the same
//    entries (the format round-trips).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/app_archive.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evo::app_archive;
  std::string_view file(reinterpret_cast<const char*>(data), size);
  if (size < kTrailerSize) return 0;
  auto trailer = parse_trailer(file.substr(size - kTrailerSize), size);
  // Without a valid trailer, still parse the bytes as an index: the runtime
  // only ever does after a valid trailer, but the parser must hold anyway.
  std::string_view index = file.substr(0, size - kTrailerSize);
  uint64_t payload = 0;
  if (trailer) {
    check(trailer->archive_start <= trailer->index_offset);
    check(trailer->index_offset + trailer->index_size + kTrailerSize == size);
    index = file.substr(trailer->index_offset, trailer->index_size);
    payload = trailer->index_offset - trailer->archive_start;
  } else {
    payload = size;
  }
  auto parsed = parse_index(index, payload);
  if (!parsed) return 0;
  for (const auto& e : parsed->entries) {
    check(e.offset <= payload && e.size <= payload - e.offset);
    check(!e.name.empty());
  }
  // Round trip with fabricated data of the parsed sizes (bounded).
  std::vector<Entry> entries = parsed->entries;
  std::vector<std::string> datas;
  uint64_t total = 0;
  for (const auto& e : entries) {
    total += e.size;
    if (total > (1u << 20)) return 0;
    datas.emplace_back(e.size, 'x');
  }
  std::vector<std::string_view> views(datas.begin(), datas.end());
  std::string again = serialize(parsed->meta, entries, views, 0);
  auto t2 = parse_trailer(std::string_view(again).substr(again.size() - kTrailerSize), again.size());
  check(t2.has_value());
  auto p2 = parse_index(std::string_view(again).substr(t2->index_offset, t2->index_size), t2->index_offset);
  check(p2.has_value() && p2->entries.size() == parsed->entries.size());
  check(p2->meta.name == parsed->meta.name && p2->meta.entry == parsed->meta.entry);
  for (size_t i = 0; i < entries.size(); ++i) {
    check(p2->entries[i].name == parsed->entries[i].name && p2->entries[i].size == parsed->entries[i].size);
  }
  return 0;
}
