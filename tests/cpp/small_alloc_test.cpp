// SmallBlocks over a counting allocator (every block it hands out comes from
// the original, every one goes back, contents survive a resize, the cache is
// bounded), then in front of a real LuaJIT state.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "lua/small_alloc.h"

namespace evo {
namespace {

// The original allocator: malloc, with the live blocks and their sizes.
struct Counting {
  std::map<void*, size_t> live;
  size_t calls = 0;
  static void* alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
    auto* c = static_cast<Counting*>(ud);
    ++c->calls;
    (void)osize;
    if (nsize == 0) {
      if (ptr != nullptr) {
        EXPECT_EQ(c->live.erase(ptr), 1U) << "freed a block it did not allocate";
        std::free(ptr);
      }
      return nullptr;
    }
    if (ptr != nullptr) EXPECT_EQ(c->live.erase(ptr), 1U) << "resized a block it did not allocate";
    void* n = std::realloc(ptr, nsize);
    c->live[n] = nsize;
    return n;
  }
};

TEST(SmallBlocks, ReusesAFreedBlockOfTheSameClass) {
  Counting orig;
  SmallBlocks blocks;
  blocks.attach(Counting::alloc, &orig);
  void* a = SmallBlocks::alloc(&blocks, nullptr, 0, 56);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(orig.live.at(a), 56U);
  SmallBlocks::alloc(&blocks, a, 56, 0);
  EXPECT_EQ(blocks.cached_bytes(), 56U);
  size_t calls = orig.calls;
  void* b = SmallBlocks::alloc(&blocks, nullptr, 0, 50);  // rounded up: the same class
  EXPECT_EQ(b, a);
  EXPECT_EQ(orig.calls, calls) << "served from the list";
  EXPECT_EQ(blocks.cached_bytes(), 0U);
  SmallBlocks::alloc(&blocks, b, 50, 0);
  blocks.release();
  EXPECT_TRUE(orig.live.empty());
}

TEST(SmallBlocks, FilesABlockUnderTheClassItCanHold) {
  Counting orig;
  SmallBlocks blocks;
  blocks.attach(Counting::alloc, &orig);
  // 60 bytes asked for: a 64-byte block; given back as 60, it is filed
  // under 56 and never handed out for 57..64.
  void* a = SmallBlocks::alloc(&blocks, nullptr, 0, 60);
  SmallBlocks::alloc(&blocks, a, 60, 0);
  EXPECT_NE(SmallBlocks::alloc(&blocks, nullptr, 0, 64), a);
  EXPECT_EQ(SmallBlocks::alloc(&blocks, nullptr, 0, 56), a);
  for (auto [p, size] : std::map<void*, size_t>(orig.live)) SmallBlocks::alloc(&blocks, p, size, 0);
  blocks.release();
  EXPECT_TRUE(orig.live.empty());
}

TEST(SmallBlocks, KeepsContentsAcrossResizesAndLargeBlocksGoStraightThrough) {
  Counting orig;
  SmallBlocks blocks;
  blocks.attach(Counting::alloc, &orig);
  auto* p = static_cast<char*>(SmallBlocks::alloc(&blocks, nullptr, 0, 24));
  std::memcpy(p, "twenty-three characters", 24);
  p = static_cast<char*>(SmallBlocks::alloc(&blocks, p, 24, 200));  // small to small
  EXPECT_EQ(std::memcmp(p, "twenty-three characters", 24), 0);
  p = static_cast<char*>(SmallBlocks::alloc(&blocks, p, 200, 4000));  // small to large
  EXPECT_EQ(std::memcmp(p, "twenty-three characters", 24), 0);
  EXPECT_EQ(orig.live.at(p), 4000U);
  p = static_cast<char*>(
      SmallBlocks::alloc(&blocks, p, 4000, 9000));  // large to large: the original's realloc
  EXPECT_EQ(std::memcmp(p, "twenty-three characters", 24), 0);
  p = static_cast<char*>(SmallBlocks::alloc(&blocks, p, 9000, 30));  // large to small
  EXPECT_EQ(std::memcmp(p, "twenty-three characters", 24), 0);
  EXPECT_EQ(SmallBlocks::alloc(&blocks, p, 30, 16), p) << "a smaller size fits where it is";
  SmallBlocks::alloc(&blocks, p, 16, 0);
  blocks.release();
  EXPECT_TRUE(orig.live.empty());
}

TEST(SmallBlocks, KeepsAtMostTheCacheLimitAndEverythingGoesBack) {
  Counting orig;
  SmallBlocks blocks;
  blocks.attach(Counting::alloc, &orig);
  std::mt19937 rng(7);
  std::vector<std::pair<void*, size_t>> held;
  for (int step = 0; step < 200000; ++step) {
    if (held.empty() || rng() % 2 == 0) {
      size_t size = 1 + rng() % 300;
      auto* p = static_cast<unsigned char*>(SmallBlocks::alloc(&blocks, nullptr, 0, size));
      std::memset(p, 0xab, size);  // the whole size is usable (ASan would see an overflow)
      held.emplace_back(p, size);
    } else {
      size_t i = rng() % held.size();
      SmallBlocks::alloc(&blocks, held[i].first, held[i].second, 0);
      held[i] = held.back();
      held.pop_back();
    }
    ASSERT_LE(blocks.cached_bytes(), SmallBlocks::kMaxCached);
  }
  for (auto [p, size] : held) SmallBlocks::alloc(&blocks, p, size, 0);
  blocks.release();
  EXPECT_TRUE(orig.live.empty());
}

TEST(SmallBlocks, RunsALuaStateAndHandsItsAllocatorBack) {
  lua_State* L = luaL_newstate();
  ASSERT_NE(L, nullptr);
  void* ud = nullptr;
  lua_Alloc before = lua_getallocf(L, &ud);
  SmallBlocks blocks;
  blocks.install(L);
  luaL_openlibs(L);
  const char* chunk = R"(
    local keep = {}
    for i = 1, 200000 do
      local t = {name = "n" .. i, i, {x = i}}
      if i % 7 == 0 then keep[#keep + 1] = t end
      if i % 50000 == 0 then collectgarbage() end
    end
    collectgarbage()
    local sum = 0
    for _, t in ipairs(keep) do sum = sum + t[2].x end
    return sum, keep[3].name
  )";
  ASSERT_EQ(luaL_dostring(L, chunk), 0) << lua_tostring(L, -1);
  double expected = 0;
  for (int i = 7; i <= 200000; i += 7) expected += i;
  EXPECT_EQ(lua_tonumber(L, -2), expected);
  EXPECT_STREQ(lua_tostring(L, -1), "n21");
  EXPECT_GT(blocks.cached_bytes(), 0U) << "the collector's frees were kept";
  blocks.uninstall(L);
  EXPECT_EQ(blocks.cached_bytes(), 0U);
  void* ud_after = nullptr;
  EXPECT_EQ(lua_getallocf(L, &ud_after), before);
  EXPECT_EQ(ud_after, ud);
  lua_close(L);
}

}  // namespace
}  // namespace evo
