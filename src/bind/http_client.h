// The HTTP client bindings' shared pieces (src/bind/http_client.cpp).
#pragma once

#include <lua.hpp>

#include "proto/http_headers.h"

namespace evo {

// Pushes a response's headers as a table: one field per name, a repeated
// field's values joined with ", ", set-cookie always a list.
void push_response_headers(lua_State* L, const http::HeaderList& headers);

}  // namespace evo
