-- url: url.parse against Node's `new URL()` (WHATWG) on a few hundred
-- inputs run in the same test, url.resolve against `new URL(ref, base)`,
-- encode/decode against encodeURIComponent/decodeURIComponent, query
-- strings, format, bad input, and the http helpers that delegate here.
local url = require("url")
local http = require("http")
local helpers = require("helpers")

local format, concat, byte = string.format, table.concat, string.byte

-- JSON text of strings, booleans, nil (null) and lists.
local function js(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return format("\\u%04x", byte(c))
    end) .. '"'
  elseif t == "boolean" or t == "number" then
    return tostring(v)
  elseif t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = js(v[i]) end
    return "[" .. concat(parts, ",") .. "]"
  end
  error("js: " .. t)
end

-- Node answers one JSON line per case: the URL's fields, or null when it throws.
local NODE = [[
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const out = [];
  for (const [kind, a, b] of JSON.parse(input)) {
    let r = null;
    try {
      if (kind === 'parse' || kind === 'resolve') {
        const u = kind === 'parse' ? new URL(a) : new URL(b, a);
        r = [u.protocol.slice(0, -1), u.username, u.password, u.hostname, u.port, u.pathname, u.search, u.hash, u.href];
      } else if (kind === 'encode') {
        r = encodeURIComponent(a);
      } else if (kind === 'decode') {
        r = decodeURIComponent(a);
      }
    } catch (e) { r = null; }
    out.push(JSON.stringify(r));
  }
  process.stdout.write(out.join('\n') + '\n');
});
]]

local function fields(u)
  if not u then return nil end
  return {u.scheme, u.user or "", u.password or "", u.host or "", u.port and tostring(u.port) or "", u.path,
    (u.query and u.query ~= "") and "?" .. u.query or "", (u.fragment and u.fragment ~= "") and "#" .. u.fragment or "",
    u.href}
end

local TRICKY = {
  "http://example.com", "HTTP://EXAMPLE.COM/A/B", "https://example.com:443/", "https://example.com:444/",
  "http://example.com:80/", "http://example.com:0/", "http://example.com:65535/", "http://example.com:65536/",
  "http://example.com:/", "http://example.com:8x/", "ws://h:80/chat", "wss://h:443/", "wss://h:80/",
  "ftp://h:21/f", "http://user:pass@host/", "http://user@host/", "http://:pass@host/", "http://@host/",
  "http://a@b@host/", "http://us er:p%20w@host/", "http://user:pa:ss@host/", "http://user@/", "http://user@:80/",
  "http://[::1]/", "http://[::1]:8080/x", "http://[0:0:0:0:0:0:0:1]/", "http://[1:0:0:2:0:0:0:3]/",
  "http://[::ffff:1.2.3.4]/", "http://[::FFFF:192.168.0.1]/", "http://[1:2:3:4:5:6:7:8]/", "http://[1:2:3:4:5:6:7:8:9]/",
  "http://[1::2::3]/", "http://[::1/", "http://[:1]/", "http://[1:]/", "http://[::1.2.3]/", "http://[::1.2.3.04]/",
  "http://[2001:db8::]/", "http://[2001:DB8:0:0:1:0:0:1]/", "http://[::]/", "http://[g::1]/", "http://[::1]x/",
  "http://127.0.0.1/", "http://0x7f.1/", "http://0177.0.0.1/", "http://2130706433/", "http://127.1/",
  "http://1.2.3.4.5/", "http://256.0.0.1/", "http://1.2.3.256/", "http://1.2.3.4./", "http://1.2.3.09/",
  "http://0x100000000/", "http://4294967295/", "http://4294967296/", "http://example.123/", "http://123.example/",
  "http://0x/", "http://a.b.0x1/",
  "http://exa mple.com/", "http://exa%20mple.com/", "http://%41.com/", "http://ex<ample.com/", "http://ex|ample.com/",
  "http://ex^ample/", "http://ex%ample/", "http://a..b/", "http://a.b./", "http:///", "http://", "http:",
  "http:example.com/p", "http:/example.com/p", "http:\\\\example.com\\p\\q", "https://example.com\\a\\b",
  "http://example.com/a/./b/../c", "http://example.com/a/b/..", "http://example.com/a/b/.", "http://example.com/..",
  "http://example.com/../../x", "http://example.com/a/%2e/b", "http://example.com/a/%2E%2e/b",
  "http://example.com/a/.%2e", "http://example.com/a/..b/", "http://example.com/a//b//", "http://example.com/%zz",
  "http://example.com/a b", "http://example.com/a\"b<c>d`e{f}g^h|i", "http://example.com/é/ü?ö#ä",
  "http://example.com/?a b'c\"d<e>f`g", "http://example.com/#a b'c\"d<e>f`g#h", "http://example.com/?",
  "http://example.com/#", "http://example.com/?#", "http://example.com?q", "http://example.com#f",
  "http://example.com/p?q#f?g#h", "  http://example.com/ \t", "http://exa\tmple.com/", "http://example.com/a\nb",
  "http://example.com/\0x", "http://ex\0ample.com/", "HtTpS://ExAmPlE.cOm:8443/PaTh?QuErY#FrAg",
  "http://example.com/%2F/%2f", "http://example.com/a%", "http://example.com/~user/!$&'()*+,;=:@",
  "http://münchen.de/", "http://bücher.example/", "http://xn--bcher-kva.example/", "http://日本.jp/",
  "https://a.b.c.d.e.f/", "http://a/b/c/d;p?q", "http://host/%7Efoo", "http://host/a?b=c&d=e;f",
  "foo://bar/baz", "foo://user:pw@host:99/p?q#f", "foo://[::1]:5/", "foo:bar", "mailto:a@b.c",
  "data:text/plain,hi there", "postgres://u:p@db.local:5432/mydb?sslmode=require", "redis://:secret@127.0.0.1:6379/0",
  "file:///etc/passwd", "blob:xyz", "foo://", "foo:///x", "foo://h/a/../b", "foo://h/a b",
  "urn:isbn:0451450523", "javascript:alert(1)", "a:", "1http://x/", "://x", "", "/just/a/path", "example.com",
  "http://example.com:8080:90/", "http://h/a?x=1&x=2", "ws://[::1]:9000/s?t", "wss://user@host:8443/",
  "http://0.0.0.0/", "http://[::127.0.0.1]/", "http://[0::0:0]/", "http://[1:0::0:2]/", "http://[1:0:0:2::3:0]/",
  "http://example.com/\127", "http://\1example.com/", "http://example.com/a/b/c/./../../g",
}

-- more: every scheme x host x path
local SCHEMES = {"http", "https", "ws", "wss", "HTTPS", "foo"}
local HOSTS = {"h.example", "H.Example:81", "[::1]", "10.0.0.1:443", "u:p@h"}
local PATHS = {"", "/", "/a/../b", "/./x/", "/a b?c d#e f", "/%2e%2E/q"}

local RESOLVE = {
  {"http://a/b/c/d;p?q", "g"}, {"http://a/b/c/d;p?q", "./g"}, {"http://a/b/c/d;p?q", "g/"},
  {"http://a/b/c/d;p?q", "/g"}, {"http://a/b/c/d;p?q", "//g"}, {"http://a/b/c/d;p?q", "?y"},
  {"http://a/b/c/d;p?q", "g?y"}, {"http://a/b/c/d;p?q", "#s"}, {"http://a/b/c/d;p?q", "g#s"},
  {"http://a/b/c/d;p?q", ""}, {"http://a/b/c/d;p?q", "."}, {"http://a/b/c/d;p?q", "./"},
  {"http://a/b/c/d;p?q", ".."}, {"http://a/b/c/d;p?q", "../g"}, {"http://a/b/c/d;p?q", "../../../g"},
  {"http://a/b/c/d;p?q", "/./g"}, {"http://a/b/c/d;p?q", "g;x=1/../y"}, {"http://a/b/c/d;p?q", "https://x/y"},
  {"http://a/b/c/d;p?q", "\\\\other\\p"}, {"http://a:8080/b", "/c"}, {"http://u:p@a/b", "c"},
  {"https://a/b?q#f", "#g"}, {"https://a/b?q#f", "?"}, {"http://a/b", "http:c"}, {"http://a/b/", "%2e%2e/x"},
}

describe("url.parse against Node's new URL()", function()
  it("gives Node's fields (or failure) for every input", function()
    local inputs = {}
    for _, s in ipairs(TRICKY) do inputs[#inputs + 1] = s end
    for _, sc in ipairs(SCHEMES) do
      for _, h in ipairs(HOSTS) do
        for _, p in ipairs(PATHS) do inputs[#inputs + 1] = sc .. "://" .. h .. p end
      end
    end
    local wire = {}
    for i, s in ipairs(inputs) do wire[i] = js({"parse", s}) end
    for _, c in ipairs(RESOLVE) do wire[#wire + 1] = js({"resolve", c[1], c[2]}) end
    local r = helpers.spawn("node", {"-e", NODE}, {stdin = "[" .. concat(wire, ",") .. "]"})
    assert.equal(r.code, 0, r.stderr)
    local answers = helpers.lines(r.stdout)
    assert.equal(#answers, #wire)
    local bad = {}
    for i, s in ipairs(inputs) do
      local mine = js(fields(url.parse(s)))
      if mine ~= answers[i] then bad[#bad + 1] = format("%s\n    node %s\n    evo  %s", js(s), answers[i], mine) end
    end
    for k, c in ipairs(RESOLVE) do
      local mine = js(fields(url.parse(c[2], c[1])))
      local i = #inputs + k
      if mine ~= answers[i] then
        bad[#bad + 1] = format("%s against %s\n    node %s\n    evo  %s", js(c[2]), c[1], answers[i], mine)
      end
    end
    assert.equal(#bad, 0, #bad .. " differ:\n" .. concat(bad, "\n"))
    assert(#inputs > 300, #inputs .. " inputs")
  end, {timeout = 20})
end)

describe("url encoding", function()
  local SAMPLES = {"", "abc", "a b", "a+b", "100%", "é", "日本語", "-._~", "/?#[]@", "&=;,", "\0\1\127",
    "tab\there", "emoji 😀", "q=a&b=c", "x%20y"}

  it("encodes like encodeURIComponent (also ! ' ( ) *) and decodes like decodeURIComponent", function()
    local wire = {}
    for _, s in ipairs(SAMPLES) do wire[#wire + 1] = js({"encode", s}) end
    local ESC = {"%41", "%e6%97%a5", "a%2Bb", "%", "%4", "%zz", "abc%", "%25%", "100%25", "a+b", "%E2%82%AC"}
    for _, s in ipairs(ESC) do wire[#wire + 1] = js({"decode", s}) end
    local r = helpers.spawn("node", {"-e", NODE}, {stdin = "[" .. concat(wire, ",") .. "]"})
    assert.equal(r.code, 0, r.stderr)
    local answers = helpers.lines(r.stdout)
    for i, s in ipairs(SAMPLES) do
      assert.equal(js(url.encode(s)), answers[i], s)
      assert.equal(url.decode(url.encode(s)), s)
    end
    for k, s in ipairs(ESC) do
      local mine = url.decode(s)
      assert.equal(js(mine), answers[#SAMPLES + k], s)
    end
    assert.equal(url.encode("!'()*"), "%21%27%28%29%2A")
    local out, err = url.decode("a%zz")
    assert.equal(out, nil)
    assert.equal(err.code, "BadUrl")
    assert(err.message:find("byte 2", 1, true), err.message)
    assert.equal(url.decode("a+b", true), "a b")
    assert.equal(url.unescape("a%zz%41+", true), "a%zzA ")
  end, {timeout = 10})

  it("keeps http.encode, http.decode and http.parseQuery as they were", function()
    assert.equal(http.encode("a b/é"), "a%20b%2F%C3%A9")
    assert.equal(http.decode("a%20b+c", true), "a b c")
    assert.equal(http.decode("a+b%zz"), "a+b%zz")
    assert.same(http.parseQuery("a=1&b=x%20y&a=2&c"), {a = {"1", "2"}, b = "x y", c = ""})
    assert.same(http.parseQuery("x=1;y=a+b&z=%"), {x = "1", y = "a b", z = "%"})
    assert.same(http.parseQuery(""), {})
    assert.same(http.parseQuery(nil), {})
    assert.equal(http.parseQuery, url.parseQuery)
    assert.equal(http.encode, url.encode)
  end)
end)

describe("url queries", function()
  it("encodes in sorted order with lists as repeated names, and parses back", function()
    local q = url.encodeQuery({b = "x y", a = {"1", "2"}, c = 3, d = true, ["k&="] = "v=&"})
    assert.equal(q, "a=1&a=2&b=x%20y&c=3&d=true&k%26%3D=v%3D%26")
    assert.same(url.parseQuery(q), {a = {"1", "2"}, b = "x y", c = "3", d = "true", ["k&="] = "v=&"})
    assert.equal(url.encodeQuery({}), "")
    assert.equal(url.encodeQuery({a = {}}), "")
  end)

  it("agrees with Python's urllib.parse on what it encodes", function()
    local q = url.encodeQuery({name = "José Ñ", tags = {"a&b", "c d"}, x = "1+1=2"})
    local r = helpers.spawn("/usr/bin/python3", {"-c",
      "import sys, urllib.parse; print(sorted(urllib.parse.parse_qsl(sys.argv[1])))", q})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "[('name', 'José Ñ'), ('tags', 'a&b'), ('tags', 'c d'), ('x', '1+1=2')]\n")
  end)
end)

describe("url.format and url.resolve", function()
  it("formats parsed URLs back to their href", function()
    for _, s in ipairs({"http://u:p@h:81/a%20b?q=1#f", "https://[::1]/", "ws://h/x?", "foo://h:5/p", "mailto:a@b"}) do
      local u = assert(url.parse(s))
      assert.equal(url.format(u), u.href)
      assert.equal(tostring(u), u.href)
    end
  end)

  it("formats tables a user builds", function()
    assert.equal(url.format({scheme = "https", host = "example.com", path = "/a b", query = "x=1"}),
      "https://example.com/a%20b?x=1")
    assert.equal(url.format({scheme = "http", host = "::1", port = 8080}), "http://[::1]:8080/")
    assert.equal(url.format({scheme = "https", host = "h", port = 443, path = "p"}), "https://h/p")
    assert.equal(url.format({scheme = "http", host = "h", user = "a@b", password = "c:d"}), "http://a%40b:c%3Ad@h/")
  end)

  it("resolves references as strings", function()
    assert.equal(url.resolve("http://a/b/c/d", "../x?y#z"), "http://a/b/x?y#z")
    assert.equal(url.resolve("http://a/b", "//c/d"), "http://c/d")
    local out, err = url.resolve("mailto:a@b", "x")
    assert.equal(out, nil)
    assert.equal(err.code, "BadUrl")
  end)

  it("fails with BadUrl and a message", function()
    for _, s in ipairs({"", "nope", "http://", "http://[::1", "http://h:99999/", "http://a b/", "http://1.2.3.999/"}) do
      local u, err = url.parse(s)
      assert.equal(u, nil, s)
      assert.equal(err.code, "BadUrl", s)
      assert(#err.message > 0)
    end
  end)

  it("names the function in argument errors", function()
    local cases = {
      {function() url.parse(nil) end, "bad argument #1 to 'url.parse' (string expected, got nil)"},
      {function() url.encode(5) end, "bad argument #1 to 'url.encode' (string expected, got number)"},
      {function() url.decode({}) end, "bad argument #1 to 'url.decode' (string expected, got table)"},
      {function() url.encodeQuery("x") end, "bad argument #1 to 'url.encodeQuery' (table expected, got string)"},
      {function() url.encodeQuery({a = {x = {}}}) end, nil},
      {function() url.encodeQuery({a = print}) end,
        "bad argument #1 to 'url.encodeQuery' (value of 'a' must be a string, number, boolean or list)"},
      {function() url.format({host = "h"}) end, "bad argument #1 to 'url.format' (scheme must be a string like \"https\")"},
      {function() url.format({scheme = "http"}) end, "bad argument #1 to 'url.format' (a http URL needs a host)"},
      {function() url.format({scheme = "http", host = "h", port = 70000}) end,
        "bad argument #1 to 'url.format' (port must be an integer from 0 to 65535)"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      if c[2] then
        assert.equal(ok, false)
        assert(tostring(err):find(c[2], 1, true), tostring(err))
        assert(tostring(err):find("url.spec.lua", 1, true), "blames the caller: " .. tostring(err))
      end
    end
  end)

  it("takes a base table a user builds, and names url.parse or url.resolve when the base is no URL", function()
    -- A table with the parts a URL needs is a base like its text.
    assert.equal(url.parse("?q", {scheme = "http", host = "a"}).href, "http://a/?q")
    assert.equal(url.parse("x", {scheme = "http", host = "a"}).href, "http://a/x")
    assert.equal(url.resolve({scheme = "https", host = "h", path = "/d/p"}, "../y"), "https://h/y")
    assert.equal(url.parse("http:x", {scheme = "http", host = "a", path = "/d/"}).href, "http://a/d/x")
    local cases = {
      {function() url.parse("x", {}) end,
        "bad argument #2 to 'url.parse' (base: scheme must be a string like \"https\")"},
      {function() url.parse("http:x", {scheme = "http"}) end,
        "bad argument #2 to 'url.parse' (base: a http URL needs a host)"},
      {function() url.parse("x", 42) end, "bad argument #2 to 'url.parse' (string or table expected, got number)"},
      {function() url.parse("http:x", 42) end, "bad argument #2 to 'url.parse' (string or table expected, got number)"},
      {function() url.resolve({host = "h"}, "x") end,
        "bad argument #1 to 'url.resolve' (base: scheme must be a string like \"https\")"},
      {function() url.resolve(true, "x") end, "bad argument #1 to 'url.resolve' (string or table expected, got boolean)"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.equal(ok, false)
      assert(tostring(err):find(c[2], 1, true), tostring(err))
      assert(tostring(err):find("url.spec.lua", 1, true), "blames the caller: " .. tostring(err))
    end
  end)

  it("loads in a worker", function()
    local out = require("task").work(function()
      return require("url").parse("HTTP://X/a/../b").href
    end)
    assert.equal(out, "http://x/b")
  end)
end)
