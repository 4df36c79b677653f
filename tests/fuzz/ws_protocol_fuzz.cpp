// libFuzzer target: the WebSocket engine (framing, masking, UTF-8,
// permessage-deflate, closing handshake) and the handshake helpers.
// Run by `make test-fuzz`.
//
// Input: a mode byte, a deflate-parameters byte, then the data.
//   mode bit 0: 0 = the data is wire bytes from a peer; 1 = the data is a
//               script of sends a peer Session performs, whose output must
//               arrive exactly as sent
//   mode bit 1: permessage-deflate agreed, with the parameters byte
//   mode bit 2: the Session under test is a client (else a server)
//   mode bits 3-7: the size of the pieces the wire is fed in
// Every run must end without a crash, a leak, an out-of-bounds access, and
// with every invariant below holding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/ws_protocol.h"

namespace {

using evo::ws::DeflateOptions;
using evo::ws::Event;
using evo::ws::Limits;
using evo::ws::Role;
using evo::ws::Session;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

struct Input {
  std::string_view data;
  size_t pos = 0;

  bool done() const { return pos >= data.size(); }
  uint8_t byte() { return done() ? 0 : static_cast<uint8_t>(data[pos++]); }
  std::string_view take(size_t n) {
    std::string_view out = data.substr(std::min(pos, data.size()), n);
    pos += out.size();
    return out;
  }
};

DeflateOptions deflate_options(uint8_t bits) {
  DeflateOptions o;
  o.server_max_window_bits = 8 + (bits & 7);
  o.client_max_window_bits = 8 + ((bits >> 3) & 7);
  o.server_no_context_takeover = (bits & 0x40) != 0;
  o.client_no_context_takeover = (bits & 0x80) != 0;
  return o;
}

// Feeds `wire` in pieces; returns whether every feed succeeded.
bool feed_in_pieces(Session& s, std::string_view wire, size_t piece, std::vector<Event>* events) {
  for (size_t pos = 0; pos < wire.size(); pos += piece) {
    if (!s.feed(wire.substr(pos, piece), events)) return false;
  }
  return true;
}

bool same_events(const std::vector<Event>& a, const std::vector<Event>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].data != b[i].data || a[i].close_code != b[i].close_code) return false;
    if (a[i].kind == Event::Kind::Message && a[i].binary != b[i].binary) return false;
  }
  return true;
}

// What any event from the engine must look like.
void check_event(const Event& e, const Limits& limits) {
  switch (e.kind) {
    case Event::Kind::Message:
      require(e.data.size() <= limits.max_message, "message over max_message");
      require(e.binary || evo::ws::valid_utf8(e.data), "text message that is not UTF-8");
      break;
    case Event::Kind::Ping:
    case Event::Kind::Pong:
      require(e.data.size() <= 125, "control payload over 125 bytes");
      break;
    case Event::Kind::Close:
      require(e.data.size() <= 123 && evo::ws::valid_utf8(e.data), "bad close reason");
      require(e.close_code == 1005 || (e.close_code >= 1000 && e.close_code < 5000), "bad close code");
      break;
  }
}

// Arbitrary wire bytes into a Session; every message it delivers is echoed,
// and a peer must read the echo (and the pongs and the close) cleanly.
void fuzz_wire(Role role, const DeflateOptions* deflate, size_t piece, std::string_view wire) {
  Limits limits;
  limits.max_message = 8192;
  limits.max_frame = 4096;
  Session s(role, limits, deflate);
  std::vector<Event> events;
  bool ok = feed_in_pieces(s, wire, piece, &events);
  if (!ok) {
    uint16_t code = s.failure_code();
    require(code == 1002 || code == 1007 || code == 1009, "unexpected failure code");
    require(!s.failure_reason().empty() && s.closed() && s.close_sent(), "failure without a close");
    std::vector<Event> more;
    require(!s.feed("\x81\x80", &more) && more.empty(), "a failed session read on");
  }
  std::vector<Event> echoed;
  for (const Event& e : events) {
    check_event(e, limits);
    if (e.kind == Event::Kind::Close) require(&e == &events.back(), "events after the close");
    if (e.kind == Event::Kind::Message && s.send_message(e.data, e.binary)) echoed.push_back(e);
  }

  Session peer(role == Role::Server ? Role::Client : Role::Server, Limits(), deflate);
  std::vector<Event> at_peer;
  require(peer.feed(s.take_output(), &at_peer), "the peer refused the engine's output");
  std::vector<Event> messages;
  for (const Event& e : at_peer) {
    if (e.kind == Event::Kind::Message) messages.push_back(e);
  }
  require(same_events(messages, echoed), "the echo arrived different");
  require(peer.close_received() == s.close_sent(), "the close did not arrive");
}

// A peer Session performs the sends the script describes; what it writes
// must reach the Session under test exactly as sent, whatever the pieces.
void fuzz_script(Role role, const DeflateOptions* deflate, size_t piece, Input script) {
  Session sender(role == Role::Server ? Role::Client : Role::Server, Limits(), deflate);
  std::vector<Event> expected;
  while (!script.done()) {
    uint8_t op = script.byte();
    size_t length = script.byte();
    if ((op & 0x10) != 0) length = length * 64 + script.byte();
    std::string payload(script.take(length));
    bool text = (op & 0x08) == 0 && evo::ws::valid_utf8(payload);
    switch (op % 6) {
      case 0:
        if (sender.send_message(payload, !text)) expected.push_back({Event::Kind::Message, !text, payload});
        break;
      case 1: {
        // Fragments cut anywhere, UTF-8 sequences included.
        size_t parts = 1 + (op >> 5);
        size_t step = payload.size() / parts + 1;
        bool sent = true;
        for (size_t i = 0; i < parts && sent; ++i) {
          std::string_view part = std::string_view(payload).substr(std::min(i * step, payload.size()), step);
          sent = sender.send_fragment(part, !text, i == 0, i + 1 == parts);
        }
        if (sent) expected.push_back({Event::Kind::Message, !text, payload});
        break;
      }
      case 2:
        if (sender.send_ping(payload)) expected.push_back({Event::Kind::Ping, false, payload});
        break;
      case 3:
        if (sender.send_pong(payload)) expected.push_back({Event::Kind::Pong, false, payload});
        break;
      case 4: {
        static constexpr uint16_t kCodes[] = {1000, 1001, 1003, 1008, 1011, 3000, 4999, 1005};
        uint16_t code = kCodes[(op >> 5) % 8];
        std::string reason = text && code != 1005 ? payload.substr(0, 123) : std::string();
        if (!evo::ws::valid_utf8(reason)) reason.clear();
        if (sender.send_close(code, reason)) expected.push_back({Event::Kind::Close, false, reason, code});
        break;
      }
      default:
        break;
    }
  }
  Session s(role, Limits(), deflate);
  std::vector<Event> events;
  std::string wire = sender.take_output();
  require(feed_in_pieces(s, wire, piece, &events), "a valid stream was refused");
  require(same_events(events, expected), "events differ from what was sent");
  // The answers (pongs, the close echo) go back just as cleanly.
  std::vector<Event> answers;
  require(sender.feed(s.take_output(), &answers), "the sender refused the answers");
  require(s.closed() == sender.closed(), "the two ends disagree about the close");
}

// The handshake helpers on the raw text: a server's answer to any offer must
// be one a client accepts, with the same parameters.
void fuzz_handshake(std::string_view text) {
  DeflateOptions server_side;
  std::string response;
  if (evo::ws::negotiate_deflate(text, &server_side, &response)) {
    DeflateOptions client_side;
    require(evo::ws::parse_deflate_response(response, &client_side), "client refused the server's answer");
    require(client_side == server_side, "the two ends agreed different parameters");
  }
  DeflateOptions parsed;
  (void)evo::ws::parse_deflate_response(text, &parsed);
  if (evo::ws::valid_client_key(text)) require(evo::ws::accept_key(text).size() == 28, "bad accept key");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0];
  DeflateOptions options = deflate_options(data[1]);
  const DeflateOptions* deflate = (mode & 2) != 0 ? &options : nullptr;
  Role role = (mode & 4) != 0 ? Role::Client : Role::Server;
  size_t shift = mode >> 3;  // 0-31
  size_t piece = shift == 31 ? size : 1 + shift * shift;
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  if ((mode & 1) != 0) {
    fuzz_script(role, deflate, piece, Input{rest});
  } else {
    fuzz_wire(role, deflate, piece, rest);
  }
  fuzz_handshake(rest.substr(0, 512));
  return 0;
}
