#include "proto/ws_protocol.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <random>

#include "proto/encoding.h"
#include "proto/http_response.h"

namespace evo::ws {

namespace {

// ----------------------------------------------------------------- helpers

std::string base64(const unsigned char* data, size_t size) {
  std::string out;
  encoding::base64_encode(std::string_view(reinterpret_cast<const char*>(data), size), /*url=*/false, &out);
  return out;
}

void random_bytes(unsigned char* out, size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) == 1) return;
  // OpenSSL's generator could not be seeded: the kernel's is the next best.
  std::random_device device;
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(device());
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool is_control(Opcode opcode) { return (static_cast<uint8_t>(opcode) & 0x8) != 0; }

bool known_opcode(uint8_t opcode) { return opcode <= 2 || (opcode >= 8 && opcode <= 10); }

// Codes a Close frame may carry (RFC 6455 7.4.1 and the IANA registry;
// 3000-4999 belong to libraries and applications). 1004 is reserved, and
// 1005, 1006 and 1015 only ever describe a close locally.
bool valid_close_code(uint32_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// A close reason fits in a control frame with its code: 123 bytes, cut before
// a character rather than inside one.
std::string_view fit_close_reason(std::string_view reason) {
  constexpr size_t kMax = 125 - 2;
  if (reason.size() <= kMax) return reason;
  size_t end = kMax;
  while (end > 0 && (static_cast<uint8_t>(reason[end]) & 0xC0) == 0x80) --end;
  return reason.substr(0, end);
}

// XORs `size` bytes with the masking key (RFC 6455 5.3). Key byte `phase`
// applies to the first byte, so a payload can be (un)masked piece by piece.
// Eight bytes at a time: this runs over every byte a server receives.
void apply_mask(char* data, size_t size, const std::array<uint8_t, 4>& key, size_t phase) {
  std::array<uint8_t, 8> rotated{};
  for (size_t i = 0; i < rotated.size(); ++i) rotated[i] = key[(phase + i) & 3];
  uint64_t wide = 0;
  std::memcpy(&wide, rotated.data(), sizeof(wide));
  size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    uint64_t w[4];
    std::memcpy(w, data + i, sizeof(w));
    for (uint64_t& x : w) x ^= wide;
    std::memcpy(data + i, w, sizeof(w));
  }
  for (; i + 8 <= size; i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, data + i, sizeof(w));
    w ^= wide;
    std::memcpy(data + i, &w, sizeof(w));
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ rotated[i & 3]);
}

// ------------------------------------------------------------------- UTF-8

// What a lead byte announces: how many continuation bytes follow, and the
// range the first of them must be in. The narrowed ranges are what exclude
// overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
struct Utf8Lead {
  uint8_t need = 0;  // 0: not a lead byte (ASCII is handled before the table)
  uint8_t low = 0x80;
  uint8_t high = 0xBF;
};

constexpr std::array<Utf8Lead, 256> make_utf8_leads() {
  std::array<Utf8Lead, 256> leads{};
  for (int c = 0xC2; c <= 0xDF; ++c) leads[c] = {1, 0x80, 0xBF};  // C0, C1: overlong
  for (int c = 0xE0; c <= 0xEF; ++c) leads[c] = {2, 0x80, 0xBF};
  leads[0xE0] = {2, 0xA0, 0xBF};
  leads[0xED] = {2, 0x80, 0x9F};
  for (int c = 0xF0; c <= 0xF4; ++c) leads[c] = {3, 0x80, 0xBF};  // F5-FF: beyond U+10FFFF
  leads[0xF0] = {3, 0x90, 0xBF};
  leads[0xF4] = {3, 0x80, 0x8F};
  return leads;
}

constexpr std::array<Utf8Lead, 256> kUtf8Leads = make_utf8_leads();

// ------------------------------------------------ Sec-WebSocket-Extensions

struct ExtensionParam {
  std::string_view name;
  std::string value;
  bool has_value = false;
};

struct Extension {
  std::string_view name;
  std::vector<ExtensionParam> params;
};

// Splits a Sec-WebSocket-Extensions value into extensions (RFC 6455 9.1):
//   extension *( "," extension )
//   extension = token *( ";" token [ "=" ( token / quoted-string ) ] )
// with optional whitespace around the separators and empty list elements
// allowed, as in every HTTP list.
class ExtensionScanner {
 public:
  explicit ExtensionScanner(std::string_view text) : text_(text) {}

  bool parse(std::vector<Extension>* out) {
    while (true) {
      skip_spaces();
      if (at_end()) return true;
      if (eat(',')) continue;
      Extension ext;
      if (!token(&ext.name)) return false;
      skip_spaces();
      while (eat(';')) {
        ExtensionParam param;
        if (!parameter(&param)) return false;
        ext.params.push_back(std::move(param));
      }
      out->push_back(std::move(ext));
      if (at_end()) return true;
      if (!eat(',')) return false;
    }
  }

 private:
  [[nodiscard]] bool at_end() const { return pos_ >= text_.size(); }

  void skip_spaces() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }

  bool eat(char c) {
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool token(std::string_view* out) {
    size_t start = pos_;
    while (!at_end() && std::string_view(" \t,;=\"").find(text_[pos_]) == std::string_view::npos) ++pos_;
    *out = text_.substr(start, pos_ - start);
    return http::valid_header_name(*out);  // a header name is exactly a token
  }

  bool quoted(std::string* out) {
    ++pos_;  // the opening quote
    while (!at_end()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (at_end()) return false;
        c = text_[pos_++];
      }
      out->push_back(c);
    }
    return false;  // unterminated
  }

  // After ";": a name, and maybe "=" and a value. A quoted value must be a
  // token once unquoted (RFC 6455 9.1).
  bool parameter(ExtensionParam* out) {
    skip_spaces();
    if (!token(&out->name)) return false;
    skip_spaces();
    if (!eat('=')) return true;
    out->has_value = true;
    skip_spaces();
    bool ok = false;
    if (!at_end() && text_[pos_] == '"') {
      ok = quoted(&out->value) && http::valid_header_name(out->value);
    } else {
      std::string_view value;
      ok = token(&value);
      out->value.assign(value);
    }
    skip_spaces();
    return ok;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// permessage-deflate's parameters as an offer or a response states them.
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0;  // 0: absent
  bool client_max_window_bits = false;
  int client_max_window_bits_value = 0;  // 0: absent, or present without a value
};

// 8 to 15, in decimal without leading zeros (RFC 7692 7.1.2).
int parse_window_bits(std::string_view value) {
  if (value.size() == 1 && value[0] >= '8' && value[0] <= '9') return value[0] - '0';
  if (value.size() == 2 && value[0] == '1' && value[1] >= '0' && value[1] <= '5') return 10 + value[1] - '0';
  return 0;
}

// False on an unknown or repeated parameter, or a malformed value: the offer
// (or the response) is then unacceptable as a whole (RFC 7692 7.1).
bool read_deflate_params(const Extension& ext, DeflateParams* out) {
  for (const ExtensionParam& p : ext.params) {  // NOLINT(readability-use-anyofallof): it fills *out too
    if (equals_ignoring_case(p.name, "server_no_context_takeover")) {
      if (p.has_value || out->server_no_context_takeover) return false;
      out->server_no_context_takeover = true;
    } else if (equals_ignoring_case(p.name, "client_no_context_takeover")) {
      if (p.has_value || out->client_no_context_takeover) return false;
      out->client_no_context_takeover = true;
    } else if (equals_ignoring_case(p.name, "server_max_window_bits")) {
      if (!p.has_value || out->server_max_window_bits != 0) return false;
      out->server_max_window_bits = parse_window_bits(p.value);
      if (out->server_max_window_bits == 0) return false;
    } else if (equals_ignoring_case(p.name, "client_max_window_bits")) {
      if (out->client_max_window_bits) return false;
      out->client_max_window_bits = true;
      if (p.has_value) {
        out->client_max_window_bits_value = parse_window_bits(p.value);
        if (out->client_max_window_bits_value == 0) return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

constexpr std::string_view kDeflateName = "permessage-deflate";

}  // namespace

// ---------------------------------------------------------------- handshake

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 1.3
  std::string input;
  input.reserve(client_key.size() + kGuid.size());
  input.append(client_key).append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof(digest));
}

std::string make_client_key() {
  unsigned char nonce[16];
  random_bytes(nonce, sizeof(nonce));
  return base64(nonce, sizeof(nonce));
}

bool valid_client_key(std::string_view key) {
  // 16 bytes are 22 base64 characters and "==". The 4 bits the last character
  // carries beyond the 128 are not checked: they are dropped when decoding.
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  return std::all_of(key.begin(), key.begin() + 22, is_base64_char);
}

// ------------------------------------------------------- permessage-deflate

bool negotiate_deflate(std::string_view offer_header, DeflateOptions* out, std::string* response_value) {
  std::vector<Extension> offers;
  if (!ExtensionScanner(offer_header).parse(&offers)) return false;
  for (const Extension& offer : offers) {
    DeflateParams params;
    if (!equals_ignoring_case(offer.name, kDeflateName) || !read_deflate_params(offer, &params)) continue;
    DeflateOptions options;
    std::string response(kDeflateName);
    if (params.server_no_context_takeover) {
      options.server_no_context_takeover = true;
      response += "; server_no_context_takeover";
    }
    if (params.client_no_context_takeover) {
      options.client_no_context_takeover = true;
      response += "; client_no_context_takeover";
    }
    if (params.server_max_window_bits != 0) {
      options.server_max_window_bits = params.server_max_window_bits;
      response += "; server_max_window_bits=" + std::to_string(params.server_max_window_bits);
    }
    if (params.client_max_window_bits_value != 0) {
      options.client_max_window_bits = params.client_max_window_bits_value;
      response += "; client_max_window_bits=" + std::to_string(params.client_max_window_bits_value);
    }
    *out = options;
    *response_value = std::move(response);
    return true;
  }
  return false;
}

std::string client_deflate_offer() { return std::string(kDeflateName) + "; client_max_window_bits"; }

bool parse_deflate_response(std::string_view header, DeflateOptions* out) {
  std::vector<Extension> accepted;
  if (!ExtensionScanner(header).parse(&accepted)) return false;
  // We offered one extension: the server may accept it, once, and nothing else.
  if (accepted.size() != 1 || !equals_ignoring_case(accepted[0].name, kDeflateName)) return false;
  DeflateParams params;
  if (!read_deflate_params(accepted[0], &params)) return false;
  // In a response client_max_window_bits must say how many (RFC 7692 7.1.2.2).
  if (params.client_max_window_bits && params.client_max_window_bits_value == 0) return false;
  DeflateOptions options;
  options.server_no_context_takeover = params.server_no_context_takeover;
  options.client_no_context_takeover = params.client_no_context_takeover;
  if (params.server_max_window_bits != 0) options.server_max_window_bits = params.server_max_window_bits;
  if (params.client_max_window_bits_value != 0) {
    options.client_max_window_bits = params.client_max_window_bits_value;
  }
  *out = options;
  return true;
}

// ------------------------------------------------------------------- UTF-8

bool Utf8Validator::feed(std::string_view piece) {
  if (invalid_) return false;
  const auto* s = reinterpret_cast<const uint8_t*>(piece.data());
  size_t n = piece.size();
  size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      // Between characters: skip ASCII eight bytes at a time.
      while (i + 8 <= n) {
        uint64_t word = 0;
        std::memcpy(&word, s + i, sizeof(word));
        if ((word & 0x8080808080808080ULL) != 0) break;
        i += 8;
      }
      while (i < n && s[i] < 0x80) ++i;
      if (i == n) break;
      const Utf8Lead& lead = kUtf8Leads[s[i]];
      if (lead.need == 0) {
        invalid_ = true;
        return false;
      }
      need_ = lead.need;
      low_ = lead.low;
      high_ = lead.high;
      ++i;
    }
    while (need_ > 0 && i < n) {
      if (s[i] < low_ || s[i] > high_) {
        invalid_ = true;
        return false;
      }
      low_ = 0x80;
      high_ = 0xBF;
      --need_;
      ++i;
    }
  }
  return true;
}

bool valid_utf8(std::string_view text) {
  Utf8Validator validator;
  return validator.feed(text) && validator.complete();
}

// --------------------------------------------------------------- compression

namespace {

// zlib's counters are 32-bit: larger inputs go through in slices.
constexpr size_t kMaxZlibSlice = size_t{1} << 30;

// The most output offered to one inflate call.
constexpr size_t kMaxInflateChunk = size_t{256} * 1024;

// zlib refuses a raw deflate window of 8 bits. 9 is safe in its place: zlib
// never reaches back further than the window minus 262 bytes, so with 9 bits
// no distance exceeds 250, within the 256 the peer allowed.
int deflate_window_bits(int bits) { return std::clamp(bits, 9, 15); }

}  // namespace

// A zlib stream, ended the way it was begun. It never moves once begun
// (zlib's state points back at it), so it lives behind a unique_ptr.
class ZStream {
 public:
  enum class Kind : uint8_t { Deflate, Inflate };

  ZStream(Kind kind, int window_bits) : kind_(kind) {
    // Negative window bits: raw DEFLATE, no zlib header or checksum (RFC 7692 7.2).
    int rc = kind == Kind::Deflate
                 ? deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY)
                 : inflateInit2(&z_, -window_bits);
    if (rc != Z_OK) throw std::bad_alloc();  // zlib fails only for want of memory here
  }
  ZStream(const ZStream&) = delete;
  ZStream& operator=(const ZStream&) = delete;
  ~ZStream() {
    if (kind_ == Kind::Deflate) {
      deflateEnd(&z_);
    } else {
      inflateEnd(&z_);
    }
  }

  z_stream* get() { return &z_; }

 private:
  z_stream z_{};
  Kind kind_;
};

Compressor::Compressor(int window_bits, bool no_context_takeover)
    : stream_(std::make_unique<ZStream>(ZStream::Kind::Deflate, deflate_window_bits(window_bits))),
      no_context_takeover_(no_context_takeover) {}

Compressor::Compressor(Compressor&&) noexcept = default;
Compressor& Compressor::operator=(Compressor&&) noexcept = default;
Compressor::~Compressor() = default;

void Compressor::compress(std::string_view data, bool last, std::string* out) {
  z_stream* z = stream_->get();
  size_t start = out->size();
  const char* next = data.data();
  size_t left = data.size();
  do {
    size_t slice = std::min(left, kMaxZlibSlice);
    left -= slice;
    int flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    z->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next));  // zlib's API is not const
    z->avail_in = static_cast<uInt>(slice);
    next += slice;
    // deflate stops when the input is used up (and, flushing, all is out) or
    // the output is full: then it needs more room.
    do {
      size_t room = size_t{z->avail_in} + z->avail_in / 16 + 64;
      size_t old = out->size();
      out->resize(old + room);
      z->next_out = reinterpret_cast<Bytef*>(out->data() + old);
      z->avail_out = static_cast<uInt>(room);
      deflate(z, flush);  // Z_OK, or Z_BUF_ERROR when there was nothing left to do
      out->resize(old + room - z->avail_out);
    } while (z->avail_out == 0);
  } while (left > 0);
  if (!last) return;
  // A sync flush ends with an empty stored block, 00 00 ff ff, which the
  // receiver appends itself (RFC 7692 7.2.1). When zlib had nothing to flush
  // (an empty message right after another), the message is the bare header
  // of such a block: 00, completed by the receiver's tail.
  static constexpr std::string_view kTail("\x00\x00\xff\xff", 4);
  if (out->size() - start >= kTail.size() && std::string_view(*out).substr(out->size() - 4) == kTail) {
    out->resize(out->size() - kTail.size());
  } else if (out->size() == start) {
    out->push_back('\0');
  }
  if (no_context_takeover_) deflateReset(z);
}

Decompressor::Decompressor(int window_bits, bool no_context_takeover)
    : stream_(std::make_unique<ZStream>(ZStream::Kind::Inflate, std::clamp(window_bits, 8, 15))),
      no_context_takeover_(no_context_takeover) {}

Decompressor::Decompressor(Decompressor&&) noexcept = default;
Decompressor& Decompressor::operator=(Decompressor&&) noexcept = default;
Decompressor::~Decompressor() = default;

Decompressor::Status Decompressor::inflate(std::string_view data, size_t limit, std::string* out) {
  z_stream* z = stream_->get();
  const char* next = data.data();
  size_t left = data.size();
  while (left > 0 && !stream_ended_) {
    size_t slice = std::min(left, kMaxZlibSlice);
    z->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next));
    z->avail_in = static_cast<uInt>(slice);
    next += slice;
    left -= slice;
    // inflate stops when the input is used up or the output is full; a full
    // output may hide more to come even without input. The room offered
    // starts near what the input likely expands to (small messages stay
    // cheap: each one is a fresh buffer) and doubles while it is not enough.
    size_t chunk = std::clamp<size_t>(size_t{z->avail_in} * 4, 64, kMaxInflateChunk);
    while (true) {
      if (out->size() > limit) return Status::TooBig;
      // At most one byte past the limit: enough to see it exceeded.
      size_t room = std::min(limit - out->size(), chunk - 1) + 1;
      chunk = std::min(chunk * 2, kMaxInflateChunk);
      size_t old = out->size();
      out->resize(old + room);
      z->next_out = reinterpret_cast<Bytef*>(out->data() + old);
      z->avail_out = static_cast<uInt>(room);
      int rc = ::inflate(z, Z_SYNC_FLUSH);
      out->resize(old + room - z->avail_out);
      if (out->size() > limit) return Status::TooBig;
      if (rc == Z_STREAM_END) {
        stream_ended_ = true;  // what follows in this message is ignored
        break;
      }
      if (rc == Z_BUF_ERROR) break;  // nothing more to do without input
      if (rc != Z_OK) return Status::Corrupt;
      if (z->avail_out != 0) break;
    }
  }
  return Status::Ok;
}

Decompressor::Status Decompressor::finish_message(size_t limit, std::string* out) {
  Status status = Status::Ok;
  if (!stream_ended_) {
    static constexpr std::string_view kTail("\x00\x00\xff\xff", 4);
    status = inflate(kTail, limit, out);
    // The tail is an empty stored block: after it the stream must stand
    // between blocks, or the message stopped inside one.
    if (status == Status::Ok && !stream_ended_ && (stream_->get()->data_type & 128) == 0)
      status = Status::Corrupt;
  }
  if (stream_ended_ || no_context_takeover_) restart_stream();
  return status;
}

void Decompressor::restart_stream() {
  z_stream* z = stream_->get();
  if (no_context_takeover_) {
    inflateReset(z);
  } else {
    // The sender closed its stream but context takeover still holds: the
    // next message may refer back to this one, so the window carries over.
    std::vector<Bytef> window(32768);
    uInt size = static_cast<uInt>(window.size());
    inflateGetDictionary(z, window.data(), &size);
    inflateReset(z);
    inflateSetDictionary(z, window.data(), size);
  }
  stream_ended_ = false;
}

// ------------------------------------------------------------------ session

Session::Session(Role role, Limits limits, const DeflateOptions* deflate) : role_(role), limits_(limits) {
  if (deflate == nullptr) return;
  // Each end compresses with its own half of the parameters and inflates with the peer's.
  bool server = role == Role::Server;
  compressor_.emplace(server ? deflate->server_max_window_bits : deflate->client_max_window_bits,
                      server ? deflate->server_no_context_takeover : deflate->client_no_context_takeover);
  decompressor_.emplace(server ? deflate->client_max_window_bits : deflate->server_max_window_bits,
                        server ? deflate->client_no_context_takeover : deflate->server_no_context_takeover);
}

Session::~Session() = default;

bool Session::feed(std::string_view data, std::vector<Event>* events) {
  if (failed_) return false;
  const char* next = data.data();
  size_t left = data.size();
  while (!close_received_) {
    if (!in_payload_) {
      if (!read_header(&next, &left)) return !failed_;
      in_payload_ = true;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(left, frame_.length - frame_.received));
    if (take > 0 && !take_payload(next, take)) return false;
    next += take;
    left -= take;
    if (frame_.received < frame_.length) return true;  // the rest comes with the next read
    in_payload_ = false;
    if (!end_frame(events)) return false;
  }
  return true;  // after the peer's Close nothing more is read
}

// Collects the frame header, which may arrive in pieces: the first two bytes
// say how long the rest is. True when it is whole and acceptable; false when
// more bytes are needed, or the frame is refused (failed_).
bool Session::read_header(const char** data, size_t* size) {
  auto collect = [&](size_t want) {
    size_t take = std::min(want - header_have_, *size);
    if (take == 0) return;
    std::memcpy(header_.data() + header_have_, *data, take);
    header_have_ += take;
    *data += take;
    *size -= take;
  };
  if (header_have_ < 2) {
    collect(2);
    if (header_have_ < 2) return false;
    if (!check_frame_start()) return false;
  }
  uint8_t length7 = header_[1] & 0x7F;
  size_t want = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (frame_.masked ? 4 : 0);
  collect(want);
  if (header_have_ < want) return false;
  header_have_ = 0;
  return check_frame_length();
}

// The rules the first two header bytes can break, checked before the rest
// arrives (RFC 6455 5.2-5.5).
bool Session::check_frame_start() {
  uint8_t b0 = header_[0];
  uint8_t b1 = header_[1];
  if ((b0 & 0x30) != 0) return fail(1002, "RSV2 or RSV3 set, no extension defines them");
  uint8_t opcode = b0 & 0x0F;
  if (!known_opcode(opcode)) return fail(1002, "reserved opcode " + std::to_string(opcode));
  frame_ = Frame();
  frame_.opcode = static_cast<Opcode>(opcode);
  frame_.fin = (b0 & 0x80) != 0;
  frame_.rsv1 = (b0 & 0x40) != 0;
  frame_.masked = (b1 & 0x80) != 0;
  // Clients mask everything they send and servers nothing (RFC 6455 5.1).
  if (role_ == Role::Server && !frame_.masked) return fail(1002, "unmasked frame from a client");
  if (role_ == Role::Client && frame_.masked) return fail(1002, "masked frame from a server");
  if (is_control(frame_.opcode)) {
    if (!frame_.fin) return fail(1002, "fragmented control frame");
    if ((b1 & 0x7F) > 125) return fail(1002, "control frame payload over 125 bytes");
    if (frame_.rsv1) return fail(1002, "RSV1 set on a control frame");
    return true;
  }
  if (frame_.opcode == Opcode::Continuation) {
    if (!in_message_) return fail(1002, "continuation frame without a message to continue");
    // permessage-deflate marks a message on its first frame only (RFC 7692 6).
    if (frame_.rsv1) return fail(1002, "RSV1 set on a continuation frame");
  } else {
    if (in_message_) return fail(1002, "new message before the fragmented one ended");
    if (frame_.rsv1 && !decompressor_) return fail(1002, "RSV1 set without permessage-deflate");
  }
  return true;
}

// The length (any of the three encodings, minimal or not: RFC 6455 allows
// both) and the masking key, then the limits.
bool Session::check_frame_length() {
  uint8_t length7 = header_[1] & 0x7F;
  size_t pos = 2;
  uint64_t length = length7;
  if (length7 == 126) {
    length = (uint64_t{header_[2]} << 8) | header_[3];
    pos = 4;
  } else if (length7 == 127) {
    length = 0;
    for (size_t i = 2; i < 10; ++i) length = (length << 8) | header_[i];
    pos = 10;
    if ((length >> 63) != 0) return fail(1002, "frame length with the most significant bit set");
  }
  if (frame_.masked) std::memcpy(frame_.mask.data(), header_.data() + pos, 4);
  frame_.length = length;
  if (length > limits_.max_frame) {
    return fail(1009, "frame of " + std::to_string(length) + " bytes, over the limit");
  }
  if (is_control(frame_.opcode)) return true;
  if (frame_.opcode != Opcode::Continuation) {
    in_message_ = true;
    message_binary_ = frame_.opcode == Opcode::Binary;
    message_compressed_ = frame_.rsv1;
    message_.clear();
    utf8_.reset();
  }
  // A compressed message is measured as it inflates; a plain one can be
  // refused now, before its payload arrives.
  if (!message_compressed_) {
    if (length > limits_.max_message - message_.size()) return fail(1009, "message over the limit");
    // Room for a one-frame message at once; a header alone may not claim much.
    if (frame_.opcode != Opcode::Continuation) message_.reserve(std::min<uint64_t>(length, 1 << 20));
  }
  return true;
}

bool Session::take_payload(const char* data, size_t size) {
  auto phase = static_cast<size_t>(frame_.received & 3);
  frame_.received += size;
  if (is_control(frame_.opcode)) {
    size_t at = control_.size();
    control_.append(data, size);
    if (frame_.masked) apply_mask(control_.data() + at, size, frame_.mask, phase);
    return true;
  }
  if (message_compressed_) {
    if (frame_.masked) {
      unmasked_.assign(data, size);
      apply_mask(unmasked_.data(), size, frame_.mask, phase);
      data = unmasked_.data();
    }
    size_t at = message_.size();
    return check_inflated(decompressor_->inflate({data, size}, limits_.max_message, &message_), at);
  }
  size_t at = message_.size();
  message_.append(data, size);
  if (frame_.masked) apply_mask(message_.data() + at, size, frame_.mask, phase);
  // Text is checked as it comes, so that an invalid message fails at once.
  if (!message_binary_ && !utf8_.feed({message_.data() + at, size})) {
    return fail(1007, "invalid UTF-8 in a text message");
  }
  return true;
}

// After inflating into message_ from `from` on.
bool Session::check_inflated(Decompressor::Status status, size_t from) {
  if (status == Decompressor::Status::TooBig) return fail(1009, "message over the limit once inflated");
  if (status == Decompressor::Status::Corrupt) return fail(1007, "compressed data that does not inflate");
  if (!message_binary_ && !utf8_.feed(std::string_view(message_).substr(from))) {
    return fail(1007, "invalid UTF-8 in a text message");
  }
  return true;
}

bool Session::end_frame(std::vector<Event>* events) {
  if (is_control(frame_.opcode)) return handle_control(events);
  return frame_.fin ? end_message(events) : true;
}

bool Session::end_message(std::vector<Event>* events) {
  if (message_compressed_) {
    size_t at = message_.size();
    if (!check_inflated(decompressor_->finish_message(limits_.max_message, &message_), at)) return false;
  }
  if (!message_binary_ && !utf8_.complete()) return fail(1007, "text message ends inside a UTF-8 sequence");
  in_message_ = false;
  events->push_back(Event{Event::Kind::Message, message_binary_, std::move(message_), 0});
  message_.clear();
  return true;
}

bool Session::handle_control(std::vector<Event>* events) {
  switch (frame_.opcode) {
    case Opcode::Close:
      return handle_close(events);
    case Opcode::Ping:
      // Answered at once with the same payload (RFC 6455 5.5.2).
      if (!close_sent_) write_frame(Opcode::Pong, true, false, control_);
      events->push_back(Event{Event::Kind::Ping, false, std::move(control_), 0});
      break;
    default:
      events->push_back(Event{Event::Kind::Pong, false, std::move(control_), 0});
      break;
  }
  control_.clear();
  return true;
}

// RFC 6455 5.5.1 and 7.1.5: no payload, or a valid code and a UTF-8 reason.
bool Session::handle_close(std::vector<Event>* events) {
  uint16_t code = 1005;  // "no status received"
  std::string_view reason;
  if (control_.size() == 1) return fail(1002, "close frame with a one-byte payload");
  if (control_.size() >= 2) {
    code =
        static_cast<uint16_t>((static_cast<uint8_t>(control_[0]) << 8) | static_cast<uint8_t>(control_[1]));
    if (!valid_close_code(code)) return fail(1002, "close frame with invalid code " + std::to_string(code));
    reason = std::string_view(control_).substr(2);
    if (!valid_utf8(reason)) return fail(1007, "close reason is not valid UTF-8");
  }
  close_received_ = true;
  if (!close_sent_) {
    write_close(code, {});  // echo the code; a close without one is answered without one
    close_sent_ = true;
  }
  events->push_back(Event{Event::Kind::Close, false, std::string(reason), code});
  control_.clear();
  return true;
}

bool Session::fail(uint16_t code, std::string reason) {
  failed_ = true;
  failure_code_ = code;
  failure_reason_ = std::move(reason);
  if (!close_sent_) {
    write_close(code, failure_reason_);
    close_sent_ = true;
  }
  return false;
}

// ----------------------------------------------------------------- sending

bool Session::send_message(std::string_view data, bool binary) {
  if (close_sent_ || sending_fragmented_) return false;
  Opcode opcode = binary ? Opcode::Binary : Opcode::Text;
  if (compressor_ && data.size() >= kMinCompressedMessage) {
    compressed_.clear();
    compressor_->compress(data, true, &compressed_);
    write_frame(opcode, true, true, compressed_);
  } else {
    write_frame(opcode, true, false, data);
  }
  return true;
}

bool Session::send_fragment(std::string_view data, bool binary, bool first, bool fin) {
  if (close_sent_ || first == sending_fragmented_) return false;
  if (first) sending_compressed_ = compressor_.has_value();
  Opcode opcode = !first ? Opcode::Continuation : binary ? Opcode::Binary : Opcode::Text;
  if (sending_compressed_) {
    compressed_.clear();
    compressor_->compress(data, fin, &compressed_);
    write_frame(opcode, fin, first, compressed_);
  } else {
    write_frame(opcode, fin, false, data);
  }
  sending_fragmented_ = !fin;
  return true;
}

bool Session::send_ping(std::string_view payload) {
  if (close_sent_ || payload.size() > 125) return false;
  write_frame(Opcode::Ping, true, false, payload);
  return true;
}

bool Session::send_pong(std::string_view payload) {
  if (close_sent_ || payload.size() > 125) return false;
  write_frame(Opcode::Pong, true, false, payload);
  return true;
}

bool Session::send_close(uint16_t code, std::string_view reason) {
  if (close_sent_) return false;
  if (code != 0 && code != 1005 && !valid_close_code(code)) return false;
  write_close(code, reason);
  close_sent_ = true;
  return true;
}

std::string Session::take_output() {
  std::string out;
  out.swap(out_);
  return out;
}

void Session::write_close(uint16_t code, std::string_view reason) {
  if (code == 0 || code == 1005) {
    write_frame(Opcode::Close, true, false, {});
    return;
  }
  reason = fit_close_reason(reason);
  char payload[125];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xFF);
  std::copy(reason.begin(), reason.end(), payload + 2);  // not memcpy: an empty view may hold nullptr
  write_frame(Opcode::Close, true, false, {payload, 2 + reason.size()});
}

void Session::write_frame(Opcode opcode, bool fin, bool rsv1, std::string_view payload) {
  std::array<uint8_t, 14> header{};
  size_t n = 0;
  header[n++] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<uint8_t>(opcode));
  bool masked = role_ == Role::Client;
  uint8_t mask_bit = masked ? 0x80 : 0;
  uint64_t size = payload.size();
  if (size < 126) {
    header[n++] = static_cast<uint8_t>(mask_bit | size);
  } else if (size <= 0xFFFF) {
    header[n++] = mask_bit | 126;
    header[n++] = static_cast<uint8_t>(size >> 8);
    header[n++] = static_cast<uint8_t>(size);
  } else {
    header[n++] = mask_bit | 127;
    for (int shift = 56; shift >= 0; shift -= 8) header[n++] = static_cast<uint8_t>(size >> shift);
  }
  std::array<uint8_t, 4> key{};
  if (masked) {
    key = next_mask_key();
    std::memcpy(header.data() + n, key.data(), key.size());
    n += key.size();
  }
  out_.append(reinterpret_cast<const char*>(header.data()), n);
  size_t at = out_.size();
  out_.append(payload);
  if (masked) apply_mask(out_.data() + at, payload.size(), key, 0);
}

// A fresh unpredictable key per frame (RFC 6455 5.3), from the CSPRNG in
// batches: one RAND_bytes call per 64 frames instead of one per frame.
std::array<uint8_t, 4> Session::next_mask_key() {
  if (mask_pool_used_ == mask_pool_.size()) {
    random_bytes(mask_pool_.data(), mask_pool_.size());
    mask_pool_used_ = 0;
  }
  std::array<uint8_t, 4> key{};
  std::memcpy(key.data(), mask_pool_.data() + mask_pool_used_, key.size());
  mask_pool_used_ += key.size();
  return key;
}

}  // namespace evo::ws
