// src/proto/flamegraph: folded text, per-frame totals, the SVG.
#include "proto/flamegraph.h"

#include <gtest/gtest.h>

namespace evo::flame {
namespace {

Stacks sample() { return {{"main;a;hot", 6}, {"main;b;hot", 3}, {"main;b", 1}, {"main;rec;rec;rec", 2}}; }

TEST(Flamegraph, FoldedIsOneSortedLinePerStack) {
  EXPECT_EQ(folded(sample()), "main;a;hot 6\nmain;b 1\nmain;b;hot 3\nmain;rec;rec;rec 2\n");
  EXPECT_EQ(folded({}), "");
}

TEST(Flamegraph, TotalsCountSelfAtTheLeafAndTotalOncePerStack) {
  auto t = frame_totals(sample());
  ASSERT_GE(t.size(), 4U);
  EXPECT_EQ(t[0].name, "hot");
  EXPECT_EQ(t[0].self, 9U);
  EXPECT_EQ(t[0].total, 9U);
  EXPECT_EQ(t[1].name, "rec");  // recursion counts once per sample
  EXPECT_EQ(t[1].self, 2U);
  EXPECT_EQ(t[1].total, 2U);
  for (const auto& f : t) {
    if (f.name == "main") EXPECT_EQ(f.total, 12U);
    if (f.name == "b") EXPECT_EQ(f.self, 1U);
    if (f.name == "b") EXPECT_EQ(f.total, 4U);
  }
}

TEST(Flamegraph, SvgHasATitledFramePerNodeWithWidthsProportionalToSamples) {
  SvgOptions o;
  o.width = 1220;  // 1200 px of frames
  std::string s = svg(sample(), o);
  EXPECT_EQ(s.rfind("<?xml", 0), 0U);
  EXPECT_NE(s.find("<title>all (12 samples, 100.00%)</title>"), std::string::npos);
  EXPECT_NE(s.find("<title>a (6 samples, 50.00%)</title><rect x=\"10\" y=\""), std::string::npos);
  EXPECT_NE(s.find("width=\"600\""), std::string::npos);  // a: half of 1200 px
  EXPECT_NE(s.find("<title>hot (3 samples, 25.00%)</title>"), std::string::npos);
  EXPECT_EQ(s.substr(s.size() - 7), "</svg>\n");
  EXPECT_EQ(svg(sample(), o), s);  // deterministic, colours included
}

TEST(Flamegraph, EscapesNamesForXml) {
  EXPECT_EQ(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(xml_escape(std::string("x\x01y\xffz", 5)), "x?y?z");
  EXPECT_EQ(xml_escape("caf\xc3\xa9"), "caf\xc3\xa9");
  std::string s = svg({{"<lambda>;x&y", 1}}, {});
  EXPECT_NE(s.find("&lt;lambda&gt;"), std::string::npos);
  EXPECT_EQ(s.find("<lambda>"), std::string::npos);
}

}  // namespace
}  // namespace evo::flame
