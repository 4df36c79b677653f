-- The include rule between src/ folders (docs/architecture.md, "Layers"):
-- scripts/check-layers lists every #include that points up a layer.
local h = require("helpers")

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."

describe("source layout", function()
  it("has no include that points up a layer (no cycle between folders)", function()
    local r = h.spawn("/usr/bin/python3", {root .. "/scripts/check-layers"})
    assert.equal(r.code, 0, r.stdout .. r.stderr)
    assert.truthy(r.stdout:find("every include points down", 1, true))
  end)

  it("catches an include that points up", function()
    local _, dir = h.tempFile("probe.txt", "")
    -- A copy of the checker over a tree where io/ includes http/.
    assert(os.execute(("mkdir -p %s/scripts %s/src/io %s/src/http && cp %s/scripts/check-layers %s/scripts/")
      :format(dir, dir, dir, root, dir)))
    h.writeFile(dir .. "/src/io/x.cpp", '#include "http/server.h"\n')
    local r = h.spawn("/usr/bin/python3", {dir .. "/scripts/check-layers"})
    assert.equal(r.code, 1)
    assert.truthy(r.stdout:find("src/io/x.cpp:1: io may not include http/", 1, true), r.stdout)
  end)
end)
