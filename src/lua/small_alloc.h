// SmallBlocks: a free list per size class in front of LuaJIT's allocator, for
// the Lua heap's small blocks.
//
// A pipelined HTTP request makes three small objects (the `res` table, the
// handler's header table and its hash part) that the collector frees a
// thousand requests later, in a batch. LuaJIT's allocator (dlmalloc's) spends
// about 140 instructions per malloc and free pair on them, splitting and
// coalescing chunks; a block taken back from a list of its size costs a
// handful. Blocks of up to kMaxBlock bytes are kept on lists of 8-byte
// classes, at most kMaxCached bytes in all; the rest, and every larger block,
// goes to the allocator LuaJIT was made with, as before. One sweep frees
// about a live heap's worth of garbage (the collector's pause, 200%): with
// http loaded that is over 200 KiB, so the bound is 1 MiB (at 256 KiB one
// block in eight overflowed to dlmalloc, ~26 instructions a request).
//
// LuaJIT passes the size of a block to every call (osize), the size it asked
// for: a block is filed under the largest class it can hold (osize rounded
// down), and a request is served from the smallest class that holds it
// (rounded up), so a block handed out always has room, whoever allocated it.
// The blocks themselves always come from the original allocator, which
// ignores osize when freeing (LuaJIT's own, and the system allocator's): any
// block can go back to it.
#pragma once

#include <lua.hpp>

#include <cstddef>

namespace evo {

class SmallBlocks {
 public:
  static constexpr size_t kMaxBlock = 256;                   // larger blocks go straight to the allocator
  static constexpr size_t kMaxCached = size_t{1024} * 1024;  // free bytes kept on the lists at most

  SmallBlocks() = default;
  SmallBlocks(const SmallBlocks&) = delete;
  SmallBlocks& operator=(const SmallBlocks&) = delete;
  ~SmallBlocks() { release(); }

  // In front of L's allocator (right after the state is made; `this` must
  // outlive its use by L).
  void install(lua_State* L);
  // Every listed block back to the original allocator, which L uses again
  // (before lua_close: LuaJIT releases its arena at close only when the
  // state's allocator is its own).
  void uninstall(lua_State* L);

  // In front of any allocator (tests), and the lua_Alloc itself.
  void attach(lua_Alloc orig, void* orig_ud);
  static void* alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  // Every listed block back to the original allocator.
  void release();
  [[nodiscard]] size_t cached_bytes() const { return cached_; }

 private:
  static constexpr size_t kClasses = kMaxBlock / 8 + 1;  // class c: blocks of c * 8 bytes
  void* take(size_t nsize);
  void give(void* ptr, size_t osize);
  [[gnu::noinline]] void* resize(void* ptr, size_t osize, size_t nsize);

  lua_Alloc orig_ = nullptr;
  void* orig_ud_ = nullptr;
  void* lists_[kClasses] = {};  // each block's first word links to the next
  size_t cached_ = 0;
};

}  // namespace evo
