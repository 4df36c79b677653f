-- The release build (`make release`, docs/performance.md "The release
-- build"): its training run, scripts/pgo-train, must keep running the whole
-- workload as bench/'s scripts change (a step that fails stops it, and with
-- it the release build), and the build's EVO_PGO setting takes only its
-- three values.
local h = require("helpers")

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local build = h.evo:match("^(.*)/[^/]+$") or "."
local loadgen = build .. "/bench/loadgen/evo_loadgen"

describe("the release build", function()
  it("has a training run that goes through its whole workload on this build", function()
    if os.getenv("EVO_SANITIZED") == "1" then
      pending("a minute of servers and load under the sanitizers; make release builds without them")
    end
    if not io.open(loadgen) then
      pending("evo_loadgen not built (cmake --build build --target evo_loadgen)")
    end
    local r = h.spawn(root .. "/scripts/pgo-train", {build}, {env = {PGO_TRAIN_QUICK = "1"}, timeout = 60})
    assert.equal(r.code, 0, r.stdout .. r.stderr)
    for _, step in ipairs({"HTTP/1.1", "static files", "WebSocket echo", "JSON, hashing", "done"}) do
      assert.truthy(r.stdout:find("pgo-train: " .. step, 1, true), r.stdout)
    end
  end, {timeout = 70})

  it("stops a training run whose step fails, naming it", function()
    if not io.open(loadgen) then
      pending("evo_loadgen not built (cmake --build build --target evo_loadgen)")
    end
    -- A build folder whose evo is a script that exits at once, never listening.
    local _, dir = h.tempFile("probe.txt", "")
    h.writeFile(dir .. "/evo", "#!/bin/sh\nexit 0\n")
    assert.equal(os.execute(("chmod +x '%s/evo' && mkdir -p '%s/bench/loadgen' && cp '%s' '%s/bench/loadgen/'")
      :format(dir, dir, loadgen, dir)), 0)
    local r = h.spawn(root .. "/scripts/pgo-train", {dir}, {env = {PGO_TRAIN_QUICK = "1"}, timeout = 30})
    assert.equal(r.code, 1, r.stdout .. r.stderr)
    assert.truthy(r.stderr:find("^pgo%-train: evo %S*/bench/http/evo_natural%.lua did not listen\n$"), r.stderr)
  end, {timeout = 40})

  it("refuses a build without the instrumented programs", function()
    local _, dir = h.tempFile("probe.txt", "")
    local r = h.spawn(root .. "/scripts/pgo-train", {dir})
    assert.equal(r.code, 2)
    assert.truthy(r.stderr:find("must be built first", 1, true), r.stderr)
  end)

  it("takes only generate, use or nothing as EVO_PGO", function()
    local _, dir = h.tempFile("probe.txt", "")
    local r = h.spawn("cmake", {"-S", root, "-B", dir .. "/b", "-DEVO_PGO=yes"}, {timeout = 60})
    assert.notEqual(r.code, 0)
    assert.truthy((r.stdout .. r.stderr):find("EVO_PGO must be generate, use or empty, not 'yes'", 1, true),
      r.stdout .. r.stderr)
  end, {timeout = 70})
end)
