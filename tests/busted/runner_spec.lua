-- `evo test` on busted-style fixture suites (tests/fixtures/busted), run as
-- a child process: expected failures, exit codes, discovery, insulation of
-- files, busted's flags and outputs, and Debian's lua-luassert/lua-busted
-- present (a stand-in tree, or the real one when installed) or absent.
package.path = "./tests/lua/?.lua;" .. package.path
local h = require("helpers")

local function lastLine(text)
  local lines = h.lines(text)
  return lines[#lines]
end

local SUITE = "tests/fixtures/busted/suite"

describe("evo test on a busted suite", function()
  local r
  setup(function() r = h.runEvo({"test", SUITE}) end)

  it("finds *_spec.lua and *.spec.lua, not other .lua files, and exits 1 on failure", function()
    assert.matches("suite/failing_spec.lua\n", r.stdout, 1, true)
    assert.matches("suite/evo_style.spec.lua\n", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("helper.lua", 1, true))
    assert.equal("3 passed, 8 failed, 1 skipped", lastLine(r.stdout))
    assert.equal(1, r.code)
  end)

  it("fails busted's identity assert.equal on equal tables, with a hint", function()
    assert.matches("✗ identity #fast\n[^\n]*failing_spec.lua:4: expected the very same table", r.stdout)
  end)

  it("shows deep diffs and the calls a spy saw", function()
    assert.matches("at .a[2]: expected 2, got 3", r.stdout, 1, true)
    assert.matches("expected the spy to be called with %(2%)\n%s+1 recorded:\n%s+%(1%)", r.stdout)
    assert.matches("failing_spec.lua:15: expected an error, but none was raised", r.stdout, 1, true)
  end)

  it("runs finally after a failing test, and fails tests whose before_each or after_each fails", function()
    assert.matches("FINALLY RAN\n    ✗ runs finally after failing", r.stdout, 1, true)
    assert.matches("✗ fails\n[^\n]*before_each hook: [^\n]*before_each broke", r.stdout)
    assert.matches("✗ fails too\n[^\n]*after_each hook: [^\n]*after_each broke", r.stdout)
  end)

  it("counts pending tests as skipped", function()
    assert.matches("- later (pending)", r.stdout, 1, true)
  end)

  it("fails a test that yields with nothing to resume it, and goes on", function()
    assert.matches("✗ fails this test\n[^\n]*failing_spec.lua:38: waits with nothing left that could resume it", r.stdout)
    assert.matches("✓ and the run goes on", r.stdout, 1, true)
  end)
end)

describe("evo test file insulation", function()
  it("gives each busted file fresh modules and globals, except what expose exported and LuaJIT's ffi", function()
    local r = h.runEvo({"test", "tests/fixtures/busted/insulation"})
    assert.equal("5 passed, 0 failed", lastLine(r.stdout), r.stdout)
    assert.equal(0, r.code)
  end)
end)

describe("busted's flags", function()
  it("--pattern picks files by a Lua pattern on their name", function()
    local r = h.runEvo({"test", SUITE, "--pattern=evo_style"})
    assert.equal("1 passed, 0 failed", lastLine(r.stdout))
    assert.is_nil(r.stdout:find("failing_spec", 1, true))
  end)

  it("--tags and --exclude-tags select by #tag in the full name; --filter-out drops names", function()
    local r = h.runEvo({"test", SUITE .. "/failing_spec.lua", "--tags=fast"})
    assert.equal("1 passed, 1 failed", lastLine(r.stdout))
    r = h.runEvo({"test", SUITE .. "/failing_spec.lua", "--exclude-tags", "fast", "--filter-out=yield"})
    assert.equal("0 passed, 6 failed, 1 skipped", lastLine(r.stdout))
  end)

  it("-o TAP prints a TAP stream", function()
    local r = h.runEvo({"test", SUITE .. "/failing_spec.lua", "-o", "TAP", "--filter", "failures"})
    assert.matches("^not ok 1 %- failures identity #fast\n# ", r.stdout)
    assert.matches("\nok 6 - failures passes #fast\n", r.stdout, 1, true)
    assert.matches("\nok 7 - failures later # SKIP\n", r.stdout, 1, true)
    assert.matches("\n1..7\n# 1 passed, 5 failed, 1 skipped\n$", r.stdout)
    assert.equal(1, r.code)
  end)

  it("-o json prints one document", function()
    local r = h.runEvo({"test", SUITE .. "/failing_spec.lua", "-o", "json", "--tags", "fast"})
    local doc = require("json").decode(r.stdout)
    assert.equal(1, doc.passed)
    assert.equal(1, doc.failed)
    assert.equal("fail", doc.tests[1].status)
    assert.equal("failures identity #fast", doc.tests[1].name)
    assert.equal("pass", doc.tests[2].status)
  end)

  it("-o plainTerminal marks with ASCII", function()
    local r = h.runEvo({"test", SUITE .. "/failing_spec.lua", "-o", "plainTerminal", "--tags", "fast"})
    assert.matches("\n    x identity #fast\n", r.stdout, 1, true)
    assert.matches("\n    + passes #fast (", r.stdout, 1, true)
    assert.equal("1 passed, 1 failed", lastLine(r.stdout))
  end)

  it("--shuffle with --seed runs the same order for the same seed", function()
    local dir = h.tempDir()
    local lines = {}
    for i = 1, 12 do lines[#lines + 1] = ("it('t%02d', function() end)"):format(i) end
    h.writeFile(dir .. "/many_spec.lua", table.concat(lines, "\n"))
    local a = h.runEvo({"test", dir, "--shuffle", "--seed=7"})
    local b = h.runEvo({"test", dir, "--seed", "7"})
    local plain = h.runEvo({"test", dir})
    local function order(out) return (out:gsub("%(%d+%.%d ms%)", "")) end
    assert.matches("shuffled with --seed 7", a.stdout, 1, true)
    assert.equal(order(a.stdout), order(b.stdout))
    assert.are_not.equal(order(a.stdout):match("t%d%d.*t%d%d"), order(plain.stdout):match("t%d%d.*t%d%d"))
    assert.equal("12 passed, 0 failed", lastLine(a.stdout))
  end)

  it("-m/--lpath adds to package.path", function()
    local dir = h.tempDir()
    h.writeFile(dir .. "/mylib.lua", "return {answer = 42}")
    local spec = h.writeFile(h.tempDir() .. "/uses_spec.lua",
      "it('finds mylib', function() assert.equal(42, require('mylib').answer) end)")
    local r = h.runEvo({"test", spec, "-m", dir .. "/?.lua"})
    assert.equal("1 passed, 0 failed", lastLine(r.stdout), r.stdout)
  end)

  it("refuses an unknown flag or output with exit 2", function()
    local r = h.runEvo({"test", SUITE, "--coverage"})
    assert.equal(2, r.code)
    assert.matches("unknown option '--coverage'", r.stderr, 1, true)
    r = h.runEvo({"test", SUITE, "-o", "junit"})
    assert.equal(2, r.code)
    assert.matches("unknown output 'junit'", r.stderr, 1, true)
  end)
end)

describe("Debian's lua-luassert / lua-busted", function()
  local fake = "tests/fixtures/busted/fake-debian"
  local fakePath = fake .. "/?.lua;" .. fake .. "/?/init.lua;;"

  it("absent: require('luassert'), 'luassert.spy', 'say' and 'busted' work from Evo alone", function()
    -- (this very file requires them only through evo test; spy_spec.lua checks each)
    assert.equal(assert, require("luassert"))
    assert.is_function(require("say").set)
  end)

  it("present on package.path: evo test still gives Evo's, the tree is not loaded", function()
    local r = h.runEvo({"test", fake .. "/present_spec.lua"}, {env = {LUA_PATH = fakePath}})
    assert.equal("1 passed, 0 failed", lastLine(r.stdout), r.stdout)
  end)

  it("present: a plain script (not evo test) loads the tree's luassert", function()
    local script = h.writeFile(h.tempDir() .. "/script.lua", io.open(fake .. "/script.lua"):read("*a"))
    local r = h.runEvo({script}, {env = {LUA_PATH = fakePath}})
    assert.equal("luassert: fake\n", r.stdout)
  end)

  -- The real packages, when installed (apt-get install lua-busted) or
  -- unpacked somewhere named by EVO_TEST_LUASSERT_TREE (a .../lua/5.1 dir).
  local tree = os.getenv("EVO_TEST_LUASSERT_TREE")
  if not tree and io.open("/usr/share/lua/5.1/luassert/init.lua") then tree = "/usr/share/lua/5.1" end
  local realIt = tree and it or it.skip
  realIt("installed for real: evo test gives Evo's, a plain script gets the real luassert and it works", function()
    local path = tree .. "/?.lua;" .. tree .. "/?/init.lua;;"
    local r = h.runEvo({"test", fake .. "/present_spec.lua"}, {env = {LUA_PATH = path}})
    assert.equal("1 passed, 0 failed", lastLine(r.stdout), r.stdout)
    local script = h.writeFile(h.tempDir() .. "/script.lua", io.open(fake .. "/script.lua"):read("*a"))
    r = h.runEvo({script}, {env = {LUA_PATH = path}})
    assert.equal("luassert: real, and it works\n", r.stdout, r.stderr)
  end)
end)
