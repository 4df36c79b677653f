// compress: streaming compression and decompression engines (zlib's gzip,
// zlib and raw DEFLATE; Brotli), sans I/O: bytes in, bytes appended to a
// std::string out. The Lua binding (src/bind/zlib.cpp), the fuzz target
// and any C++ user share them.
//
// A decoder's output is bounded (max_output): it never holds more than
// max_output + 1 bytes of output before it stops with TooLarge, so a small
// bomb cannot make it allocate its expanded size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace evo::proto::compress {

enum class Format {
  Gzip,    // RFC 1952; decoding accepts several members one after another
  Zlib,    // RFC 1950 (what HTTP and Node call "deflate")
  Raw,     // RFC 1951, no header or checksum
  Auto,    // decoding only: gzip, zlib or raw, told apart by the first bytes
  Brotli,  // RFC 7932
};

// Parses "gzip", "deflate", "zlib", "raw", "auto", "br"; false for others.
bool parse_format(std::string_view name, Format* out);

enum class Status {
  Ok,        // all input taken; more may come
  End,       // decoder: the compressed stream is complete
  BadData,   // corrupt or truncated input (error() says what)
  TooLarge,  // decoder: the output would pass max_output
};

// The code an error status is reported under ("BadData", "TooLarge").
const char* status_code(Status s);

enum class Flush {
  None,    // buffer as the codec likes
  Sync,    // everything written so far can be decoded by the peer now
  Finish,  // end the stream
};

struct EncoderOptions {
  int level = -1;  // zlib: -1 (default, 6) or 0-9; Brotli: quality 0-11, -1 is 11
  int window = 0;  // Brotli: lgwin 10-24, 0 for its default (22); zlib: unused
};

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Compresses in and appends the output; false (error()) only when the
  // library fails (out of memory) or after finish.
  virtual bool write(std::string_view in, Flush flush, std::string& out) = 0;
  [[nodiscard]] const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

// nullptr when options are out of range (the caller checks them first) or
// the library cannot start.
std::unique_ptr<Encoder> make_encoder(Format format, const EncoderOptions& options);

class Decoder {
 public:
  explicit Decoder(size_t max_output) : max_output_(max_output) {}
  virtual ~Decoder() = default;
  // Decompresses in, appending the output. Ok or End; an error status is
  // final (every later call returns it again).
  Status write(std::string_view in, std::string& out);
  // The input is over: End, or BadData if the stream is incomplete.
  Status finish(std::string& out);
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] size_t total_out() const { return total_; }

 protected:
  // One codec call site: decode as much of *in as fits in the room given,
  // advancing *in and reporting produced bytes; Ok, End or BadData.
  virtual Status step(std::string_view* in, char* dst, size_t room, size_t* produced) = 0;
  // After End with input left: Ok when the codec restarted for another
  // member (gzip), BadData otherwise.
  virtual Status restart() { return fail("data after the end of the compressed stream"); }
  Status fail(std::string why) {
    error_ = std::move(why);
    return Status::BadData;
  }

 private:
  Status run(std::string_view in, std::string& out);
  size_t max_output_;
  size_t total_ = 0;
  bool ended_ = false;
  Status failed_ = Status::Ok;
  std::string error_;
};

std::unique_ptr<Decoder> make_decoder(Format format, size_t max_output);

// What a whole gzip member says it holds (its trailer's ISIZE: the size mod
// 2^32), as a hint for the output's first allocation: 0 when data is not
// gzip. Never trusted beyond that: a lying trailer only sizes a buffer.
size_t gzip_size_hint(std::string_view data);

uint32_t crc32(uint32_t crc, std::string_view data);

}  // namespace evo::proto::compress
