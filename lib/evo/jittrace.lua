-- evo.jittrace: `evo --jit-trace` (or EVO_JIT_TRACE=1) prints what LuaJIT's
-- trace compiler does, one line per event on stderr, so a user can see why a
-- hot function stays in the interpreter:
--
--   [jit] trace 3 start app.lua:12
--   [jit] trace 3 stop  app.lua:12 -> loop
--   [jit] trace 4 abort app.lua:20 at app.lua:22: NYI: bytecode FNEW
--
-- Built on jit.attach and jit.util, both part of LuaJIT itself. The texts of
-- abort reasons and the names of bytecodes come from jit.vmdef when it is
-- installed (Debian: libluajit2-5.1-common); otherwise from the table below,
-- Evo's own wording of LuaJIT 2.1's trace errors, and bytecodes by number.
-- See docs/performance.md.
local jit = require("jit")
local util = require("jit.util")

local funcinfo, traceinfo = util.funcinfo, util.traceinfo
local type, tostring, pairs, ipairs, format = type, tostring, pairs, ipairs, string.format

local hasVmdef, vmdef = pcall(require, "jit.vmdef")
if not hasVmdef then vmdef = nil end

-- Trace error numbers of LuaJIT 2.1 (lj_traceerr.h's order) in our words;
-- used only without jit.vmdef. %s is the error's argument.
local REASONS = {
  [0] = "error raised or hook run while recording",
  "trace too short",
  "trace too long",
  "trace too deep (too many nested calls)",
  "too many snapshots",
  "blacklisted: LuaJIT gave up on this spot",
  "recording retried",
  "NYI: bytecode %s",
  "the root trace leaves its loop",
  "inner loop inside the root trace",
  "loop unrolled too often",
  "argument of an unexpected type",
  "JIT compilation disabled for this function",
  "calls unrolled too often (recursion?)",
  "down-recursion, recording restarted",
  "NYI: this use of the built-in %s",
  "NYI: return to a lower frame",
  "table store with a nil or NaN key",
  "metamethod missing",
  "__index lookups loop",
  "NYI: table mixing array and hash parts",
  "symbol not in the FFI cache",
  "NYI: this C type conversion",
  "NYI: this C function type",
  "a guard that would always fail",
  "too many PHIs",
  "types keep changing",
  "no memory for machine code",
  "machine code too long",
  "machine code limit hit (retrying)",
  "too many spill slots",
  "inconsistent register allocation",
  "NYI: IR instruction %s",
  "NYI: PHI shuffling too complex",
  "NYI: register coalescing too complex",
}

local M = {}

local builtins -- fast-function id -> "string.rep", made at the first abort that needs it

-- The names of LuaJIT's built-in (fast) functions by id, from the globals
-- and the standard libraries. Also the profiler's (src/cli/prof.cpp):
-- dumpstack says "[builtin#21]" for one it cannot name from the call site.
function M.builtinNames()
  if not builtins then
    builtins = {}
    local function scan(prefix, t)
      for k, v in pairs(t) do
        if type(k) == "string" and type(v) == "function" then
          local ffid = funcinfo(v).ffid
          if ffid and not builtins[ffid] then builtins[ffid] = prefix .. k end
        end
      end
    end
    scan("", _G)
    for _, lib in ipairs({ "string", "table", "math", "coroutine", "io", "os", "debug", "bit", "jit", "package" }) do
      if type(_G[lib]) == "table" then scan(lib .. ".", _G[lib]) end
    end
  end
  return builtins
end

local function builtinName(id)
  return M.builtinNames()[id] or ("#" .. tostring(id))
end

local function bytecodeName(op)
  if vmdef and vmdef.bcnames then
    local name = vmdef.bcnames:sub(op * 6 + 1, op * 6 + 6):gsub("%s+$", "")
    if name ~= "" then return name end
  end
  return tostring(op)
end

-- "app.lua:12" for a Lua function at bytecode position pc.
local function where(func, pc)
  if type(func) ~= "function" then return "?" end
  local info = funcinfo(func, pc)
  if info.loc then return info.loc end
  if info.ffid then return "[builtin " .. builtinName(info.ffid) .. "]" end
  return "[C]"
end

-- The text of an abort: code is a trace error number (info its argument) or
-- a message of its own.
function M.reason(code, info)
  if type(code) ~= "number" then return tostring(code) end
  local text = vmdef and vmdef.traceerr and vmdef.traceerr[code] or REASONS[code]
  if not text then return "trace error " .. code end
  if not text:find("%%") then return text end
  local arg = info
  if text:find("bytecode") then
    arg = bytecodeName(info)
  elseif text:find("FastFunc") or text:find("built%-in") then
    arg = builtinName(info)
  end
  return (text:gsub("%%[ds]", (tostring(arg):gsub("%%", "%%%%"))))
end

local LINKS = { loop = "loop", interpreter = "interpreter", ["return"] = "return",
  ["tail-recursion"] = "tail recursion", ["up-recursion"] = "up-recursion", ["down-recursion"] = "down-recursion" }

local out, starts, handler

local function emit(...)
  out:write("[jit] ", format(...), "\n")
end

local function onTrace(what, tr, func, pc, otr, oex)
  if what == "start" then
    local loc = where(func, pc)
    starts[tr] = loc
    if otr and oex == -1 then
      emit("trace %d start %s (stitched after trace %d)", tr, loc, otr)
    elseif otr then
      emit("trace %d start %s (side trace of trace %d, exit %d)", tr, loc, otr, oex)
    else
      emit("trace %d start %s", tr, loc)
    end
  elseif what == "stop" then
    local ti = traceinfo(tr) or {}
    local link = LINKS[ti.linktype] or (ti.link and ti.link ~= 0 and "trace " .. ti.link) or tostring(ti.linktype)
    emit("trace %d stop  %s -> %s", tr, starts[tr] or where(func, 0), link)
  elseif what == "abort" then
    emit("trace %d abort %s at %s: %s", tr, starts[tr] or "?", where(func, pc), M.reason(otr, oex))
  elseif what == "flush" then
    emit("traces flushed")
  end
end

-- Starts printing trace events to `file` (default io.stderr).
function M.start(file)
  out = file or io.stderr
  starts = {}
  if not handler then
    handler = onTrace
    jit.attach(handler, "trace")
  end
end

function M.stop()
  if handler then
    jit.attach(handler)
    handler = nil
  end
end

return M
