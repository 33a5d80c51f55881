#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerate the seed corpus of fuzz_index: small tar.gz layers (one gzip
# member, several members, xattrs, links, long names) indexed by lazypull
# with small spans, each stored as "LE32 index length, index, layer" (what
# fuzz_index reads), without grain digests and with (4K grains: several a
# span), plus bare indexes and hostile ones that must be refused (made with
# tests/integration/gzip_index.py; grain headers and sections that lie).
# Deterministic for a given lazypull.
#
#     bash tests/fuzz/make_index_corpus.sh build/cmd/lazypull tests/fuzz/corpus/index
set -euo pipefail
LP=$1 OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
GI="$HERE/../integration/gzip_index.py"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"

python3 - "$W" <<'PY'
import gzip, io, random, sys, tarfile
w = sys.argv[1]
r = random.Random(1)

def text(n):
    words = [b"lazy", b"pull", b"index", b"gzip", b"span", b"window", b"\n"]
    return b" ".join(r.choice(words) for _ in range(n))[:n]

def tar(entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1672531200
            ti.uid, ti.gid = 1000, 1000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                ti.pax_headers.update(extra)
                t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

small = tar([("etc", "dir", None, {}), ("etc/hostname", "reg", b"fuzz\n", {}),
             ("etc/big", "reg", text(200000), {"SCHILY.xattr.user.k": "v"}),
             ("bin/sh", "sym", "busybox", {}), ("bin/ash", "hard", "etc/hostname", {}),
             ("d/" + "n" * 150, "reg", text(3000), {}),
             ("etc/tail", "reg", text(90000), {})])
open(w + "/one.tar.gz", "wb").write(gzip.compress(small, 6, mtime=0))
with open(w + "/multi.tar.gz", "wb") as f:
    for i in range(0, len(small), 70000):
        f.write(gzip.compress(small[i:i + 70000], 6, mtime=0))
tiny = tar([("a", "reg", b"x" * 100, {})])
open(w + "/tiny.tar.gz", "wb").write(gzip.compress(tiny, 9, mtime=0))
PY

pair() { # pair INDEX LAYER OUT
	python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
ix = open(sys.argv[1], "rb").read(); layer = open(sys.argv[2], "rb").read()
open(sys.argv[3], "wb").write(struct.pack("<I", len(ix)) + ix + layer)
PY
}

for l in one multi tiny; do
	"$LP" index build --span-size 64K --grain-size 0 "$W/$l.tar.gz" "$W/$l.gzidx" >/dev/null
	pair "$W/$l.gzidx" "$W/$l.tar.gz" "$OUT/pair-$l"
	"$LP" index build --span-size 64K --grain-size 4K "$W/$l.tar.gz" "$W/$l.g.gzidx" >/dev/null
	pair "$W/$l.g.gzidx" "$W/$l.tar.gz" "$OUT/pair-$l-grains"
done
cp "$W/tiny.gzidx" "$OUT/bare-tiny"
for how in blob-offset huge-files huge-strings deep-path overlap; do
	python3 "$GI" forge "$W/one.gzidx" "$W/f" $how
	pair "$W/f" "$W/one.tar.gz" "$OUT/bad-$how"
done
python3 "$GI" forge "$W/one.gzidx" "$W/f" span-digest etc/hostname
pair "$W/f" "$W/one.tar.gz" "$OUT/bad-span-digest"
python3 "$GI" forge "$W/one.gzidx" "$W/f" swap-path etc/hostname etc/tail
pair "$W/f" "$W/one.tar.gz" "$OUT/bad-swap-path"
# a window that lies: the second checkpoint's compressed window replaced
python3 - "$W/one.gzidx" "$W/f" <<'PY'
import struct, sys, zlib
b = bytearray(open(sys.argv[1], "rb").read())
ncp, nf, ns = struct.unpack_from("<III", b, 68)
cp = 96 + 64
woff, wlen = struct.unpack_from("<II", b, cp + 16)
raw = struct.unpack_from("<H", b, cp + 26)[0]
base = len(b) - struct.unpack_from("<Q", b, 80)[0]
fake = zlib.compress(b"A" * raw, 9)
assert len(fake) <= wlen
b[base + woff:base + woff + len(fake)] = fake
struct.pack_into("<I", b, cp + 20, len(fake))
open(sys.argv[2], "wb").write(b)
PY
pair "$W/f" "$W/one.tar.gz" "$OUT/bad-window"
# grain headers and sections that lie (each must be refused)
python3 - "$W/one.g.gzidx" "$W/one.tar.gz" "$OUT" <<'PY'
import struct, sys
ix = open(sys.argv[1], "rb").read(); layer = open(sys.argv[2], "rb").read()
n = struct.unpack_from("<I", ix, 92)[0]
def put(name, b, off=None, v=None):
    b = bytearray(b)
    if off is not None:
        struct.pack_into("<I", b, off, v)
    open(sys.argv[3] + "/bad-grain-" + name, "wb").write(struct.pack("<I", len(b)) + bytes(b) + layer)
put("flags", ix, 12, 3)
put("size-odd", ix, 88, 12288)
put("size-small", ix, 88, 2048)
put("count", ix[:-32], 92, n - 1)
put("count-huge", ix, 92, 0xFFFFFFFF)
put("truncated", ix[:-1])
put("trailing", ix + b"\0")
put("flag-off", ix, 12, 0)
PY
head -c 95 "$W/tiny.gzidx" >"$OUT/bad-truncated"
printf 'LPGZIDX\n\002\000\000\000' >"$OUT/bad-version"
ls "$OUT"
