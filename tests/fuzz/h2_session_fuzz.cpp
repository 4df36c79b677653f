// libFuzzer target: the HTTP/2 session engine (src/proto/h2_session) with
// random frames from the peer. Run by `make test-fuzz`.
//
// Input: a mode byte, then the peer's bytes.
//   mode bit 0: the Session under test is a client (it has sent three
//               requests, one with a body); else a server, and the input
//               follows a valid client preface and SETTINGS
//   mode bit 1: the server's handler answers every request with a body,
//               trailers on odd streams; the client consumes what it gets
//   mode bit 2: consume nothing (backpressure: windows stay shut)
//   mode bits 3-7: the size of the pieces the input is fed in (1..32, x7)
// Invariants after every piece: no crash or leak (ASan/UBSan), the output
// of one take_output() is bounded by its `max` plus one frame, streams
// never exceed max_concurrent_streams, queued body stays what the handler
// wrote, and once the session has failed it reads nothing more.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/h2_session.h"

namespace {

using evo::h2::Handler;
using evo::h2::HeaderList;
using evo::h2::Options;
using evo::h2::RequestHead;
using evo::h2::ResponseHead;
using evo::h2::Role;
using evo::h2::Session;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

struct FuzzHandler : Handler {
  Session* s = nullptr;
  bool answer = false;
  bool consume = true;
  size_t written = 0;

  void on_request(int32_t id, RequestHead&& head, bool) override {
    if (!answer) return;
    bool has_body = head.method != "HEAD";
    s->submit_response(id, 200, {{"content-type", "text/plain"}, {"x-path", head.path}}, !has_body);
    if (!has_body) return;
    std::string body(100 + head.path.size(), 'b');
    written += body.size();
    s->write(id, body);
    if (id % 2 == 1) {
      s->submit_trailers(id, {{"x-trailer", "1"}});
    } else {
      s->end(id);
    }
  }
  void on_data(int32_t id, std::string_view data) override {
    if (consume) s->consume(id, data.size());
  }
  void on_response(int32_t, ResponseHead&&, bool) override {}
  void on_trailers(int32_t id, HeaderList&&) override {
    if (answer) s->reset_stream(id, evo::h2::Cancel);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  bool client = mode & 1;
  size_t piece = ((mode >> 3) + 1) * 7;

  uint64_t clock = 1000;
  Options opts;
  opts.clock = [&clock] { return clock; };
  FuzzHandler handler;
  handler.answer = mode & 2;
  handler.consume = !(mode & 4);
  Session session(client ? Role::Client : Role::Server, handler, opts);
  handler.s = &session;

  if (client) {
    RequestHead get{"GET", "https", "a.test", "/", "", {{"accept", "*/*"}}};
    session.submit_request(get, true);
    RequestHead post{"POST", "https", "a.test", "/up", "", {}};
    int32_t id = session.submit_request(post, false);
    session.write(id, std::string(3000, 'p'));
    session.end(id);
    session.submit_request(get, true);
  } else {
    static const std::string kPreface =
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9);
    session.receive(kPreface.data(), kPreface.size());
  }

  constexpr size_t kMax = 64 * 1024;
  std::string out;
  bool reading = true;
  for (size_t pos = 0; pos < input.size(); pos += piece) {
    std::string_view chunk = input.substr(pos, piece);
    bool failed_before = session.failure() != evo::h2::NoError;
    bool ok = session.receive(chunk.data(), chunk.size());
    if (failed_before) require(!ok, "a failed session reads on");
    if (!ok) reading = false;
    out.clear();
    session.take_output(out, kMax);
    require(out.size() <= kMax + 70 * 1024, "take_output overshoots its bound");
    require(session.stream_count() <= opts.max_concurrent_streams + (client ? 3 : 0),
            "streams over the limit");
    require(session.buffered_total() <= handler.written + 3000, "queued body grew beyond what was written");
    clock += 7;
    if (!reading) break;
  }
  // Drain what is left: it must end.
  for (int i = 0; i < 1000 && session.want_write(); ++i) {
    out.clear();
    if (session.take_output(out, kMax) == 0) break;
  }
  (void)session.stalled_since();
  return 0;
}
