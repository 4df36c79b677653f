-- evo.repl: evaluation for the REPL (src/lua/repl.cpp reads the lines).
--
-- feed(line) takes one line. It returns the next prompt at once ("> ", or
-- ">> " while a chunk is incomplete), or nil when it started evaluating: the
-- input runs as a task (so it may await, sleep, read sockets) and the prompt
-- comes back through replnative.ready() when it is done. An expression prints
-- its values; `_` holds the first value of the last expression. Ctrl-C
-- during an evaluation cancels it (interrupt()).
local pretty = require("pretty")
local tasknative = require("evo.task")
local native = require("evo.replnative")

local repl = {}
local pending = nil   -- lines of an incomplete chunk
local running = nil   -- the Future of the evaluation in progress

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

local function report(message)
  local lines = {}
  for line in tostring(message):gmatch("[^\n]+") do
    if not line:find("[evo]/evo/repl.lua", 1, true) and not line:find("[evo task]", 1, true)
        and not line:find("in function 'xpcall'", 1, true) then
      lines[#lines + 1] = line
    end
  end
  io.stderr:write(table.concat(lines, "\n"), "\n")
end

local function run(fn)
  running = tasknative.spawn(function()
    local ok, results = xpcall(function() return pack(fn()) end, debug.traceback)
    if ok then
      printValues(results.n, unpack(results, 1, results.n))
    elseif type(results) == "table" and results.code == "Canceled" then
      io.stderr:write("(canceled)\n")
    else
      report(results)
    end
    io.stdout:flush()
    running = nil
    native.ready("> ")
  end)
end

-- Ctrl-C while an evaluation runs: cancel it (at its next blocking call;
-- busy Lua code is interrupted by the signal hook). Returns true if one ran.
function repl.interrupt()
  if not running then return false end
  tasknative.requestCancel(running)
  return true
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
  -- Interpreted, not JIT-compiled: LuaJIT's compiled loops check no hooks,
  -- and the hook is how Ctrl-C stops a busy line.
  if jit then jit.off(fn, true) end
  run(fn)
  return nil
end

function repl.reset()
  pending = nil
  return "> "
end

return repl
