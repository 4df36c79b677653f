-- path: every function against Node's path.posix, run in the same test on
-- the same inputs (hundreds of calls), plus known answers and bad arguments.
local path = require("path")
local helpers = require("helpers")
local uv = require("uv")

local format, concat, byte = string.format, table.concat, string.byte

-- A JSON text for strings, booleans and lists: enough to hand the cases to
-- Node and to compare its answers byte for byte.
local function js(v)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      if c == "\n" then return "\\n" end
      return format("\\u%04x", byte(c))
    end) .. '"'
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = js(x) end
    return "[" .. concat(parts, ",") .. "]"
  end
  error("js: " .. t)
end

local paths = {
  "", "/", "//", "///", ".", "..", "./", "../", "...", "a", "a/", "a//", "/a", "//a", "///a", "//a/b",
  "a/b", "a/b/", "/a/b", "/a/b/", "/a//b", "a//b", "a/./b", "a/../b", "a/..", "a/../..", "../a", "../../a",
  "./a", "/..", "/../a", "/a/../..", "/a/./b/../c/", ".bashrc", "/home/u/.bashrc", "a.b.", "a.b", "a.b.c",
  "a..", "..a", ".a.b", "/x/.a", "file.txt", "/dir/file.txt", "/dir/file.txt/", "/dir/file.txt//", "dir/.",
  "dir/..", "x/...", "x/..a", "x/.", "/foo/bar/baz/asdf/quux.html", "foo/bar/../../..", "a/b/c/../../../d",
  "/a/b/c/./../../g", "  ", " a /b ", "a\\b", "C:\\x", "a:b", "é/ü.txt", "/a/b.tar.gz", ".../x",
  "a/.../b", "//.", "/.", "./.", "././a", "a/b/./", "a/b/../", "/a/b/c/..", "..//..", "/..//..//a", "/../", "//..", "/..a", "/.a", "/a/..",
}

local extArgs = {"", ".txt", "txt", ".html", "a", "b", "x", ".", "..", "/", "a.b", "c", ".gz", "quux.html", "s"}
local extPaths = {"", "/", "//", "a", "a/", "/a", "aaa/", "/aaa/", "a.txt", "a.txt/", "/d/a.txt", "x.txt.txt",
  ".txt", "/d/.txt", "a.html", "/foo/bar/baz/asdf/quux.html", "a/b", "x/a/b", "ab", "ba", "a.b", "s/s",
  "aa", "..", "."}

local formats = {
  {root = "/", dir = "/home/user/dir", base = "file.txt"},
  {root = "/", base = "file.txt", ext = "ignored"},
  {root = "/", name = "file", ext = ".txt"},
  {root = "/", name = "file", ext = "txt"},
  {name = "file", ext = "txt"},
  {dir = "a", name = "b"},
  {dir = "a/", base = "b"},
  {root = "/x/", dir = "/x/", base = "b"},
  {root = "/", dir = "/"},
  {},
  {base = "", name = "n", ext = ""},
  {dir = "", root = "", base = "z"},
  {root = "r", name = "n"},
}

-- Builds the calls: {name, args...}
local function buildCases()
  local cases = {}
  local function add(...) cases[#cases + 1] = {...} end
  for _, p in ipairs(paths) do
    for _, fn in ipairs({"normalize", "dirname", "basename", "extname", "isAbsolute", "parse", "resolve"}) do
      add(fn, p)
    end
    add("resolve", "/base", p)
    add("resolve", p, "x")
  end
  for i, a in ipairs(paths) do
    for j, b in ipairs(paths) do
      if (i + 2 * j) % 3 == 0 then add("join", a, b) end
      if (2 * i + j) % 5 == 0 then add("relative", a, b) end
    end
  end
  add("join")
  add("join", "a", "b", "c", "../d", "", "./e/")
  add("join", "/", "/", "/")
  add("join", "", "")
  add("resolve")
  add("resolve", "a", "/b", "c", "../d")
  add("resolve", "", "")
  add("relative", "/a/b", "/a/b/c/d")
  add("relative", "/foo/bar", "/foo/barbaz")
  add("relative", "/foo/barbaz", "/foo/bar")
  add("relative", "/", "/")
  add("relative", "", "")
  add("relative", "a", "")
  for _, p in ipairs(extPaths) do
    for _, e in ipairs(extArgs) do add("basename", p, e) end
  end
  return cases
end

-- Node: reads the cases as JSON, prints one JSON answer per line.
local NODE = [[
const path = require('path').posix;
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const out = [];
  for (const c of JSON.parse(input)) {
    const [fn, ...a] = c;
    let r;
    if (fn === 'format') r = path.format(JSON.parse(a[0]));
    else r = path[fn](...a);
    if (fn === 'parse') r = [r.root, r.dir, r.base, r.ext, r.name];
    out.push(JSON.stringify(r));
  }
  process.stdout.write(out.join('\n') + '\n');
});
]]

-- format's argument travels as a JSON object text.
local function objText(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = js(k) .. ":" .. js(t[k]) end
  return "{" .. concat(parts, ",") .. "}"
end

local function evoAnswer(c)
  local fn = c[1]
  local r
  if fn == "format" then
    r = path.format(c.obj)
  else
    r = path[fn](unpack(c, 2))
  end
  if fn == "parse" then r = {r.root, r.dir, r.base, r.ext, r.name} end
  return js(r)
end

describe("path against Node", function()
  it("gives Node's answers for every case", function()
    local cases = buildCases()
    for _, f in ipairs(formats) do
      cases[#cases + 1] = {"format", objText(f), obj = f}
    end
    local wire = {}
    for i, c in ipairs(cases) do wire[i] = js({unpack(c)}) end
    local r = helpers.spawn("node", {"-e", NODE}, {stdin = "[" .. concat(wire, ",") .. "]", cwd = uv.cwd()})
    assert.equal(r.code, 0, r.stderr)
    local answers = helpers.lines(r.stdout)
    assert.equal(#answers, #cases)
    local bad = {}
    for i, c in ipairs(cases) do
      local mine = evoAnswer(c)
      if mine ~= answers[i] then
        bad[#bad + 1] = format("%s: node %s, evo %s", wire[i], answers[i], mine)
      end
    end
    assert.equal(#bad, 0, concat(bad, "\n"))
    assert(#cases > 600, "only " .. #cases .. " cases")
  end, {timeout = 20})
end)

describe("path", function()
  it("knows the documented answers", function()
    assert.equal(path.join("/a/b", "../c", "d.txt"), "/a/c/d.txt")
    assert.equal(path.normalize("a/../.."), "..")
    assert.equal(path.normalize("/a/./b/../c/"), "/a/c/")
    assert.equal(path.dirname("/a/b/"), "/a")
    assert.equal(path.basename("/a/b.txt", ".txt"), "b")
    assert.equal(path.extname(".bashrc"), "")
    assert.equal(path.extname("a.b."), ".")
    assert.equal(path.relative("/data/a/b", "/data/c"), "../../c")
    assert.same(path.parse("/home/u/.bashrc"),
      {root = "/", dir = "/home/u", base = ".bashrc", ext = "", name = ".bashrc"})
    assert.equal(path.format({dir = "/x", name = "f", ext = "gz"}), "/x/f.gz")
    assert.equal(path.sep, "/")
    assert.equal(path.delimiter, ":")
    assert.equal(path.posix, path)
    assert.equal(path.isAbsolute("/x"), true)
    assert.equal(path.isAbsolute("x"), false)
  end)

  it("resolves against the working directory", function()
    assert.equal(path.resolve(), uv.cwd())
    assert.equal(path.resolve("x"), uv.cwd() .. "/x")
    assert.equal(path.resolve("/a", "b", "/c", "d"), "/c/d")
  end)

  it("names the function in argument errors", function()
    local cases = {
      {function() path.join("a", 1) end, "bad argument #2 to 'path.join' (string expected, got number)"},
      {function() path.normalize(nil) end, "bad argument #1 to 'path.normalize' (string expected, got nil)"},
      {function() path.basename("a", 2) end, "bad argument #2 to 'path.basename' (string expected, got number)"},
      {function() path.relative("a") end, "bad argument #2 to 'path.relative' (string expected, got nil)"},
      {function() path.resolve({}) end, "bad argument #1 to 'path.resolve' (string expected, got table)"},
      {function() path.format("x") end, "bad argument #1 to 'path.format' (table expected, got string)"},
      {function() path.format({dir = 1}) end, "bad argument #1 to 'path.format' (dir must be a string, got number)"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.equal(ok, false)
      assert(tostring(err):find(c[2], 1, true), tostring(err))
      assert(tostring(err):find("path.spec.lua", 1, true), "blames the caller: " .. tostring(err))
    end
  end)

  it("loads in a worker", function()
    local task = require("task")
    local out = task.work(function()
      return require("path").join("a", "b")
    end)
    assert.equal(out, "a/b")
  end)
end)
