-- Header pairs the engine accepted (name -> value), for the FFI paths that
-- add a header to a response (http.serve's res:send, HttpServer's
-- WriteHeader): a handler's headers are mostly constant strings, and a pair
-- found here skips the engine's byte checks of the name and the value (~80
-- instructions a header; src/http/server.cpp, add_header_if_valid's
-- `checked`), everything else about it done as always. Strings are
-- interned and the table keeps the ones it holds, so a lookup
-- (`pairs[name] == value`, made by the hot paths themselves) is one hash
-- lookup and a pointer comparison, and no other string can pass for one.
-- (Only strings are stored, but a hit does not prove the value is one:
-- LuaJIT's == also finds a const char* cdata pointing at a string's bytes
-- equal to it. The callers check that the value is a string first.) Only
-- short pairs are kept, at most 256 names, then the table is emptied (in
-- place: the users hold it): it pins its strings.
--
-- M.lines has, for a pair in M.pairs the engine added as its own line (its
-- FFI header functions say so; not a name it acts on, such as
-- Content-Length or Connection), that line "name: value\r\n": res:send and
-- WriteHeader append it as it is (FFI send_line, header_line), ~70
-- instructions less a header than the checked path. It is kept and emptied
-- with M.pairs, so a hit in M.pairs for a name finds the line of that pair.

-- (Not LuaJIT's table.clear: requiring it made every pipelined request of
-- bench/http/evo_natural.lua ~45 instructions dearer, in the collector's
-- sweep of the string table, docs/performance.md; this runs once per 256
-- names.)
local function clear(t)
  for k in pairs(t) do t[k] = nil end
end

local M = {}

local checked, lines, count = {}, {}, 0
M.pairs = checked
M.lines = lines

-- The engine has just accepted the string pair; asLine: it added the pair
-- as its own line and nothing else.
function M.remember(name, value, asLine)
  if #name + #value > 256 then return end
  if checked[name] == nil then
    if count == 256 then
      clear(checked)
      clear(lines)
      count = 0
    end
    count = count + 1
  end
  checked[name] = value
  lines[name] = asLine and name .. ": " .. value .. "\r\n" or nil
end

return M
