-- The anchor of bench/http.sh: a naive HTTP/1.1 hello server in plain LuaJIT
-- + luv, as someone would write it in an afternoon. It does no real parsing:
-- every "\r\n\r\n" ends a request (no bodies, no header checks, no limits),
-- the request line is matched with a pattern and the response is built from
-- a new header table, like the natural Evo handler. What a real server adds
-- (llhttp, header validation, timeouts, tasks, errors) is the difference.
--   luajit bench/http/luv_naive.lua PORT
local uv = require("luv")
local find, match, concat = string.find, string.match, table.concat
local pairs, tostring = pairs, tostring

local port = tonumber(arg and arg[1]) or 8080

local function respond(out, n, method, path)
  local headers = {["content-type"] = "text/plain"}
  local body = "Hello, World!"
  n = n + 1; out[n] = "HTTP/1.1 200 OK\r\n"
  for k, v in pairs(headers) do
    n = n + 1; out[n] = k .. ": " .. v .. "\r\n"
  end
  n = n + 1; out[n] = "content-length: " .. #body .. "\r\n\r\n" .. body
  return n
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  local pending = ""
  client:read_start(function(rerr, data)
    if rerr or not data then client:close() return end
    if pending ~= "" then data = pending .. data end
    local out, n, pos = {}, 0, 1
    while true do
      local e = find(data, "\r\n\r\n", pos, true)
      if not e then break end
      local method, path = match(data, "^(%u+) (%S+)", pos)
      n = respond(out, n, method, path)
      pos = e + 4
    end
    pending = data:sub(pos)
    if n > 0 then client:write(concat(out, "", 1, n)) end
  end)
end))
print("listening on " .. port)
uv.run()
