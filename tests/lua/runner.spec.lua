-- The test runner tested: `evo test` on fixture specs in tests/fixtures/.
local h = require("helpers")

local function lastLine(text)
  local lines = h.lines(text)
  return lines[#lines]
end

describe("evo test", function()
  local r
  before(function()
    r = h.runEvo({"test", "tests/fixtures/runner"})
  end)

  it("ends with exactly 'N passed, N failed, N skipped' and exits 1 on failure", function()
    assert.equal(lastLine(r.stdout), "5 passed, 5 failed, 3 skipped")
    assert.equal(r.code, 1)
  end)

  it("marks passes with ✓ and failures with ✗ and file:line", function()
    assert.match(r.stdout, "\n    ✓ adds %(")
    assert.match(r.stdout, "\n    ✗ compares tables\n        tests/fixtures/runner/mixed%.spec%.lua:17: tables differ")
  end)

  it("shows a readable deep diff for tables", function()
    assert.match(r.stdout, "at %.list%[3%]: expected 4, got 3")
    assert.match(r.stdout, "expected: {a = 1, list = {1, 2, 4}}")
  end)

  it("skips it.skip and describe.skip without running them", function()
    assert.match(r.stdout, "%- is skipped %(skipped%)")
    assert.match(r.stdout, "%- one %(skipped%)")
    assert.falsy(r.stdout:find("must not run", 1, true))
  end)

  it("lets tests wait on timers, and fails errors raised after waiting", function()
    assert.match(r.stdout, "✓ waits on a timer")
    assert.match(r.stdout, "mixed%.spec%.lua:33: failed late")
  end)

  it("fails a test that neither finishes nor fails within its timeout", function()
    assert.match(r.stdout, "✗ times out\n%s+tests/fixtures/runner/mixed%.spec%.lua:36: timed out after 0%.2 s")
  end)

  it("fails the running test when a luv callback raises, and carries on", function()
    assert.match(r.stdout, "✗ fails from a luv callback\n[^\n]*uncaught error in a callback: [^\n]*callback exploded")
    assert.match(r.stdout, "✓ top%-level test after the groups")
  end)

  it("runs before/after once per describe and beforeEach/afterEach around each test", function()
    assert.match(r.stdout, "LOG before outer, beforeEach outer, first, afterEach outer, beforeEach outer, " ..
      "beforeEach inner, second, afterEach inner, afterEach outer, after outer\n")
  end)

  it("fails the tests of a describe whose before hook fails, without running them", function()
    assert.match(r.stdout, "✗ never runs\n[^\n]*before hook: [^\n]*setup broke")
    assert.falsy(r.stdout:find("SHOULD NOT RUN", 1, true))
  end)

  it("lists the failures with file:line before the summary", function()
    assert.match(r.stdout, "Failures:\n  ✗ tests/fixtures/runner/hooks%.spec%.lua:24: failing before never runs\n")
  end)
end)

describe("evo test options", function()
  it("--filter runs only the tests whose full name contains the text", function()
    local r = h.runEvo({"test", "tests/fixtures/runner/mixed.spec.lua", "--filter", "math adds"})
    assert.equal(r.code, 0, r.stdout)
    assert.equal(lastLine(r.stdout), "1 passed, 0 failed")
    assert.falsy(r.stdout:find("waits on a timer", 1, true))
  end)

  it("exits 0 and prints no skipped count when all pass", function()
    local r = h.runEvo({"test", "tests/fixtures/runner/hooks.spec.lua", "--filter=outer"})
    assert.equal(r.code, 0)
    assert.equal(lastLine(r.stdout), "2 passed, 0 failed")
  end)

  it("counts a spec file that does not load as a failure", function()
    local r = h.runEvo({"test", "tests/fixtures/runner-broken"})
    assert.equal(r.code, 1)
    assert.match(r.stdout, "failed to load: [^\n]*broken%.spec%.lua:1:")
    assert.equal(lastLine(r.stdout), "0 passed, 1 failed")
  end)

  it("uses a 5 second default timeout", function()
    local path = h.tempFile("slow.spec.lua", "it('hangs', function() coroutine.yield() end)")
    local started = require("uv").hrtime()
    local r = h.runEvo({"test", path}, {timeout = 15, env = {EVO_TEST_TIMEOUT = false}})
    local seconds = (require("uv").hrtime() - started) / 1e9
    assert.match(r.stdout, "timed out after 5 s")
    assert.truthy(seconds >= 4.9 and seconds < 10, "took " .. seconds .. " s")
  end, {timeout = 20})

  it("rejects a missing path and an unknown option with exit 2", function()
    local r = h.runEvo({"test", "no/such/dir"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "no such file or directory: no/such/dir")
    r = h.runEvo({"test", "--bogus"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "unknown option '%-%-bogus'")
  end)

  it("closes handles a test leaked so the run still ends", function()
    local path = h.tempFile("leak.spec.lua", [[
      it('leaks a repeating timer', function()
        local t = require('uv').new_timer()
        t:start(10, 10, function() end)
      end)
    ]])
    local r = h.runEvo({"test", path}, {timeout = 5})
    assert.falsy(r.timedOut)
    assert.equal(lastLine(r.stdout), "1 passed, 0 failed")
  end)
end)
