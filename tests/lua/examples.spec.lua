-- `make run` runs examples/tour.lua: the README's first command must work.
local h = require("helpers")

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."

describe("the tour (make run)", function()
  it("runs to the end and shows every section working", function()
    local r = h.runEvo({root .. "/examples/tour.lua"}, {timeout = 30})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, "")
    for _, want in ipairs({
      "== 1. The runtime", "GET /hello/evo -> 200 hello evo", "WebSocket:\techo: over a WebSocket",
      "HttpServer answered:\tHTTP_REQUEST_FINISHED GET /events",
      '{"big":12345678901234567890,"list":[],"ok":true}', "sha256('abc') =\tba7816bf8f01cfea...",
      "/srv/app/index.html\t/a%20b", "gzip: 4000 bytes -> 45, and back: 4000",
      'POST /echo ->\t200\tevo\t{"youSent":{"hello":"world"}}', "Bye!",
    }) do
      assert.truthy(r.stdout:find(want, 1, true), "missing from the tour's output: " .. want .. "\n" .. r.stdout)
    end
  end, 40)
end)
