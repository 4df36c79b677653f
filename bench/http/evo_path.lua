-- A handler that reads the request line: the path as the body, a method
-- check, a shared header table (for bench/http_instructions.sh: what reading
-- req.method and req.path costs against bench/http/evo_hello.lua).
--   evo bench/http/evo_path.lua PORT
local http = require("http")

local port = tonumber(arg and arg[1]) or 8080
local headers = {["content-type"] = "text/plain"}

local server = http.serve({host = "127.0.0.1", port = port}, function(req, res)
  if req.method ~= "GET" then return res:send(405, "", headers) end
  res:send(200, req.path, headers)
end)
print("listening on " .. server.port)
