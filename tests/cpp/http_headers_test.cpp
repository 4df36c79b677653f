// HeaderList: a message's fields as spans of one buffer (proto/http_headers.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/http_headers.h"

namespace evo::http {
namespace {

std::vector<std::string> flat(const HeaderList& list) {
  std::vector<std::string> out;
  for (const auto& [name, value] : list) out.push_back(std::string(name) + "=" + std::string(value));
  return out;
}

TEST(HeaderList, KeepsFieldsInOrderAndReadsThemBack) {
  HeaderList h;
  EXPECT_TRUE(h.empty());
  h.emplace_back("host", "example.com");
  h.emplace_back("x-long", std::string(100, 'v'));
  h.emplace_back("x-empty", "");
  ASSERT_EQ(h.size(), 3U);
  EXPECT_EQ(h[0], (HeaderList::Field{"host", "example.com"}));
  EXPECT_EQ(h[1].second, std::string(100, 'v'));
  EXPECT_EQ(h.back(), (HeaderList::Field{"x-empty", ""}));
  EXPECT_EQ(flat(h),
            (std::vector<std::string>{"host=example.com", "x-long=" + std::string(100, 'v'), "x-empty="}));
  EXPECT_EQ(find_header(h, "x-empty"), std::string_view(""));
  EXPECT_FALSE(find_header(h, "missing").has_value());
}

TEST(HeaderList, InsertsInFrontSetsAValueAndDropsTheLastFields) {
  HeaderList h = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  h.insert_front("host", "h");
  h.set_value(2, "two, longer than before");
  EXPECT_EQ(flat(h), (std::vector<std::string>{"host=h", "a=1", "b=two, longer than before", "c=3"}));
  h.resize(2);
  EXPECT_EQ(flat(h), (std::vector<std::string>{"host=h", "a=1"}));
  h.emplace_back("d", "4");  // (after the dropped fields' bytes)
  EXPECT_EQ(flat(h), (std::vector<std::string>{"host=h", "a=1", "d=4"}));
  EXPECT_EQ(h, (HeaderList{{"host", "h"}, {"a", "1"}, {"d", "4"}}));
  EXPECT_FALSE(h == (HeaderList{{"host", "h"}, {"a", "1"}, {"d", "5"}}));
}

TEST(HeaderList, CollectsNamesAndValuesInPiecesAndTrimsTheValue) {
  HeaderList h;
  h.start_field();
  h.append_name("x-sp", 4);
  h.append_name("lit", 3);
  h.append_value("a b", 3);
  h.append_value(" c \t ", 5);
  h.trim_last_value();
  h.start_field();
  h.append_name("y", 1);  // no value at all
  EXPECT_EQ(flat(h), (std::vector<std::string>{"x-split=a b c", "y="}));
}

TEST(HeaderList, ClearKeepsTheBufferForTheNextMessage) {
  HeaderList h;
  h.emplace_back("user-agent", std::string(200, 'u'));
  size_t bytes = h.byte_capacity();
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_GE(h.byte_capacity(), bytes);
  h.emplace_back("accept", "*/*");
  EXPECT_EQ(flat(h), (std::vector<std::string>{"accept=*/*"}));
}

TEST(HeaderCollector, PiecesOfANameAndAValueAcrossReadsMakeOneField) {
  HeaderList h;
  HeaderCollector c;
  std::string wire = "X-Split-Name: first second";
  ASSERT_EQ(c.name_piece(h, wire.data(), 5), nullptr);
  ASSERT_EQ(c.name_piece(h, wire.data() + 5, 7), nullptr);
  ASSERT_EQ(c.value_piece(h, 14, wire.data() + 14, 6), nullptr);
  ASSERT_EQ(c.value_piece(h, 20, wire.data() + 20, 6), nullptr);
  c.value_done();
  ASSERT_EQ(c.name_piece(h, "Host", 4), nullptr);
  EXPECT_EQ(flat(h), (std::vector<std::string>{"x-split-name=first second", "host="}));
  // A gap between two pieces of one value is obs-fold: refused.
  HeaderList g;
  HeaderCollector d;
  ASSERT_EQ(d.name_piece(g, "a", 1), nullptr);
  ASSERT_EQ(d.value_piece(g, 3, "x", 1), nullptr);
  EXPECT_NE(d.value_piece(g, 7, "y", 1), nullptr);
}

}  // namespace
}  // namespace evo::http
