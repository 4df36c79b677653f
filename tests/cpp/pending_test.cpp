// PendingExchanges (src/http/pending.h), the event style's table of
// requests waiting for their answer: against std::unordered_map under
// random puts and erases, with ids in a sliding window, colliding slots,
// a long-held id, and ids wrapping around 2^32 (0 included).
#include "http/pending.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "http/server.h"

using evo::http::Exchange;
using evo::http::PendingExchanges;

namespace {

// Every id of the model is found with its exchange, and the size agrees.
void expect_same(const PendingExchanges& table,
                 const std::unordered_map<uint32_t, std::shared_ptr<Exchange>>& model,
                 const std::vector<uint32_t>& probes) {
  ASSERT_EQ(table.size(), model.size());
  for (const auto& [id, ex] : model) ASSERT_EQ(table.find(id), ex.get()) << "id " << id;
  for (uint32_t id : probes) {
    auto it = model.find(id);
    ASSERT_EQ(table.find(id), it == model.end() ? nullptr : it->second.get()) << "probe " << id;
  }
}

void run_model(uint32_t first_id, uint64_t seed) {
  PendingExchanges table;
  std::unordered_map<uint32_t, std::shared_ptr<Exchange>> model;
  std::mt19937_64 rng(seed);
  uint32_t next = first_id;
  const uint32_t held = next;  // a request that stays pending throughout
  table[held] = model[held] = std::make_shared<Exchange>();
  std::vector<uint32_t> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.size() < 40 && (live.empty() || rng() % 3 != 0)) {
      uint32_t id = ++next;  // (wraps as Server::next_id does)
      auto ex = std::make_shared<Exchange>();
      table[id] = ex;
      model[id] = ex;
      live.push_back(id);
    } else {
      size_t at = rng() % live.size();
      uint32_t id = live[at];
      live.erase(live.begin() + static_cast<long>(at));
      table.erase(id);
      model.erase(id);
      table.erase(id);  // a second erase is harmless
    }
    if (step % 97 == 0) {
      // Stale and future ids, some on the held one's slot (a multiple of the capacity away).
      expect_same(table, model, {next + 1, next - 41, held + 16, held + 1024, held - 16, next + 1000});
    }
  }
  expect_same(table, model, {});
  ASSERT_NE(table.find(held), nullptr);
}

}  // namespace

TEST(PendingExchanges, MatchesAMapUnderRandomPutsAndErases) { run_model(0, 1); }

TEST(PendingExchanges, WrapsAroundTheIdSpaceIncludingZero) { run_model(UINT32_MAX - 5000, 2); }

TEST(PendingExchanges, OperatorBracketMakesAnEmptyEntryOnceAndKeepsIt) {
  PendingExchanges table;
  EXPECT_EQ(table.find(7), nullptr);
  EXPECT_EQ(table[7], nullptr);
  EXPECT_EQ(table.size(), 1U);
  auto ex = std::make_shared<Exchange>();
  table[7] = ex;
  EXPECT_EQ(table.size(), 1U);
  EXPECT_EQ(table.find(7), ex.get());
  std::shared_ptr<Exchange> keep = table[7];  // (as l_ev_send keeps it)
  table.erase(7);
  EXPECT_EQ(table.find(7), nullptr);
  EXPECT_EQ(table.size(), 0U);
  EXPECT_EQ(keep.use_count(), 2);  // the table let it go
}

TEST(PendingExchanges, CollidingIdsAllStayReachableAfterErasesInTheRun) {
  PendingExchanges table;
  std::vector<std::shared_ptr<Exchange>> exs;
  // Five ids on one home slot (64 apart), then the middle ones erased: the
  // later ones must move back and stay found.
  for (uint32_t i = 0; i < 5; ++i) {
    exs.push_back(std::make_shared<Exchange>());
    table[3 + 64 * i] = exs.back();
  }
  table.erase(3 + 64);
  table.erase(3 + 128);
  EXPECT_EQ(table.find(3), exs[0].get());
  EXPECT_EQ(table.find(3 + 64), nullptr);
  EXPECT_EQ(table.find(3 + 192), exs[3].get());
  EXPECT_EQ(table.find(3 + 256), exs[4].get());
  EXPECT_EQ(table.size(), 3U);
}
