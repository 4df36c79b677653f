-- A real browser: headless Chromium loads pages from Evo and talks to it
-- over WebSockets; the spec reads the DOM Chromium dumps, and what the Evo
-- side saw. Skipped when /usr/bin/chromium is not installed.
local W = require("webkit")
local http = require("http")
local ws = require("ws")
local task = require("task")

local UTF8 = "ünïcödé ✓ 日本"
local GIF = "GIF89a\1\0\1\0\128\0\0\0\0\0\255\255\255!\249\4\1\0\0\0\0,\0\0\0\0\1\0\1\0\0\2\2D\1\0;"

-- The page: opens ws://127.0.0.1:PORT/ws with a subprotocol, sends text,
-- UTF-8, binary (an ArrayBuffer) and 300 KB of text, and logs everything
-- into <ol id="log"> — one <li> per event. Chromium dumps the DOM once the
-- page has loaded, which waits for the image /hold: the server answers it
-- half a second after it closed the socket (the last event).
local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>evo ws test</title></head>
<body><ol id="log"></ol><p id="state">loading</p>
<script>
const log = (text) => {
  const li = document.createElement("li");
  li.textContent = text;
  document.getElementById("log").appendChild(li);
};
const socket = new WebSocket("ws://127.0.0.1:PORT/ws", ["evo-test"]);
socket.binaryType = "arraybuffer";
socket.onopen = () => {
  log("open protocol=" + socket.protocol + " extensions=" + socket.extensions.split(";")[0]);
  socket.send("hello from the browser");
  socket.send("UTF8TEXT");
  socket.send(new Uint8Array([0, 1, 2, 254, 255]).buffer);
  socket.send("abc".repeat(100000));
};
socket.onmessage = (e) => {
  if (typeof e.data === "string") log("text:" + e.data);
  else log("binary:" + Array.from(new Uint8Array(e.data)).join(","));
};
socket.onerror = () => log("error");
socket.onclose = (e) => {
  log("close:" + e.code + ":" + e.reason + ":" + e.wasClean);
  document.getElementById("state").textContent = "done";
};
</script>
<img src="/hold" alt="">
</body></html>
]]

-- The <li> texts of the dumped DOM, in order.
local function items(dom)
  local out = {}
  for text in dom:gmatch("<li[^>]*>(.-)</li>") do
    out[#out + 1] = text:gsub("&amp;", "&"):gsub("&lt;", "<"):gsub("&gt;", ">")
  end
  return out
end

local have = W.exists(W.chromiumPath)
local suite = have and describe or describe.skip

suite("headless Chromium" .. (have and "" or " (skipped: " .. W.chromiumPath .. " is not installed)"), function()
  it("exchanges text, binary and server-initiated messages with an Evo WebSocket", function()
    local seen = task.queue()
    local finished = task.queue()
    local server
    server = assert(http.serve({port = 0}, function(req, res)
      if req.path == "/" then
        local page = PAGE:gsub("PORT", tostring(server.port)):gsub("UTF8TEXT", UTF8)
        return res:send(200, page, {["content-type"] = "text/html; charset=utf-8"})
      elseif req.path == "/hold" then
        task.timeout(20, function() return finished:get() end)
        task.sleep(0.5)  -- for the page's close event
        return res:send(200, GIF, {["content-type"] = "image/gif"})
      elseif req.path ~= "/ws" then
        return res:send(404, "not here\n")
      end
      local conn, err = ws.accept(req, res, {protocols = {"evo-test"}})
      if not conn then
        seen:put({"rejected", tostring(err)})
        return
      end
      seen:put({"open", conn.headers, conn.protocol})
      conn:send("server speaks first")  -- before the browser said anything
      for _ = 1, 4 do
        local data, kind = conn:receive()
        if not data then
          seen:put({"closed early", kind.closeCode})
          finished:put(true)
          return
        end
        seen:put({kind, data})
        if kind == "binary" then
          conn:send(data:reverse(), "binary")
        elseif #data > 1000 then
          conn:send("big:" .. #data .. ":" .. tostring(data == string.rep("abc", 100000)))
        else
          conn:send("echo:" .. data)
        end
      end
      conn:close(4000, "evo done")
      seen:put({"closed"})
      finished:put(true)
    end))
    local url = "http://127.0.0.1:" .. server.port .. "/"

    local dom, run = W.chromium(url, false)
    assert.match(dom, "<title>evo ws test</title>", run.err)
    assert.equal(items(dom), {
      "open protocol=evo-test extensions=permessage-deflate",
      "text:server speaks first",
      "text:echo:hello from the browser",
      "text:echo:" .. UTF8,
      "binary:255,254,2,1,0",
      "text:big:300000:true",
      "close:4000:evo done:true",
    })
    assert.match(dom, '<p id="state">done</p>')

    local open = W.get(seen)
    assert.equal(open[1], "open")
    local h = open[2]
    assert.match(h["user-agent"], "HeadlessChrome/%d+")
    assert.equal(h.origin, "http://127.0.0.1:" .. server.port)
    assert.match(h["sec-websocket-extensions"], "permessage%-deflate")
    assert.equal(h["sec-websocket-protocol"], "evo-test")
    assert.equal(open[3], "evo-test")
    assert.equal(W.get(seen), {"text", "hello from the browser"})
    assert.equal(W.get(seen), {"text", UTF8})
    assert.equal(W.get(seen), {"binary", "\0\1\2\254\255"})
    local big = W.get(seen)
    assert.equal({big[1], #big[2]}, {"text", 300000})
    assert.equal(W.get(seen), {"closed"})
    server:close()
  end, 60)

  describe("the chat example", function()
    local chat, base
    before(function()
      chat = W.startPeer(W.evo, {W.root .. "/examples/chat/server.lua", "0"}, "^chat: http://127%.0%.0%.1:(%d+)/$")
      base = "127.0.0.1:" .. chat.port
    end)
    after(function() if chat then chat.stop() end end)

    it("serves its page, and 404 for anything else", function()
      local res = assert(http.get("http://" .. base .. "/", {timeout = 10}))
      assert.equal(res.status, 200)
      assert.match(res.headers["content-type"], "^text/html")
      assert.match(res.body, "<title>Evo chat</title>")
      assert.isNil(res.body:find("https?://[%w.]+/"), "the page loads nothing from elsewhere")
      local missing = assert(http.get("http://" .. base .. "/nope.js", {timeout = 10}))
      assert.equal(missing.status, 404)
      http.closeIdle()
    end, 20)

    it("broadcasts a message typed in the page to the page and to another client", function()
      local observer = assert(ws.connect("ws://" .. base .. "/chat", {timeout = 10}))
      local welcome = observer:receive()
      local me = tonumber(welcome:match('^{"type":"welcome","you":(%d+),"count":1}$'))
      assert(me, "welcome: " .. tostring(welcome))
      assert.equal(observer:receive(), ('{"type":"join","from":%d,"count":1}'):format(me))

      local text = "hello from chromium <&> ✓"
      local query = text:gsub("[^%w]", function(c) return ("%%%02X"):format(c:byte()) end)
      -- Chromium dumps the DOM when its virtual time runs out, which does
      -- not wait for WebSocket traffic: when the dump came before the
      -- broadcast did, the page is loaded again (a new guest), up to 3 times.
      local browser, dom, observed
      for attempt = 1, 3 do
        local run
        dom, run = W.chromium("http://" .. base .. "/?auto=" .. query)
        assert.match(dom, "<title>Evo chat</title>", run.err)
        browser = me + attempt
        observed = {}
        repeat
          local m = assert(observer:receive())
          observed[#observed + 1] = m
        until m:find('"type":"leave"', 1, true)
        if dom:find("hello from chromium", 1, true) then break end
      end
      -- what the other client saw: the page joined, its message, it left
      assert.equal(observed, {
        ('{"type":"join","from":%d,"count":2}'):format(browser),
        ('{"type":"message","from":%d,"text":"hello from chromium <&> ✓"}'):format(browser),
        ('{"type":"leave","from":%d,"count":1}'):format(browser),
      })
      assert.match(dom, ('<span id="status">online as guest %d %%(2 here%%)</span>'):format(browser))
      -- the page shows what the server broadcast back (it has no local echo)
      local mine = ('<li class="message mine" data-from="%d"><span class="from">guest %d:</span>'):format(browser, browser)
        .. "hello from chromium &lt;&amp;&gt; ✓</li>"
      assert.truthy(dom:find(mine, 1, true), "the page shows its broadcast message:\n" .. dom)

      -- the relay escapes JSON properly
      observer:send('quote " and backslash \\')
      assert.equal(observer:receive(), ('{"type":"message","from":%d,"text":"quote \\" and backslash \\\\"}'):format(me))
      observer:close()
    end, 60)
  end)
end)
