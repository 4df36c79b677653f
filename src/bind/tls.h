// evo.tls: TLS contexts for Lua (certificates, trust, ALPN), used by net and
// http to put src/proto/tls.h sessions under their connections.
#pragma once

#include <lua.hpp>

#include <memory>

#include "proto/tls.h"

namespace evo {

// The context in the userdata at idx (made by serverContext/clientContext).
std::shared_ptr<tls::Context> check_tls_context(lua_State* L, int idx);
// (open_tls, the module itself, is declared in lua/modules.h.)

}  // namespace evo
