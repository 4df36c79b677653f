#include "proto/flamegraph.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace evo::flame {
namespace {

// Calls fn(frame) for each ';'-separated frame of `stack`, root first.
template <typename Fn>
void each_frame(std::string_view stack, Fn&& fn) {
  size_t start = 0;
  while (start <= stack.size()) {
    size_t end = stack.find(';', start);
    if (end == std::string_view::npos) end = stack.size();
    fn(stack.substr(start, end - start));
    start = end + 1;
  }
}

// The call tree the stacks describe; node 0 is the root ("all").
struct Node {
  std::string name;
  uint64_t total = 0;
  std::map<std::string, size_t, std::less<>> children;  // by name: the drawing order
};

std::vector<Node> build_tree(const Stacks& stacks, size_t* max_depth) {
  std::vector<Node> nodes(1);
  nodes[0].name = "all";
  *max_depth = 0;
  for (const auto& entry : stacks) {  // (clang 14 cannot capture a structured binding)
    const uint64_t count = entry.second;
    size_t at = 0;
    size_t depth = 0;
    nodes[0].total += count;
    each_frame(entry.first, [&](std::string_view frame) {
      auto it = nodes[at].children.find(frame);
      if (it == nodes[at].children.end()) {
        it = nodes[at].children.emplace(std::string(frame), nodes.size()).first;
        nodes.emplace_back().name = std::string(frame);  // may move nodes: index, never a reference
      }
      at = it->second;
      nodes[at].total += count;
      ++depth;
    });
    *max_depth = std::max(*max_depth, depth);
  }
  return nodes;
}

uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261U;
  for (unsigned char c : s) h = (h ^ c) * 16777619U;
  return h;
}

// A colour from the name alone. Lua frames are warm (red to yellow); native
// code, the garbage collector, the JIT compiler and the VM-state roots each
// get a family of their own so they stand out.
std::string colour(std::string_view name) {
  uint32_t h = fnv1a(name);
  unsigned a = h & 0xffU;
  unsigned b = (h >> 8) & 0xffU;
  unsigned c = (h >> 16) & 0xffU;
  unsigned r = 0;
  unsigned g = 0;
  unsigned bl = 0;
  if (name.rfind("[C]", 0) == 0) {
    r = 70 + a % 50, g = 130 + b % 60, bl = 200 + c % 55;  // blue
  } else if (name.rfind("[GC]", 0) == 0 || name == "Garbage Collector") {
    r = 80 + a % 50, g = 180 + b % 60, bl = 80 + c % 50;  // green
  } else if (name.rfind("[JIT", 0) == 0 || name == "JIT Compiler") {
    r = 160 + a % 50, g = 100 + b % 40, bl = 200 + c % 55;  // violet
  } else if (name == "all" || name == "Interpreted" || name == "Compiled" || name == "C code") {
    r = g = bl = 190 + a % 30;  // grey
  } else {
    r = 205 + a % 50, g = 70 + b % 150, bl = c % 60;  // red .. orange .. yellow
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "rgb(%u,%u,%u)", r, g, bl);
  return buf;
}

// Appends a number with at most two decimals, without trailing zeros.
void put_number(std::string* out, double v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.2f", v);
  while (n > 0 && buf[n - 1] == '0') --n;
  if (n > 0 && buf[n - 1] == '.') --n;
  out->append(buf, static_cast<size_t>(n));
}

// The label drawn inside a frame: as much of the name as fits (about 7 px a
// character at 12 px), shortened with "..".
std::string label(const std::string& name, double width) {
  constexpr double kCharWidth = 7;
  auto fits = static_cast<size_t>((width - 6) / kCharWidth);
  if (fits < 3) return {};
  if (name.size() <= fits) return name;
  return name.substr(0, fits - 2) + "..";
}

struct Layout {
  const std::vector<Node>& nodes;
  const SvgOptions& o;
  double scale;     // pixels per sample
  double baseline;  // y of the root frame
  std::string* out;

  void frame(size_t i, double x, size_t depth) const {
    const Node& n = nodes[i];
    double w = static_cast<double>(n.total) * scale;
    if (w < o.min_width) return;
    double y = baseline - static_cast<double>(depth) * o.frame_height;
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.2f",
                  100.0 * static_cast<double>(n.total) / static_cast<double>(nodes[0].total));
    std::string name = xml_escape(n.name);
    *out += "<g class=\"f\"><title>" + name + " (" + std::to_string(n.total) + " samples, " + pct +
            "%)</title><rect x=\"";
    put_number(out, x);
    *out += "\" y=\"";
    put_number(out, y);
    *out += "\" width=\"";
    put_number(out, w);
    *out += "\" height=\"";
    put_number(out, o.frame_height - 1);
    *out += R"(" rx="2" fill=")" + colour(n.name) + "\"/>";
    std::string text = label(n.name, w);
    if (!text.empty()) {
      *out += "<text x=\"";
      put_number(out, x + 3);
      *out += "\" y=\"";
      put_number(out, y + o.frame_height - 5);
      *out += "\">" + xml_escape(text) + "</text>";
    }
    *out += "</g>\n";
    double cx = x;
    for (const auto& [child_name, child] : n.children) {
      frame(child, cx, depth + 1);
      cx += static_cast<double>(nodes[child].total) * scale;
    }
  }
};

// Length of the UTF-8 sequence starting at s[i], or 0 if it is not one.
size_t utf8_length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0U) != 0x80U) return 0;
  }
  return n;
}

}  // namespace

std::string folded(const Stacks& stacks) {
  std::string out;
  for (const auto& [stack, count] : stacks) {
    out += stack;
    out += ' ';
    out += std::to_string(count);
    out += '\n';
  }
  return out;
}

std::vector<FrameTotals> frame_totals(const Stacks& stacks) {
  std::unordered_map<std::string, FrameTotals> by_name;
  std::unordered_set<std::string_view> seen;  // frames already counted for this stack
  for (const auto& entry : stacks) {
    const uint64_t count = entry.second;
    seen.clear();
    std::string_view leaf;
    each_frame(entry.first, [&](std::string_view frame) {
      leaf = frame;
      if (!seen.insert(frame).second) return;
      auto& t = by_name[std::string(frame)];
      t.total += count;
    });
    by_name[std::string(leaf)].self += count;
  }
  std::vector<FrameTotals> out;
  out.reserve(by_name.size());
  for (auto& [name, t] : by_name) {
    t.name = name;
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const FrameTotals& a, const FrameTotals& b) {
    if (a.self != b.self) return a.self > b.self;
    if (a.total != b.total) return a.total > b.total;
    return a.name < b.name;
  });
  return out;
}

std::string svg(const Stacks& stacks, const SvgOptions& o) {
  size_t max_depth = 0;
  std::vector<Node> nodes = build_tree(stacks, &max_depth);
  const double header = o.subtitle.empty() ? 34 : 50;
  const double height = header + static_cast<double>(max_depth + 1) * o.frame_height + 10;
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"";
  put_number(&out, o.width);
  out += "\" height=\"";
  put_number(&out, height);
  out += "\" font-family=\"Verdana, sans-serif\" font-size=\"12\">\n";
  out += "<style>g.f:hover rect{stroke:#000;stroke-width:0.7} g.f text{pointer-events:none}</style>\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#f7f7f2\"/>\n";
  out += R"(<text x="50%" y="22" text-anchor="middle" font-size="16">)" + xml_escape(o.title) + "</text>\n";
  if (!o.subtitle.empty()) {
    out += R"(<text x="50%" y="40" text-anchor="middle" fill="#555">)" + xml_escape(o.subtitle) + "</text>\n";
  }
  if (nodes[0].total > 0) {
    double usable = o.width - 20;
    Layout layout{nodes, o, usable / static_cast<double>(nodes[0].total), height - 10 - o.frame_height, &out};
    layout.frame(0, 10, 0);
  }
  out += "</svg>\n";
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_length(s, i);
      if (n == 0) {
        out += '?';
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
    }
    ++i;
  }
  return out;
}

}  // namespace evo::flame
