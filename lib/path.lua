-- path: POSIX path strings, with the semantics of Node's `path` module
-- (path.posix), quirks included, so code and expectations carry over:
--
--   local path = require("path")
--   path.join("/a/b", "../c", "d.txt")   --> "/a/c/d.txt"
--   path.parse("/home/u/.bashrc")        --> {root = "/", dir = "/home/u", base = ".bashrc", ext = "", name = ".bashrc"}
--
-- Pure string work: nothing touches the file system except resolve(), which
-- starts from the process's working directory. See docs/path.md.
local args = require("evo.args")

local type, select = type, select
local concat = table.concat
local byte, sub, gmatch = string.byte, string.sub, string.gmatch

local SLASH, DOT = 47, 46

local path = {sep = "/", delimiter = ":"}
path.posix = path

local function checkString(n, fname, v)
  if type(v) ~= "string" then args.fail(n, fname, "string", v, 3) end
end

-- The segments of p with "." and empty ones dropped and ".." applied. A ".."
-- that would climb above the start is kept when aboveRoot (a relative path)
-- and dropped otherwise ("/.." is "/").
local function normalizeSegments(p, aboveRoot)
  local out, n = {}, 0
  for seg in gmatch(p, "[^/]+") do
    if seg == ".." then
      if n > 0 and out[n] ~= ".." then
        out[n] = nil
        n = n - 1
      elseif aboveRoot then
        n = n + 1
        out[n] = ".."
      end
    elseif seg ~= "." then
      n = n + 1
      out[n] = seg
    end
  end
  return concat(out, "/")
end

local function isAbs(p) return byte(p, 1) == SLASH end

-- normalize(p): resolves "." and "..", folds repeated slashes, keeps one
-- trailing slash; "" is ".".
function path.normalize(p)
  checkString(1, "path.normalize", p)
  if p == "" then return "." end
  local abs = isAbs(p)
  local trailing = byte(p, #p) == SLASH
  local s = normalizeSegments(p, not abs)
  if s == "" then
    if abs then return "/" end
    return trailing and "./" or "."
  end
  if trailing then s = s .. "/" end
  return abs and "/" .. s or s
end

-- join(...): the non-empty arguments joined with "/" and normalized; "." when
-- there are none.
function path.join(...)
  local n = select("#", ...)
  local parts, k = {}, 0
  for i = 1, n do
    local a = select(i, ...)
    checkString(i, "path.join", a)
    if a ~= "" then
      k = k + 1
      parts[k] = a
    end
  end
  if k == 0 then return "." end
  return path.normalize(concat(parts, "/"))
end

local function cwd()
  local dir = require("uv").cwd()
  return dir or "/"
end

-- resolve(...): an absolute path, built from right to left until one
-- argument is absolute, then from the working directory; no trailing slash.
function path.resolve(...)
  local n = select("#", ...)
  local parts, k = {}, 0
  local abs = false
  for i = n, 1, -1 do
    local a = select(i, ...)
    checkString(i, "path.resolve", a)
    if a ~= "" then
      k = k + 1
      parts[k] = a
      if isAbs(a) then
        abs = true
        break
      end
    end
  end
  if not abs then
    k = k + 1
    parts[k] = cwd()
  end
  -- parts holds the arguments right to left: reverse them into one string.
  local ordered = {}
  for i = 1, k do ordered[i] = parts[k - i + 1] end
  return "/" .. normalizeSegments(concat(ordered, "/"), false)
end

local function splitAbs(p)
  local out, n = {}, 0
  for seg in gmatch(p, "[^/]+") do
    n = n + 1
    out[n] = seg
  end
  return out, n
end

-- relative(from, to): the path from `from` to `to` (both resolved first);
-- "" when they are the same place.
function path.relative(from, to)
  checkString(1, "path.relative", from)
  checkString(2, "path.relative", to)
  if from == to then return "" end
  from, to = path.resolve(from), path.resolve(to)
  if from == to then return "" end
  local f, fn = splitAbs(from)
  local t, tn = splitAbs(to)
  local common = 0
  while common < fn and common < tn and f[common + 1] == t[common + 1] do common = common + 1 end
  local out, n = {}, 0
  for _ = common + 1, fn do
    n = n + 1
    out[n] = ".."
  end
  for i = common + 1, tn do
    n = n + 1
    out[n] = t[i]
  end
  return concat(out, "/")
end

-- The last segment of p, trailing slashes ignored: its first and last
-- index, or nil when p has no segment ("", "/", "///").
local function lastSegment(p)
  local last = #p
  while last > 0 and byte(p, last) == SLASH do last = last - 1 end
  if last == 0 then return nil end
  local first = last
  while first > 1 and byte(p, first - 1) ~= SLASH do first = first - 1 end
  return first, last
end

-- dirname(p): everything before the last segment, without the slash that
-- ends it; "." for a bare name, "/" at the root. As in Node, a path starting
-- with exactly "//x" keeps "//" as its directory.
function path.dirname(p)
  checkString(1, "path.dirname", p)
  if p == "" then return "." end
  local first = lastSegment(p)
  if not first or first == 1 then return isAbs(p) and "/" or "." end
  -- the separator before the segment: drop only its last slash ("a//b" -> "a/")
  local dirEnd = first - 2
  if dirEnd == 0 then return "/" end
  if isAbs(p) and dirEnd == 1 then return "//" end  -- Node's "//a" -> "//"
  return sub(p, 1, dirEnd)
end

-- basename(p [, ext]): the last segment; ext is cut from its end when the
-- segment ends with it and is longer than it.
function path.basename(p, ext)
  checkString(1, "path.basename", p)
  if ext ~= nil then checkString(2, "path.basename", ext) end
  local first, last = lastSegment(p)
  if ext == nil or ext == "" or #ext > #p then
    if not first then return "" end
    return sub(p, first, last)
  end
  -- Node's quirks with an ext: the whole path equal to it gives "", a path
  -- without a segment is returned as it is.
  if ext == p then return "" end
  if not first then return p end
  local seg = sub(p, first, last)
  if #seg > #ext and sub(seg, -#ext) == ext then return sub(seg, 1, #seg - #ext) end
  return seg
end

-- The extension of a segment: from its last dot, unless the dot starts it
-- (".bashrc") or the segment is "..".
local function segExt(seg)
  local dot = nil
  local i = #seg
  while i > 0 do
    if byte(seg, i) == DOT then
      dot = i
      break
    end
    i = i - 1
  end
  if not dot or dot == 1 or seg == ".." then return "" end
  return sub(seg, dot)
end

-- extname(p): the extension of the last segment, dot included; "" when none.
function path.extname(p)
  checkString(1, "path.extname", p)
  local first, last = lastSegment(p)
  if not first then return "" end
  return segExt(sub(p, first, last))
end

function path.isAbsolute(p)
  checkString(1, "path.isAbsolute", p)
  return isAbs(p)
end

-- parse(p) -> {root, dir, base, ext, name}
function path.parse(p)
  checkString(1, "path.parse", p)
  local root = isAbs(p) and "/" or ""
  local first, last = lastSegment(p)
  if not first then
    -- "" or only slashes: Node gives the root as the directory
    return {root = root, dir = root, base = "", ext = "", name = ""}
  end
  local base = sub(p, first, last)
  local ext = segExt(base)
  -- Node's parse (not extname) splits "/.." as name "." and ext "."
  if base == ".." and first == 2 then ext = "." end
  local name = sub(base, 1, #base - #ext)
  local dir
  if first == 1 then
    dir = root
  else
    dir = sub(p, 1, first - 2)
    if dir == "" then dir = root end
  end
  return {root = root, dir = dir, base = base, ext = ext, name = name}
end

local function nonEmpty(v, n, field)
  if v == nil or v == "" then return nil end
  if type(v) ~= "string" then
    args.error(1, "path.format", field .. " must be a string, got " .. type(v), 3)
  end
  return v
end

-- format{root, dir, base, name, ext}: the inverse of parse. dir wins over
-- root, base over name and ext; ext gets a leading dot when it lacks one.
function path.format(t)
  if type(t) ~= "table" then args.fail(1, "path.format", "table", t, 2) end
  local root = nonEmpty(t.root, 1, "root")
  local dir = nonEmpty(t.dir, 1, "dir") or root
  local base = nonEmpty(t.base, 1, "base")
  if not base then
    local ext = nonEmpty(t.ext, 1, "ext") or ""
    if ext ~= "" and byte(ext, 1) ~= DOT then ext = "." .. ext end
    base = (nonEmpty(t.name, 1, "name") or "") .. ext
  end
  if not dir then return base end
  if dir == root then return dir .. base end
  return dir .. "/" .. base
end

-- toNamespacedPath is the identity on POSIX, as in Node.
function path.toNamespacedPath(p) return p end

return path
