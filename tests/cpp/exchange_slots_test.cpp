// The slots Lua's `res` names exchanges by (ExchangeRef, src/http/server.h):
// a thread's slot table, and the exchanges that outlive it.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "http/server.h"

using evo::http::Exchange;
using evo::http::ExchangeRef;

namespace {

TEST(ExchangeSlots, ARefFindsItsExchangeUntilItIsGone) {
  auto ex = std::make_shared<Exchange>();
  ExchangeRef ref = ExchangeRef::of(*ex);
  EXPECT_NE(ref.slot, 0U);
  EXPECT_EQ(ref.get(), ex.get());
  ex.reset();
  EXPECT_EQ(ref.get(), nullptr);
}

// At process exit a thread's thread_local objects are destroyed before the
// static ones; a Runtime held by a static object (the fuzz targets hold
// theirs so) closes its Lua state after the slot table is gone, and the
// server's finalizer frees its pooled exchanges then (make test-fuzz,
// evo_fuzz_http_server: a heap-use-after-free in Exchange::release_slot).
// Here a thread_local made before the table is destroyed after it.
TEST(ExchangeSlots, AnExchangeFreedAfterItsThreadsSlotTableLeavesItAlone) {
  std::thread t([] {
    thread_local std::shared_ptr<Exchange> late;
    late = std::make_shared<Exchange>();
    ExchangeRef ref = ExchangeRef::of(*late);  // (the slot table is made here, after `late`)
    EXPECT_EQ(ref.get(), late.get());
  });
  t.join();
}

}  // namespace
