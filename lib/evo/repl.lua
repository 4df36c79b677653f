-- evo.repl: evaluation for the REPL (src/lua/repl.cpp reads the lines).
--
-- feed(line) evaluates one line and returns the next prompt: "> ", or ">> "
-- while a chunk is incomplete. An expression prints its values; `_` holds
-- the first value of the last expression.
local pretty = require("pretty")

local repl = {}
local pending = nil   -- lines of an incomplete chunk

local function isIncomplete(err)
  return err:find("<eof>", 1, true) ~= nil and err:sub(-7) == "'<eof>'"
end

local function printValues(n, ...)
  if n == 0 then return end
  local out = {}
  for i = 1, n do
    out[i] = pretty.format((select(i, ...)), {depth = 3})
  end
  rawset(_G, "_", (select(1, ...)))
  print(table.concat(out, "\t"))
end

local function pack(...) return {n = select("#", ...), ...} end

local function run(fn)
  -- Each input runs as a coroutine, like the main chunk, so it may yield.
  local co = coroutine.create(function() return pack(fn()) end)
  local ok, results = coroutine.resume(co)
  if not ok then
    local lines = {}
    for line in debug.traceback(co, tostring(results)):gmatch("[^\n]+") do
      if not line:find("[evo]/evo/repl.lua", 1, true) then lines[#lines + 1] = line end
    end
    io.stderr:write(table.concat(lines, "\n"), "\n")
  elseif coroutine.status(co) == "dead" then
    printValues(results.n, unpack(results, 1, results.n))
  end
end

function repl.feed(line)
  local source = pending and (pending .. "\n" .. line) or line
  if not pending and source:match("^%s*$") then return "> " end
  -- An expression first (to print it), then a statement. The expression is
  -- passed through a local identity function rather than returned directly,
  -- so `error("x")` is not a tail call and still reports stdin:1.
  local fn = loadstring("local function values(...) return ... end return values(" .. source .. "\n)", "=stdin")
  local err
  if not fn then fn, err = loadstring(source, "=stdin") end
  if not fn then
    if isIncomplete(err) then
      pending = source
      return ">> "
    end
    pending = nil
    io.stderr:write(err, "\n")
    return "> "
  end
  pending = nil
  run(fn)
  return "> "
end

function repl.reset()
  pending = nil
  return "> "
end

return repl
