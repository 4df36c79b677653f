#include "proto/json_write.h"

#include <charconv>
#include <cmath>
#include <new>

#include <simdjson.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace evo::json {
namespace {

// What each byte becomes inside a JSON string: 0 = itself, 'u' = \u00XX,
// else the letter after the backslash.
struct EscapeTable {
  char code[256] = {};
  constexpr EscapeTable() {
    for (int c = 0; c < 0x20; ++c) code[c] = 'u';
    code[static_cast<int>('\b')] = 'b';
    code[static_cast<int>('\f')] = 'f';
    code[static_cast<int>('\n')] = 'n';
    code[static_cast<int>('\r')] = 'r';
    code[static_cast<int>('\t')] = 't';
    code[static_cast<int>('"')] = '"';
    code[static_cast<int>('\\')] = '\\';
  }
};
constexpr EscapeTable kEscape;
constexpr char kHex[] = "0123456789abcdef";

// Writes the escape for c at out; returns its length.
size_t write_escape(char* out, unsigned char c) {
  char e = kEscape.code[c];
  out[0] = '\\';
  if (e != 'u') {
    out[1] = e;
    return 2;
  }
  out[1] = 'u';
  out[2] = '0';
  out[3] = '0';
  out[4] = kHex[c >> 4];
  out[5] = kHex[c & 15];
  return 6;
}

}  // namespace

void Writer::grow(size_t n) {
  size_t want = cap_ * 2;
  if (want < size_ + n) want = size_ + n;
  if (want < 4096) want = 4096;
  char* p = static_cast<char*>(std::realloc(data_.get(), want));
  if (p == nullptr) throw std::bad_alloc();
  (void)data_.release();
  data_.reset(p);
  cap_ = want;
}

void Writer::trim(size_t keep) {
  if (cap_ <= keep) return;
  data_.reset();
  size_ = cap_ = 0;
}

void Writer::newline(std::string_view indent, int depth) {
  reserve(1 + indent.size() * static_cast<size_t>(depth));
  put_unchecked('\n');
  for (int i = 0; i < depth; ++i) {
    std::memcpy(data_.get() + size_, indent.data(), indent.size());
    size_ += indent.size();
  }
}

namespace {

// Word-at-a-time test (the classic bit tricks): whether any byte of w is
// below 0x20, a quote or a backslash. Exact as a yes/no answer, which is
// all it is used for.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;
constexpr uint64_t zero_bytes(uint64_t w) { return (w - kOnes) & ~w; }
constexpr bool needs_escape(uint64_t w) {
  return (((w - 0x20 * kOnes) & ~w) | zero_bytes(w ^ ('"' * kOnes)) | zero_bytes(w ^ ('\\' * kOnes))) &
         kHighs;
}
static_assert(needs_escape(0x6161616161611f61ULL) && needs_escape(0x6161616122616161ULL) &&
              needs_escape(0x5c61616161616161ULL) && !needs_escape(0x7f2120ff80615d5bULL));

// Copies 4..16 bytes that need no escaping with two overlapping words;
// false (nothing written) when one does. high collects their top bits.
template <typename Word>
bool copy_plain(char* out, const unsigned char* p, size_t n, uint64_t* high) {
  Word a;
  Word b;
  std::memcpy(&a, p, sizeof a);
  std::memcpy(&b, p + n - sizeof b, sizeof b);
  // A 4-byte word is tested as two copies of itself (no zero bytes made up).
  uint64_t wa = sizeof(Word) == 8 ? a : a | (static_cast<uint64_t>(a) << 32);
  uint64_t wb = sizeof(Word) == 8 ? b : b | (static_cast<uint64_t>(b) << 32);
  if (needs_escape(wa) || needs_escape(wb)) return false;
  *high |= (wa | wb) & kHighs;
  std::memcpy(out, &a, sizeof a);
  std::memcpy(out + n - sizeof b, &b, sizeof b);
  return true;
}

}  // namespace

bool Writer::string(std::string_view s) {
  // Worst case: every byte becomes \u00XX, plus the quotes.
  reserve(s.size() * 6 + 2);
  char* out = data_.get() + size_;
  char* const start = out;
  *out++ = '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* const end = p + s.size();
  uint64_t high = 0;  // any byte >= 0x80 seen: check UTF-8 once at the end
#if defined(__SSE2__)
  // 16 bytes at a time: copy them whole unless one needs escaping.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i below = _mm_set1_epi8(static_cast<char>(0x20 ^ 0x80));  // unsigned < 0x20, as signed
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmplt_epi8(_mm_xor_si128(v, flip), below));
    high |= static_cast<unsigned>(_mm_movemask_epi8(v));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), v);
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
    if (mask == 0) {
      p += 16;
      out += 16;
      continue;
    }
    int k = __builtin_ctz(mask);  // bytes before k are already copied
    out += k;
    p += k;
    out += write_escape(out, *p++);
  }
#endif
  // The last 4..16 bytes (the whole of most keys): two overlapping words,
  // copied as they are when neither holds a byte to escape.
  auto rest = static_cast<size_t>(end - p);
  if (rest >= 4 && rest <= 16 &&
      (rest >= 8 ? copy_plain<uint64_t>(out, p, rest, &high) : copy_plain<uint32_t>(out, p, rest, &high))) {
    out += rest;
    p = end;
  }
  for (; p < end; ++p) {
    unsigned char c = *p;
    high |= c & 0x80;
    if (kEscape.code[c] == 0) {
      *out++ = static_cast<char>(c);
    } else {
      out += write_escape(out, c);
    }
  }
  *out++ = '"';
  size_ += static_cast<size_t>(out - start);
  // Non-ASCII text is checked in one SIMD pass (simdjson's validator).
  return high == 0 || simdjson::validate_utf8(s.data(), s.size());
}

void Writer::integer(int64_t v) {
  reserve(24);
  auto r = std::to_chars(data_.get() + size_, data_.get() + size_ + 24, v);
  size_ = static_cast<size_t>(r.ptr - data_.get());
}

void Writer::unsigned_integer(uint64_t v) {
  reserve(24);
  auto r = std::to_chars(data_.get() + size_, data_.get() + size_ + 24, v);
  size_ = static_cast<size_t>(r.ptr - data_.get());
}

void Writer::number(double v) {
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (v >= -kExact && v <= kExact && v == std::floor(v)) {
    if (v == 0 && std::signbit(v)) {
      append("-0.0");  // keeps the sign through a decode
      return;
    }
    integer(static_cast<int64_t>(v));
    return;
  }
  reserve(32);
  char* begin = data_.get() + size_;
  auto r = std::to_chars(begin, begin + 32, v);
  if (std::memchr(begin, '.', r.ptr - begin) == nullptr &&
      std::memchr(begin, 'e', r.ptr - begin) == nullptr) {
    // A large integral double came out as digits alone ("1234...0000"):
    // write it with an exponent so no reader takes it for a 64-bit integer.
    r = std::to_chars(begin, begin + 32, v, std::chars_format::scientific);
  }
  size_ = static_cast<size_t>(r.ptr - data_.get());
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* const end = p + s.size();
  while (p < end) {
    // Skip ASCII 8 bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ULL) != 0) break;
      p += 8;
    }
    if (p == end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    auto cont = [&](ptrdiff_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
      return end - p > k && p[k] >= lo && p[k] <= hi;
    };
    size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = cont(1) ? 2 : 0;
    } else if (c == 0xE0) {
      n = cont(1, 0xA0) && cont(2) ? 3 : 0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      n = cont(1) && cont(2) ? 3 : 0;
    } else if (c == 0xED) {
      n = cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    } else if (c == 0xF0) {
      n = cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = cont(1) && cont(2) && cont(3) ? 4 : 0;
    } else if (c == 0xF4) {
      n = cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    }
    if (n == 0) return false;
    p += n;
  }
  return true;
}

}  // namespace evo::json
