// libFuzzer target: bench/loadgen's wire readers (the HTTP/1.1 response
// reader and the WebSocket frame reader of evo_loadgen). Run by `make test-fuzz`.
//
// Input: a mode byte (bit 0: HTTP or WebSocket; the rest: the size of the
// pieces), then the bytes a server sent. For any input the readers must not
// crash or read out of bounds, and must be split-invariant: reading the bytes
// in one piece and in small pieces gives the same responses (status, close),
// the same messages (size, opcode, payload bytes), control frames, and the
// same error at the same point.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire.h"

namespace {

// What a reader reported, as text, for comparing two ways of reading.
std::string read_http(std::string_view data, size_t piece) {
  loadgen::ResponseReader reader(512);
  std::string log;
  for (size_t at = 0; at < data.size();) {
    size_t n = std::min(piece, data.size() - at);
    size_t off = 0;
    while (off < n) {
      size_t used = 0;
      loadgen::ResponseReader::Response r;
      auto step = reader.next(data.data() + at + off, n - off, &used, &r);
      if (used > n - off) std::abort();
      off += used;
      if (step == loadgen::ResponseReader::Step::NeedMore) {
        if (off != n) std::abort();  // NeedMore takes everything
        break;
      }
      if (step == loadgen::ResponseReader::Step::Response) {
        log += "R" + std::to_string(r.status) + (r.close ? "c" : "") + "@" + std::to_string(at + off) + ";";
        continue;
      }
      log += step == loadgen::ResponseReader::Step::Upgraded ? "U" : std::string("E:") + reader.error();
      return log;
    }
    at += n;
  }
  return log;
}

std::string read_frames(std::string_view data, size_t piece) {
  loadgen::FrameReader reader;
  std::string log;
  std::string payload;
  for (size_t at = 0; at < data.size();) {
    size_t n = std::min(piece, data.size() - at);
    size_t off = 0;
    for (;;) {
      size_t used = 0;
      loadgen::FrameReader::Piece p;
      auto step = reader.next(data.data() + at + off, n - off, &used, &p);
      if (used > n - off) std::abort();
      off += used;
      if (step == loadgen::FrameReader::Step::NeedMore) {
        if (off != n) std::abort();
        break;
      }
      switch (step) {
        case loadgen::FrameReader::Step::Payload:
          payload.append(p.payload);
          break;
        case loadgen::FrameReader::Step::Message:
          if (p.message_size != payload.size()) std::abort();
          log += "M" + std::to_string(p.opcode) + ":" + payload + ";";
          payload.clear();
          break;
        case loadgen::FrameReader::Step::Control:
          log += "C" + std::to_string(p.opcode) + ";";
          break;
        default:
          return log + "E:" + reader.error();
      }
    }
    at += n;
  }
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  bool websocket = (data[0] & 1) != 0;
  size_t piece = 1 + (data[0] >> 1) % 9;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (websocket) {
    if (read_frames(bytes, bytes.size() + 1) != read_frames(bytes, piece)) std::abort();
  } else {
    if (read_http(bytes, bytes.size() + 1) != read_http(bytes, piece)) std::abort();
  }
  return 0;
}
