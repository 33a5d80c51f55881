#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The source layer of the test vectors, written byte for byte the same on
every run: v1.tar.gz, a synthetic image layer in the shape the unit and
integration tests expect (see tests/vectors/README.md for the list).

The tar is written here with Python's tarfile, not from a directory tree, so
nothing depends on the host: no root is needed for devices, owners or
trusted.* xattrs, no file system's xattr support or ordering matters, every
time stamp is fixed and every byte of content comes from a seeded
random.Random. Entries are in GNU tar --sort=name order (a directory, then
its children sorted bytewise), PAX format, numeric owners; gzip level 6 with
a zero header time.

usage: make_layer.py OUT.tar.gz
"""
import gzip
import io
import random
import sys
import tarfile

MTIME = 1700000000  # 2023-11-14T22:13:20Z, every entry but one
EMPTY_FILE_MTIME = 1614834367  # 2021-03-04T05:06:07Z (test_fs.c checks it)
WORDS = b"alpha beta gamma delta lazy pull chunk layer gzip zstd".split()
SMALL_FILES = 200
LONG_NAME = "n" * 136 + ".txt"  # 140 characters: a PAX path record

# Byte frequencies of the "binary" files: 16 symbols of unequal weight, so
# that gzip compresses them to about half (payloads of both kinds, chunks
# whose compressed size differs from the uncompressed one).
SKEW = bytes(
    s
    for s, w in zip(
        (0x0F, 0xFD, 0x76, 0xD2, 0xBE, 0x32, 0x00, 0xFF,
         0x41, 0x7F, 0x80, 0x10, 0xA5, 0x5A, 0xC3, 0x3C),
        (64, 40, 32, 24, 20, 16, 12, 10, 8, 8, 6, 4, 4, 4, 2, 2),
    )
    for _ in range(w)
)
assert len(SKEW) == 256


def text(seed, size):
    """SIZE bytes of words (lines of about 60 characters), from SEED."""
    r = random.Random(seed)
    out = bytearray()
    line = 0
    while len(out) < size:
        w = r.choice(WORDS)
        out += w
        line += len(w) + 1
        if line > 60:
            out += b"\n"
            line = 0
        else:
            out += b" "
    return bytes(out[:size])


def skewed(seed, size):
    """SIZE bytes of skewed noise, with repeats farther apart than gzip's
    32 KiB window (zstd's window finds them): slices of a 1 MiB pool."""
    r = random.Random(seed)
    pool = r.randbytes(1 << 20).translate(SKEW)
    out = bytearray(pool)
    while len(out) < size:
        n = r.randrange(4096, 65536)
        o = r.randrange(0, len(pool) - n)
        out += pool[o:o + n]
    return bytes(out[:size])


def incompressible(seed, size):
    return random.Random(seed).randbytes(size)


def layer():
    """(path, kind, fields) in the order they are written; kind is one of
    dir, reg, sym, hard, fifo, chr, blk."""
    big = skewed(2, 9449529)  # three 4 MiB chunks, the last partial
    e = []

    def d(path, mode=0o755, **kw):
        e.append((path, "dir", dict(mode=mode, **kw)))

    def f(path, data, mode=0o644, **kw):
        e.append((path, "reg", dict(mode=mode, data=data, **kw)))

    d(".")
    d("./etc")
    d("./etc/conf.d")
    f("./etc/conf.d/app.conf", text(1, 11017), mode=0o600,
      xattrs={"user.lazypull.test": "seed-1"})
    f("./etc/empty-file", b"", mtime=EMPTY_FILE_MTIME)
    d("./opt")
    deep = "./opt/deep"
    d(deep)
    for c in "abcdefgh":
        deep += "/" + c
        d(deep)
    f(deep + "/" + LONG_NAME, text(3, 57))
    d("./opt/ünïcødé dir", uid=1000, gid=1001)
    f("./opt/ünïcødé dir/fïle with spaces.txt", text(4, 114))
    d("./usr")
    d("./usr/bin")
    e.append(("./usr/bin/big-link", "sym", dict(target="../lib/big.bin")))
    e.append(("./usr/bin/dangling", "sym",
              dict(target="/nonexistent/target")))
    f("./usr/bin/tool", incompressible(5, 300000), mode=0o4755)
    e.append(("./usr/bin/tool-hardlink", "hard",
              dict(target="./usr/bin/tool", mode=0o4755)))
    d("./usr/lib")
    f("./usr/lib/big.bin", big)
    f("./usr/lib/exact4m.bin", skewed(6, 4 << 20))
    d("./usr/lib/python3")
    d("./usr/lib/python3/site")
    mods = sorted((f"mod_{i}.py".encode(), i)
                  for i in range(1, SMALL_FILES + 1))
    for name, i in mods:
        f("./usr/lib/python3/site/" + name.decode(),
          text(1000 + i, 16 * i + (i * 7) % 13))
    d("./var", xattrs={"trusted.overlay.opaque": "y"})
    e.append(("./var/blk", "blk", dict(mode=0o644, major=7, minor=0)))
    d("./var/empty", mode=0o1777)
    e.append(("./var/fifo", "fifo", dict(mode=0o644)))
    e.append(("./var/null-dev", "chr", dict(mode=0o644, major=1, minor=3)))
    d("./whiteouts")
    f("./whiteouts/.wh.deleted-file", b"")
    d("./whiteouts/gone-dir")
    f("./whiteouts/gone-dir/.wh..wh..opq", b"")
    return e


def check_order(entries):
    """GNU tar --sort=name order: each directory's children bytewise."""
    paths = [p.encode() for p, _, _ in entries]
    keys = [tuple(p.split(b"/")) for p in paths]
    assert keys == sorted(keys), "entries out of --sort=name order"


def tar_bytes(entries):
    types = {"dir": tarfile.DIRTYPE, "reg": tarfile.REGTYPE,
             "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
             "blk": tarfile.BLKTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as t:
        for path, kind, kw in entries:
            ti = tarfile.TarInfo(path)
            ti.type = types[kind]
            ti.mode = kw.get("mode", 0o777 if kind == "sym" else 0o644)
            ti.uid, ti.gid = kw.get("uid", 0), kw.get("gid", 0)
            ti.uname = ti.gname = ""
            ti.mtime = kw.get("mtime", MTIME)
            if kind in ("sym", "hard"):
                ti.linkname = kw["target"]
            if kind in ("chr", "blk"):
                ti.devmajor, ti.devminor = kw["major"], kw["minor"]
            for k, v in kw.get("xattrs", {}).items():
                ti.pax_headers["SCHILY.xattr." + k] = v
            data = kw.get("data")
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    entries = layer()
    check_order(entries)
    raw = tar_bytes(entries)
    with open(sys.argv[1], "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=6,
                           fileobj=out, mtime=0) as z:
            z.write(raw)


if __name__ == "__main__":
    main()
