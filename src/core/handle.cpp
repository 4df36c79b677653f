#include "core/handle.h"

namespace evo {

NativeHandle* NativeHandle::from(const uv_handle_t* h) {
  // luv's handle data starts with a small registry ref, never with this magic.
  const auto* tag = static_cast<const HandleTag*>(h->data);
  if (tag == nullptr || tag->magic != HandleTag::kMagic) return nullptr;
  return tag->owner;
}

void NativeHandle::close() {
  if (closing_) return;
  closing_ = true;
  uv_close(uv_handle(), close_cb);
}

void NativeHandle::close_cb(uv_handle_t* h) {
  std::unique_ptr<NativeHandle> self(from(h));  // ownership returns from libuv
  self->on_closed();
}

}  // namespace evo
