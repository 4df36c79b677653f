// The WebSocket engine: RFC 6455 framing, masking, fragmentation, control
// frames, the closing handshake, UTF-8, and RFC 7692 permessage-deflate,
// from the RFCs' own examples and one test per rule.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "proto/ws_protocol.h"

namespace evo::ws {
namespace {

// ------------------------------------------------------------------ helpers

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// A frame as a peer would send it, built independently of the engine.
// `first_byte` is FIN, RSV and opcode; the length is encoded minimally.
std::string frame(uint8_t first_byte, std::string_view payload, bool masked,
                  std::array<uint8_t, 4> key = {0x37, 0xfa, 0x21, 0x3d}) {
  std::string out(1, static_cast<char>(first_byte));
  uint8_t mask_bit = masked ? 0x80 : 0;
  uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  }
  if (masked) out.append(reinterpret_cast<const char*>(key.data()), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(payload[i] ^ (masked ? key[i % 4] : 0)));
  }
  return out;
}

std::string client_frame(uint8_t first_byte, std::string_view payload) {
  return frame(first_byte, payload, true);
}
std::string server_frame(uint8_t first_byte, std::string_view payload) {
  return frame(first_byte, payload, false);
}

std::string close_payload(uint16_t code, std::string_view reason = {}) {
  std::string out = bytes({code >> 8, code & 0xFF});
  out.append(reason);
  return out;
}

// A frame read back from the engine's output, by a parser of the test's own.
struct WireFrame {
  uint8_t first_byte = 0;
  bool masked = false;
  std::array<uint8_t, 4> key{};
  std::string payload;  // unmasked

  [[nodiscard]] bool fin() const { return (first_byte & 0x80) != 0; }
  [[nodiscard]] bool rsv1() const { return (first_byte & 0x40) != 0; }
  [[nodiscard]] int opcode() const { return first_byte & 0x0F; }
};

std::vector<WireFrame> parse_wire(std::string_view wire) {
  std::vector<WireFrame> frames;
  size_t pos = 0;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(wire.at(i)); };
  while (pos < wire.size()) {
    WireFrame f;
    f.first_byte = byte(pos);
    f.masked = (byte(pos + 1) & 0x80) != 0;
    uint64_t n = byte(pos + 1) & 0x7F;
    pos += 2;
    if (n == 126) {
      n = (uint64_t{byte(pos)} << 8) | byte(pos + 1);
      pos += 2;
    } else if (n == 127) {
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | byte(pos + i);
      pos += 8;
    }
    if (f.masked) {
      for (int i = 0; i < 4; ++i) f.key[i] = byte(pos + i);
      pos += 4;
    }
    f.payload = std::string(wire.substr(pos, n));
    EXPECT_EQ(f.payload.size(), n) << "truncated frame in the output";
    for (size_t i = 0; i < f.payload.size(); ++i)
      f.payload[i] = static_cast<char>(f.payload[i] ^ f.key[i % 4]);
    pos += n;
    frames.push_back(std::move(f));
  }
  return frames;
}

struct Fed {
  bool ok = false;
  std::vector<Event> events;
};

Fed feed(Session& s, std::string_view data) {
  Fed r;
  r.ok = s.feed(data, &r.events);
  return r;
}

// Feeds one byte at a time; stops at the first failure.
Fed feed_bytewise(Session& s, std::string_view data) {
  Fed r;
  r.ok = true;
  for (char c : data) {
    r.ok = s.feed(std::string_view(&c, 1), &r.events);
    if (!r.ok) break;
  }
  return r;
}

// Feeds in pieces of pseudo-random sizes from 1 to max_piece.
Fed feed_in_pieces(Session& s, std::string_view data, size_t max_piece, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> piece(1, max_piece);
  Fed r;
  r.ok = true;
  size_t pos = 0;
  while (pos < data.size() && r.ok) {
    size_t n = std::min(piece(rng), data.size() - pos);
    r.ok = s.feed(data.substr(pos, n), &r.events);
    pos += n;
  }
  return r;
}

// The close frame a failed session queued, and its code.
uint16_t queued_close_code(Session& s) {
  std::vector<WireFrame> frames = parse_wire(s.take_output());
  if (frames.size() != 1 || frames[0].opcode() != 8 || frames[0].payload.size() < 2) return 0;
  return static_cast<uint16_t>((static_cast<uint8_t>(frames[0].payload[0]) << 8) |
                               static_cast<uint8_t>(frames[0].payload[1]));
}

// Expects the server to refuse `wire` with `code`, a Close carrying it queued.
void expect_server_fails(std::string_view wire, uint16_t code, const DeflateOptions* deflate = nullptr,
                         Limits limits = Limits()) {
  Session server(Role::Server, limits, deflate);
  Fed r = feed(server, wire);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(server.failure_code(), code) << server.failure_reason();
  EXPECT_FALSE(server.failure_reason().empty());
  EXPECT_TRUE(server.close_sent());
  EXPECT_TRUE(server.closed());
  EXPECT_EQ(queued_close_code(server), code);
}

std::string random_text(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  static constexpr std::string_view kWords[] = {"alpha ", "beta ", "gamma ", "delta ",
                                                "é ",     "日本 ", "🙂 "};
  std::string out;
  while (out.size() < size) out += kWords[rng() % std::size(kWords)];
  return out;
}

std::string random_binary(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// --------------------------------------------------------------- handshake

TEST(WsHandshake, ComputesTheRfcAcceptKey) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // RFC 6455 1.3
}

TEST(WsHandshake, MakesFreshValidClientKeys) {
  std::string a = make_client_key();
  std::string b = make_client_key();
  EXPECT_EQ(a.size(), 24U);
  EXPECT_TRUE(valid_client_key(a)) << a;
  EXPECT_TRUE(valid_client_key(b)) << b;
  EXPECT_NE(a, b);
}

TEST(WsHandshake, AcceptsOnlyBase64OfSixteenBytesAsClientKey) {
  EXPECT_TRUE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(valid_client_key("+/+/+/+/+/+/+/+/+/+/+w=="));
  EXPECT_FALSE(valid_client_key(""));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ"));    // unpadded
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));   // 23 characters
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=!"));  // bad padding
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));  // not base64
  EXPECT_FALSE(valid_client_key(" dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZSBrZXk="));  // 20 bytes
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZXM="));      // 17 bytes
}

// ------------------------------------------------------ deflate negotiation

TEST(WsNegotiate, AcceptsAPlainOffer) {
  DeflateOptions options;
  options.server_max_window_bits = 3;  // overwritten
  std::string response;
  ASSERT_TRUE(negotiate_deflate("permessage-deflate", &options, &response));
  EXPECT_EQ(response, "permessage-deflate");
  EXPECT_EQ(options, DeflateOptions());
}

TEST(WsNegotiate, GrantsEveryRequestedParameter) {
  DeflateOptions options;
  std::string response;
  ASSERT_TRUE(
      negotiate_deflate("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                        "server_max_window_bits=10; client_max_window_bits=12",
                        &options, &response));
  EXPECT_EQ(response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12");
  EXPECT_TRUE(options.server_no_context_takeover);
  EXPECT_TRUE(options.client_no_context_takeover);
  EXPECT_EQ(options.server_max_window_bits, 10);
  EXPECT_EQ(options.client_max_window_bits, 12);
}

TEST(WsNegotiate, LeavesClientWindowAloneWhenOfferedWithoutValue) {
  DeflateOptions options;
  std::string response;
  ASSERT_TRUE(negotiate_deflate("permessage-deflate; client_max_window_bits", &options, &response));
  EXPECT_EQ(response, "permessage-deflate");
  EXPECT_EQ(options.client_max_window_bits, 15);
}

TEST(WsNegotiate, TakesTheFirstAcceptableOffer) {
  DeflateOptions options;
  std::string response;
  ASSERT_TRUE(negotiate_deflate(
      "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=7, permessage-deflate; foo, "
      "permessage-deflate; server_max_window_bits=\"9\"; client_no_context_takeover, permessage-deflate",
      &options, &response));
  EXPECT_EQ(response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=9");
  EXPECT_EQ(options.server_max_window_bits, 9);
  EXPECT_TRUE(options.client_no_context_takeover);
  EXPECT_FALSE(options.server_no_context_takeover);
}

TEST(WsNegotiate, DeclinesOffersWithBadParameters) {
  for (std::string_view offer : {
           "permessage-deflate; server_max_window_bits",  // needs a value
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=08",
           "permessage-deflate; client_max_window_bits=abc",
           "permessage-deflate; client_max_window_bits=\"1 0\"",  // quoted, but not a token
           "permessage-deflate; server_no_context_takeover=1",
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
           "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
           "permessage-deflate; mystery",
           "deflate-frame",
       }) {
    DeflateOptions options;
    std::string response;
    EXPECT_FALSE(negotiate_deflate(offer, &options, &response)) << offer;
    EXPECT_TRUE(response.empty()) << offer;
  }
}

TEST(WsNegotiate, DeclinesEverythingWhenTheHeaderDoesNotParse) {
  for (std::string_view header : {
           "",
           "permessage-deflate; server_max_window_bits=\"10",  // unterminated
           "permessage-deflate;; server_no_context_takeover",
           "permessage deflate",
           "permessage-deflate; =10",
           "permessage-deflate, @bad",
       }) {
    DeflateOptions options;
    std::string response;
    EXPECT_FALSE(negotiate_deflate(header, &options, &response)) << header;
  }
}

TEST(WsNegotiate, ToleratesSpacingCaseAndEmptyListElements) {
  DeflateOptions options;
  std::string response;
  ASSERT_TRUE(
      negotiate_deflate(" , PerMessage-Deflate ;\tSERVER_NO_CONTEXT_TAKEOVER ; server_max_window_bits = 11 ,",
                        &options, &response));
  EXPECT_TRUE(options.server_no_context_takeover);
  EXPECT_EQ(options.server_max_window_bits, 11);
  EXPECT_EQ(response, "permessage-deflate; server_no_context_takeover; server_max_window_bits=11");
}

TEST(WsNegotiate, ClientAcceptsWhatAServerGrantsToItsOffer) {
  for (std::string_view offer : {
           "permessage-deflate; client_max_window_bits",
           "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
           "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
       }) {
    DeflateOptions server_side;
    std::string response;
    ASSERT_TRUE(negotiate_deflate(offer, &server_side, &response)) << offer;
    DeflateOptions client_side;
    client_side.client_max_window_bits = 4;  // overwritten
    ASSERT_TRUE(parse_deflate_response(response, &client_side)) << response;
    EXPECT_EQ(client_side, server_side) << response;
  }
  DeflateOptions server_side;
  std::string response;
  ASSERT_TRUE(negotiate_deflate(client_deflate_offer(), &server_side, &response));
  EXPECT_EQ(client_deflate_offer(), "permessage-deflate; client_max_window_bits");
}

TEST(WsNegotiate, ClientRefusesInvalidResponses) {
  for (std::string_view response : {
           "",
           "x-other",
           "permessage-deflate, permessage-deflate",
           "permessage-deflate, x-other",
           "permessage-deflate; client_max_window_bits",  // a response must give the value
           "permessage-deflate; client_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; unknown=1",
           "permessage-deflate; server_max_window_bits=\"1",
       }) {
    DeflateOptions options;
    EXPECT_FALSE(parse_deflate_response(response, &options)) << response;
  }
  DeflateOptions options;
  ASSERT_TRUE(parse_deflate_response(
      "permessage-deflate; client_max_window_bits=10; server_max_window_bits=\"12\"", &options));
  EXPECT_EQ(options.client_max_window_bits, 10);
  EXPECT_EQ(options.server_max_window_bits, 12);
}

// ------------------------------------------------------------------- UTF-8

TEST(WsUtf8, AcceptsValidTextUpToEveryBoundary) {
  for (std::string_view text : {
           "", "plain ASCII, long enough for the eight-byte path", "\x7f",
           "\xc2\x80",                           // U+0080
           "\xdf\xbf",                           // U+07FF
           "\xe0\xa0\x80",                       // U+0800
           "\xed\x9f\xbf",                       // U+D7FF, before the surrogates
           "\xee\x80\x80",                       // U+E000, after them
           "\xef\xbf\xbf",                       // U+FFFF
           "\xf0\x90\x80\x80",                   // U+10000
           "\xf4\x8f\xbf\xbf",                   // U+10FFFF
           "κόσμε, 日本語, 🙂 mixed",  // the usual suspects
       }) {
    EXPECT_TRUE(valid_utf8(text)) << text;
  }
}

TEST(WsUtf8, RefusesInvalidSequences) {
  for (std::string_view text : {
           "\x80",  // continuation without a lead
           "\xbf",
           "\xc0\x80",      // overlong NUL
           "\xc1\xbf",      // overlong
           "\xe0\x80\x80",  // overlong 3-byte
           "\xe0\x9f\xbf",
           "\xf0\x80\x80\x80",  // overlong 4-byte
           "\xf0\x8f\xbf\xbf",
           "\xed\xa0\x80",      // U+D800
           "\xed\xbf\xbf",      // U+DFFF
           "\xf4\x90\x80\x80",  // U+110000
           "\xf5\x80\x80\x80",
           "\xff",
           "\xfe",
           "\xe2\x82",  // truncated
           "\xe2"
           "A",  // lead, then no continuation
           "ASCII for a while, then \xce\xba\xff",
       }) {
    EXPECT_FALSE(valid_utf8(text)) << testing::PrintToString(std::string(text));
  }
}

TEST(WsUtf8, ValidatesTextSplitInsideCodePoints) {
  std::string text = "a€b🙂c";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    Utf8Validator v;
    EXPECT_TRUE(v.feed(std::string_view(text).substr(0, cut)));
    EXPECT_TRUE(v.feed(std::string_view(text).substr(cut)));
    EXPECT_TRUE(v.complete()) << cut;
  }
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xf0\x9f"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed("\x41"));  // the code point needed two more continuation bytes
  EXPECT_FALSE(v.feed("ok"));    // stays invalid
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("ok"));
  EXPECT_TRUE(v.complete());
}

// ----------------------------------------------------- RFC 6455 5.7 frames

TEST(WsFrames, ClientReadsTheRfcUnmaskedHello) {
  Session client(Role::Client);
  Fed r = feed(client, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Message);
  EXPECT_FALSE(r.events[0].binary);
  EXPECT_EQ(r.events[0].data, "Hello");
  EXPECT_FALSE(client.has_output());
}

TEST(WsFrames, ServerReadsTheRfcMaskedHello) {
  Session server(Role::Server);
  Fed r = feed(server, bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data, "Hello");
}

TEST(WsFrames, ServerWritesTheRfcUnmaskedHello) {
  Session server(Role::Server);
  EXPECT_TRUE(server.send_message("Hello", false));
  EXPECT_TRUE(server.has_output());
  EXPECT_EQ(server.take_output(), bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_FALSE(server.has_output());
  EXPECT_EQ(server.take_output(), "");
}

TEST(WsFrames, ReassemblesTheRfcFragmentedText) {
  Session client(Role::Client);
  Fed first = feed(client, bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  ASSERT_TRUE(first.ok);
  EXPECT_TRUE(first.events.empty());
  Fed second = feed(client, bytes({0x80, 0x02, 0x6c, 0x6f}));
  ASSERT_TRUE(second.ok);
  ASSERT_EQ(second.events.size(), 1U);
  EXPECT_EQ(second.events[0].data, "Hello");
}

TEST(WsFrames, AnswersTheRfcPingAndReportsThePong) {
  Session client(Role::Client);
  Fed r = feed(client, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Ping);
  EXPECT_EQ(r.events[0].data, "Hello");
  std::vector<WireFrame> out = parse_wire(client.take_output());
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].first_byte, 0x8a);  // FIN + Pong
  EXPECT_TRUE(out[0].masked);          // a client masks everything
  EXPECT_EQ(out[0].payload, "Hello");

  Session server(Role::Server);
  Fed pong = feed(server, bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_TRUE(pong.ok);
  ASSERT_EQ(pong.events.size(), 1U);
  EXPECT_EQ(pong.events[0].kind, Event::Kind::Pong);
  EXPECT_EQ(pong.events[0].data, "Hello");
  EXPECT_FALSE(server.has_output()) << "a pong is not answered";
}

TEST(WsFrames, WritesTheThreeLengthEncodings) {
  Session server(Role::Server);
  server.send_message(std::string(125, 'a'), true);
  EXPECT_EQ(server.take_output().substr(0, 2), bytes({0x82, 0x7d}));
  server.send_message(std::string(126, 'a'), true);
  EXPECT_EQ(server.take_output().substr(0, 4), bytes({0x82, 0x7e, 0x00, 0x7e}));
  server.send_message(std::string(256, 'a'), true);  // RFC 6455 5.7
  std::string out = server.take_output();
  EXPECT_EQ(out.substr(0, 4), bytes({0x82, 0x7e, 0x01, 0x00}));
  EXPECT_EQ(out.size(), 4U + 256U);
  server.send_message(std::string(65535, 'a'), true);
  EXPECT_EQ(server.take_output().substr(0, 4), bytes({0x82, 0x7e, 0xff, 0xff}));
  server.send_message(std::string(65536, 'a'), true);  // RFC 6455 5.7
  out = server.take_output();
  EXPECT_EQ(out.substr(0, 10), bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(out.size(), 10U + 65536U);
}

TEST(WsFrames, ReadsTheRfc256ByteAnd64KiBBinaryMessages) {
  for (size_t size : {256U, 65536U}) {
    std::string payload = random_binary(size, static_cast<uint32_t>(size));
    std::string wire = server_frame(0x82, payload);
    EXPECT_EQ(wire.size(), payload.size() + (size == 256 ? 4 : 10));
    Session client(Role::Client);
    Fed r = feed(client, wire);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1U);
    EXPECT_TRUE(r.events[0].binary);
    EXPECT_EQ(r.events[0].data, payload);
  }
}

TEST(WsFrames, AcceptsNonMinimalLengthEncodings) {
  // "Hello" with a 16-bit and a 64-bit length, masked with the RFC's key.
  std::string masked_hello = bytes({0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  Session server(Role::Server);
  Fed r = feed(server, bytes({0x81, 0xfe, 0x00, 0x05}) + masked_hello +
                           bytes({0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 5}) + masked_hello);
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 2U);
  EXPECT_EQ(r.events[0].data, "Hello");
  EXPECT_EQ(r.events[1].data, "Hello");
}

TEST(WsFrames, ClientMasksEachFrameWithAFreshKey) {
  Session client(Role::Client);
  for (int i = 0; i < 100; ++i) client.send_message("Hello", false);  // past one batch of 64 keys
  std::vector<WireFrame> frames = parse_wire(client.take_output());
  ASSERT_EQ(frames.size(), 100U);
  for (const WireFrame& f : frames) {
    EXPECT_TRUE(f.masked);
    EXPECT_EQ(f.first_byte, 0x81);
    EXPECT_EQ(f.payload, "Hello");
  }
  int repeats = 0;
  for (size_t i = 1; i < frames.size(); ++i) repeats += frames[i].key == frames[i - 1].key ? 1 : 0;
  EXPECT_EQ(repeats, 0);
}

TEST(WsFrames, ServerSendsEmptyAndBinaryMessages) {
  Session server(Role::Server);
  server.send_message("", false);
  server.send_message(bytes({0xff, 0x00}), true);
  EXPECT_EQ(server.take_output(), bytes({0x81, 0x00, 0x82, 0x02, 0xff, 0x00}));
}

// ----------------------------------------------------- the failure rules

TEST(WsFailure, ServerRefusesUnmaskedFrames) { expect_server_fails(server_frame(0x81, "Hello"), 1002); }

TEST(WsFailure, ClientRefusesMaskedFrames) {
  Session client(Role::Client);
  Fed r = feed(client, client_frame(0x81, "Hello"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(client.failure_code(), 1002);
  std::vector<WireFrame> out = parse_wire(client.take_output());
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].opcode(), 8);
  EXPECT_TRUE(out[0].masked) << "the client's Close is masked too";
  EXPECT_EQ(out[0].payload.substr(0, 2), bytes({0x03, 0xea}));  // 1002
}

TEST(WsFailure, RefusesReservedBits) {
  expect_server_fails(client_frame(0xa1, "x"), 1002);  // RSV2
  expect_server_fails(client_frame(0x91, "x"), 1002);  // RSV3
  expect_server_fails(client_frame(0xc1, "x"), 1002);  // RSV1 without permessage-deflate
}

TEST(WsFailure, RefusesReservedOpcodes) {
  for (int opcode : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf}) {
    SCOPED_TRACE(opcode);
    expect_server_fails(client_frame(static_cast<uint8_t>(0x80 | opcode), ""), 1002);
  }
}

TEST(WsFailure, RefusesBrokenControlFrames) {
  expect_server_fails(client_frame(0x09, "p"), 1002);                    // fragmented ping
  expect_server_fails(client_frame(0x89, std::string(126, 'p')), 1002);  // too long
  expect_server_fails(client_frame(0x8a, std::string(200, 'p')), 1002);
  DeflateOptions deflate;
  expect_server_fails(client_frame(0xc9, "p"), 1002, &deflate);  // RSV1 on a control frame
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x89, std::string(125, 'p')));
  EXPECT_TRUE(r.ok) << "125 bytes is the most a control frame carries, and fine";
}

TEST(WsFailure, RefusesBrokenFragmentation) {
  expect_server_fails(client_frame(0x80, "lo"), 1002);                              // nothing to continue
  expect_server_fails(client_frame(0x00, "lo"), 1002);                              // likewise, unfinished
  expect_server_fails(client_frame(0x01, "Hel") + client_frame(0x81, "lo"), 1002);  // new text mid-message
  expect_server_fails(client_frame(0x02, "Hel") + client_frame(0x02, "lo"), 1002);
  // A message that ended leaves nothing to continue.
  expect_server_fails(client_frame(0x81, "Hello") + client_frame(0x80, "!"), 1002);
}

TEST(WsFailure, RefusesRsv1OnContinuationFrames) {
  DeflateOptions deflate;
  Compressor c(15, false);
  std::string compressed;
  c.compress("Hello", true, &compressed);
  expect_server_fails(client_frame(0x41, compressed.substr(0, 2)) + client_frame(0xc0, compressed.substr(2)),
                      1002, &deflate);
}

TEST(WsFailure, RefusesALengthWithTheTopBitSet) {
  expect_server_fails(bytes({0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}), 1002);
}

TEST(WsFailure, RefusesFramesOverTheLimitFromTheirHeader) {
  Limits limits;
  limits.max_frame = 100;
  limits.max_message = 1000;
  std::string wire = client_frame(0x82, std::string(101, 'x'));
  // Only the header is fed: the frame is refused before its payload arrives.
  expect_server_fails(std::string_view(wire).substr(0, 8), 1009, nullptr, limits);
  Session server(Role::Server, limits);
  EXPECT_TRUE(feed(server, client_frame(0x82, std::string(100, 'x'))).ok);
}

TEST(WsFailure, RefusesMessagesOverTheLimit) {
  Limits limits;
  limits.max_message = 100;
  expect_server_fails(client_frame(0x01, std::string(60, 'x')) + client_frame(0x80, std::string(41, 'x')),
                      1009, nullptr, limits);
  Session server(Role::Server, limits);
  Fed r = feed(server, client_frame(0x01, std::string(60, 'x')) + client_frame(0x80, std::string(40, 'x')));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data.size(), 100U);
}

TEST(WsFailure, StopsForGoodAfterAFailure) {
  Session server(Role::Server);
  Fed r =
      feed(server, client_frame(0x81, "ok") + server_frame(0x81, "unmasked") + client_frame(0x81, "later"));
  EXPECT_FALSE(r.ok);
  ASSERT_EQ(r.events.size(), 1U) << "events before the failure are still reported";
  EXPECT_EQ(r.events[0].data, "ok");
  EXPECT_EQ(queued_close_code(server), 1002);
  EXPECT_FALSE(feed(server, client_frame(0x81, "more")).ok);
  EXPECT_FALSE(server.send_message("anything", false));
  EXPECT_FALSE(server.send_ping());
  EXPECT_FALSE(server.send_close(1000, ""));
  EXPECT_FALSE(server.has_output()) << "nothing follows the Close";
  EXPECT_TRUE(server.closed());
}

TEST(WsFailure, FailsOnTheFirstInvalidTextFragment) {
  Session server(Role::Server);
  // The message is not over, but it cannot become valid any more.
  Fed r = feed(server, client_frame(0x01, "fine so far \xc0\x80"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(server.failure_code(), 1007);
  expect_server_fails(client_frame(0x81, "\xed\xa0\x80"), 1007);  // a surrogate
}

TEST(WsFailure, RefusesTextEndingInsideACodePoint) {
  expect_server_fails(client_frame(0x81, "euro \xe2\x82"), 1007);
  expect_server_fails(client_frame(0x01, "euro \xe2") + client_frame(0x80, "\x82"), 1007);
}

// ------------------------------------------------------------------ session

TEST(WsSession, ReassemblesTextSplitInsideACodePoint) {
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x01, "\xe2\x82") + client_frame(0x00, "") + client_frame(0x80, "\xac!"));
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data, "€!");
}

TEST(WsSession, DoesNotValidateBinary) {
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x82, bytes({0xff, 0xfe, 0xc0, 0x80})));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_TRUE(r.events[0].binary);
  EXPECT_EQ(r.events[0].data, bytes({0xff, 0xfe, 0xc0, 0x80}));
}

TEST(WsSession, AnswersPingsBetweenFragmentsWithoutDisturbingTheMessage) {
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x01, "Hel") + client_frame(0x89, "p1") + client_frame(0x00, "l") +
                           client_frame(0x8a, "p2") + client_frame(0x80, "o"));
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 3U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Ping);
  EXPECT_EQ(r.events[0].data, "p1");
  EXPECT_EQ(r.events[1].kind, Event::Kind::Pong);
  EXPECT_EQ(r.events[1].data, "p2");
  EXPECT_EQ(r.events[2].kind, Event::Kind::Message);
  EXPECT_EQ(r.events[2].data, "Hello");
  EXPECT_EQ(server.take_output(), bytes({0x8a, 0x02, 'p', '1'}));
}

TEST(WsSession, FeedingByteByByteGivesTheSameEvents) {
  std::string wire = client_frame(0x01, "frag") + client_frame(0x89, "ping") + client_frame(0x80, "mented") +
                     client_frame(0x82, random_binary(300, 1)) + client_frame(0x81, "") +
                     client_frame(0x81, "é日🙂") + client_frame(0x88, close_payload(1000, "done"));
  Session whole(Role::Server);
  Fed a = feed(whole, wire);
  Session bytewise(Role::Server);
  Fed b = feed_bytewise(bytewise, wire);
  ASSERT_TRUE(a.ok);
  ASSERT_TRUE(b.ok) << bytewise.failure_reason();
  ASSERT_EQ(a.events.size(), 6U);
  ASSERT_EQ(b.events.size(), a.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    EXPECT_EQ(b.events[i].kind, a.events[i].kind) << i;
    EXPECT_EQ(b.events[i].data, a.events[i].data) << i;
    EXPECT_EQ(b.events[i].binary, a.events[i].binary) << i;
    EXPECT_EQ(b.events[i].close_code, a.events[i].close_code) << i;
  }
  EXPECT_EQ(a.events[1].data, "fragmented");
  EXPECT_EQ(a.events[5].close_code, 1000);
  EXPECT_EQ(whole.take_output(), bytewise.take_output());
}

TEST(WsSession, RoundTripsMessagesOfEverySizeBothWays) {
  Session server(Role::Server);
  Session client(Role::Client);
  std::vector<std::string> payloads;
  for (size_t size : {0U, 1U, 7U, 8U, 9U, 125U, 126U, 127U, 65535U, 65536U, 65537U, 1U << 20}) {
    payloads.push_back(random_binary(size, static_cast<uint32_t>(size)));
  }
  for (const std::string& p : payloads) client.send_message(p, true);
  client.send_message("text too", false);
  Fed at_server = feed_in_pieces(server, client.take_output(), 5000, 7);
  ASSERT_TRUE(at_server.ok) << server.failure_reason();
  ASSERT_EQ(at_server.events.size(), payloads.size() + 1);
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_TRUE(at_server.events[i].binary);
    EXPECT_EQ(at_server.events[i].data, payloads[i]) << "message " << i;
  }
  EXPECT_EQ(at_server.events.back().data, "text too");
  EXPECT_FALSE(at_server.events.back().binary);

  for (const std::string& p : payloads) server.send_message(p, true);
  Fed at_client = feed_in_pieces(client, server.take_output(), 3, 8);
  ASSERT_TRUE(at_client.ok) << client.failure_reason();
  ASSERT_EQ(at_client.events.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(at_client.events[i].data, payloads[i]) << i;
}

TEST(WsSession, StreamsFragmentsWithControlFramesBetween) {
  Session client(Role::Client);
  EXPECT_FALSE(client.send_fragment("x", false, false, false)) << "nothing to continue";
  EXPECT_TRUE(client.send_fragment("Hel", false, true, false));
  EXPECT_FALSE(client.send_fragment("again", false, true, false)) << "a message is already open";
  EXPECT_FALSE(client.send_message("whole", false)) << "would interleave with the open message";
  EXPECT_TRUE(client.send_ping("between"));
  EXPECT_TRUE(client.send_fragment("lo", false, false, true));
  EXPECT_TRUE(client.send_message("next", false));
  std::string wire = client.take_output();
  std::vector<WireFrame> frames = parse_wire(wire);
  ASSERT_EQ(frames.size(), 4U);
  EXPECT_EQ(frames[0].first_byte, 0x01);
  EXPECT_EQ(frames[1].first_byte, 0x89);
  EXPECT_EQ(frames[2].first_byte, 0x80);
  EXPECT_EQ(frames[3].first_byte, 0x81);

  Session server(Role::Server);
  Fed r = feed(server, wire);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 3U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Ping);
  EXPECT_EQ(r.events[1].data, "Hello");
  EXPECT_EQ(r.events[2].data, "next");
}

TEST(WsSession, RefusesControlPayloadsOver125Bytes) {
  Session server(Role::Server);
  EXPECT_FALSE(server.send_ping(std::string(126, 'p')));
  EXPECT_FALSE(server.send_pong(std::string(126, 'p')));
  EXPECT_FALSE(server.has_output());
  EXPECT_TRUE(server.send_ping(std::string(125, 'p')));
  EXPECT_TRUE(server.send_pong("pong"));
  EXPECT_TRUE(server.send_ping());
  std::vector<WireFrame> frames = parse_wire(server.take_output());
  ASSERT_EQ(frames.size(), 3U);
  EXPECT_EQ(frames[0].first_byte, 0x89);
  EXPECT_EQ(frames[0].payload.size(), 125U);
  EXPECT_EQ(frames[1].first_byte, 0x8a);
  EXPECT_EQ(frames[2].payload, "");
}

// -------------------------------------------------------------------- close

TEST(WsClose, EchoesThePeersCode) {
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x88, close_payload(1001, "bye")));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Close);
  EXPECT_EQ(r.events[0].close_code, 1001);
  EXPECT_EQ(r.events[0].data, "bye");
  EXPECT_TRUE(server.close_received());
  EXPECT_TRUE(server.close_sent());
  EXPECT_TRUE(server.closed());
  EXPECT_EQ(server.take_output(), bytes({0x88, 0x02, 0x03, 0xe9}));
}

TEST(WsClose, ReportsAnEmptyCloseAs1005AndAnswersWithoutACode) {
  Session server(Role::Server);
  Fed r = feed(server, client_frame(0x88, ""));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].close_code, 1005);
  EXPECT_EQ(r.events[0].data, "");
  EXPECT_EQ(server.take_output(), bytes({0x88, 0x00}));
}

TEST(WsClose, AcceptsOnlyValidCodes) {
  for (int code :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
    Session server(Role::Server);
    Fed r = feed(server, client_frame(0x88, close_payload(static_cast<uint16_t>(code))));
    EXPECT_TRUE(r.ok) << code;
    ASSERT_EQ(r.events.size(), 1U);
    EXPECT_EQ(r.events[0].close_code, code);
  }
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    SCOPED_TRACE(code);
    expect_server_fails(client_frame(0x88, close_payload(static_cast<uint16_t>(code))), 1002);
  }
}

TEST(WsClose, RefusesAOneBytePayloadAndAnInvalidReason) {
  expect_server_fails(client_frame(0x88, "\x03"), 1002);
  expect_server_fails(client_frame(0x88, close_payload(1000, "bad \xff reason")), 1007);
  expect_server_fails(client_frame(0x88, close_payload(1000, "cut \xe2\x82")), 1007);
}

TEST(WsClose, CompletesAHandshakeStartedLocally) {
  Session server(Role::Server);
  EXPECT_TRUE(server.send_close(1001, "going away"));
  EXPECT_TRUE(server.close_sent());
  EXPECT_FALSE(server.closed());
  std::vector<WireFrame> frames = parse_wire(server.take_output());
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].payload, close_payload(1001, "going away"));
  EXPECT_FALSE(server.send_close(1000, "twice")) << "the handshake starts once";
  EXPECT_FALSE(server.send_message("late", false));
  EXPECT_FALSE(server.has_output());

  // Messages still in flight from the peer are delivered; pings no longer answered.
  Fed r = feed(server, client_frame(0x81, "in flight") + client_frame(0x89, "p") +
                           client_frame(0x88, close_payload(1001)));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 3U);
  EXPECT_EQ(r.events[0].data, "in flight");
  EXPECT_EQ(r.events[2].kind, Event::Kind::Close);
  EXPECT_TRUE(server.close_received());
  EXPECT_TRUE(server.closed());
  EXPECT_FALSE(server.has_output()) << "our Close was sent already: no echo, no pong";
}

TEST(WsClose, IgnoresWhateverFollowsThePeersClose) {
  Session client(Role::Client);
  Fed r = feed(client, server_frame(0x88, close_payload(1000)) + server_frame(0x81, "after") + "garbage");
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Close);
  Fed later = feed(client, server_frame(0x81, "later") + "\xff\xff");
  EXPECT_TRUE(later.ok);
  EXPECT_TRUE(later.events.empty());
  std::vector<WireFrame> frames = parse_wire(client.take_output());
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_TRUE(frames[0].masked);
  EXPECT_EQ(frames[0].payload, close_payload(1000));
}

TEST(WsClose, ValidatesTheCodeItSendsAndCutsLongReasons) {
  Session server(Role::Server);
  EXPECT_FALSE(server.send_close(1006, "")) << "1006 only describes a close locally";
  EXPECT_FALSE(server.send_close(1004, ""));
  EXPECT_FALSE(server.send_close(999, ""));
  EXPECT_FALSE(server.close_sent());
  EXPECT_TRUE(server.send_close(1005, "no code: no reason either"));
  EXPECT_EQ(server.take_output(), bytes({0x88, 0x00}));

  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "é";  // 200 bytes of two-byte characters
  Session other(Role::Server);
  EXPECT_TRUE(other.send_close(4000, reason));
  std::vector<WireFrame> frames = parse_wire(other.take_output());
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].payload.size(), 2U + 122U) << "cut before the character that does not fit";
  EXPECT_TRUE(valid_utf8(frames[0].payload.substr(2)));
}

TEST(WsClose, RunsTheWholeHandshakeBetweenTwoSessions) {
  Session server(Role::Server);
  Session client(Role::Client);
  ASSERT_TRUE(client.send_close(1000, "done"));
  Fed at_server = feed(server, client.take_output());
  ASSERT_TRUE(at_server.ok);
  EXPECT_TRUE(server.closed());  // received and echoed: the server closes TCP now
  Fed at_client = feed(client, server.take_output());
  ASSERT_TRUE(at_client.ok);
  ASSERT_EQ(at_client.events.size(), 1U);
  EXPECT_EQ(at_client.events[0].close_code, 1000);
  EXPECT_TRUE(client.closed());
  EXPECT_FALSE(client.has_output());
}

// ------------------------------------------------------------ permessage-deflate

TEST(WsDeflate, CompressesHelloAsInRfc7692) {
  Compressor c(15, false);
  std::string out;
  c.compress("Hello", true, &out);
  EXPECT_EQ(out, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));  // 7.2.3.1
  out.clear();
  c.compress("Hello", true, &out);
  EXPECT_EQ(out, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})) << "7.2.3.2: the window is shared";
  Compressor fresh(15, true);
  for (int i = 0; i < 2; ++i) {
    out.clear();
    fresh.compress("Hello", true, &out);
    EXPECT_EQ(out, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) << "no context takeover, message " << i;
  }
}

TEST(WsDeflate, ReadsTheRfc7692Examples) {
  DeflateOptions deflate;
  Session client(Role::Client, Limits(), &deflate);
  std::string wire =
      bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) +              // 7.2.3.1
      bytes({0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00}) +  // fragmented
      bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00}) +  // 7.2.3.2, the shared window
      bytes({0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}) +  // 7.2.3.3
      bytes({0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}) +  // 7.2.3.4, BFINAL
      bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) +        // a new stream after it
      bytes({0x81, 0x05, 'H', 'e', 'l', 'l', 'o'});                          // and an uncompressed one
  Fed r = feed(client, wire);
  ASSERT_TRUE(r.ok) << client.failure_reason();
  ASSERT_EQ(r.events.size(), 7U);
  for (const Event& e : r.events) {
    EXPECT_EQ(e.kind, Event::Kind::Message);
    EXPECT_EQ(e.data, "Hello");
  }
  Session bytewise(Role::Client, Limits(), &deflate);
  Fed b = feed_bytewise(bytewise, wire);
  ASSERT_TRUE(b.ok) << bytewise.failure_reason();
  EXPECT_EQ(b.events.size(), 7U);
}

TEST(WsDeflate, KeepsTheWindowAcrossAClosedStreamWithContextTakeover) {
  // "Hello" ending its DEFLATE stream (BFINAL), then "Hello" as a back
  // reference into it: readable only if the window survives the new stream.
  DeflateOptions deflate;
  Session client(Role::Client, Limits(), &deflate);
  Fed r = feed(client, bytes({0xc1, 0x07, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) +
                           bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00}));
  ASSERT_TRUE(r.ok) << client.failure_reason();
  ASSERT_EQ(r.events.size(), 2U);
  EXPECT_EQ(r.events[1].data, "Hello");
}

// Sends `messages` from one session to the other and checks what arrives.
void round_trip(Session& from, Session& to, const std::vector<std::string>& messages, bool binary) {
  for (const std::string& m : messages) ASSERT_TRUE(from.send_message(m, binary));
  Fed r = feed_in_pieces(to, from.take_output(), 1000, 3);
  ASSERT_TRUE(r.ok) << to.failure_reason();
  ASSERT_EQ(r.events.size(), messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(r.events[i].data, messages[i]) << "message " << i;
    EXPECT_EQ(r.events[i].binary, binary);
  }
}

TEST(WsDeflate, RoundTripsWithContextTakeover) {
  DeflateOptions deflate;
  Session server(Role::Server, Limits(), &deflate);
  Session client(Role::Client, Limits(), &deflate);
  std::string json =
      R"({"type":"update","user":"someone","items":[1,2,3,4,5],"note":"the same shape each time"})";
  std::vector<std::string> messages(5, json);
  for (const std::string& m : messages) client.send_message(m, false);
  std::string wire = client.take_output();
  std::vector<WireFrame> frames = parse_wire(wire);
  ASSERT_EQ(frames.size(), 5U);
  for (const WireFrame& f : frames) EXPECT_TRUE(f.rsv1());
  EXPECT_LT(frames[1].payload.size(), frames[0].payload.size() / 4) << "the second refers back to the first";
  Fed r = feed(server, wire);
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 5U);
  for (const Event& e : r.events) EXPECT_EQ(e.data, json);

  round_trip(server, client, {random_text(5000, 1), random_text(70000, 2), random_text(100, 3)}, false);
  round_trip(client, server, {random_binary(3000, 4), std::string(200000, 'z'), random_binary(40, 5)}, true);
}

TEST(WsDeflate, RoundTripsWithoutContextTakeover) {
  DeflateOptions deflate;
  deflate.server_no_context_takeover = true;
  deflate.client_no_context_takeover = true;
  Session server(Role::Server, Limits(), &deflate);
  Session client(Role::Client, Limits(), &deflate);
  std::string text = random_text(400, 9);
  for (int i = 0; i < 3; ++i) server.send_message(text, false);
  std::string wire = server.take_output();
  std::vector<WireFrame> frames = parse_wire(wire);
  ASSERT_EQ(frames.size(), 3U);
  EXPECT_EQ(frames[1].payload, frames[0].payload) << "each message compressed from scratch";
  EXPECT_EQ(frames[2].payload, frames[0].payload);
  Fed r = feed(client, wire);
  ASSERT_TRUE(r.ok) << client.failure_reason();
  ASSERT_EQ(r.events.size(), 3U);
  EXPECT_EQ(r.events[2].data, text);
  round_trip(client, server, {random_text(3000, 10), random_text(3000, 10)}, false);
  round_trip(client, server, {random_binary(100000, 11), random_binary(100, 12)}, true);
}

TEST(WsDeflate, RoundTripsWithEveryWindowSize) {
  for (int bits = 8; bits <= 15; ++bits) {
    SCOPED_TRACE(bits);
    DeflateOptions deflate;
    deflate.server_max_window_bits = bits;
    deflate.client_max_window_bits = bits;
    Session server(Role::Server, Limits(), &deflate);
    Session client(Role::Client, Limits(), &deflate);
    // Repeats from near and far, so that long distances would show.
    std::string block = random_binary(300, 12);
    std::string repetitive = block + random_text(40000, 13) + block + block;
    round_trip(client, server, {repetitive, repetitive}, true);
    round_trip(server, client, {repetitive, random_text(5000, 14)}, true);
  }
}

TEST(WsDeflate, LeavesTinyMessagesUncompressed) {
  DeflateOptions deflate;
  Session server(Role::Server, Limits(), &deflate);
  server.send_message("tiny", false);
  server.send_message(std::string(kMinCompressedMessage, 'a'), false);
  std::vector<WireFrame> frames = parse_wire(server.take_output());
  ASSERT_EQ(frames.size(), 2U);
  EXPECT_FALSE(frames[0].rsv1());
  EXPECT_EQ(frames[0].payload, "tiny");
  EXPECT_TRUE(frames[1].rsv1());
}

TEST(WsDeflate, CompressesEveryFragmentOfAStreamedMessage) {
  DeflateOptions deflate;
  Session client(Role::Client, Limits(), &deflate);
  Session server(Role::Server, Limits(), &deflate);
  std::string part = random_text(2000, 15);
  ASSERT_TRUE(client.send_fragment(part, false, true, false));
  ASSERT_TRUE(client.send_ping("mid"));
  ASSERT_TRUE(client.send_fragment(part, false, false, false));
  ASSERT_TRUE(client.send_fragment("", false, false, false));
  ASSERT_TRUE(client.send_fragment("end", false, false, true));
  ASSERT_TRUE(client.send_fragment("", false, true, true));  // an empty compressed message
  ASSERT_TRUE(client.send_fragment("", false, true, true));  // ... right after another
  std::string wire = client.take_output();
  std::vector<WireFrame> frames = parse_wire(wire);
  ASSERT_EQ(frames.size(), 7U);
  EXPECT_EQ(frames[0].first_byte, 0x41) << "RSV1 on the first frame";
  EXPECT_EQ(frames[2].first_byte, 0x00) << "and on no continuation";
  EXPECT_EQ(frames[4].first_byte, 0x80);
  EXPECT_EQ(frames[5].first_byte, 0xc1);
  EXPECT_EQ(frames[5].payload, bytes({0x00}));  // RFC 7692 7.2.3.6
  EXPECT_EQ(frames[6].payload, bytes({0x00}));
  Fed r = feed_bytewise(server, wire);
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 4U);
  EXPECT_EQ(r.events[0].kind, Event::Kind::Ping);
  EXPECT_EQ(r.events[1].data, part + part + "end");
  EXPECT_EQ(r.events[2].data, "");
  EXPECT_EQ(r.events[3].data, "");
}

TEST(WsDeflate, StopsADecompressionBombAtTheMessageLimit) {
  Compressor c(15, false);
  std::string bomb;
  c.compress(std::string(20 << 20, '\0'), true, &bomb);  // 20 MiB of zeros
  ASSERT_LT(bomb.size(), 100000U);
  Limits limits;
  limits.max_message = 1 << 20;
  DeflateOptions deflate;
  expect_server_fails(client_frame(0xc2, bomb), 1009, &deflate, limits);

  // Fragmented, each piece small, and the limit still holds.
  std::string wire = client_frame(0x42, bomb.substr(0, 1000));
  for (size_t pos = 1000; pos < bomb.size(); pos += 1000) {
    bool last = pos + 1000 >= bomb.size();
    wire += client_frame(last ? 0x80 : 0x00, bomb.substr(pos, 1000));
  }
  expect_server_fails(wire, 1009, &deflate, limits);

  // Exactly at the limit is fine.
  std::string exact;
  Compressor c2(15, false);
  c2.compress(std::string(limits.max_message, 'a'), true, &exact);
  Session server(Role::Server, limits, &deflate);
  Fed r = feed(server, client_frame(0xc2, exact));
  ASSERT_TRUE(r.ok) << server.failure_reason();
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data.size(), limits.max_message);
}

TEST(WsDeflate, FailsOnDataThatDoesNotInflate) {
  DeflateOptions deflate;
  expect_server_fails(client_frame(0xc1, bytes({0xff, 0xff, 0xff, 0xff})), 1007, &deflate);  // block type 3
  // A message that stops in the middle of a block.
  expect_server_fails(client_frame(0xc1, bytes({0xf2, 0x48, 0xcd})), 1007, &deflate);
  // A stored block whose length check does not match.
  expect_server_fails(client_frame(0xc1, bytes({0x00, 0x05, 0x00, 0x00, 0x00, 'H'})), 1007, &deflate);
}

TEST(WsDeflate, ValidatesCompressedTextAfterInflating) {
  DeflateOptions deflate;
  Compressor c(15, false);
  std::string compressed;
  c.compress("valid until \xed\xa0\x80 a surrogate", true, &compressed);
  expect_server_fails(client_frame(0xc1, compressed), 1007, &deflate);
  Compressor c2(15, false);
  compressed.clear();
  c2.compress("binary \xff is fine", true, &compressed);
  Session server(Role::Server, Limits(), &deflate);
  Fed r = feed(server, client_frame(0xc2, compressed));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data, "binary \xff is fine");
}

}  // namespace
}  // namespace evo::ws
