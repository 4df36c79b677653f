// libFuzzer target for src/proto/compress: the decoders (gzip, zlib, raw,
// auto, Brotli) on arbitrary bytes fed in arbitrary pieces under a bound,
// and round trips of the input through each encoder.
//
// Input: byte 0 picks the format and the bound, byte 1 the piece size,
// the rest is the data. Checks: the output never passes the bound; a
// decoder's answer does not depend on how the input was cut; what an
// encoder made decodes back to the data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/compress.h"

namespace cz = evo::proto::compress;

namespace {

const cz::Format kFormats[] = {cz::Format::Gzip, cz::Format::Zlib, cz::Format::Raw, cz::Format::Auto,
                               cz::Format::Brotli};

struct Result {
  cz::Status status;
  std::string out;
};

Result decode(cz::Format f, size_t max, std::string_view data, size_t piece) {
  auto dec = cz::make_decoder(f, max);
  Result r{cz::Status::Ok, {}};
  while (!data.empty()) {
    size_t n = piece < data.size() ? piece : data.size();
    r.status = dec->write(data.substr(0, n), r.out);
    data.remove_prefix(n);
    if (r.status == cz::Status::BadData || r.status == cz::Status::TooLarge) return r;
    if (r.out.size() > max) abort();
  }
  r.status = dec->finish(r.out);
  if (r.out.size() > max) abort();
  return r;
}

void round_trip(cz::Format f, std::string_view data, size_t piece, int level) {
  cz::EncoderOptions o;
  o.level = level;
  if (f == cz::Format::Brotli) o.level = level % 12;  // quality 0-9 here: 10 and 11 are slow
  auto enc = cz::make_encoder(f, o);
  if (!enc) abort();
  std::string packed;
  std::string_view rest = data;
  while (!rest.empty()) {
    size_t n = piece < rest.size() ? piece : rest.size();
    if (!enc->write(rest.substr(0, n), n % 3 == 0 ? cz::Flush::Sync : cz::Flush::None, packed)) abort();
    rest.remove_prefix(n);
  }
  if (!enc->write({}, cz::Flush::Finish, packed)) abort();
  Result r = decode(f, data.size(), packed, piece + 1);
  if (r.status != cz::Status::End || r.out != data) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  const cz::Format f = kFormats[bytes[0] % 5];
  const size_t max = size_t{1} << (bytes[0] / 5 % 24);  // 1 B to 8 MiB
  const size_t piece = 1 + bytes[1] % 64 * 37;
  std::string_view data(reinterpret_cast<const char*>(bytes) + 2, size - 2);

  Result whole = decode(f, max, data, data.size() + 1);
  Result cut = decode(f, max, data, piece);
  // The same bytes cut differently give the same answer: the same output
  // when the stream ends, or a failure both ways. Which failure may differ:
  // input that is both corrupt and over the bound reports whichever the
  // codec meets first, and a decoder given the whole input can see the
  // corruption (Brotli reads ahead) before it has written past the bound.
  const bool whole_failed = whole.status == cz::Status::BadData || whole.status == cz::Status::TooLarge;
  const bool cut_failed = cut.status == cz::Status::BadData || cut.status == cz::Status::TooLarge;
  if (whole_failed != cut_failed) abort();
  if (!whole_failed && whole.status != cut.status) abort();
  if (whole.status == cz::Status::End && whole.out != cut.out) abort();

  if (f != cz::Format::Auto && data.size() < 4096) round_trip(f, data, piece, bytes[1] % 10);
  return 0;
}
