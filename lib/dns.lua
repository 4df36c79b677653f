-- dns: name resolution, colourless (the system resolver, as getaddrinfo).
--
--   local dns = require("dns")
--   for _, a in ipairs(assert(dns.lookup("localhost"))) do print(a.address, a.family) end
--   print(dns.reverse("127.0.0.1"))
local uv = require("uv")
local io = require("evo.io")
local args = require("evo.args")

local dns = {}

local families = {inet = "inet", inet6 = "inet6", [4] = "inet", [6] = "inet6"}

-- lookup(host [, {family = 4 | 6 | "inet" | "inet6"}]) -> {{address, family}, ...} | nil, err
function dns.lookup(host, opts)
  args.check(1, "lookup", host, "string")
  local hints = {socktype = "stream"}
  if opts and opts.family ~= nil then
    hints.family = families[opts.family]
    if not hints.family then error("bad argument #2 to 'lookup' (family must be 4, 6, 'inet' or 'inet6')", 2) end
  end
  local res, err = io.call(uv.getaddrinfo, host, nil, hints)
  if not res then return nil, err end
  local out, seen = {}, {}
  for _, r in ipairs(res) do
    if not seen[r.addr] then
      seen[r.addr] = true
      out[#out + 1] = {address = r.addr, family = r.family == "inet6" and 6 or 4}
    end
  end
  return out
end

-- reverse(ip) -> hostname | nil, err
function dns.reverse(ip)
  args.check(1, "reverse", ip, "string")
  if not (ip:match("^%d+%.%d+%.%d+%.%d+$") or ip:find(":", 1, true)) then
    return nil, require("evo.errors").new("EINVAL", "not an IP address: " .. ip)
  end
  local ok, host, err = pcall(io.call, uv.getnameinfo, {ip = ip})
  if not ok then
    if type(host) == "table" then error(host, 0) end  -- Canceled
    return nil, require("evo.errors").new("EINVAL", "not an IP address: " .. ip)
  end
  if not host then return nil, err end
  return host
end

return dns
