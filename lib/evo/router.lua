-- evo.router: http.router's routers (docs/http.md, "Routing"). lib/http.lua
-- loads this file when http.router is first called: a server that does not
-- route keeps its code out of its heap (docs/performance.md, "The heap's
-- size").
local args = require("evo.args")
local decode = require("url").unescape

local type, error, ipairs, tostring, select, setmetatable, getmetatable, rawget, xpcall =
  type, error, ipairs, tostring, select, setmetatable, getmetatable, rawget, xpcall
local concat = table.concat
local gsub, lower, sub, match = string.gsub, string.lower, string.sub, string.match
local byte = string.byte
local traceback = debug.traceback

local router = {}

-- A router is a list of layers tried in the order they were added: routes
-- (a method and a pattern) and middleware (router:use, on every path or
-- under a prefix). A layer runs as fn(req, res, next): next() runs the
-- layers after it and returns when they are done (so a middleware can act
-- before and after the rest, as in Koa), next(err) raises err. The layers
-- get req.res as their res, so a middleware may put a wrapper there
-- (http.compress does).
local Router = {}
Router.__index = Router

-- Without strictSlash a trailing slash does not count: "/a/" is "/a".
local function trimSlash(path)
  if #path > 1 and byte(path, -1) == 47 then return (gsub(path, "/+$", "")) end
  return path
end

local function compile(pattern, strict)
  if not strict then pattern = trimSlash(pattern) end
  local names = {}
  local lua = gsub(pattern, "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
  lua = gsub(lua, "/:([%w_]+)", function(name)
    names[#names + 1] = name
    return "/([^/]+)"
  end)
  lua = gsub(lua, "%*$", function()
    names[#names + 1] = "*"
    return "(.*)"
  end)
  return "^" .. lua .. "$", names
end

-- Several handlers for one route run one after the other, each passing on
-- with next() (e.g. an authorization check before the handler).
local function chain(fname, first, ...)
  local list = {first, ...}
  for i = 1, #list do
    local h = list[i]
    if type(h) ~= "function" and not (type(h) == "table" and getmetatable(h) and getmetatable(h).__call) then
      args.fail(i + 1, fname, "function", h, 4)
    end
  end
  if #list == 1 then return first end
  return function(req, res, done)
    local i = 0
    local function step(err)
      if err ~= nil then error(err, 0) end
      i = i + 1
      local h = list[i]
      if h == nil then return done() end
      return h(req, req.res or res, step)
    end
    return step()
  end
end

local function route(self, method, pattern, ...)
  local fname = method == "*" and "all" or lower(method)
  args.check(1, fname, pattern, "string", 3)
  local handler = chain(fname, ...)
  local lua, names = compile(pattern, self.strictSlash)
  local stack = self.stack
  stack[#stack + 1] = {method = method, pattern = lua, names = names, handler = handler}
  return self
end

for _, m in ipairs({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}) do
  Router[lower(m)] = function(self, pattern, ...) return route(self, m, pattern, ...) end
end
-- router:all(pattern, handler): any method
function Router:all(pattern, ...) return route(self, "*", pattern, ...) end

local function isRouter(v) return getmetatable(v) == Router end

-- router:use([prefix,] fn, ...): middleware fn(req, res, next) for every
-- request, or for those under prefix ("/api" takes "/api" and "/api/x",
-- not "/apix"); inside it req.path is the rest ("/x") and req.baseUrl the
-- prefix. A router given as fn is mounted there as a sub-router.
function Router:use(prefix, ...)
  local fns, first = {...}, 2
  local n = select("#", ...)
  if type(prefix) ~= "string" then
    table.insert(fns, 1, prefix)
    n, first, prefix = n + 1, 1, "/"
  elseif byte(prefix, 1) ~= 47 then
    args.error(1, "use", "a prefix must start with '/'")
  end
  if n == 0 then args.fail(first, "use", "function", nil) end
  prefix = trimSlash(prefix)
  if prefix == "/" then prefix = nil end
  for i = 1, n do
    local fn = fns[i]
    local callable = type(fn) == "function" or (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call)
    if not callable then args.fail(first + i - 1, "use", "function", fn) end
    local stack = self.stack
    stack[#stack + 1] = {prefix = prefix, fn = fn, router = isRouter(fn) and fn or nil}
  end
  return self
end

local function captures(r, path)
  local caps = {match(path, r.pattern)}
  if caps[1] == nil then return nil end
  local params = {}
  for i, name in ipairs(r.names) do params[name] = decode(caps[i]) end
  return params
end

local function under(prefix, path)
  return path == prefix or (sub(path, 1, #prefix) == prefix and byte(path, #prefix + 1) == 47)
end

local function addAllowed(req, method)
  local allow = rawget(req, "_allow")
  if not allow then
    allow = {}
    req._allow = allow
  end
  if not allow[method] then
    allow[method] = true
    allow[#allow + 1] = method
  end
end

local plainText = {["content-type"] = "text/plain; charset=utf-8"}

-- The end of the line: 405 (or, for OPTIONS, 204) with Allow when routes
-- matched the path for other methods, else the notFound handler or 404.
local function finalize(self, req, res)
  local allow = rawget(req, "_allow")
  if allow then
    local list = concat(allow, ", ")
    if req.method == "OPTIONS" then
      if not allow.OPTIONS then list = list .. ", OPTIONS" end
      return res:send(204, nil, {allow = list})
    end
    return res:send(405, "405 Method Not Allowed\n",
      {["content-type"] = "text/plain; charset=utf-8", allow = list})
  end
  if self.fallback then return self.fallback(req, res) end
  return res:send(404, "404 Not Found\n", plainText)
end

-- Runs a use layer; under a prefix the layer sees the path below it, and
-- the layers after it (through next) the whole path again.
local function runUse(layer, req, nextLayer)
  local prefix = layer.prefix
  local fn = layer.router or layer.fn
  if prefix == nil then
    if layer.router then return layer.router:handle(req, nextLayer) end
    return fn(req, req.res, nextLayer)
  end
  local path, base = req.path, rawget(req, "baseUrl") or ""
  local inner = sub(path, #prefix + 1)
  if inner == "" then inner = "/" end
  local mounted = base .. prefix
  req.path, req.baseUrl = inner, mounted
  local function outer(err)
    req.path, req.baseUrl = path, base
    nextLayer(err)
    req.path, req.baseUrl = inner, mounted
  end
  if layer.router then
    layer.router:handle(req, outer)
  else
    fn(req, req.res, outer)
  end
  req.path, req.baseUrl = path, base
end

-- handle(req, outerNext): runs the layers for req; a mounted router whose
-- layers all pass calls outerNext (its parent's next), unless it has a
-- notFound handler of its own.
function Router:handle(req, outerNext)
  local stack, strict = self.stack, self.strictSlash
  local i = 0
  local function nextLayer(err)
    if err ~= nil then error(err, 0) end
    local path = req.path
    local method = req.method
    local mpath = strict and path or trimSlash(path)
    while true do
      i = i + 1
      local layer = stack[i]
      if layer == nil then break end
      local pattern = layer.pattern
      if pattern then
        local params = captures(layer, mpath)
        if params then
          local m = layer.method
          if m == method or m == "*" or (method == "HEAD" and m == "GET") then
            req.params = params
            return layer.handler(req, req.res, nextLayer)
          end
          addAllowed(req, m)
          if m == "GET" then addAllowed(req, "HEAD") end
        end
      elseif layer.prefix == nil or under(layer.prefix, mpath) then
        return runUse(layer, req, nextLayer)
      end
    end
    if outerNext and not self.fallback then return outerNext() end
    return finalize(self, req, req.res)
  end
  local onError = self.errorHandler
  if not onError then return nextLayer() end
  local path, base = req.path, rawget(req, "baseUrl")
  local trace
  local ok, err = xpcall(nextLayer, function(e)
    trace = traceback(tostring(e), 2)
    return e
  end)
  if ok then return end
  if type(err) == "table" and err.code == "Canceled" then error(err, 0) end
  req.path, req.baseUrl = path, base
  return onError(err, req, req.res, trace)
end

-- The top-level router is the handler http.serve calls.
function Router:__call(req, res, outerNext)
  if rawget(req, "res") == nil then req.res = res end
  return self:handle(req, outerNext)
end

-- router:notFound(handler): what runs instead of the 404 (e.g.
-- http.static(dir)); router:otherwise is the same.
local function callable(v)
  return type(v) == "function" or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call) and true
end
local function checkCallable(n, fname, v)
  if not callable(v) then args.fail(n, fname, "function", v, 3) end
  return v
end

function Router:notFound(handler)
  self.fallback = checkCallable(1, "notFound", handler)
  return self
end
function Router:otherwise(handler)
  self.fallback = checkCallable(1, "otherwise", handler)
  return self
end

-- router:onError(fn(err, req, res, trace)): what runs when a layer raises
-- (or calls next(err)); err is the value raised, trace its message with the
-- traceback (for a log). Canceled is not given to it.
-- Without one the error goes up to the server: 500, logged with its
-- traceback.
function Router:onError(handler)
  self.errorHandler = checkCallable(1, "onError", handler)
  return self
end

-- http.router([opts]) -> router. opts.strictSlash (true): false lets "/a/"
-- match "/a" and the reverse. opts.cookieSecret: the key of signed cookies
-- for the requests it handles.
function router.new(opts)
  if opts ~= nil then args.check(1, "router", opts, "table") end
  opts = opts or {}
  local self = setmetatable({stack = {}, strictSlash = opts.strictSlash ~= false}, Router)
  if opts.cookieSecret ~= nil then
    local secret = args.check(1, "router", opts.cookieSecret, "string")
    self:use(function(req, res, nxt)
      require("evo.webkit").setSecret(req, secret)
      return nxt()
    end)
  end
  return self
end

return router
