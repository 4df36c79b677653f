#include "proto/encoding.h"

#include <array>
#include <cstdio>
#include <cstring>

namespace evo::encoding {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kHex[] = "0123456789abcdef";

// Decode table classes beyond the 6-bit values 0..63.
constexpr uint8_t kInvalid = 0xFF;
constexpr uint8_t kSpace = 0xFE;
constexpr uint8_t kPad = 0xFD;

using Table = std::array<uint8_t, 256>;

constexpr Table decode_table(const char* alphabet, bool whitespace) {
  Table t{};
  for (auto& v : t) v = kInvalid;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<uint8_t>(i);
  t['='] = kPad;
  if (whitespace) {
    for (char c : {' ', '\t', '\r', '\n'}) t[static_cast<uint8_t>(c)] = kSpace;
  }
  return t;
}

constexpr Table kDecStd = decode_table(kStd, true);
constexpr Table kDecUrl = decode_table(kUrl, false);

constexpr Table hex_table() {
  Table t{};
  for (auto& v : t) v = kInvalid;
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 6; ++i) {
    t['a' + i] = static_cast<uint8_t>(10 + i);
    t['A' + i] = static_cast<uint8_t>(10 + i);
  }
  return t;
}

constexpr Table kDecHex = hex_table();

// Pairs of hex digits for every byte: one table load per input byte.
constexpr std::array<char, 512> hex_pairs() {
  std::array<char, 512> t{};
  for (int i = 0; i < 256; ++i) {
    t[2 * i] = kHex[i >> 4];
    t[2 * i + 1] = kHex[i & 15];
  }
  return t;
}

constexpr std::array<char, 512> kHexPairs = hex_pairs();

bool fail(DecodeError* err, DecodeError::Kind kind, size_t offset, char ch = 0) {
  if (err != nullptr) *err = DecodeError{kind, offset, ch};
  return false;
}

// The careful base64 path: whitespace, padding, errors. Picks up at `i`
// with no partial group pending (the fast loop stops on a group boundary).
bool base64_decode_slow(std::string_view in, size_t i, const Table& dec, std::string* out, DecodeError* err) {
  uint32_t acc = 0;
  int count = 0;  // 6-bit values in acc
  size_t last = 0;
  for (; i < in.size(); ++i) {
    uint8_t v = dec[static_cast<uint8_t>(in[i])];
    if (v < 64) {
      acc = (acc << 6) | v;
      last = i;
      if (++count == 4) {
        out->push_back(static_cast<char>(acc >> 16));
        out->push_back(static_cast<char>(acc >> 8));
        out->push_back(static_cast<char>(acc));
        acc = 0;
        count = 0;
      }
      continue;
    }
    if (v == kSpace) continue;
    if (v == kPad) break;
    return fail(err, DecodeError::Kind::BadChar, i, in[i]);
  }
  if (count == 1) return fail(err, DecodeError::Kind::BadLength, last);
  if (i < in.size()) {
    // Padding: exactly the '=' the last group lacks, then only whitespace.
    if (count == 0) return fail(err, DecodeError::Kind::BadPadding, i);
    int pads = 0;
    for (; i < in.size(); ++i) {
      uint8_t v = dec[static_cast<uint8_t>(in[i])];
      if (v == kSpace) continue;
      if (v != kPad || ++pads > 4 - count) return fail(err, DecodeError::Kind::BadPadding, i);
    }
    if (pads != 4 - count) return fail(err, DecodeError::Kind::BadPadding, in.size());
  }
  if (count == 2) {
    out->push_back(static_cast<char>(acc >> 4));
  } else if (count == 3) {
    out->push_back(static_cast<char>(acc >> 10));
    out->push_back(static_cast<char>(acc >> 2));
  }
  return true;
}

}  // namespace

std::string DecodeError::message(const char* what) const {
  std::string m;
  switch (kind) {
    case Kind::None:
      return "no error";
    case Kind::BadChar: {
      auto c = static_cast<unsigned char>(ch);
      char shown[32];
      if (c >= 0x20 && c < 0x7f) {
        std::snprintf(shown, sizeof(shown), "character '%c'", c);
      } else {
        std::snprintf(shown, sizeof(shown), "byte 0x%02x", c);
      }
      m = std::string("invalid ") + what + " " + shown;
      break;
    }
    case Kind::BadLength:
      m = std::string("truncated ") + what + " input";
      break;
    case Kind::BadPadding:
      m = std::string("bad ") + what + " padding";
      break;
  }
  return m + " at position " + std::to_string(offset + 1);
}

void base64_encode(std::string_view in, bool url, std::string* out) {
  const char* a = url ? kUrl : kStd;
  size_t old = out->size();
  out->resize(old + base64_encoded_size(in.size(), url));
  char* o = out->data() + old;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t n = in.size();
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    o[0] = a[v >> 18];
    o[1] = a[(v >> 12) & 63];
    o[2] = a[(v >> 6) & 63];
    o[3] = a[v & 63];
    o += 4;
  }
  size_t rest = n - i;
  if (rest == 0) return;
  uint32_t v = uint32_t{p[i]} << 16;
  if (rest == 2) v |= uint32_t{p[i + 1]} << 8;
  *o++ = a[v >> 18];
  *o++ = a[(v >> 12) & 63];
  if (rest == 2) {
    *o++ = a[(v >> 6) & 63];
  } else if (!url) {
    *o++ = '=';
  }
  if (!url) *o++ = '=';
}

bool base64_decode(std::string_view in, bool url, std::string* out, DecodeError* err) {
  const Table& dec = url ? kDecUrl : kDecStd;
  size_t old = out->size();
  out->resize(old + in.size() / 4 * 3 + 3);
  auto* o = reinterpret_cast<uint8_t*>(out->data() + old);
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t n = in.size();
  size_t i = 0;
  // Fast path: whole groups of four alphabet characters.
  for (; i + 4 <= n; i += 4) {
    uint32_t a = dec[p[i]], b = dec[p[i + 1]], c = dec[p[i + 2]], d = dec[p[i + 3]];
    if ((a | b | c | d) >= 64) break;
    uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = static_cast<uint8_t>(v >> 16);
    o[1] = static_cast<uint8_t>(v >> 8);
    o[2] = static_cast<uint8_t>(v);
    o += 3;
  }
  out->resize(static_cast<size_t>(reinterpret_cast<char*>(o) - out->data()));
  if (i == n) return true;
  if (base64_decode_slow(in, i, dec, out, err)) return true;
  out->resize(old);
  return false;
}

void hex_encode(std::string_view in, std::string* out) {
  size_t old = out->size();
  out->resize(old + in.size() * 2);
  char* o = out->data() + old;
  for (unsigned char c : in) {
    std::memcpy(o, &kHexPairs[2 * c], 2);
    o += 2;
  }
}

bool hex_decode(std::string_view in, std::string* out, DecodeError* err) {
  if (in.size() % 2 != 0) return fail(err, DecodeError::Kind::BadLength, in.size());
  size_t old = out->size();
  out->resize(old + in.size() / 2);
  char* o = out->data() + old;
  for (size_t i = 0; i < in.size(); i += 2) {
    uint8_t hi = kDecHex[static_cast<uint8_t>(in[i])];
    uint8_t lo = kDecHex[static_cast<uint8_t>(in[i + 1])];
    if ((hi | lo) > 15) {
      out->resize(old);
      size_t at = hi > 15 ? i : i + 1;
      return fail(err, DecodeError::Kind::BadChar, at, in[at]);
    }
    *o++ = static_cast<char>((hi << 4) | lo);
  }
  return true;
}

void uuid_format(const uint8_t bytes[16], char out[36]) {
  char* o = out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    std::memcpy(o, &kHexPairs[2 * bytes[i]], 2);
    o += 2;
  }
}

bool uuid_parse(std::string_view text, uint8_t bytes[16]) {
  if (text.size() != 36) return false;
  size_t j = 0;
  for (int i = 0; i < 16; ++i) {
    if (j == 8 || j == 13 || j == 18 || j == 23) {
      if (text[j] != '-') return false;
      ++j;
    }
    uint8_t hi = kDecHex[static_cast<uint8_t>(text[j])];
    uint8_t lo = kDecHex[static_cast<uint8_t>(text[j + 1])];
    if ((hi | lo) > 15) return false;
    bytes[i] = static_cast<uint8_t>((hi << 4) | lo);
    j += 2;
  }
  return true;
}

}  // namespace evo::encoding
