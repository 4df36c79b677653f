#include "proto/app_archive.h"

#include <cstring>

namespace evo::app_archive {
namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Reads little-endian fields from a byte range; any read past the end sets
// `bad` and yields zeros, so a parse checks once at the end of each step.
struct Reader {
  std::string_view in;
  size_t pos = 0;
  bool bad = false;

  uint64_t uint(int bytes) {
    if (in.size() - pos < static_cast<size_t>(bytes)) {
      bad = true;
      pos = in.size();
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
    pos += bytes;
    return v;
  }

  std::string str() {
    uint64_t n = uint(4);
    if (bad || in.size() - pos < n) {
      bad = true;
      return {};
    }
    std::string s(in.substr(pos, n));
    pos += n;
    return s;
  }
};

bool known_kind(uint64_t k) { return k >= 1 && k <= 4; }

}  // namespace

std::string serialize(const Meta& meta, std::vector<Entry>& entries,
                      const std::vector<std::string_view>& datas, uint64_t runtime_size) {
  std::string out;
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].offset = out.size();
    entries[i].size = datas[i].size();
    out.append(datas[i]);
  }
  const uint64_t index_offset = runtime_size + out.size();
  const size_t index_start = out.size();
  put_u32(out, static_cast<uint32_t>(entries.size()));
  put_str(out, meta.name);
  put_str(out, meta.version);
  put_str(out, meta.entry);
  for (const auto& e : entries) {
    out.push_back(static_cast<char>(e.kind));
    put_u32(out, e.mode);
    put_u64(out, static_cast<uint64_t>(e.mtime));
    put_str(out, e.name);
    put_u64(out, e.offset);
    put_u64(out, e.size);
  }
  const uint64_t index_size = out.size() - index_start;
  put_u64(out, runtime_size);
  put_u64(out, index_offset);
  put_u64(out, index_size);
  out.append(kMagic);
  return out;
}

std::optional<Trailer> parse_trailer(std::string_view last32, uint64_t file_size) {
  if (last32.size() != kTrailerSize || last32.substr(24) != kMagic || file_size < kTrailerSize)
    return std::nullopt;
  Reader r{last32};
  Trailer t{r.uint(8), r.uint(8), r.uint(8)};
  const uint64_t end = file_size - kTrailerSize;
  // archive_start <= index_offset <= index_offset + index_size == end
  if (t.archive_start > t.index_offset || t.index_offset > end || t.index_size != end - t.index_offset) {
    return std::nullopt;
  }
  return t;
}

std::optional<Index> parse_index(std::string_view index, uint64_t payload_size) {
  Reader r{index};
  Index out;
  uint64_t count = r.uint(4);
  out.meta.name = r.str();
  out.meta.version = r.str();
  out.meta.entry = r.str();
  // Each entry takes at least 33 bytes: a count beyond that is a lie, and
  // reserving for it would allocate what the bytes cannot hold.
  if (r.bad || count > (index.size() - r.pos) / 33) return std::nullopt;
  out.entries.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Entry e;
    uint64_t kind = r.uint(1);
    e.mode = static_cast<uint32_t>(r.uint(4));
    e.mtime = static_cast<int64_t>(r.uint(8));
    e.name = r.str();
    e.offset = r.uint(8);
    e.size = r.uint(8);
    if (r.bad || !known_kind(kind) || e.name.empty() || e.offset > payload_size ||
        e.size > payload_size - e.offset) {
      return std::nullopt;
    }
    e.kind = static_cast<Kind>(kind);
    out.entries.push_back(std::move(e));
  }
  if (r.pos != index.size()) return std::nullopt;  // trailing bytes: not an index we wrote
  return out;
}

}  // namespace evo::app_archive
