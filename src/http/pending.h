// The event style's requests waiting for their response, by request id.
//
// HttpServer's WriteStatus, WriteHeader and SendResponse find the exchange by
// its id three times per response, and every request is put in and taken
// out once. Ids are given in sequence (Server::next_id), so the requests
// waiting at one time are a window of nearby ids: the table is open
// addressing with the id's low bits as the slot (a plain index, no hash) and
// the id kept in the slot to check it, which makes a lookup a load and a
// compare, and puts or takes no node on the heap (std::unordered_map
// allocated and freed one per request). A stale id (answered, its slot
// since reused by a later request) is told apart by the id stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace evo::http {

class Exchange;

class PendingExchanges {
 public:
  // The exchange of a waiting id, or nullptr.
  [[nodiscard]] Exchange* find(uint32_t id) const {
    const Slot* s = slot_of(id);
    return s == nullptr ? nullptr : s->ex.get();
  }

  // As std::unordered_map's: the id's entry, made (empty) when missing.
  std::shared_ptr<Exchange>& operator[](uint32_t id) {
    if (Slot* s = slot_of(id)) return s->ex;
    if ((used_ + 1) * 2 > slots_.size()) grow();
    Slot& s = free_slot(id);
    s.used = true;
    s.id = id;
    ++used_;
    return s.ex;
  }

  void erase(uint32_t id) {
    Slot* s = slot_of(id);
    if (s == nullptr) return;
    s->ex = nullptr;
    s->used = false;
    --used_;
    close_gap(static_cast<size_t>(s - slots_.data()));
  }

  [[nodiscard]] size_t size() const { return used_; }

 private:
  struct Slot {
    bool used = false;  // (not the id: ids wrap around to 0 after 2^32 requests)
    uint32_t id = 0;
    std::shared_ptr<Exchange> ex;
  };

  // (Kept rather than computed from the vector's size: that is a division by the slot's size.)
  [[nodiscard]] size_t mask() const { return mask_; }

  // Linear probing from the id's home slot to the first unused one.
  [[nodiscard]] const Slot* slot_of(uint32_t id) const {
    if (mask_ == 0) return nullptr;  // (no slot yet: the first grow makes 16)
    for (size_t i = id & mask();; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.id == id) return &s;
    }
  }
  Slot* slot_of(uint32_t id) { return const_cast<Slot*>(std::as_const(*this).slot_of(id)); }

  Slot& free_slot(uint32_t id) {
    size_t i = id & mask();
    while (slots_[i].used) i = (i + 1) & mask();
    return slots_[i];
  }

  // Half full at most: probes stay short even when a long request keeps an
  // old id while later ones come and go.
  void grow() {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(slots_.empty() ? 16 : slots_.size() * 2));
    mask_ = slots_.size() - 1;
    for (Slot& s : old) {
      if (!s.used) continue;
      Slot& to = free_slot(s.id);
      to = std::move(s);
    }
  }

  // Backward-shift deletion: the entries after the freed slot in its run
  // move back where their probe would find them, so no tombstones pile up.
  void close_gap(size_t hole) {
    for (size_t i = (hole + 1) & mask(); slots_[i].used; i = (i + 1) & mask()) {
      size_t home = slots_[i].id & mask();
      // Movable when its home is not in (hole, i] (cyclically).
      bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
      if (stays) continue;
      slots_[hole] = std::move(slots_[i]);
      slots_[i].used = false;
      slots_[i].ex = nullptr;
      hole = i;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t used_ = 0;
};

}  // namespace evo::http
