// NativeHandle: the base of every object in Evo that owns a libuv handle.
//
// Lifetime: an object is created with std::make_unique, initialises its handle,
// and is then handed to libuv with `release_to_loop()`. From then on libuv owns
// it: close() starts uv_close, and the close callback takes ownership back and
// destroys the object. So the memory of a handle lives exactly as long as
// libuv needs it, however the close was started (by Lua, by a __gc, or by the
// runtime at exit).
//
// Every such handle's `data` points at a HandleTag carrying a magic number, so
// code walking the loop (uv.walk, shutdown) can tell Evo's handles from luv's.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>

namespace evo {

class NativeHandle;

struct HandleTag {
  static constexpr uint64_t kMagic = 0x4c444e414847f0e7ULL;
  uint64_t magic = kMagic;
  NativeHandle* owner = nullptr;
};

class NativeHandle {
 public:
  NativeHandle() { tag_.owner = this; }
  virtual ~NativeHandle() = default;
  NativeHandle(const NativeHandle&) = delete;
  NativeHandle& operator=(const NativeHandle&) = delete;

  virtual uv_handle_t* uv_handle() = 0;

  // Starts closing the handle; the object is destroyed once libuv is done.
  // Safe to call more than once.
  void close();
  [[nodiscard]] bool closing() const { return closing_; }

  // The Evo object owning `h`, or nullptr when `h` belongs to someone else
  // (luv, or a foreign library sharing the loop).
  static NativeHandle* from(const uv_handle_t* h);

  // Internal handles (signal watchers, the REPL's stdin poll, the scheduler's
  // handles) are owned by the runtime and are not closed by the sweep of
  // script handles (at exit, and between tests).
  [[nodiscard]] virtual bool internal() const { return false; }
  // How that sweep closes this handle: the way its owner would, so tasks
  // waiting on it learn it is gone (a stream fails its reader and writer).
  virtual void release() { close(); }

 protected:
  // release() for a handle owned by an object with close() (a Stream, a
  // Listener, a Udp socket), or by nobody any more.
  template <class Owner>
  void release_through(Owner* owner) {
    if (owner != nullptr) {
      owner->close();
    } else {
      close();
    }
  }

 public:
  // Hands ownership to libuv. Call after the uv_*_init succeeded.
  template <class T>
  static T* release_to_loop(std::unique_ptr<T> object) {
    NativeHandle* base = object.get();
    base->uv_handle()->data = &base->tag_;
    return object.release();
  }

 protected:
  // Called from the close callback, just before destruction: drop references
  // into Lua here (the Lua state is still alive).
  virtual void on_closed() {}

 private:
  static void close_cb(uv_handle_t* h);
  HandleTag tag_;
  bool closing_ = false;
};

}  // namespace evo
