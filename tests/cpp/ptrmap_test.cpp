// PtrMap against std::unordered_map over random inserts and erases.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

#include "core/ptrmap.h"

namespace evo {
namespace {

TEST(PtrMap, AgreesWithUnorderedMapUnderRandomOperations) {
  PtrMap<int*, int*> map;
  std::unordered_map<int*, int*> ref;
  std::vector<int> storage(4096);
  std::mt19937 rng(12345);
  for (int step = 0; step < 200000; ++step) {
    int* key = &storage[rng() % storage.size()];
    int* value = &storage[rng() % storage.size()];
    if (rng() % 3 == 0) {
      map.erase(key);
      ref.erase(key);
    } else {
      map.insert(key, value);
      ref[key] = value;
    }
    if (step % 1000 == 0) {
      ASSERT_EQ(map.size(), ref.size());
      for (auto& [k, v] : ref) ASSERT_EQ(map.find(k), v);
    }
  }
  for (int& slot : storage) {
    auto it = ref.find(&slot);
    ASSERT_EQ(map.find(&slot), it == ref.end() ? nullptr : it->second);
  }
}

TEST(PtrMap, FindsNothingInAnEmptyMapAndEraseOfAMissingKeyIsHarmless) {
  PtrMap<int*, int*> map;
  int a = 0;
  EXPECT_EQ(map.find(&a), nullptr);
  map.erase(&a);
  EXPECT_EQ(map.size(), 0U);
}

}  // namespace
}  // namespace evo
