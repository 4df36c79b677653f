-- evo --prof, evo prof, --prof-mode=vm and --jit-trace (docs/performance.md).
local h = require("helpers")

-- A script whose CPU time is known: hot(seconds) spins for that much CPU
-- (os.clock), called from a task (through inTask) and from a plain function.
-- No tail calls, so every frame stays on the stack.
local HOT = [[
local task = require("task")
local function hot(seconds)
  local t0, x = os.clock(), 0
  repeat
    for i = 1, 20000 do x = x + i % 7 end
  until os.clock() - t0 >= seconds
  return x
end
local function inTask()
  local v = hot(0.5)
  return v
end
local function plain()
  local v = hot(0.25)
  return v
end
local t = task.concurrent(function()
  local v = inTask()
  return v
end)
t:await()
plain()
print("done")
]]

local function readFile(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Parses folded text; asserts every line is "frame;frame count".
local function parseFolded(text)
  local stacks, total = {}, 0
  for _, line in ipairs(h.lines(text)) do
    local stack, count = line:match("^(.+) (%d+)$")
    assert.truthy(stack, "not a folded line: " .. line)
    for frame in (stack .. ";"):gmatch("([^;]*);") do
      assert.truthy(frame ~= "", "empty frame in: " .. line)
    end
    stacks[#stacks + 1] = {stack = stack, count = tonumber(count)}
    total = total + tonumber(count)
  end
  return stacks, total
end

local function samplesWhere(stacks, pattern)
  local n = 0
  for _, s in ipairs(stacks) do
    if s.stack:find(pattern) then n = n + s.count end
  end
  return n
end

-- Checks an SVG with Python's XML parser; returns the frame titles.
local function svgTitles(path)
  local out = h.python([[
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
for g in root.iter(ns + "g"):
    t = g.find(ns + "title")
    r = g.find(ns + "rect")
    assert t is not None and r is not None
    assert float(r.get("width")) > 0
    print(t.text)
]], nil, {path})
  return h.lines(out)
end

describe("evo --prof", function()
  it("writes folded stacks and an SVG where the hot function dominates, tasks included", function()
    local script, dir = h.tempFile("hot.lua", HOT)
    local r = h.runEvo({"--prof=" .. dir .. "/out.folded", "--prof-interval=1", script}, {cwd = dir, timeout = 30})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "done\n")
    local stacks, total = parseFolded(assert(readFile(dir .. "/out.folded")))
    assert.truthy(total >= 30, "too few samples: " .. total)
    local hot = samplesWhere(stacks, ":hot$")
    assert.truthy(hot / total > 0.7, ("hot has %d of %d samples"):format(hot, total))
    -- inside the task: the task's own function at the root, then inTask, then hot
    local inTask = samplesWhere(stacks, "^" .. script:gsub("%p", "%%%0") .. ":%d+;[^;]*:inTask;[^;]*:hot$")
    assert.truthy(inTask / total > 0.35, ("inTask;hot has %d of %d samples"):format(inTask, total))
    local plain = samplesWhere(stacks, ":%(main%);[^;]*:plain;[^;]*:hot$")
    assert.truthy(plain / total > 0.15, ("(main);plain;hot has %d of %d samples"):format(plain, total))
    -- no scheduler or task machinery in any stack
    assert.equal(samplesWhere(stacks, "%[evo task%]"), 0)
    assert.equal(samplesWhere(stacks, "%[evo worker%]"), 0)
    -- the summary on stderr
    assert.match(r.stderr, "evo %-%-prof: %d+ samples %(every 1 ms")
    assert.match(r.stderr, "\n +%d+ +%d+%.%d%% +%d+ +%d+%.%d%%  [^\n]*:hot\n")
    -- the SVG: well-formed, one titled frame per node, the names in it
    local titles = table.concat(svgTitles(dir .. "/out.svg"), "\n")
    assert.match(titles, "^all %(%d+ samples, 100%.00%%%)")
    assert.match(titles, ":hot %(%d+ samples")
    assert.match(titles, ":inTask %(%d+ samples")
    assert.match(titles, ":plain %(%d+ samples")
  end)

  it("writes evo.prof.folded and evo.prof.svg in the working directory by default", function()
    local script, dir = h.tempFile("short.lua", "local x = 0 for i = 1, 1e6 do x = x + i end")
    local r = h.runEvo({"--prof", script}, {cwd = dir})
    assert.equal(r.code, 0, r.stderr)
    assert.truthy(readFile(dir .. "/evo.prof.folded"))
    assert.match(assert(readFile(dir .. "/evo.prof.svg")), "^<%?xml")
  end)

  it("names the native function a sample lands in with a [C] leaf", function()
    local script, dir = h.tempFile("native.lua", [[
local crypto = require("crypto")
local data = string.rep("x", 1000000)
local function hashing()
  local t0 = os.clock()
  repeat crypto.hash("sha256", data) until os.clock() - t0 >= 0.3
end
hashing()
]])
    local r = h.runEvo({"--prof=" .. dir .. "/n.folded", "--prof-interval=1", script}, {cwd = dir, timeout = 30})
    assert.equal(r.code, 0, r.stderr)
    local stacks, total = parseFolded(readFile(dir .. "/n.folded"))
    local native = samplesWhere(stacks, ":hashing;.*%[C%] [^;]*sha256[^;]*$")
    assert.truthy(native / total > 0.5, ("sha256 leaves: %d of %d\n%s"):format(native, total, r.stderr))
  end)

  it("is written when the script calls os.exit", function()
    local script, dir = h.tempFile("exit.lua", [[
local t0, x = os.clock(), 0
repeat x = x + 1 until os.clock() - t0 >= 0.1
os.exit(3)
]])
    local r = h.runEvo({"--prof=" .. dir .. "/e.folded", "--prof-interval=1", script}, {cwd = dir})
    assert.equal(r.code, 3, r.stderr)
    local _, total = parseFolded(assert(readFile(dir .. "/e.folded")))
    assert.truthy(total > 0)
    assert.match(r.stderr, "evo %-%-prof: ")
  end)

  it("is written when a server-like script is stopped by SIGINT", function()
    local script, dir = h.tempFile("server.lua", [[
local uv = require("uv")
local function work()
  local t0, x = os.clock(), 0
  repeat x = x + 1 until os.clock() - t0 >= 0.005
end
uv.new_timer():start(0, 1, work)
print("ready")
io.stdout:flush()
]])
    local r = h.runEvo({"--prof=" .. dir .. "/s.folded", "--prof-interval=1", script},
      {cwd = dir, onStart = h.killAfter("sigint", 0.6)})
    assert.equal(r.code, 130, r.stderr)
    local stacks, total = parseFolded(assert(readFile(dir .. "/s.folded")))
    assert.truthy(samplesWhere(stacks, ":work") > total / 2, r.stderr)
  end)

  it("installs nothing without --prof", function()
    -- SIGPROF is signal 27: bit 26 of SigCgt (caught signals) in /proc/self/status
    local probe = "local m = io.open('/proc/self/status'):read('*a'):match('SigCgt:%s*(%x+)') " ..
      "print(math.floor(tonumber(m:sub(-8), 16) / 2^26) % 2)"
    local off = h.runEvo({"-e", probe})
    assert.equal(off.stdout, "0\n", off.stderr)
    local dir = h.tempDir()
    local on = h.runEvo({"--prof=" .. dir .. "/p.folded", "-e", probe}, {cwd = dir})
    assert.equal(on.stdout, "1\n", on.stderr)
  end)

  it("fails clearly, before running anything, when the output cannot be written", function()
    local script = h.tempFile("x.lua", "print('ran')")
    local r = h.runEvo({"--prof=/nonexistent-dir/p.folded", script})
    assert.equal(r.code, 1)
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "^evo: %-%-prof: cannot write '/nonexistent%-dir/p%.folded': No such file or directory\n")
  end)

  it("rejects bad option values and --workers", function()
    local r = h.runEvo({"--prof-interval=0", "-e", ""})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "^evo: %-%-prof%-interval must be a whole number of milliseconds from 1 to 1000, not '0'")
    r = h.runEvo({"--prof-mode=fast", "-e", ""})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "^evo: %-%-prof%-mode must be 'stack' or 'vm', not 'fast'")
    r = h.runEvo({"--prof-colour", "-e", ""})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "^evo: unknown option '%-%-prof%-colour'")
    r = h.runEvo({"--prof", "--workers", "2", "-e", ""})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "not with %-%-workers")
    r = h.runEvo({"prof", "--interval"})
    assert.equal(r.code, 2)
    r = h.runEvo({"prof"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "^evo: evo prof needs a script")
  end)
end)

describe("evo prof", function()
  it("is evo --prof with -o, --interval and --mode, and passes the script its arguments", function()
    local script, dir = h.tempFile("p.lua", "local t0 = os.clock() repeat until os.clock() - t0 >= 0.05 print(...)")
    local r = h.runEvo({"prof", "-o", dir .. "/x.folded", "--interval", "2", "--mode=vm", script, "a", "b"},
      {cwd = dir})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "a\tb\n")
    assert.match(r.stderr, "every 2 ms")
    assert.match(r.stderr, "VM state")
    assert.truthy(readFile(dir .. "/x.folded"))
    assert.truthy(readFile(dir .. "/x.svg"))
  end)
end)

describe("evo --prof-mode=vm", function()
  it("prints the VM states with shares summing to 100% and roots the stacks in them", function()
    local script, dir = h.tempFile("vm.lua", HOT)
    local r = h.runEvo({"--prof=" .. dir .. "/vm.folded", "--prof-mode=vm", "--prof-interval=1", script},
      {cwd = dir, timeout = 30})
    assert.equal(r.code, 0, r.stderr)
    local sum, seen = 0, {}
    for _, state in ipairs({"Compiled", "Interpreted", "C code", "Garbage Collector", "JIT Compiler"}) do
      local pct = r.stderr:match("\n  " .. state .. " +%d+ +([%d.]+)%%\n")
      assert.truthy(pct, state .. " missing in:\n" .. r.stderr)
      sum = sum + tonumber(pct)
      seen[state] = tonumber(pct)
    end
    assert.truthy(math.abs(sum - 100) < 0.5, "shares sum to " .. sum)
    assert.truthy(seen.Compiled > 50, "the hot loop is compiled: " .. seen.Compiled)
    local stacks = parseFolded(readFile(dir .. "/vm.folded"))
    for _, s in ipairs(stacks) do
      assert.match(s.stack, "^[%a ]+;")
      local root = s.stack:match("^([^;]+)")
      assert.truthy(seen[root], "root is not a VM state: " .. s.stack)
    end
  end)
end)

describe("evo --jit-trace", function()
  local SCRIPT = [[
local s = 0
for i = 1, 200 do
  local f = function() return i end
  s = s + f()
end
local n = 0
for i = 1, 1000 do n = n + i end
print(s, n)
]]

  it("prints trace starts, stops and aborts with their reasons and file:line", function()
    local script, dir = h.tempFile("trace.lua", SCRIPT)
    local r = h.runEvo({"--jit-trace", script}, {cwd = dir})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "20100\t500500\n")
    local file = "trace%.lua"  -- LuaJIT's short source name
    -- creating a closure in a loop is not compiled (FNEW is bytecode 51 where jit.vmdef is missing)
    assert.match(r.stderr, "%[jit%] trace %d+ abort " .. file .. ":2 at " .. file .. ":3: NYI: bytecode (%w+)\n")
    assert.match(r.stderr, "%[jit%] trace %d+ start " .. file .. ":7\n")
    assert.match(r.stderr, "%[jit%] trace %d+ stop  " .. file .. ":7 %-> loop\n")
  end)

  it("is switched on by EVO_JIT_TRACE=1 too, and off by default", function()
    local script, dir = h.tempFile("trace.lua", SCRIPT)
    local on = h.runEvo({script}, {cwd = dir, env = {EVO_JIT_TRACE = "1"}})
    assert.match(on.stderr, "%[jit%] trace %d+ abort")
    local off = h.runEvo({script}, {cwd = dir, env = {EVO_JIT_TRACE = false}})
    assert.equal(off.stderr, "")
  end)

  it("words abort reasons with or without jit.vmdef", function()
    local r = h.runEvo({"-e", [[
local jt = require("evo.jittrace")
print(jt.reason(7, 51):match("^NYI: bytecode %w+$") ~= nil)
print(jt.reason(2))
print(jt.reason("custom"))
print(jt.reason(999))
]]})
    assert.equal(r.stdout, "true\ntrace too long\ncustom\ntrace error 999\n", r.stderr)
  end)
end)
