#include "proto/compress.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

#include <algorithm>
#include <climits>

namespace evo::proto::compress {
namespace {

// Output is produced in steps of this size: big enough that the codec call
// overhead does not matter, small enough that the bound is checked often.
constexpr size_t kStep = 64 * 1024;
// zlib's counters are 32-bit: longer inputs go through in slices.
constexpr size_t kMaxSlice = size_t{1} << 30;

Bytef* bytes(const char* p) { return reinterpret_cast<Bytef*>(const_cast<char*>(p)); }  // zlib is not const

int zlib_bits(Format f) {
  switch (f) {
    case Format::Gzip:
      return 15 + 16;
    case Format::Zlib:
      return 15;
    case Format::Raw:
      return -15;
    default:
      return 15 + 32;  // Auto: gzip or zlib by the header (raw is tried on failure)
  }
}

// ------------------------------------------------------------------ decoders

class ZlibDecoder final : public Decoder {
 public:
  ZlibDecoder(Format format, size_t max_output) : Decoder(max_output), format_(format) {
    ok_ = inflateInit2(&z_, zlib_bits(format)) == Z_OK;
    decided_ = format != Format::Auto;
  }
  ~ZlibDecoder() override {
    if (ok_) inflateEnd(&z_);
  }
  ZlibDecoder(const ZlibDecoder&) = delete;
  ZlibDecoder& operator=(const ZlibDecoder&) = delete;

 protected:
  Status step(std::string_view* in, char* dst, size_t room, size_t* produced) override {
    if (!ok_) return fail("zlib could not start (out of memory)");
    size_t given = std::min(in->size(), kMaxSlice);
    z_.next_in = bytes(in->data());
    z_.avail_in = static_cast<uInt>(given);
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(room);
    int rc = inflate(&z_, Z_NO_FLUSH);
    size_t used = given - z_.avail_in;
    *produced = room - z_.avail_out;
    if (rc == Z_DATA_ERROR && !decided_ && z_.total_out == 0 && z_.total_in <= 2)
      return as_raw(in, dst, room, produced);
    remember_head(*in, used);
    in->remove_prefix(used);
    switch (rc) {
      case Z_OK:
      case Z_BUF_ERROR:
        return Status::Ok;  // BUF_ERROR: no progress possible without more input
      case Z_STREAM_END:
        return Status::End;
      case Z_NEED_DICT:
        return fail("the stream needs a preset dictionary");
      case Z_MEM_ERROR:
        return fail("out of memory");
      default:
        return fail(z_.msg != nullptr ? z_.msg : "corrupt compressed data");
    }
  }

  // Several gzip members in a row decode as one stream (RFC 1952 2.2).
  Status restart() override {
    if (format_ != Format::Gzip && !(format_ == Format::Auto && gzip_)) return Decoder::restart();
    return inflateReset(&z_) == Z_OK ? Status::Ok : fail("zlib could not restart");
  }

 private:
  // Auto: the bytes read while the header was not yet known, to replay them
  // as raw DEFLATE if the header turns out to be neither gzip nor zlib.
  void remember_head(std::string_view in, size_t used) {
    if (decided_) return;
    for (size_t i = 0; i < used && head_len_ < sizeof(head_); ++i) head_[head_len_++] = in[i];
    if (z_.total_in > 2 || z_.total_out > 0) {
      decided_ = true;
      gzip_ = head_len_ >= 2 && static_cast<unsigned char>(head_[0]) == 0x1f &&
              static_cast<unsigned char>(head_[1]) == 0x8b;
    }
  }

  // Neither a gzip nor a zlib header: start again as raw DEFLATE (what
  // browsers do for servers that send "Content-Encoding: deflate" raw).
  Status as_raw(std::string_view* in, char* dst, size_t room, size_t* produced) {
    decided_ = true;
    if (inflateReset2(&z_, -15) != Z_OK) return fail("zlib could not restart");
    // the bytes of earlier calls (at most one) go first; one byte yields no output
    z_.next_in = reinterpret_cast<Bytef*>(head_);
    z_.avail_in = static_cast<uInt>(head_len_);
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(room);
    int rc = inflate(&z_, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(z_.msg != nullptr ? z_.msg : "corrupt compressed data");
    *produced = 0;
    return step(in, dst, room, produced);
  }

  z_stream z_{};
  Format format_;
  bool ok_ = false;
  bool decided_ = true;
  bool gzip_ = false;
  char head_[2] = {};
  size_t head_len_ = 0;
};

class BrotliDecoder final : public Decoder {
 public:
  explicit BrotliDecoder(size_t max_output)
      : Decoder(max_output), st_(BrotliDecoderCreateInstance(nullptr, nullptr, nullptr)) {}
  ~BrotliDecoder() override {
    if (st_ != nullptr) BrotliDecoderDestroyInstance(st_);
  }
  BrotliDecoder(const BrotliDecoder&) = delete;
  BrotliDecoder& operator=(const BrotliDecoder&) = delete;

 protected:
  Status step(std::string_view* in, char* dst, size_t room, size_t* produced) override {
    if (st_ == nullptr) return fail("brotli could not start (out of memory)");
    size_t avail_in = in->size();
    const auto* next_in = reinterpret_cast<const uint8_t*>(in->data());
    size_t avail_out = room;
    auto* next_out = reinterpret_cast<uint8_t*>(dst);
    BrotliDecoderResult r =
        BrotliDecoderDecompressStream(st_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    in->remove_prefix(in->size() - avail_in);
    *produced = room - avail_out;
    switch (r) {
      case BROTLI_DECODER_RESULT_SUCCESS:
        return Status::End;
      case BROTLI_DECODER_RESULT_ERROR:
        return fail(std::string("corrupt brotli data (") +
                    BrotliDecoderErrorString(BrotliDecoderGetErrorCode(st_)) + ")");
      default:
        return Status::Ok;  // needs more input, or more room
    }
  }

 private:
  BrotliDecoderState* st_;
};

// ------------------------------------------------------------------ encoders

class ZlibEncoder final : public Encoder {
 public:
  ZlibEncoder(Format format, int level) {
    ok_ = deflateInit2(&z_, level, Z_DEFLATED, zlib_bits(format), 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~ZlibEncoder() override {
    if (ok_) deflateEnd(&z_);
  }
  ZlibEncoder(const ZlibEncoder&) = delete;
  ZlibEncoder& operator=(const ZlibEncoder&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

  bool write(std::string_view in, Flush flush, std::string& out) override {
    if (finished_) return fail("the stream is already finished");
    do {
      size_t given = std::min(in.size(), kMaxSlice);
      bool last = given == in.size();
      if (!deflate_slice(in.substr(0, given), last ? flush : Flush::None, out)) return false;
      in.remove_prefix(given);
    } while (!in.empty());
    return true;
  }

 private:
  bool deflate_slice(std::string_view in, Flush flush, std::string& out) {
    int mode = flush == Flush::None ? Z_NO_FLUSH : flush == Flush::Sync ? Z_SYNC_FLUSH : Z_FINISH;
    z_.next_in = bytes(in.data());
    z_.avail_in = static_cast<uInt>(in.size());
    // A one-shot compression gets room for all of its output at once.
    size_t room =
        mode == Z_FINISH ? std::max<size_t>(kStep, deflateBound(&z_, static_cast<uLong>(in.size()))) : kStep;
    for (;;) {
      size_t old = out.size();
      out.resize(old + room);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      z_.avail_out = static_cast<uInt>(std::min(room, kMaxSlice));
      uInt before = z_.avail_out;
      int rc = deflate(&z_, mode);
      out.resize(old + (before - z_.avail_out));
      if (rc == Z_STREAM_END) {
        finished_ = true;
        return true;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(z_.msg != nullptr ? z_.msg : "zlib failed");
      // Done when the input is taken and the last call did not fill its room.
      if (z_.avail_in == 0 && z_.avail_out != 0 && mode != Z_FINISH) return true;
      room = kStep;
    }
  }
  bool fail(const char* why) {
    error_ = why;
    return false;
  }

  z_stream z_{};
  bool ok_ = false;
  bool finished_ = false;
};

class BrotliEncoder final : public Encoder {
 public:
  BrotliEncoder(int quality, int window) : st_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
    if (st_ == nullptr) return;
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(quality));
    if (window != 0) BrotliEncoderSetParameter(st_, BROTLI_PARAM_LGWIN, static_cast<uint32_t>(window));
  }
  ~BrotliEncoder() override {
    if (st_ != nullptr) BrotliEncoderDestroyInstance(st_);
  }
  BrotliEncoder(const BrotliEncoder&) = delete;
  BrotliEncoder& operator=(const BrotliEncoder&) = delete;
  [[nodiscard]] bool ok() const { return st_ != nullptr; }

  bool write(std::string_view in, Flush flush, std::string& out) override {
    if (finished_) {
      error_ = "the stream is already finished";
      return false;
    }
    BrotliEncoderOperation op = flush == Flush::None   ? BROTLI_OPERATION_PROCESS
                                : flush == Flush::Sync ? BROTLI_OPERATION_FLUSH
                                                       : BROTLI_OPERATION_FINISH;
    if (flush == Flush::Finish) out.reserve(out.size() + BrotliEncoderMaxCompressedSize(in.size()));
    size_t avail_in = in.size();
    const auto* next_in = reinterpret_cast<const uint8_t*>(in.data());
    for (;;) {
      size_t avail_out = 0;  // the encoder's own buffer, taken below
      if (BrotliEncoderCompressStream(st_, op, &avail_in, &next_in, &avail_out, nullptr, nullptr) ==
          BROTLI_FALSE) {
        error_ = "brotli failed";
        return false;
      }
      size_t size = 0;
      const uint8_t* data = BrotliEncoderTakeOutput(st_, &size);
      out.append(reinterpret_cast<const char*>(data), size);
      bool drained = avail_in == 0 && BrotliEncoderHasMoreOutput(st_) == BROTLI_FALSE;
      if (op == BROTLI_OPERATION_FINISH) {
        if (BrotliEncoderIsFinished(st_) == BROTLI_TRUE) {
          finished_ = true;
          return true;
        }
      } else if (drained) {
        return true;
      }
    }
  }

 private:
  BrotliEncoderState* st_;
  bool finished_ = false;
};

}  // namespace

bool parse_format(std::string_view name, Format* out) {
  if (name == "gzip") {
    *out = Format::Gzip;
  } else if (name == "deflate" || name == "zlib") {
    *out = Format::Zlib;
  } else if (name == "raw") {
    *out = Format::Raw;
  } else if (name == "auto") {
    *out = Format::Auto;
  } else if (name == "br") {
    *out = Format::Brotli;
  } else {
    return false;
  }
  return true;
}

const char* status_code(Status s) {
  switch (s) {
    case Status::TooLarge:
      return "TooLarge";
    case Status::BadData:
      return "BadData";
    default:
      return "Ok";
  }
}

Status Decoder::write(std::string_view in, std::string& out) { return run(in, out); }

Status Decoder::finish(std::string& out) {
  Status s = run({}, out);
  if (s == Status::Ok) {
    s = fail("the compressed data ended early (truncated)");
    failed_ = s;
  }
  return s;
}

Status Decoder::run(std::string_view in, std::string& out) {
  if (failed_ != Status::Ok) return failed_;
  // out never grows past what the bound lets this call produce (+1 byte).
  const size_t left = max_output_ - total_;
  const size_t size_cap = left >= SIZE_MAX - out.size() - 1 ? SIZE_MAX : out.size() + left + 1;
  for (;;) {
    if (ended_) {
      if (in.empty()) return Status::End;
      Status r = restart();
      if (r != Status::Ok) return failed_ = r;
      ended_ = false;
    }
    // Room for what the bound still allows, plus one byte to notice passing
    // it: at least a step, or all the capacity already reserved (a one-shot
    // call reserves what the gzip trailer says), in one codec call.
    size_t allowed = max_output_ - total_;
    size_t spare = std::min(out.capacity() - out.size(), kMaxSlice);
    size_t room = std::max(kStep, spare);
    if (allowed < room) room = allowed + 1;
    size_t old = out.size();
    if (old + room > out.capacity()) {
      out.reserve(std::max(old + room, std::min(out.capacity() * 2, size_cap)));  // geometric, bounded
    }
    out.resize(old + room);
    size_t produced = 0;
    size_t in_before = in.size();
    Status s = step(&in, out.data() + old, room, &produced);
    out.resize(old + produced);
    total_ += produced;
    if (total_ > max_output_) {
      out.resize(old);  // the refused output is not handed out
      error_ = "the decompressed data is larger than maxOutput (" + std::to_string(max_output_) + " bytes)";
      return failed_ = Status::TooLarge;
    }
    if (s == Status::BadData) return failed_ = s;
    if (s == Status::End) {
      ended_ = true;
      continue;
    }
    // Ok: stop once the codec has taken all input and did not fill the room,
    // or made no progress at all.
    if ((in.empty() && produced < room) || (produced == 0 && in.size() == in_before)) return Status::Ok;
  }
}

std::unique_ptr<Decoder> make_decoder(Format format, size_t max_output) {
  if (format == Format::Brotli) return std::make_unique<BrotliDecoder>(max_output);
  return std::make_unique<ZlibDecoder>(format, max_output);
}

std::unique_ptr<Encoder> make_encoder(Format format, const EncoderOptions& options) {
  if (format == Format::Brotli) {
    int quality = options.level < 0 ? BROTLI_MAX_QUALITY : options.level;
    if (quality > BROTLI_MAX_QUALITY) return nullptr;
    if (options.window != 0 &&
        (options.window < BROTLI_MIN_WINDOW_BITS || options.window > BROTLI_MAX_WINDOW_BITS))
      return nullptr;
    auto e = std::make_unique<BrotliEncoder>(quality, options.window);
    return e->ok() ? std::move(e) : nullptr;
  }
  if (format == Format::Auto || options.level < -1 || options.level > 9) return nullptr;
  auto e = std::make_unique<ZlibEncoder>(format, options.level);
  return e->ok() ? std::move(e) : nullptr;
}

size_t gzip_size_hint(std::string_view data) {
  if (data.size() < 18 || static_cast<unsigned char>(data[0]) != 0x1f ||
      static_cast<unsigned char>(data[1]) != 0x8b)
    return 0;
  const auto* t = reinterpret_cast<const unsigned char*>(data.data() + data.size() - 4);
  return static_cast<size_t>(t[0]) | static_cast<size_t>(t[1]) << 8 | static_cast<size_t>(t[2]) << 16 |
         static_cast<size_t>(t[3]) << 24;
}

uint32_t crc32(uint32_t crc, std::string_view data) {
  uLong c = crc;
  while (!data.empty()) {
    size_t n = std::min(data.size(), kMaxSlice);
    c = ::crc32(c, bytes(data.data()), static_cast<uInt>(n));
    data.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
}

}  // namespace evo::proto::compress
