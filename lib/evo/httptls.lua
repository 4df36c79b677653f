-- evo.httptls (internal): the tls option of http.serve and HttpServer.
--
-- withTls(opts) -> opts with tlsContext set (a copy; opts itself when it has
-- no tls), or nil, err. opts.tls = {cert, key [, alpn]} (PEM file paths), or
-- a context from net.tlsServerContext. Raises for a tls table without cert
-- and key, at the level of the caller of the function that called it.
local type, pairs, error = type, pairs, error

local function withTls(opts)
  if not opts.tls then return opts end
  local ctx, err = opts.tls
  if type(ctx) == "table" then
    if type(ctx.cert) ~= "string" or type(ctx.key) ~= "string" then
      error("bad argument #1 to 'serve' (tls needs cert and key: PEM file paths)", 3)
    end
    local tlsOpts = opts.tls
    -- HTTP/2 is offered by ALPN unless http2 = false (or the caller chose).
    if tlsOpts.alpn == nil and opts.http2 ~= false then
      tlsOpts = {}
      for k, v in pairs(opts.tls) do tlsOpts[k] = v end
      tlsOpts.alpn = {"h2", "http/1.1"}
    end
    ctx, err = require("evo.tls").serverContext(tlsOpts)
  end
  if not ctx then return nil, err end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.tlsContext = ctx
  return o
end

return withTls
