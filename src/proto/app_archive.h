// The archive `evo build` appends to a copy of the runtime: the app's
// modules (LuaJIT bytecode), C modules (.so images) and files, then an index,
// then a fixed 32-byte trailer. Sans-I/O: this file only turns entries into
// bytes and bytes back into entries; src/bind/appfs.cpp maps the executable
// and serves the entries.
//
//   [runtime ELF][entry data...][index][trailer]
//   trailer: u64 archive_start, u64 index_offset, u64 index_size, "EVOAPP01"
//            (offsets from the start of the file, little-endian)
//   index:   u32 count, str name, str version, str entry, then per entry:
//            u8 kind (1 module, 2 C module, 3 file, 4 library), u32 mode, i64 mtime, str name, u64 offset,
//            u64 size (offset from archive_start; str = u32 length + bytes)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evo::app_archive {

inline constexpr size_t kTrailerSize = 32;
inline constexpr std::string_view kMagic = "EVOAPP01";

enum class Kind : uint8_t {
  Module = 1,   // name: the require name; data: bytecode
  CModule = 2,  // name: the require name; data: a shared object
  File = 3,     // name: a normalized relative path; data: the contents
  Library = 4,  // name: a soname the runtime loads itself (libsimdjson.so.14); data: the .so
};

struct Entry {
  Kind kind = Kind::File;
  uint32_t mode = 0644;  // permission bits of a file
  int64_t mtime = 0;     // seconds since the epoch
  std::string name;
  uint64_t offset = 0;  // from archive_start (set by serialize / parse)
  uint64_t size = 0;
};

struct Meta {
  std::string name;     // the app's name (--version)
  std::string version;  // the app's version (--version)
  std::string entry;    // the module run at start-up
};

struct Trailer {
  uint64_t archive_start = 0;
  uint64_t index_offset = 0;
  uint64_t index_size = 0;
};

struct Index {
  Meta meta;
  std::vector<Entry> entries;
};

// The bytes to append to a runtime image of `runtime_size` bytes: the data of
// each entry (datas[i] belongs to entries[i]; offsets and sizes are set
// here), the index and the trailer.
std::string serialize(const Meta& meta, std::vector<Entry>& entries,
                      const std::vector<std::string_view>& datas, uint64_t runtime_size);

// The trailer at the end of a file of `file_size` bytes, or nullopt when the
// bytes are not one (no magic, offsets outside the file or out of order).
std::optional<Trailer> parse_trailer(std::string_view last32, uint64_t file_size);

// The index, or nullopt when it is malformed or names data outside the
// `payload_size` bytes between archive_start and the index.
std::optional<Index> parse_index(std::string_view index, uint64_t payload_size);

}  // namespace evo::app_archive
