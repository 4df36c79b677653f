// libFuzzer target: the multipart/form-data parser (src/proto/multipart).
// Run by `make test-fuzz`.
//
// Input: a mode byte, then data.
//   mode bit 0 = 0: the data is a body (boundary "xB0"); it is parsed whole
//     and in pieces of (mode >> 1) + 1 bytes: both must report the same
//     parts and bytes, and the same verdict.
//   mode bit 0 = 1: the data is split on 0xFF into part contents; a body is
//     built from them (every other part a file) and parsed in pieces: each
//     part must come back exactly, unless its content holds the delimiter.
// Every run must end without a crash, a leak or an out-of-bounds access, and
// held-back bytes stay bounded (a boundary line or a header block).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/multipart.h"

namespace {

using evo::multipart::Parser;
using evo::multipart::Part;

constexpr std::string_view kBoundary = "xB0";

struct Collected : evo::multipart::Sink {
  std::string log;  // a canonical transcript of the events
  std::vector<std::string> bodies;
  std::vector<Part> parts;
  bool in_part = false;
  void on_part(const Part& p) override {
    if (in_part) std::abort();  // a part opens only after the previous ended
    in_part = true;
    parts.push_back(p);
    bodies.emplace_back();
    log += "<" + p.name + "|" + p.filename + "|" + p.content_type + ">";
  }
  void on_data(std::string_view b) override {
    if (!in_part || b.empty()) std::abort();
    bodies.back() += b;
    log += b;
  }
  void on_part_end() override {
    if (!in_part) std::abort();
    in_part = false;
    log += "</>";
  }
};

// Parses body in pieces of `piece` bytes; returns whether it succeeded.
bool parse(std::string_view body, size_t piece, Collected& out) {
  Parser p(kBoundary);
  for (size_t i = 0; i < body.size(); i += piece) {
    if (!p.feed(body.substr(i, piece), out)) return false;
    if (p.buffered() > 16 * 1024 + 2 * piece + 300) std::abort();  // bounded hold-back
  }
  return p.finish();
}

void compare_chunkings(std::string_view body, size_t piece) {
  Collected whole, pieces;
  bool a = parse(body, body.size() + 1, whole);
  bool b = parse(body, piece, pieces);
  if (a != b) std::abort();
  // A failing body may fail at different points; a good one must agree.
  if (a && whole.log != pieces.log) std::abort();
}

void round_trip(std::string_view data, size_t piece) {
  std::vector<std::string> contents;
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); ++i) {
    if (i == data.size() || static_cast<uint8_t>(data[i]) == 0xFF) {
      contents.emplace_back(data.substr(start, i - start));
      start = i + 1;
    }
  }
  std::string body = "preamble\r\n";
  bool clean = true;
  for (size_t i = 0; i < contents.size(); ++i) {
    if (contents[i].find("\r\n--" + std::string(kBoundary)) != std::string::npos) clean = false;
    body += "--" + std::string(kBoundary) + "\r\nContent-Disposition: form-data; name=\"f" +
            std::to_string(i) + "\"";
    if (i % 2 == 1)
      body += "; filename=\"a\\\"b" + std::to_string(i) + ".bin\"\r\nContent-Type: application/x-test";
    body += "\r\n\r\n" + contents[i] + "\r\n";
  }
  body += "--" + std::string(kBoundary) + "--\r\n";
  Collected out;
  bool ok = parse(body, piece, out);
  if (!clean) return;
  if (!ok || out.parts.size() != contents.size()) std::abort();
  for (size_t i = 0; i < contents.size(); ++i) {
    if (out.parts[i].name != "f" + std::to_string(i) || out.bodies[i] != contents[i]) std::abort();
    bool file = i % 2 == 1;
    if (out.parts[i].has_filename != file) std::abort();
    if (file && (out.parts[i].filename != "a\"b" + std::to_string(i) + ".bin" ||
                 out.parts[i].content_type != "application/x-test"))
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t piece = (mode >> 1) + 1;
  if ((mode & 1) == 0) {
    compare_chunkings(rest, piece);
  } else {
    round_trip(rest, piece);
  }
  return 0;
}
