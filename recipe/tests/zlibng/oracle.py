"""Raw deflate by the real zlib-ng, for Ferry's encoder-6 tests.

usage: oracle.py OUTDIR FILE... < jobs
Each line of stdin is "INDEX LEVEL FEED" (FEED: whole or 8k); the stream of
FILE number INDEX at LEVEL is written to OUTDIR/INDEX-LEVEL-FEED. The module
is zlib_ng.zlib_ng (the PyPI package) when importable, else Python's zlib
(with LD_LIBRARY_PATH pointing at a zlib-ng --zlib-compat build). The first
line printed is the zlib-ng version, or the zlib runtime version.
"""
import os
import sys

try:
    from zlib_ng import zlib_ng as z
    print(z.ZLIBNG_VERSION)
except ImportError:
    import zlib as z
    print(z.ZLIB_RUNTIME_VERSION)
sys.stdout.flush()

outdir = sys.argv[1]
files = sys.argv[2:]
for line in sys.stdin:
    if not line.strip():
        continue
    index, level, feed = line.split()
    data = open(files[int(index)], "rb").read()
    c = z.compressobj(int(level), z.DEFLATED, -15, 8, 0)
    parts = []
    if feed == "whole":
        if data:
            parts.append(c.compress(data))
    else:
        for i in range(0, len(data), 8192):
            parts.append(c.compress(data[i : i + 8192]))
    parts.append(c.flush())
    with open(os.path.join(outdir, f"{index}-{level}-{feed}"), "wb") as f:
        f.write(b"".join(parts))
