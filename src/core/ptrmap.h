// PtrMap: a small open-addressing hash map from pointers to pointers.
//
// The task system looks up "which task is this coroutine?" on every blocking
// call, and adds/removes an entry per task; std::unordered_map allocates a
// node per insert. This table is one array, linear probing, backward-shift
// deletion (no tombstones), grown at 50% load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace evo {

template <class K, class V>
class PtrMap {
  // NOLINTNEXTLINE(bugprone-sizeof-expression): K and V are pointer types, compared with void*
  static_assert(sizeof(K) == sizeof(void*) && sizeof(V) == sizeof(void*), "pointer keys and values");

 public:
  PtrMap() : slots_(16) {}

  [[nodiscard]] V find(K key) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.value;
      if (s.key == nullptr) return nullptr;
    }
  }

  void insert(K key, V value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(key, value);
  }

  void erase(K key) {
    size_t mask = slots_.size() - 1;
    size_t i = hash(key) & mask;
    while (slots_[i].key != key) {
      if (slots_[i].key == nullptr) return;
      i = (i + 1) & mask;
    }
    // Backward-shift: pull later entries of the probe run into the hole.
    size_t hole = i;
    for (size_t j = (i + 1) & mask; slots_[j].key != nullptr; j = (j + 1) & mask) {
      size_t home = hash(slots_[j].key) & mask;
      bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  [[nodiscard]] size_t size() const { return size_; }

 private:
  struct Slot {
    K key = nullptr;
    V value = nullptr;
  };

  static size_t hash(K key) {
    auto x = reinterpret_cast<uintptr_t>(key);
    x ^= x >> 17;
    x *= 0xed5ad4bbU;
    x ^= x >> 11;
    return static_cast<size_t>(x);
  }

  void place(K key, V value) {
    size_t mask = slots_.size() - 1;
    size_t i = hash(key) & mask;
    while (slots_[i].key != nullptr && slots_[i].key != key) i = (i + 1) & mask;
    if (slots_[i].key == nullptr) ++size_;
    slots_[i] = Slot{key, value};
  }

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (s.key != nullptr) place(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace evo
