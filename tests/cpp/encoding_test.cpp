// src/proto/encoding: base64 (RFC 4648 §4, §5), hex and UUID text.
#include "proto/encoding.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using evo::encoding::DecodeError;

std::string b64(std::string_view s, bool url = false) {
  std::string out;
  evo::encoding::base64_encode(s, url, &out);
  return out;
}

// The decoded bytes, or "ERR:<message>".
std::string unb64(std::string_view s, bool url = false) {
  std::string out;
  DecodeError err;
  if (!evo::encoding::base64_decode(s, url, &out, &err)) return "ERR:" + err.message("base64");
  return out;
}

TEST(Base64, Rfc4648Vectors) {
  const char* vectors[][2] = {{"", ""},
                              {"f", "Zg=="},
                              {"fo", "Zm8="},
                              {"foo", "Zm9v"},
                              {"foob", "Zm9vYg=="},
                              {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
  for (auto& v : vectors) {
    EXPECT_EQ(b64(v[0]), v[1]);
    EXPECT_EQ(unb64(v[1]), v[0]);
    std::string url = v[1];
    url.erase(url.find_first_of('=') == std::string::npos ? url.size() : url.find_first_of('='));
    EXPECT_EQ(b64(v[0], true), url);
    EXPECT_EQ(unb64(url, true), v[0]);
    EXPECT_EQ(unb64(v[1], true), v[0]);
    EXPECT_EQ(b64(v[0]).size(), evo::encoding::base64_encoded_size(std::string_view(v[0]).size(), false));
  }
}

TEST(Base64, Alphabets) {
  EXPECT_EQ(b64("\xfb\xff\xbf\xfe"), "+/+//g==");
  EXPECT_EQ(b64("\xfb\xff\xbf\xfe", true), "-_-__g");
  EXPECT_EQ(unb64("-_-__g"), "ERR:invalid base64 character '-' at position 1");
  EXPECT_EQ(unb64("+/+//g", true), "ERR:invalid base64 character '+' at position 1");
}

TEST(Base64, WhitespaceAndPadding) {
  EXPECT_EQ(unb64("Zm9v\r\nYmFy\n"), "foobar");
  EXPECT_EQ(unb64("Zm9vYg"), "foob");
  EXPECT_EQ(unb64("Zm9vYg = = \n"), "foob");
  EXPECT_EQ(unb64("Zm9v YmFy", true), "ERR:invalid base64 character ' ' at position 5");
  EXPECT_EQ(unb64("Zg="), "ERR:bad base64 padding at position 4");
  EXPECT_EQ(unb64("Zg==="), "ERR:bad base64 padding at position 5");
  EXPECT_EQ(unb64("Zm=9"), "ERR:bad base64 padding at position 4");
  EXPECT_EQ(unb64("Zm9v="), "ERR:bad base64 padding at position 5");
  EXPECT_EQ(unb64("Zm9vY"), "ERR:truncated base64 input at position 5");
  EXPECT_EQ(unb64(std::string_view("Zm\0v", 4)), "ERR:invalid base64 byte 0x00 at position 3");
}

TEST(Base64, FailureLeavesOutputUntouched) {
  std::string out = "keep";
  EXPECT_FALSE(evo::encoding::base64_decode("Zm9vYmFyZm9v!", false, &out, nullptr));
  EXPECT_EQ(out, "keep");
  EXPECT_TRUE(evo::encoding::base64_decode("Zm9v", false, &out, nullptr));
  EXPECT_EQ(out, "keepfoo");
}

TEST(Base64, EveryByteRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); ++n) {
    std::string_view s(all.data(), n);
    EXPECT_EQ(unb64(b64(s)), s);
    EXPECT_EQ(unb64(b64(s, true), true), s);
  }
}

TEST(Hex, EncodeDecode) {
  std::string out;
  evo::encoding::hex_encode(std::string_view("\x00\x01\x7f\x80\xff", 5), &out);
  EXPECT_EQ(out, "00017f80ff");
  std::string back;
  EXPECT_TRUE(evo::encoding::hex_decode("666F6f626172", &back, nullptr));
  EXPECT_EQ(back, "foobar");
  DecodeError err;
  std::string bad;
  EXPECT_FALSE(evo::encoding::hex_decode("abc", &bad, &err));
  EXPECT_EQ(err.message("hex"), "truncated hex input at position 4");
  EXPECT_FALSE(evo::encoding::hex_decode("0g", &bad, &err));
  EXPECT_EQ(err.message("hex"), "invalid hex character 'g' at position 2");
  EXPECT_TRUE(bad.empty());
}

TEST(Uuid, ParseAndFormat) {
  uint8_t b[16];
  ASSERT_TRUE(evo::encoding::uuid_parse("123E4567-e89b-12d3-a456-426614174000", b));
  EXPECT_EQ(b[0], 0x12);
  EXPECT_EQ(b[15], 0x00);
  char text[36];
  evo::encoding::uuid_format(b, text);
  EXPECT_EQ(std::string(text, 36), "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_FALSE(evo::encoding::uuid_parse("123e4567e89b12d3a456426614174000", b));
  EXPECT_FALSE(evo::encoding::uuid_parse("123e4567-e89b-12d3-a456-42661417400g", b));
  EXPECT_FALSE(evo::encoding::uuid_parse("123e4567-e89b-12d3-a456_426614174000", b));
  EXPECT_FALSE(evo::encoding::uuid_parse("", b));
}

}  // namespace
