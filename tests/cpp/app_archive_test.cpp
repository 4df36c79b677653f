// The archive format of one-file executables (src/proto/app_archive).
#include "proto/app_archive.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace evo::app_archive;

struct Built {
  std::string file;  // a fake runtime image followed by the archive
  std::vector<Entry> entries;
};

Built build_one(const std::string& runtime) {
  Built b;
  b.entries = {{Kind::Module, 0644, 0, "@main", 0, 0},
               {Kind::File, 0600, 1700000000, "public/index.html", 0, 0},
               {Kind::CModule, 0755, 0, "cmod", 0, 0},
               {Kind::Library, 0755, 0, "libsimdjson.so.14", 0, 0}};
  std::vector<std::string_view> datas = {"bytecode", "<!doctype html>", std::string_view("\x7f" "ELF\0\1", 6),
                                         "shared object"};
  b.file = runtime + serialize({"app", "1.2.3", "@main"}, b.entries, datas, runtime.size());
  return b;
}

TEST(AppArchive, RoundTrips) {
  Built b = build_one(std::string(1000, 'R'));
  auto t = parse_trailer(std::string_view(b.file).substr(b.file.size() - kTrailerSize), b.file.size());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->archive_start, 1000u);
  auto idx = parse_index(std::string_view(b.file).substr(t->index_offset, t->index_size),
                         t->index_offset - t->archive_start);
  ASSERT_TRUE(idx.has_value());
  EXPECT_EQ(idx->meta.name, "app");
  EXPECT_EQ(idx->meta.version, "1.2.3");
  EXPECT_EQ(idx->meta.entry, "@main");
  ASSERT_EQ(idx->entries.size(), 4u);
  const Entry& f = idx->entries[1];
  EXPECT_EQ(f.kind, Kind::File);
  EXPECT_EQ(f.mode, 0600u);
  EXPECT_EQ(f.mtime, 1700000000);
  EXPECT_EQ(b.file.substr(t->archive_start + f.offset, f.size), "<!doctype html>");
  EXPECT_EQ(b.file.substr(t->archive_start + idx->entries[2].offset, 6), std::string("\x7f" "ELF\0\1", 6));
  const Entry& lib = idx->entries[3];  // kind 4: a library the runtime dlopens itself
  EXPECT_EQ(lib.kind, Kind::Library);
  EXPECT_EQ(lib.name, "libsimdjson.so.14");
  EXPECT_EQ(b.file.substr(t->archive_start + lib.offset, lib.size), "shared object");
}

TEST(AppArchive, APlainBinaryHasNoTrailer) {
  std::string elf(4096, '\0');
  EXPECT_FALSE(parse_trailer(std::string_view(elf).substr(elf.size() - kTrailerSize), elf.size()).has_value());
  EXPECT_FALSE(parse_trailer("short", 5).has_value());
}

TEST(AppArchive, RejectsTrailersPointingOutside) {
  Built b = build_one("RUNTIME");
  // Cut a byte from the middle: the index no longer ends where the trailer says.
  std::string cut = b.file.substr(0, 3) + b.file.substr(4);
  EXPECT_FALSE(parse_trailer(std::string_view(cut).substr(cut.size() - kTrailerSize), cut.size()).has_value());
  // archive_start after the index
  std::string bad = b.file;
  bad[bad.size() - kTrailerSize] = '\x7f';
  EXPECT_FALSE(parse_trailer(std::string_view(bad).substr(bad.size() - kTrailerSize), bad.size()).has_value());
}

TEST(AppArchive, RejectsMalformedIndexes) {
  Built b = build_one("");
  auto t = parse_trailer(std::string_view(b.file).substr(b.file.size() - kTrailerSize), b.file.size());
  ASSERT_TRUE(t.has_value());
  std::string index = b.file.substr(t->index_offset, t->index_size);
  const uint64_t payload = t->index_offset;
  EXPECT_TRUE(parse_index(index, payload).has_value());
  // Data past the payload.
  EXPECT_FALSE(parse_index(index, payload - 1).has_value());
  // Truncated at every length.
  for (size_t n = 0; n < index.size(); ++n) EXPECT_FALSE(parse_index(index.substr(0, n), payload).has_value()) << n;
  // Trailing garbage.
  EXPECT_FALSE(parse_index(index + "x", payload).has_value());
  // A count far beyond what the bytes hold.
  std::string huge = index;
  huge[3] = '\x7f';
  EXPECT_FALSE(parse_index(huge, payload).has_value());
  // An unknown kind (the first entry's kind byte follows count and 3 strings).
  std::string kind = index;
  size_t first = 4 + (4 + 3) + (4 + 5) + (4 + 5);
  ASSERT_EQ(kind[first], '\x01');
  kind[first] = '\x09';
  EXPECT_FALSE(parse_index(kind, payload).has_value());
}

}  // namespace
