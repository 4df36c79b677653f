// evo.fswatch: the native side of FileWatcher (lib/FileWatcher.lua).
//
// A started watcher reports FILE_CHANGED {path, filename, change} from its
// libuv callback, change being "rename" (created, deleted, moved) or
// "change" (contents or metadata).
#include <memory>
#include <string_view>

#include "lua/modules.h"
#include "lua/runtime.h"
#include "lua/twin.h"

namespace evo {
namespace {

class FileWatcher final : public TwinHandle {
 public:
  static const char kClassKey;
  static constexpr const char* kClassName = "FileWatcher";

  // `deliver`: the stack index of lib/FileWatcher.lua's deliverer, or 0.
  FileWatcher(lua_State* L, int twin, int deliver, uv_loop_t* loop)
      : TwinHandle(L, twin, &kClassKey, deliver), init_status_(uv_fs_event_init(loop, &event_)) {}
  uv_handle_t* uv_handle() override { return reinterpret_cast<uv_handle_t*>(&event_); }
  [[nodiscard]] int init_status() const { return init_status_; }

  int start(const char* path, bool recursive) {
    return uv_fs_event_start(&event_, on_event, path, recursive ? UV_FS_EVENT_RECURSIVE : 0);
  }
  void stop() { uv_fs_event_stop(&event_); }

 private:
  static void on_event(uv_fs_event_t* h, const char* filename, int events, int status) {
    auto* self = static_cast<FileWatcher*>(NativeHandle::from(reinterpret_cast<uv_handle_t*>(h)));
    char path[4096];
    size_t len = sizeof(path);
    if (uv_fs_event_getpath(h, path, &len) != 0) len = 0;
    std::string_view where(path, len);
    const char* change = (events & UV_RENAME) != 0 ? "rename" : "change";
    const char* error = status < 0 ? uv_err_name(status) : nullptr;
    // A field with no value (no filename, no error) is a nil value: absent
    // from the payload either way.
    auto push_or_nil = [](lua_State* L, const char* s) {
      if (s != nullptr)
        lua_pushstring(L, s);
      else
        lua_pushnil(L);
    };
    self->emit_values(
        "FILE_CHANGED",
        [&](lua_State* L) {
          lua_pushlstring(L, where.data(), where.size());
          push_or_nil(L, filename);
          lua_pushstring(L, change);
          push_or_nil(L, error);
          return 4;
        },
        [&](lua_State* L) {
          events::field(L, "path", where);
          if (filename != nullptr) events::field(L, "filename", filename);
          events::field(L, "change", change);
          if (error != nullptr) events::field(L, "error", error);
        },
        4);
  }

  uv_fs_event_t event_{};
  int init_status_;
};

const char FileWatcher::kClassKey = 0;

int watcher_open(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  auto w = std::make_unique<FileWatcher>(L, 1, 2, Runtime::from(L).loop());
  if (int rc = w->init_status(); rc != 0) {
    w.reset();
    return luaL_error(L, "FileWatcher: %s", uv_strerror(rc));
  }
  NativeHandle::release_to_loop(std::move(w));
  return 0;
}

// start(self, path, recursive) -> true | nil, code, message
int watcher_start(lua_State* L) {
  auto* w = check_twin<FileWatcher>(L, 1);
  const char* path = luaL_checkstring(L, 2);
  int rc = w->start(path, lua_toboolean(L, 3) != 0);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(rc));
    lua_pushfstring(L, "%s: %s", uv_strerror(rc), path);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int watcher_stop(lua_State* L) {
  check_twin<FileWatcher>(L, 1)->stop();
  lua_settop(L, 1);
  return 1;
}

int watcher_close(lua_State* L) {
  if (auto* w = check_twin<FileWatcher>(L, 1, /*allow_closed=*/true)) w->close();
  return 0;
}

}  // namespace

int open_fswatch(lua_State* L) {
  const luaL_Reg functions[] = {
      {"open", watcher_open},   {"start", watcher_start}, {"stop", watcher_stop},
      {"close", watcher_close}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
