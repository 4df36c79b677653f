-- The server of bench/io.sh's 10k-connection and large-file rows: hello world
-- at "/" (as bench/http/evo_hello.lua) and http.static(DIR) for every other
-- path; a backlog of 16384 so that 10,000 connections opened at once are not
-- dropped by the kernel's accept queue, and an idle timeout longer than the
-- one second between a connection's requests.
--   evo [--io=MODE] bench/http/io_server.lua DIR      prints "listening on PORT"
local http = require("http")

local dir = assert(arg and arg[1], "usage: io_server.lua DIR")
local headers = {["content-type"] = "text/plain"}
local static = http.static(dir)

local server = assert(http.serve({host = "127.0.0.1", port = 0, backlog = 16384, idleTimeout = 30},
  function(req, res)
    if req.path == "/" then return res:send(200, "Hello, World!", headers) end
    return static(req, res)
  end))
io.stdout:setvbuf("line")
print("listening on " .. server.port)
