// evo.tls: TLS contexts for Lua.
//
//   local ctx, err = native.serverContext{cert = "cert.pem", key = "key.pem", alpn = {"http/1.1"}}
//   local ctx, err = native.clientContext{ca = nil (system store), verify = true, alpn = {...}}
// Sessions are made by the connections that use a context (net streams, the
// HTTP server), never from Lua directly.
#include "bind/tls.h"

#include <string>
#include <vector>

#include "lua/boxed.h"
#include "lua/errors.h"
#include "lua/modules.h"

namespace evo {
namespace {

constexpr const char* kContextMeta = "evo.TlsContext";
using ContextPtr = std::shared_ptr<tls::Context>;

std::string opt_string(lua_State* L, int idx, const char* key) {
  lua_getfield(L, idx, key);
  std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return v;
}

bool opt_alpn(lua_State* L, int idx, std::vector<std::string>* out) {
  lua_getfield(L, idx, "alpn");
  bool given = lua_istable(L, -1);
  if (given) {
    out->clear();
    for (int i = 1; i <= static_cast<int>(lua_objlen(L, -1)); ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_isstring(L, -1)) out->emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return given;
}

int push_context(lua_State* L, ContextPtr ctx, const std::string& error) {
  if (ctx == nullptr) {
    lua_pushnil(L);
    errors::push_error(L, "TLSError", error);
    return 2;
  }
  Boxed<ContextPtr>::push(L, std::make_unique<ContextPtr>(std::move(ctx)), kContextMeta);
  return 1;
}

int l_server_context(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  tls::ServerOptions o;
  o.cert_file = opt_string(L, 1, "cert");
  o.key_file = opt_string(L, 1, "key");
  if (o.cert_file.empty() || o.key_file.empty()) {
    return luaL_argerror(L, 1, "tls needs cert and key (PEM file paths)");
  }
  opt_alpn(L, 1, &o.alpn);
  std::string error;
  return push_context(L, tls::Context::server(o, &error), error);
}

int l_client_context(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  tls::ClientOptions o;
  o.ca_file = opt_string(L, 1, "ca");
  lua_getfield(L, 1, "verify");
  o.verify = lua_isnil(L, -1) || lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  lua_getfield(L, 1, "chainOnlyWithoutName");  // (ngx's sslhandshake: see tls::ClientOptions)
  o.chain_only_without_name = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  opt_alpn(L, 1, &o.alpn);
  std::string error;
  return push_context(L, tls::Context::client(o, &error), error);
}

}  // namespace

std::shared_ptr<tls::Context> check_tls_context(lua_State* L, int idx) {
  return *Boxed<ContextPtr>::check(L, idx, kContextMeta);
}

int open_tls(lua_State* L) {
  luaL_newmetatable(L, kContextMeta);
  lua_pushcfunction(L, Boxed<ContextPtr>::gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"serverContext", l_server_context},
      {"clientContext", l_client_context},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace evo
