// The HTTP/2 session engine: a client Session and a server Session talking
// in memory (requests, streaming bodies under flow control, trailers,
// resets, graceful shutdown, h2c), hand-built hostile frame sequences
// against a server, one per defence, asserting the GOAWAY / RST_STREAM code
// on the wire and that memory stays bounded, and real clients (curl, nghttp)
// against a server session on a socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proto/h2_session.h"

namespace evo::h2 {
namespace {

// ------------------------------------------------------------------ helpers

struct Recorder : Handler {
  Session* session = nullptr;
  bool auto_consume = true;
  std::map<int32_t, RequestHead> requests;
  std::map<int32_t, ResponseHead> responses;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, HeaderList> trailers;
  std::set<int32_t> ended;
  std::map<int32_t, uint32_t> closed;
  std::vector<std::pair<uint32_t, int32_t>> goaways;
  std::map<int32_t, size_t> progress;
  std::function<void(int32_t, const RequestHead&, bool)> respond;

  void on_request(int32_t id, RequestHead&& head, bool end_stream) override {
    requests[id] = std::move(head);
    if (end_stream) ended.insert(id);
    if (respond) respond(id, requests[id], end_stream);
  }
  void on_response(int32_t id, ResponseHead&& head, bool end_stream) override {
    responses[id] = std::move(head);
    if (end_stream) ended.insert(id);
  }
  void on_data(int32_t id, std::string_view data) override {
    bodies[id].append(data);
    if (auto_consume && session) session->consume(id, data.size());
  }
  void on_trailers(int32_t id, HeaderList&& t) override { trailers[id] = std::move(t); }
  void on_end_stream(int32_t id) override { ended.insert(id); }
  void on_stream_close(int32_t id, uint32_t code) override { closed[id] = code; }
  void on_send_progress(int32_t id, size_t buffered) override { progress[id] = buffered; }
  void on_goaway(uint32_t code, int32_t last, std::string_view) override { goaways.emplace_back(code, last); }
};

// A client and a server in memory, on one fake clock.
struct Pair {
  uint64_t clock = 1000;
  Recorder srv, cli;
  Session server;
  Session client;

  explicit Pair(Options so = Options(), Options co = Options())
      : server(Role::Server, srv, with_clock(so)), client(Role::Client, cli, with_clock(co)) {
    srv.session = &server;
    cli.session = &client;
  }
  Options with_clock(Options o) {
    o.clock = [this] { return clock; };
    return o;
  }
  // Moves bytes both ways until neither side has anything to send.
  void pump() {
    for (int i = 0; i < 10000; ++i) {
      std::string c2s, s2c;
      client.take_output(c2s);
      server.take_output(s2c);
      if (c2s.empty() && s2c.empty()) return;
      if (!c2s.empty()) server.receive(c2s.data(), c2s.size());
      if (!s2c.empty()) client.receive(s2c.data(), s2c.size());
    }
    FAIL() << "pump did not settle";
  }
};

RequestHead get(std::string path = "/", HeaderList headers = {}) {
  RequestHead h;
  h.method = "GET";
  h.scheme = "https";
  h.authority = "example.test";
  h.path = std::move(path);
  h.headers = std::move(headers);
  return h;
}

RequestHead post(std::string path = "/upload") {
  RequestHead h = get(std::move(path));
  h.method = "POST";
  return h;
}

// ---- raw frames, built independently of the engine (RFC 9113 4.1)

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string out;
  size_t n = payload.size();
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(stream >> shift));
  out.append(payload);
  return out;
}

constexpr uint8_t DATA = 0, HEADERS = 1, PRIORITY = 2, RST = 3, SETTINGS = 4, PING = 6, GOAWAY = 7,
                  WINDOW_UPDATE = 8, CONTINUATION = 9;
constexpr uint8_t END_STREAM = 1, ACK = 1, END_HEADERS = 4;

std::string u32(uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  return out;
}

// The client preface, an empty SETTINGS, and the ACK of the server's.
std::string preface(bool ack = true) {
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, "");
  if (ack) out += frame(SETTINGS, ACK, 0, "");
  return out;
}

// HPACK (RFC 7541): a literal field without indexing, new name, no Huffman,
// lengths under 127.
std::string literal(std::string_view name, std::string_view value) {
  std::string out(1, '\0');
  out.push_back(static_cast<char>(name.size()));
  out.append(name);
  out.push_back(static_cast<char>(value.size()));
  out.append(value);
  return out;
}

// GET / over http, :authority a.test: static-table indexes 2, 6, 4; a
// literal with the name of index 1.
std::string get_block() {
  return std::string(
      "\x82\x86\x84\x01\x06"
      "a.test",
      11);
}
std::string post_block() {
  return std::string(
      "\x83\x86\x84\x01\x06"
      "a.test",
      11);
}

struct Frame {
  uint8_t type, flags;
  uint32_t stream;
  std::string payload;
};

std::vector<Frame> parse(std::string_view bytes) {
  std::vector<Frame> out;
  size_t p = 0;
  while (p + 9 <= bytes.size()) {
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[p + i]); };
    size_t len = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
    uint32_t stream =
        ((uint32_t{b(5)} << 24) | (uint32_t{b(6)} << 16) | (uint32_t{b(7)} << 8) | b(8)) & 0x7fffffff;
    if (p + 9 + len > bytes.size()) break;
    out.push_back({b(3), b(4), stream, std::string(bytes.substr(p + 9, len))});
    p += 9 + len;
  }
  return out;
}

uint32_t be32(std::string_view s, size_t at) {
  return (uint32_t{static_cast<uint8_t>(s[at])} << 24) | (uint32_t{static_cast<uint8_t>(s[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[at + 2])} << 8) | static_cast<uint8_t>(s[at + 3]);
}

// A server fed raw bytes by a hand-written client.
struct RawServer {
  uint64_t clock = 1000;
  Recorder rec;
  Session s;
  std::string out;  // everything the server sent

  explicit RawServer(Options o = Options()) : s(Role::Server, rec, with_clock(std::move(o))) {
    rec.session = &s;
    rec.respond = [this](int32_t id, const RequestHead&, bool end_stream) {
      if (end_stream) s.submit_response(id, 200, {{"content-type", "text/plain"}}, true);
    };
  }
  Options with_clock(Options o) {
    o.clock = [this] { return clock; };
    return o;
  }
  bool send(std::string_view bytes) {
    bool ok = s.receive(bytes.data(), bytes.size());
    s.take_output(out);
    return ok;
  }
  // The code of the GOAWAY the server sent, or -1.
  int64_t goaway() const {
    for (const Frame& f : parse(out)) {
      if (f.type == GOAWAY && f.payload.size() >= 8) return be32(f.payload, 4);
    }
    return -1;
  }
  std::map<uint32_t, uint32_t> resets() const {
    std::map<uint32_t, uint32_t> out_codes;
    for (const Frame& f : parse(out)) {
      if (f.type == RST && f.payload.size() == 4) out_codes[f.stream] = be32(f.payload, 0);
    }
    return out_codes;
  }
  size_t responses() const {
    size_t n = 0;
    for (const Frame& f : parse(out)) n += f.type == HEADERS ? 1 : 0;
    return n;
  }
};

// ------------------------------------------------------------ in memory

TEST(H2Session, RequestAndResponse) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    p.server.submit_response(
        id, 200, {{"Content-Type", "text/plain"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}}, false);
    p.server.write(id, "hello ");
    p.server.write(id, "world");
    p.server.end(id);
  };
  int32_t id =
      p.client.submit_request(get("/x?y=1", {{"accept", "*/*"}, {"x-dup", "1"}, {"x-dup", "2"}}), true);
  ASSERT_EQ(id, 1);
  p.pump();

  const RequestHead& req = p.srv.requests.at(1);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.scheme, "https");
  EXPECT_EQ(req.authority, "example.test");
  EXPECT_EQ(req.path, "/x?y=1");
  HeaderList want_req = {{"accept", "*/*"}, {"x-dup", "1"}, {"x-dup", "2"}};
  EXPECT_EQ(req.headers, want_req);
  EXPECT_TRUE(p.srv.ended.count(1));

  const ResponseHead& res = p.cli.responses.at(1);
  EXPECT_EQ(res.status, 200);
  HeaderList want_res = {{"content-type", "text/plain"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}};
  EXPECT_EQ(res.headers, want_res);  // names lower-cased on the wire, order and duplicates kept
  EXPECT_EQ(p.cli.bodies.at(1), "hello world");
  EXPECT_TRUE(p.cli.ended.count(1));
  EXPECT_EQ(p.cli.closed.at(1), NoError);
  EXPECT_EQ(p.srv.closed.at(1), NoError);
  EXPECT_EQ(p.server.stream_count(), 0u);
  EXPECT_EQ(p.client.stream_count(), 0u);
}

TEST(H2Session, ConnectionSpecificHeadersAreDropped) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    p.server.submit_response(
        id, 204,
        {{"Connection", "keep-alive"}, {"Keep-Alive", "5"}, {"Transfer-Encoding", "chunked"}, {"x-ok", "1"}},
        true);
  };
  p.client.submit_request(get("/", {{"te", "trailers"}, {"upgrade", "websocket"}}), true);
  p.pump();
  HeaderList want_req = {{"te", "trailers"}};
  EXPECT_EQ(p.srv.requests.at(1).headers, want_req);
  HeaderList want_res = {{"x-ok", "1"}};
  EXPECT_EQ(p.cli.responses.at(1).status, 204);
  EXPECT_EQ(p.cli.responses.at(1).headers, want_res);
}

TEST(H2Session, ManyConcurrentStreams) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead& req, bool) {
    p.server.submit_response(id, 200, {}, false);
    p.server.write(id, req.path);
    p.server.end(id);
  };
  std::vector<int32_t> ids;
  for (int i = 0; i < 250; ++i) ids.push_back(p.client.submit_request(get("/" + std::to_string(i)), true));
  p.pump();
  for (int i = 0; i < 250; ++i) {
    EXPECT_EQ(p.cli.bodies[ids[i]], "/" + std::to_string(i));
    EXPECT_EQ(p.cli.closed[ids[i]], NoError);
  }
}

// The request body flows only as the server consumes it: WINDOW_UPDATE
// follows consume(), so an idle handler stops the sender (backpressure).
TEST(H2Session, RequestBodyBackpressure) {
  Options so;
  so.initial_window_size = 65536;
  so.connection_window_size = 65536;
  Pair p(so);
  p.srv.auto_consume = false;
  std::string body(1024 * 1024, 'b');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  int32_t id = p.client.submit_request(post(), false);
  p.client.write(id, body);
  p.client.end(id);
  p.pump();
  // Only the window went across; the rest waits, stalled, in the client.
  EXPECT_EQ(p.srv.bodies[id].size(), 65536u);
  EXPECT_EQ(p.client.buffered(id), body.size() - 65536);
  EXPECT_EQ(p.client.stalled_since(), 1000u);
  // The handler takes the body 16 KiB at a time.
  size_t consumed = 0;
  for (int round = 0; round < 1000 && !p.srv.ended.count(id); ++round) {
    p.clock += 10;
    size_t have = p.srv.bodies[id].size();
    ASSERT_LE(have - consumed, 65536u);  // never more than the window unconsumed
    size_t n = std::min<size_t>(16384, have - consumed);
    p.server.consume(id, n);
    consumed += n;
    p.pump();
  }
  EXPECT_EQ(p.srv.bodies[id], body);
  EXPECT_TRUE(p.srv.ended.count(id));
  EXPECT_EQ(p.client.stalled_since(), 0u);
}

// A streamed response: the handler writes as it goes (the data provider is
// deferred while the queue is empty and resumed by write()).
TEST(H2Session, StreamingResponseAndProgress) {
  Pair p;
  int32_t sid = 0;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    sid = id;
    p.server.submit_response(id, 200, {}, false);
  };
  int32_t id = p.client.submit_request(get(), true);
  p.pump();
  ASSERT_EQ(sid, id);
  EXPECT_TRUE(p.cli.responses.count(id));
  std::string want;
  for (int i = 0; i < 20; ++i) {
    std::string chunk = "chunk " + std::to_string(i) + ";";
    want += chunk;
    EXPECT_TRUE(p.server.write(sid, chunk));
    p.pump();
    EXPECT_EQ(p.cli.bodies[id], want);
    EXPECT_EQ(p.srv.progress[sid], 0u);  // told the queue drained
  }
  EXPECT_FALSE(p.cli.ended.count(id));
  p.server.end(sid);
  p.pump();
  EXPECT_TRUE(p.cli.ended.count(id));
  EXPECT_FALSE(p.server.write(sid, "late"));  // the stream is gone
}

// The client does not read: the server's body waits for its window, and
// stalled_since() tells the caller since when (its send timeout).
TEST(H2Session, ZeroWindowStallIsReported) {
  Options co;
  co.initial_window_size = 1000;
  Pair p(Options(), co);
  p.cli.auto_consume = false;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    p.server.submit_response(id, 200, {}, false);
    p.server.write(id, std::string(5000, 'x'));
  };
  int32_t id = p.client.submit_request(get(), true);
  p.pump();
  EXPECT_EQ(p.cli.bodies[id].size(), 1000u);
  EXPECT_EQ(p.server.buffered(id), 4000u);
  EXPECT_EQ(p.server.stalled_since(), 1000u);
  p.clock = 5000;
  p.pump();
  EXPECT_EQ(p.server.stalled_since(), 1000u);  // still since then
  p.client.consume(id, 1000);
  p.pump();
  EXPECT_EQ(p.cli.bodies[id].size(), 2000u);
  EXPECT_EQ(p.server.stalled_since(), 5000u);  // blocked again, from now
  p.cli.auto_consume = true;
  p.client.consume(id, 1000);
  p.pump();
  EXPECT_EQ(p.cli.bodies[id].size(), 5000u);
  EXPECT_EQ(p.server.stalled_since(), 0u);
}

TEST(H2Session, TrailersBothWays) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    p.server.submit_response(id, 200, {{"trailer", "grpc-status"}}, false);
  };
  int32_t id = p.client.submit_request(post(), false);
  p.client.write(id, "request body");
  p.client.submit_trailers(id, {{"x-checksum", "abc"}});
  p.pump();
  EXPECT_EQ(p.srv.bodies[id], "request body");
  HeaderList want_req = {{"x-checksum", "abc"}};
  EXPECT_EQ(p.srv.trailers[id], want_req);
  EXPECT_TRUE(p.srv.ended.count(id));

  p.server.write(id, "response body");
  p.server.submit_trailers(id, {{"grpc-status", "0"}, {"grpc-message", "ok"}});
  p.pump();
  EXPECT_EQ(p.cli.bodies[id], "response body");
  HeaderList want_res = {{"grpc-status", "0"}, {"grpc-message", "ok"}};
  EXPECT_EQ(p.cli.trailers[id], want_res);
  EXPECT_EQ(p.cli.closed[id], NoError);
}

TEST(H2Session, InformationalResponsesComeBeforeTheFinalOne) {
  Pair p;
  std::vector<Field> hints = {{"Link", "</style.css>; rel=preload"}};
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    EXPECT_TRUE(p.server.submit_informational(id, 103, hints));
    EXPECT_TRUE(p.server.submit_informational(id, 100, {}));
    EXPECT_FALSE(p.server.submit_informational(id, 101, {}));  // no protocol switch in HTTP/2
    EXPECT_FALSE(p.server.submit_informational(id, 200, {}));
    p.server.submit_response(id, 200, {{"x-final", "1"}}, false);
    EXPECT_FALSE(p.server.submit_informational(id, 103, {}));  // answered already
    p.server.write(id, "body");
    p.server.end(id);
  };
  int32_t id = p.client.submit_request(get(), true);
  p.pump();
  // The client skips the 1xx: one response, the final one.
  ASSERT_EQ(p.cli.responses.count(id), 1u);
  EXPECT_EQ(p.cli.responses[id].status, 200);
  HeaderList want = {{"x-final", "1"}};
  EXPECT_EQ(p.cli.responses[id].headers, want);
  EXPECT_EQ(p.cli.bodies[id], "body");
  EXPECT_EQ(p.cli.closed[id], NoError);
}

TEST(H2Session, TrailersWithoutBody) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    p.server.submit_response(id, 200, {}, false);
    p.server.submit_trailers(id, {{"grpc-status", "7"}});
  };
  int32_t id = p.client.submit_request(get(), true);
  p.pump();
  EXPECT_EQ(p.cli.bodies.count(id), 0u);
  HeaderList want = {{"grpc-status", "7"}};
  EXPECT_EQ(p.cli.trailers[id], want);
  EXPECT_TRUE(p.cli.ended.count(id));
}

TEST(H2Session, ResetsEitherWay) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) { p.server.submit_response(id, 200, {}, false); };
  int32_t a = p.client.submit_request(get("/a"), true);
  int32_t b = p.client.submit_request(get("/b"), true);
  p.pump();
  p.server.reset_stream(a, InternalError);
  p.client.reset_stream(b, Cancel);
  p.pump();
  EXPECT_EQ(p.cli.closed.at(a), InternalError);
  EXPECT_EQ(p.srv.closed.at(a), InternalError);
  EXPECT_EQ(p.srv.closed.at(b), Cancel);
  EXPECT_EQ(p.cli.closed.at(b), Cancel);
  EXPECT_EQ(p.server.stream_count(), 0u);
  EXPECT_EQ(p.server.failure(), NoError);  // two resets are no flood
}

// A stream reset with its body unconsumed gives the connection window back:
// the next stream's body still flows.
TEST(H2Session, UnconsumedBodyOfClosedStreamFreesConnectionWindow) {
  Options so;
  so.initial_window_size = 65535;
  so.connection_window_size = 65535;
  Pair p(so);
  p.srv.auto_consume = false;
  int32_t a = p.client.submit_request(post("/a"), false);
  p.client.write(a, std::string(60000, 'a'));
  p.pump();
  EXPECT_EQ(p.srv.bodies[a].size(), 60000u);
  p.server.reset_stream(a, Cancel);
  p.pump();
  p.srv.auto_consume = true;
  int32_t b = p.client.submit_request(post("/b"), false);
  p.client.write(b, std::string(60000, 'b'));
  p.client.end(b);
  p.pump();
  EXPECT_EQ(p.srv.bodies[b].size(), 60000u);
  EXPECT_TRUE(p.srv.ended.count(b));
}

// Graceful shutdown: a GOAWAY notice, a PING for the round trip, then the
// final GOAWAY naming the last stream; open streams finish first.
TEST(H2Session, GracefulShutdown) {
  Pair p;
  std::vector<int32_t> open;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) {
    open.push_back(id);
    p.server.submit_response(id, 200, {}, false);
  };
  int32_t a = p.client.submit_request(get("/a"), true);
  int32_t b = p.client.submit_request(get("/b"), true);
  p.pump();
  ASSERT_EQ(open.size(), 2u);
  p.server.shutdown();
  p.pump();
  ASSERT_EQ(p.cli.goaways.size(), 2u);
  EXPECT_EQ(p.cli.goaways[0].first, NoError);
  EXPECT_EQ(p.cli.goaways[0].second, 0x7fffffff);  // the notice
  EXPECT_EQ(p.cli.goaways[1].second, b);           // the final one
  EXPECT_FALSE(p.server.finished());               // two streams still open
  EXPECT_EQ(p.client.submit_request(get("/late"), true), -1);
  p.server.write(a, "A");
  p.server.end(a);
  p.server.write(b, "B");
  p.server.end(b);
  p.pump();
  EXPECT_EQ(p.cli.bodies[a], "A");
  EXPECT_EQ(p.cli.bodies[b], "B");
  EXPECT_EQ(p.cli.closed[b], NoError);
  EXPECT_TRUE(p.server.finished());
  EXPECT_EQ(p.server.failure(), NoError);
}

TEST(H2Session, ImmediateGoaway) {
  Pair p;
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) { p.server.submit_response(id, 200, {}, false); };
  p.client.submit_request(get(), true);
  p.pump();
  p.server.goaway(InternalError);
  p.pump();
  ASSERT_EQ(p.cli.goaways.size(), 1u);
  EXPECT_EQ(p.cli.goaways[0].first, InternalError);
  EXPECT_TRUE(p.server.finished());
  EXPECT_EQ(p.server.failure(), NoError);  // the caller's choice, not the peer's fault
}

TEST(H2Session, H2cUpgrade) {
  Pair p;
  std::string settings = Session::settings_header(Options());
  EXPECT_FALSE(settings.empty());
  EXPECT_EQ(settings.find_first_of("+/="), std::string::npos);  // base64url, unpadded
  ASSERT_TRUE(p.server.upgrade(settings, false));
  ASSERT_TRUE(p.client.upgrade_client());
  EXPECT_FALSE(p.server.upgrade(settings, false));  // once
  // The HTTP/1.1 request was stream 1; the server answers it over HTTP/2.
  ASSERT_TRUE(p.server.submit_response(1, 200, {{"x-via", "h2c"}}, false));
  p.server.write(1, "upgraded");
  p.server.end(1);
  p.pump();
  EXPECT_EQ(p.cli.responses.at(1).status, 200);
  EXPECT_EQ(p.cli.bodies[1], "upgraded");
  EXPECT_EQ(p.cli.closed[1], NoError);
  // The connection goes on with stream 3.
  p.srv.respond = [&](int32_t id, const RequestHead&, bool) { p.server.submit_response(id, 204, {}, true); };
  EXPECT_EQ(p.client.submit_request(get("/next"), true), 3);
  p.pump();
  EXPECT_EQ(p.cli.responses.at(3).status, 204);
}

// The client sends its SETTINGS once after an upgrade: nghttp2_session_upgrade2
// submits them, so a session made with client_upgrade does not.
TEST(H2Session, H2cUpgradeClientSendsSettingsOnce) {
  Recorder rec;
  Options o;
  o.client_upgrade = true;
  Session client(Role::Client, rec, o);
  ASSERT_TRUE(client.upgrade_client());
  std::string out;
  client.take_output(out);
  ASSERT_GT(out.size(), 24u);
  EXPECT_EQ(out.substr(0, 3), "PRI");
  size_t settings = 0;
  for (const Frame& f : parse(std::string_view(out).substr(24))) {
    if (f.type == SETTINGS && (f.flags & 1) == 0) ++settings;
  }
  EXPECT_EQ(settings, 1u);
}

// What the client's pool reads: whether the server's SETTINGS came, and its
// stream limit.
TEST(H2Session, PeerSettingsAreReported) {
  Options so;
  so.max_concurrent_streams = 2;
  Pair p(so);
  EXPECT_FALSE(p.client.peer_settings_received());
  EXPECT_EQ(p.client.peer_max_concurrent_streams(), 100u);  // nghttp2's assumption until then
  p.pump();
  EXPECT_TRUE(p.client.peer_settings_received());
  EXPECT_EQ(p.client.peer_max_concurrent_streams(), 2u);
  EXPECT_TRUE(p.server.peer_settings_received());
}

TEST(H2Session, H2cUpgradeRefusesBadSettings) {
  Recorder rec;
  Session s(Role::Server, rec);
  EXPECT_FALSE(s.upgrade("not base64!", false));
  EXPECT_FALSE(s.upgrade("AAMAAABkAAQ", false));  // 9 bytes: not a multiple of 6
}

TEST(H2Session, MisuseIsRefused) {
  Pair p;
  EXPECT_FALSE(p.server.submit_response(1, 200, {}, true));  // no such stream
  EXPECT_FALSE(p.server.write(1, "x"));
  EXPECT_EQ(p.server.submit_request(get(), true), -1);  // servers do not request
  int32_t id = p.client.submit_request(get(), true);
  EXPECT_FALSE(p.client.write(id, "x"));  // ended with its head
  p.srv.respond = nullptr;
  p.pump();
  EXPECT_FALSE(p.server.submit_response(id, 42, {}, true));  // not a status
  EXPECT_TRUE(p.server.submit_response(id, 200, {}, true));
  EXPECT_FALSE(p.server.submit_response(id, 200, {}, true));  // answered
}

// ------------------------------------------------------------ hostile peers

TEST(H2Defences, BadPrefaceFails) {
  RawServer srv;
  EXPECT_FALSE(srv.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_NE(srv.s.failure(), NoError);
  EXPECT_TRUE(srv.s.finished());
}

TEST(H2Defences, ServesRawClient) {
  RawServer srv;
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_block())));
  EXPECT_EQ(srv.rec.requests.at(1).authority, "a.test");
  EXPECT_EQ(srv.responses(), 1u);
}

TEST(H2Defences, FrameSplitAcrossReads) {
  RawServer srv;
  std::string bytes = preface() + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_block()) +
                      frame(HEADERS, END_STREAM | END_HEADERS, 3, get_block());
  for (char c : bytes) ASSERT_TRUE(srv.send(std::string(1, c)));
  EXPECT_EQ(srv.rec.requests.size(), 2u);
  EXPECT_EQ(srv.responses(), 2u);
}

// RFC 9113 5.1.1: a new stream's id is above every id the client used.
// nghttp2 1.52 alone ignores a lower one; the splitter refuses it.
TEST(H2Defences, LowerStreamIdIsAProtocolError) {
  RawServer srv;
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_STREAM | END_HEADERS, 5, get_block())));
  EXPECT_EQ(srv.responses(), 1u);
  EXPECT_FALSE(srv.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, get_block())));
  EXPECT_EQ(srv.goaway(), ProtocolError);
  EXPECT_EQ(srv.rec.requests.size(), 1u);  // stream 3 never reached the handler
}

TEST(H2Defences, HeadersOnAClosedStreamIsAProtocolError) {
  RawServer srv;
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_block())));
  EXPECT_EQ(srv.responses(), 1u);  // answered and closed
  EXPECT_FALSE(srv.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, get_block())));
  EXPECT_EQ(srv.goaway(), ProtocolError);
  EXPECT_EQ(srv.rec.requests.size(), 1u);
}

// CVE-2023-44487: open a stream, reset it, at line rate.
TEST(H2Defences, RapidResetGetsGoaway) {
  RawServer srv;
  srv.rec.respond = nullptr;  // the handler is slow: no response before the reset
  std::string bytes = preface();
  for (uint32_t i = 0; i < 300; ++i) {
    uint32_t id = 2 * i + 1;
    bytes += frame(HEADERS, END_STREAM | END_HEADERS, id, get_block());
    bytes += frame(RST, 0, id, u32(Cancel));
  }
  EXPECT_FALSE(srv.send(bytes));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "rapid reset");
  EXPECT_LE(srv.rec.requests.size(), 201u);  // stopped at the limit, the rest ignored
  EXPECT_TRUE(srv.s.finished());
  EXPECT_EQ(srv.s.stream_count(), 0u);  // the one left open was closed with the failure
  EXPECT_EQ(srv.rec.closed.rbegin()->second, EnhanceYourCalm);
}

TEST(H2Defences, ResetsUnderTheRateAreFine) {
  RawServer srv;
  srv.rec.respond = nullptr;
  ASSERT_TRUE(srv.send(preface()));
  uint32_t id = 1;
  for (int round = 0; round < 5; ++round) {
    std::string bytes;
    for (int i = 0; i < 150; ++i, id += 2) {
      bytes += frame(HEADERS, END_STREAM | END_HEADERS, id, get_block());
      bytes += frame(RST, 0, id, u32(Cancel));
    }
    ASSERT_TRUE(srv.send(bytes)) << "round " << round;
    srv.clock += 10001;  // the window slides past them
  }
  EXPECT_EQ(srv.goaway(), -1);
}

// "Made you reset" (CVE-2025-8671): malformed requests make the server
// reset the streams itself; those resets count too.
TEST(H2Defences, ServerSentResetsCount) {
  RawServer srv;
  ASSERT_TRUE(srv.send(preface()));
  // Batches of 50: each is answered (its resets sent) before the next, so
  // the streams never pile up past max_concurrent_streams.
  for (uint32_t batch = 0; batch < 6; ++batch) {
    std::string bytes;
    for (uint32_t i = 0; i < 50; ++i) {
      // An upper-case field name: malformed (RFC 9113 8.2.1), stream error.
      bytes += frame(HEADERS, END_STREAM | END_HEADERS, 2 * (batch * 50 + i) + 1,
                     get_block() + literal("X-Bad", "1"));
    }
    srv.send(bytes);
  }
  EXPECT_EQ(srv.rec.requests.size(), 0u);
  EXPECT_EQ(srv.resets().at(1), ProtocolError);
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "rapid reset");
}

// CVE-2024-27316: CONTINUATION frames without end.
TEST(H2Defences, ContinuationFloodGetsGoaway) {
  RawServer srv;
  std::string bytes = preface() + frame(HEADERS, END_STREAM, 1, get_block());
  for (int i = 0; i < 8; ++i) bytes += frame(CONTINUATION, 0, 1, literal("x-a", "b"));
  ASSERT_TRUE(srv.send(bytes));  // eight are allowed
  EXPECT_FALSE(srv.send(frame(CONTINUATION, 0, 1, literal("x-a", "b"))));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "CONTINUATION flood");
}

TEST(H2Defences, EightContinuationsMakeARequest) {
  RawServer srv;
  std::string bytes = preface() + frame(HEADERS, END_STREAM, 1, get_block());
  for (int i = 0; i < 7; ++i) bytes += frame(CONTINUATION, 0, 1, literal("x-a", std::to_string(i)));
  bytes += frame(CONTINUATION, END_HEADERS, 1, literal("x-last", "1"));
  ASSERT_TRUE(srv.send(bytes));
  EXPECT_EQ(srv.rec.requests.at(1).headers.size(), 8u);
  EXPECT_EQ(srv.goaway(), -1);
}

TEST(H2Defences, OversizeHeaderBlockGetsGoaway) {
  Options o;
  o.max_header_block_bytes = 4096;
  RawServer srv(o);
  std::string big = literal("x-big", std::string(100, 'v'));
  std::string block;
  while (block.size() < 3000) block += big;
  std::string bytes = preface() + frame(HEADERS, END_STREAM, 1, get_block() + block);
  ASSERT_TRUE(srv.send(bytes));
  EXPECT_FALSE(srv.send(frame(CONTINUATION, END_HEADERS, 1, block)));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "header block too large");
}

// HPACK bomb: one 4000-byte value put in the dynamic table, then referenced
// by one-byte indexes until the decoded list is far past the limit. The
// request is answered 431 without its fields being collected, and the
// connection goes on serving.
TEST(H2Defences, HpackBombIsAnswered431) {
  RawServer srv;
  std::string value(4000, 'z');
  // Literal with incremental indexing, new name "x-bomb", value length 4000
  // (7-bit prefix integer: 127, then 4000 - 127 = 3873 = 0x0F21 -> 0xA1 0x1E).
  std::string insert = std::string("\x40\x06x-bomb", 8) + "\x7f\xa1\x1e" + value;
  std::string block = get_block() + insert;
  for (int i = 0; i < 40; ++i) block += "\xbe";  // index 62: the newest dynamic entry
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_STREAM | END_HEADERS, 1, block)));
  EXPECT_EQ(srv.rec.requests.count(1), 0u);
  auto frames = parse(srv.out);
  bool saw431 = false;
  for (const Frame& f : frames)
    saw431 |= f.type == HEADERS && f.stream == 1 && f.payload.find("431") != std::string::npos;
  // :status 431 is not in the static table: sent as a literal with name index 8.
  EXPECT_TRUE(saw431);
  EXPECT_EQ(srv.goaway(), -1);
  ASSERT_TRUE(srv.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, get_block())));
  EXPECT_EQ(srv.rec.requests.count(3), 1u);
}

TEST(H2Defences, BodyAfter431IsDroppedAndWindowReturned) {
  Options o;
  o.max_header_list_size = 200;
  RawServer srv(o);
  std::string block =
      post_block() + literal("x-long", std::string(120, 'l')) + literal("x-more", std::string(60, 'm'));
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_HEADERS, 1, block)));
  ASSERT_TRUE(srv.send(frame(DATA, 0, 1, std::string(60000, 'd'))));
  EXPECT_EQ(srv.rec.bodies.count(1), 0u);
  bool window_update = false;
  for (const Frame& f : parse(srv.out)) window_update |= f.type == WINDOW_UPDATE && f.stream == 0;
  EXPECT_TRUE(window_update);
}

TEST(H2Defences, SettingsFloodGetsGoaway) {
  RawServer srv;
  std::string bytes = preface();
  for (int i = 0; i < 150; ++i) bytes += frame(SETTINGS, 0, 0, "");
  EXPECT_FALSE(srv.send(bytes));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "SETTINGS flood");
}

TEST(H2Defences, PingFloodGetsGoaway) {
  RawServer srv;
  std::string bytes = preface();
  for (int i = 0; i < 100; ++i) bytes += frame(PING, 0, 0, "12345678");
  ASSERT_TRUE(srv.send(bytes));  // 100 within the window are answered
  size_t acks = 0;
  for (const Frame& f : parse(srv.out)) acks += f.type == PING && (f.flags & ACK) ? 1 : 0;
  EXPECT_EQ(acks, 100u);
  EXPECT_FALSE(srv.send(frame(PING, 0, 0, "12345678")));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "PING flood");
}

TEST(H2Defences, PingsSpreadOverTimeAreFine) {
  RawServer srv;
  ASSERT_TRUE(srv.send(preface()));
  for (int i = 0; i < 1000; ++i) {
    srv.clock += 150;  // about 67 per 10 s
    ASSERT_TRUE(srv.send(frame(PING, 0, 0, "12345678"))) << i;
  }
}

// A peer that sends PINGs and never reads the ACKs: nghttp2's outbound-ACK
// cap ends the session (our PING rate limit off to reach it).
TEST(H2Defences, UnreadAcksAreBounded) {
  Options o;
  o.ping.count = 0;
  o.max_outbound_ack = 500;
  Recorder rec;
  Session s(Role::Server, rec, o);
  std::string bytes = preface();
  for (int i = 0; i < 600; ++i) bytes += frame(PING, 0, 0, "12345678");
  EXPECT_FALSE(s.receive(bytes.data(), bytes.size()));
  EXPECT_EQ(s.failure(), EnhanceYourCalm);
  EXPECT_TRUE(s.finished());
}

TEST(H2Defences, EmptyDataFloodGetsGoaway) {
  RawServer srv;
  std::string bytes = preface() + frame(HEADERS, END_HEADERS, 1, post_block());
  for (int i = 0; i < 150; ++i) bytes += frame(DATA, 0, 1, "");
  EXPECT_FALSE(srv.send(bytes));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "empty DATA flood");
}

TEST(H2Defences, PriorityFloodGetsGoaway) {
  RawServer srv;
  std::string bytes = preface();
  std::string spec = u32(0) + std::string(1, '\x10');
  for (uint32_t i = 0; i < 1001; ++i) bytes += frame(PRIORITY, 0, 2 * i + 1, spec);
  EXPECT_FALSE(srv.send(bytes));
  EXPECT_EQ(srv.goaway(), EnhanceYourCalm);
  EXPECT_EQ(srv.s.failure_reason(), "PRIORITY flood");
}

TEST(H2Defences, TooManyStreamsAreRefused) {
  Options o;
  o.max_concurrent_streams = 10;
  RawServer srv(o);
  srv.rec.respond = nullptr;  // keep them open
  // Before the client ACKs our SETTINGS, extra streams are refused one by one.
  std::string bytes = preface(false);
  for (uint32_t i = 0; i < 12; ++i) bytes += frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, get_block());
  ASSERT_TRUE(srv.send(bytes));
  EXPECT_EQ(srv.rec.requests.size(), 10u);
  EXPECT_EQ(srv.s.stream_count(), 10u);
  EXPECT_EQ(srv.resets().at(21), RefusedStream);
  EXPECT_EQ(srv.resets().at(23), RefusedStream);
  // Once it has acknowledged them, going over is a connection error.
  ASSERT_TRUE(srv.send(frame(SETTINGS, ACK, 0, "")));
  srv.send(frame(HEADERS, END_STREAM | END_HEADERS, 25, get_block()));
  EXPECT_EQ(srv.goaway(), ProtocolError);
  EXPECT_EQ(srv.s.failure(), ProtocolError);  // known once the GOAWAY is out
  EXPECT_TRUE(srv.s.finished());
  EXPECT_EQ(srv.rec.closed.size(), 10u);  // the open ones, closed with it
  EXPECT_EQ(srv.rec.closed.at(1), ProtocolError);
}

TEST(H2Defences, FrameOverMaxFrameSize) {
  RawServer srv;
  std::string bytes = preface() + frame(HEADERS, END_HEADERS, 1, post_block());
  ASSERT_TRUE(srv.send(bytes));
  srv.send(frame(DATA, 0, 1, std::string(16385, 'd')));
  EXPECT_EQ(srv.goaway(), FrameSizeError);
  EXPECT_EQ(srv.s.failure(), FrameSizeError);
  EXPECT_FALSE(srv.s.want_read());
}

TEST(H2Defences, DataBeyondTheWindow) {
  Options o;
  o.initial_window_size = 1000;
  RawServer srv(o);
  srv.rec.auto_consume = false;
  ASSERT_TRUE(srv.send(preface() + frame(HEADERS, END_HEADERS, 1, post_block())));
  ASSERT_TRUE(srv.send(frame(DATA, 0, 1, std::string(1000, 'd'))));
  srv.send(frame(DATA, 0, 1, std::string(10, 'd')));
  // Beyond the stream window: nghttp2 resets the stream (FLOW_CONTROL_ERROR),
  // after handing over that one frame; nothing more is taken.
  EXPECT_EQ(srv.resets().at(1), FlowControlError);
  srv.send(frame(DATA, 0, 1, std::string(10000, 'd')));
  EXPECT_LE(srv.rec.bodies[1].size(), 1010u);
  EXPECT_EQ(srv.s.stream_count(), 0u);
}

// Every limit has a default that matches the docs.
TEST(H2Defences, DocumentedDefaults) {
  Options o;
  EXPECT_EQ(o.max_concurrent_streams, 100u);
  EXPECT_EQ(o.max_header_list_size, 32u * 1024);
  EXPECT_EQ(o.max_frame_size, 16384u);
  EXPECT_EQ(o.header_table_size, 4096u);
  EXPECT_EQ(o.max_header_block_bytes, 64u * 1024);
  EXPECT_EQ(o.max_continuations, 8u);
  EXPECT_EQ(o.rapid_reset.count, 200u);
  EXPECT_EQ(o.ping.count, 100u);
  EXPECT_EQ(o.settings.count, 100u);
  EXPECT_EQ(o.priority.count, 1000u);
  EXPECT_EQ(o.empty_data.count, 100u);
  EXPECT_STREQ(error_name(EnhanceYourCalm), "ENHANCE_YOUR_CALM");
  EXPECT_STREQ(error_name(99), "UNKNOWN");
}

// ------------------------------------------------------------ real peers
// The engine behind a plain blocking socket, against curl and nghttp
// (Debian's curl with nghttp2; nghttp2-client). Skipped when absent.

bool have(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Answers GET with "hello <path>" and POST with the body's length, once the
// request has ended.
struct InteropHandler : Handler {
  Session* s = nullptr;
  std::map<int32_t, std::string> paths, bodies;
  void answer(int32_t id) {
    std::string body = bodies.count(id) ? "got " + std::to_string(bodies[id].size()) : "hello " + paths[id];
    s->submit_response(
        id, 200, {{"content-type", "text/plain"}, {"content-length", std::to_string(body.size())}}, false);
    s->write(id, body);
    s->end(id);
  }
  void on_request(int32_t id, RequestHead&& head, bool end_stream) override {
    paths[id] = head.path;
    if (end_stream) answer(id);
  }
  void on_data(int32_t id, std::string_view data) override {
    bodies[id].append(data);
    s->consume(id, data.size());
  }
  void on_end_stream(int32_t id) override {
    if (bodies.count(id)) answer(id);
  }
};

struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
  int accept_one() {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return -1;
    return ::accept(fd, nullptr, nullptr);
  }
};

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Runs one connection until the peer closes it or the session is done.
void serve(int fd, Session& s, std::string_view already_read = {}) {
  if (!already_read.empty()) s.receive(already_read.data(), already_read.size());
  char buf[16384];
  for (;;) {
    std::string out;
    while (s.take_output(out) > 0) {
    }
    if (!out.empty() && !send_all(fd, out)) break;
    if (s.finished()) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    s.receive(buf, static_cast<size_t>(n));
  }
  ::close(fd);
}

// Starts `cmd` (with PORT replaced), serves its one connection, returns
// what it printed.
std::string run_against(const std::string& cmd_template, Session& s, InteropHandler& h,
                        bool upgrade_h2c = false) {
  Listener l;
  std::string cmd = cmd_template;
  cmd.replace(cmd.find("PORT"), 4, std::to_string(l.port));
  FILE* peer = ::popen(cmd.c_str(), "r");
  if (!peer) return "popen failed";
  int fd = l.accept_one();
  if (fd >= 0 && upgrade_h2c) {
    // The HTTP/1.1 request with Upgrade: h2c (curl --http2 on http://):
    // read its head, answer 101, hand the connection to the session.
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) head.push_back(c);
    size_t at = head.find("HTTP2-Settings: ");
    std::string settings =
        at == std::string::npos ? "" : head.substr(at + 16, head.find("\r\n", at) - at - 16);
    send_all(fd, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    if (s.upgrade(settings, false)) {
      h.paths[1] = head.substr(4, head.find(' ', 4) - 4);
      h.answer(1);
    }
  }
  if (fd >= 0) serve(fd, s);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, peer)) > 0) out.append(buf, n);
  ::pclose(peer);
  return out;
}

TEST(H2Interop, CurlPriorKnowledge) {
  if (!have("curl")) GTEST_SKIP() << "no curl";
  InteropHandler h;
  Session s(Role::Server, h);
  h.s = &s;
  std::string out = run_against(
      "curl -sS --http2-prior-knowledge -w ' %{http_version}' http://127.0.0.1:PORT/hi 2>&1", s, h);
  EXPECT_EQ(out, "hello /hi 2");
}

TEST(H2Interop, CurlPostsABodyUnderFlowControl) {
  if (!have("curl")) GTEST_SKIP() << "no curl";
  InteropHandler h;
  Options o;
  o.initial_window_size = 16384;  // many WINDOW_UPDATEs on the way
  o.connection_window_size = 65535;
  Session s(Role::Server, h, o);
  h.s = &s;
  std::string out = run_against(
      "head -c 1000000 /dev/zero | curl -sS --http2-prior-knowledge --data-binary @- "
      "http://127.0.0.1:PORT/up 2>&1",
      s, h);
  EXPECT_EQ(out, "got 1000000");
}

TEST(H2Interop, CurlUpgradesToH2c) {
  if (!have("curl")) GTEST_SKIP() << "no curl";
  InteropHandler h;
  Session s(Role::Server, h);
  h.s = &s;
  std::string out =
      run_against("curl -sS --http2 -w ' %{http_version}' http://127.0.0.1:PORT/up 2>&1", s, h, true);
  EXPECT_EQ(out, "hello /up 2");
}

TEST(H2Interop, NghttpManyStreams) {
  if (!have("nghttp")) GTEST_SKIP() << "no nghttp (nghttp2-client)";
  InteropHandler h;
  Session s(Role::Server, h);
  h.s = &s;
  // -m 20: the same request 20 times, concurrently, on one connection.
  std::string out = run_against("nghttp -nv -m 20 http://127.0.0.1:PORT/x 2>&1", s, h);
  size_t statuses = 0;
  for (size_t at = out.find(":status: 200"); at != std::string::npos; at = out.find(":status: 200", at + 1)) {
    ++statuses;
  }
  EXPECT_EQ(statuses, 20u) << out;
  EXPECT_NE(out.find("recv SETTINGS frame"), std::string::npos);
  EXPECT_NE(out.find("(niv=7)"), std::string::npos);  // our seven settings
}

// The client session against nghttpd (Debian's nghttp2-server) serving a
// directory over h2c: three concurrent requests on one connection.
TEST(H2Interop, ClientAgainstNghttpd) {
  if (!have("nghttpd")) GTEST_SKIP() << "no nghttpd (nghttp2-server)";
  char dir_template[] = "/tmp/evo-h2-XXXXXX";
  std::string dir = ::mkdtemp(dir_template);
  std::string big(200000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  {
    FILE* f = std::fopen((dir + "/big.txt").c_str(), "w");
    std::fwrite(big.data(), 1, big.size(), f);
    std::fclose(f);
    f = std::fopen((dir + "/small.txt").c_str(), "w");
    std::fputs("small file\n", f);
    std::fclose(f);
  }
  int port;
  {
    Listener probe;  // a free port, handed to nghttpd
    port = probe.port;
  }
  std::string cmd = "nghttpd --no-tls -d " + dir + " " + std::to_string(port) + " >/dev/null 2>&1 & echo $!";
  FILE* p = ::popen(cmd.c_str(), "r");
  int pid = 0;
  ASSERT_EQ(std::fscanf(p, "%d", &pid), 1);
  ::pclose(p);
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; ++i) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      fd = -1;
      ::usleep(20000);
    }
  }
  ASSERT_GE(fd, 0) << "nghttpd did not start";

  Recorder rec;
  Session s(Role::Client, rec);
  rec.session = &s;
  std::string authority = "127.0.0.1:" + std::to_string(port);
  auto req = [&](std::string path) {
    RequestHead h = get(std::move(path));
    h.scheme = "http";
    h.authority = authority;
    return s.submit_request(h, true);
  };
  int32_t a = req("/big.txt"), b = req("/small.txt"), c = req("/missing");
  char buf[16384];
  while (rec.closed.size() < 3) {
    std::string out;
    while (s.take_output(out) > 0) {
    }
    if (!out.empty()) ASSERT_TRUE(send_all(fd, out));
    pollfd pf{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&pf, 1, 10000), 1);
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    s.receive(buf, static_cast<size_t>(n));
  }
  s.shutdown();
  std::string out;
  s.take_output(out);
  send_all(fd, out);
  ::close(fd);
  ::kill(pid, SIGTERM);
  std::system(("rm -rf " + dir).c_str());

  EXPECT_EQ(rec.responses[a].status, 200);
  EXPECT_EQ(rec.bodies[a], big);
  EXPECT_EQ(rec.responses[b].status, 200);
  EXPECT_EQ(rec.bodies[b], "small file\n");
  EXPECT_EQ(rec.responses[c].status, 404);
  EXPECT_EQ(rec.closed[a], NoError);
}

}  // namespace
}  // namespace evo::h2
