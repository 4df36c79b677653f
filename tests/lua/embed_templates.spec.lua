-- tools/embed.cpp gives the dummy keys of table-constructor templates a false
-- value before dumping lib/ to bytecode (LuaJIT's writer drops nil-valued
-- template entries, and every store of a constructor then adds its key). The
-- fixer is read out of tools/embed.cpp and run here on tricky chunks: each
-- must give the same tables after fix + dump + load as from source.
local util = require("jit.util")

local function fixer()
  local f = assert(io.open("tools/embed.cpp", "rb"))
  local text = f:read("*a")
  f:close()
  local code = assert(text:match('R"lua%((.-)%)lua"'), "kFixTemplates not found in tools/embed.cpp")
  return assert(loadstring(code, "=embed-fix"))()
end

-- Runs `src` from source and after fix + dump + load; both results as
-- {key = value} maps of every returned table (false/nil kept apart).
local function both(src, ...)
  local fix = fixer()
  local function snapshot(...)
    local out = {}
    for i = 1, select("#", ...) do
      local t, copy = select(i, ...), {}
      for k, v in pairs(t) do copy[k] = v == false and "false" or type(v) == "function" and "function" or v end
      out[i] = copy
    end
    return out
  end
  local plain = snapshot(assert(loadstring(src))(...))
  local chunk = assert(loadstring(src))
  fix(chunk)
  local fixed = snapshot(assert(loadstring(string.dump(chunk)))(...))
  return plain, fixed
end

-- Whether a template table of `f` (or of a function inside it) holds `key`.
local function templateHas(f, key)
  for i = 1, util.funcinfo(f).gcconsts or 0 do
    local k = util.funck(f, -i)
    if type(k) == "table" and (pcall(next, k, key)) then return true end
    if type(k) == "proto" and templateHas(k, key) then return true end
  end
  return false
end

describe("constructor templates in embedded bytecode", function()
  it("keeps what every constructor gives, whatever the values", function()
    local src = [[
      local x, y, z = ...
      local a = {requestID = x, method = y, k = nil, c = 1, d = false}
      local b = {p = x and y or 3, q = function() return x end, r = y, s = z}
      local c = {k = nil}
      if x then c.k = 1 end
      local d = {k = nil}  -- (a literal nil keeps its slot only in a one-key template)
      local seen = d.k
      d.k = z
      local e = {n = nil}
      for i = 1, 2 do e.n = (e.n or 0) + i end
      local f = {u = x, [1] = y, [10] = z, v = {w = y}}
      local g = {k = nil}
      local peek = function() return g.k end
      local before = peek()
      g.k = 5
      return a, b, c, d, e, f, {seen = seen, before = before}, g
    ]]
    for _, args in ipairs({{false, nil, 7}, {1, "two", nil}, {nil, nil, nil}, {true, false, "z"}}) do
      local plain, fixed = both(src, args[1], args[2], args[3])
      assert.same(fixed, plain)
    end
  end)

  it("leaves a literal nil field and a conditional store alone", function()
    local plain, fixed = both([[
      local t = {a = nil, b = ...}
      local read = t.a
      if select("#", ...) > 5 then t.a = 1 end
      return t, {read = read, a = t.a}
    ]], "b")
    assert.same(fixed, plain)
    assert.same(fixed[2], {})
  end)

  it("gives a library constructor its keys (HttpServer's request payload)", function()
    local loader
    for _, search in ipairs(package.loaders) do
      local found = search("HttpServer")
      if type(found) == "function" then
        loader = found
        break
      end
    end
    assert.equal(type(loader), "function")
    assert.truthy(templateHas(loader, "requestID"), "the payload template keeps its keys")
  end)

  it("makes a fixed constructor cheaper: no key added per store", function()
    local src = "return function(a, b, c, d) return {a = a, b = b, c = c, d = d} end"
    local chunk = assert(loadstring(src))
    local slow = assert(loadstring(string.dump(chunk)))()
    fixer()(chunk)
    local fast = assert(loadstring(string.dump(chunk)))()
    assert.same(fast(1, 2, 3, 4), slow(1, 2, 3, 4))
    assert.falsy(templateHas(slow, "a"), "the plain dump drops the dummy keys")
    assert.truthy(templateHas(fast, "a"))
  end)
end)
