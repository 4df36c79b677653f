"""Writes Python values as a Lua table constructor, so a spec can load the
peer's report with load("return " .. text). Strings and bytes are written
byte for byte with decimal escapes, so binary data survives."""


def _string(b):
    if isinstance(b, str):
        b = b.encode("latin-1", "backslashreplace")
    out = ['"']
    for c in b:
        if 32 <= c < 127 and c not in (34, 92):
            out.append(chr(c))
        else:
            out.append("\\%03d" % c)
    out.append('"')
    return "".join(out)


def lua(value):
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, bytes, bytearray)):
        return _string(bytes(value) if not isinstance(value, str) else value)
    if isinstance(value, dict):
        return "{" + ", ".join("[%s] = %s" % (lua(k), lua(v)) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    raise TypeError("cannot write %r as Lua" % (value,))
