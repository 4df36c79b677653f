"""Writes a Python value as a Lua table constructor, for the Evo specs to load.

bytes and str become Lua strings (str as UTF-8), byte for byte; None is nil;
lists are arrays; dicts have string keys.
"""
import sys


def lua_string(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = []
    for b in data:
        if 32 <= b < 127 and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def lua(value):
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (bytes, bytearray, str)):
        return lua_string(bytes(value) if not isinstance(value, str) else value)
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join("[%s] = %s" % (lua_string(str(k)), lua(v))
                               for k, v in value.items() if v is not None) + "}"
    return lua_string(repr(value))


def emit(report):
    sys.stdout.write(lua(report) + "\n")
    sys.stdout.flush()


def pattern(n):
    """Byte i (from 0) is i % 251: the same as webkit.pattern(n)."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]
