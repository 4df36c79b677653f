// Folded stacks and flame graphs: what `evo --prof` writes (src/cli/prof.cpp).
//
// A profile is a set of stacks, root frame first, each with the number of
// samples taken in it. This file turns one into the three outputs: the
// folded text ("a;b;c 12" per line, the input of flamegraph.pl, speedscope
// and inferno), a self-contained SVG flame graph, and the per-frame totals
// the summary prints. Pure functions: no Lua, no libuv, no files.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace evo::flame {

// Frame names joined by ';', root first -> samples. A std::map so that every
// output is in one deterministic order.
using Stacks = std::map<std::string, uint64_t>;

// One "stack count\n" line per stack, in the map's order.
std::string folded(const Stacks& stacks);

struct FrameTotals {
  std::string name;
  uint64_t self = 0;   // samples with this frame on top
  uint64_t total = 0;  // samples with this frame anywhere (once per sample, recursion or not)
};

// Per-frame totals, largest self first (then largest total, then by name).
std::vector<FrameTotals> frame_totals(const Stacks& stacks);

struct SvgOptions {
  std::string title = "Flame graph";
  std::string subtitle;  // e.g. "1234 samples, 1 ms interval"
  double width = 1200;   // pixels
  double frame_height = 17;
  double min_width = 0.1;  // frames narrower than this (pixels) are left out
};

// A flame graph: the root at the bottom, each frame as wide as its share of
// the samples, children ordered by name so equal stacks merge (x says
// nothing about time). Every frame has a <title> (name, samples, percent)
// shown on hover, and a colour derived from its name only, so the same
// function has the same colour in every graph.
std::string svg(const Stacks& stacks, const SvgOptions& options);

// `s` made safe inside XML text and attributes: &, <, >, " and ' escaped,
// control characters and bytes that are not UTF-8 replaced by '?'.
std::string xml_escape(std::string_view s);

}  // namespace evo::flame
