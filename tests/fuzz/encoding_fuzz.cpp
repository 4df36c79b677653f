// libFuzzer target: the base64, hex and UUID decoders (src/proto/encoding).
// Run by `make test-fuzz`.
//
// Input: a mode byte, then the text. For any input the decoders must not
// crash or read out of bounds, and:
//  - a failed decode leaves the output as it was and points inside (or just
//    past) the input;
//  - what decodes re-encodes to text that decodes to the same bytes;
//  - encoding the raw input and decoding it gives the input back (both
//    alphabets, hex);
//  - uuid_parse accepts exactly what uuid_format could have written, in
//    either case.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/encoding.h"

namespace {

using evo::encoding::DecodeError;

void check(bool ok) {
  if (!ok) std::abort();
}

void decode_checks(std::string_view text, bool url) {
  std::string out = "prefix";
  DecodeError err;
  if (!evo::encoding::base64_decode(text, url, &out, &err)) {
    check(out == "prefix");
    check(err.offset <= text.size());
    check(!err.message("base64").empty());
    return;
  }
  check(out.compare(0, 6, "prefix") == 0);
  std::string bytes = out.substr(6);
  std::string again;
  evo::encoding::base64_encode(bytes, url, &again);
  std::string back;
  check(evo::encoding::base64_decode(again, url, &back, nullptr));
  check(back == bytes);
}

void roundtrip_checks(std::string_view data) {
  for (bool url : {false, true}) {
    std::string text;
    evo::encoding::base64_encode(data, url, &text);
    check(text.size() == evo::encoding::base64_encoded_size(data.size(), url));
    std::string back;
    check(evo::encoding::base64_decode(text, url, &back, nullptr));
    check(back == data);
  }
  std::string h;
  evo::encoding::hex_encode(data, &h);
  std::string back;
  check(evo::encoding::hex_decode(h, &back, nullptr));
  check(back == data);
}

void hex_checks(std::string_view text) {
  std::string out;
  DecodeError err;
  if (!evo::encoding::hex_decode(text, &out, &err)) {
    check(out.empty());
    check(err.offset <= text.size());
    return;
  }
  std::string again;
  evo::encoding::hex_encode(out, &again);
  check(again.size() == text.size());
  for (size_t i = 0; i < text.size(); ++i)
    check(again[i] == std::tolower(static_cast<unsigned char>(text[i])));
}

void uuid_checks(std::string_view text) {
  uint8_t bytes[16];
  if (!evo::encoding::uuid_parse(text, bytes)) return;
  char out[36];
  evo::encoding::uuid_format(bytes, out);
  for (size_t i = 0; i < 36; ++i) check(out[i] == std::tolower(static_cast<unsigned char>(text[i])));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
      decode_checks(text, false);
      break;
    case 1:
      decode_checks(text, true);
      break;
    case 2:
      hex_checks(text);
      uuid_checks(text);
      break;
    default:
      roundtrip_checks(text);
      break;
  }
  return 0;
}
