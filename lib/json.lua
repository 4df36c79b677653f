-- json: JSON text to Lua values and back (RFC 8259), native.
--
--   local json = require("json")
--   local v = assert(json.decode('{"users": [{"name": "Ada"}], "next": null}'))
--   print(v.users[1].name, v.next == json.null)      --> Ada  true
--   print(json.encode({ok = true, items = json.array()}))  --> {"ok":true,"items":[]}
--
-- decode gives json.null for null, marks the tables it makes as arrays or
-- objects (so [] and {} survive a round trip), and integers beyond 2^53 as
-- int64_t/uint64_t cdata (exact). encode writes a plain table that is a
-- sequence 1..n (n >= 1) as an array, an empty unmarked table as {}, and
-- raises naming the path of a value JSON cannot hold (functions, NaN,
-- cycles, mixed keys). Malformed text is an operational failure: nil, err
-- with err.code "JsonSyntax", err.line, err.column; without libsimdjson
-- (loaded at the first decode) nil, err LibraryUnavailable. See docs/json.md.
local native = require("evo.json")
local errors = require("evo.errors")
local args = require("evo.args")

local type, tostring, pcall, require, error = type, tostring, pcall, require, error
local find, sub, gsub, concat = string.find, string.sub, string.gsub, table.concat
local decode = native.decode

local json = {
  encode = native.encode,
  decode = decode,
  array = native.array,
  object = native.object,
  kind = native.kind,
  null = native.null,
}

-- A whole file with luv's synchronous calls, for worker states: their
-- failures carry libuv's codes (ENOENT, EISDIR...) as fs.readFile's do.
local function readFileSync(path)
  local uv = require("uv")
  local fd, err, name = uv.fs_open(path, "r", 0)
  if not fd then return nil, errors.fromUv(err, name) end
  local parts = {}
  while true do
    local chunk, rerr, rname = uv.fs_read(fd, 1048576, -1)
    if not chunk then
      uv.fs_close(fd)
      return nil, errors.fromUv(rerr, rname)
    end
    if chunk == "" then break end
    parts[#parts + 1] = chunk
  end
  uv.fs_close(fd)
  return concat(parts)
end

-- fs needs Evo's event loop; a worker state (task.work) reads with luv.
local fs
local function readFile(path)
  if fs == nil then
    local ok, mod = pcall(require, "fs")
    fs = ok and mod or false
  end
  if fs then return fs.readFile(path) end
  return readFileSync(path)
end

-- decodeFile(path [, opts]) -> value | nil, err. Reads through fs
-- (colourless: suspends only the calling task); a syntax error's message
-- starts with the path and err.path holds it.
function json.decodeFile(path, opts)
  if type(path) ~= "string" then args.fail(1, "json.decodeFile", "string", path) end
  if opts ~= nil and type(opts) ~= "table" then args.fail(2, "json.decodeFile", "table", opts) end
  local text, err = readFile(path)
  if not text then return nil, err end
  local value, derr = decode(text, opts)
  if derr then
    derr.message = path .. ": " .. derr.message
    derr.path = path
    return nil, derr
  end
  return value
end

-- A function returning the next line (without "\n") or nil at the end,
-- for each kind of source json.lines takes.
local function lineReader(source)
  local t = type(source)
  if t == "string" then
    local pos, len = 1, #source
    return function()
      if pos > len then return nil end
      local nl = find(source, "\n", pos, true)
      local line
      if nl then
        line, pos = sub(source, pos, nl - 1), nl + 1
      else
        line, pos = sub(source, pos), len + 1
      end
      return line
    end
  elseif t == "function" then
    return source
  elseif io.type(source) == "file" then
    return function() return source:read("*l") end
  elseif (t == "table" or t == "userdata") and type(source.readLine) == "function" then
    return function()
      local line, err = source:readLine()
      if line == nil and err ~= nil then error(err, 0) end
      return line
    end
  end
  return nil
end

-- lines(source [, opts]) -> iterator over the values of newline-delimited
-- JSON (NDJSON, JSON Lines): `for value, lineNumber in json.lines(src)`.
-- source: a string, an Evo Stream or fs File (readLine), a Lua file, or a
-- function returning lines. Blank lines are skipped. A malformed line
-- raises a JsonSyntax error whose err.line is the line's number in the
-- source; a failed read raises the read's error.
function json.lines(source, opts)
  local nextLine = lineReader(source)
  if not nextLine then
    args.fail(1, "json.lines", "string, stream, file or function", source)
  end
  if opts ~= nil and type(opts) ~= "table" then args.fail(2, "json.lines", "table", opts) end
  local n = 0
  return function()
    while true do
      local line = nextLine()
      if line == nil then return nil end
      n = n + 1
      if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
      if find(line, "[^ \t]") then
        local value, err = decode(line, opts)
        if err then
          err.message = gsub(err.message, "at line 1, ", "at line " .. n .. ", ", 1)
          err.line = n
          error(err, 2)
        end
        return value, n
      end
    end
  end
end

return json
