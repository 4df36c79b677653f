# Python's side of bench/crypto.sh: the same measures as bench/crypto.lua.
#   python3 bench/py_crypto.py INPUT SECONDS
import hashlib, sys, time, zlib

path, seconds = sys.argv[1], float(sys.argv[2] if len(sys.argv) > 2 else 1)
data = open(path, "rb").read()

def rate(fn):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(8):
            fn()
        n += 8
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed

def gzip(b):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)  # level 6, gzip wrapper, like Node's and Evo's default
    return c.compress(b) + c.flush()

MB = 1024 * 1024
small = data[:64]
print(f"sha256-1MiB {rate(lambda: hashlib.sha256(data).digest()) * len(data) / MB:.1f} MB/s")
print(f"sha256-64B {rate(lambda: hashlib.sha256(small).hexdigest()):.0f} ops/s")
packed = gzip(data)
print(f"gzip {rate(lambda: gzip(data)) * len(data) / MB:.1f} MB/s")
print(f"gunzip {rate(lambda: zlib.decompress(packed, 31)) * len(data) / MB:.1f} MB/s")
