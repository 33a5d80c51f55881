#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the seed corpora of the format/ fuzz targets (footer, toc,
chunk, layer): small valid inputs and malformed ones that must be rejected.
Deterministic; needs only python3 and the zstd CLI.

    python3 tests/fuzz/make_format_corpus.py tests/fuzz/corpus
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

D1 = "sha256:" + "0" * 63 + "1"
LAST_TOC = []  # entries of the last build_layer(), before mangling


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout


def estargz_footer(off, legacy=False):
    payload = b"%016x" % off + b"STARGZ"
    extra = payload if legacy else b"SG" + struct.pack("<H", 22) + payload
    return (bytes([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff]) +
            struct.pack("<H", len(extra)) + extra +
            bytes([1, 0, 0, 0xff, 0xff]) + bytes(8))


def zstd_footer(off, clen, ulen, typ=1):
    body = struct.pack("<QQQQ", off, clen, ulen, typ) + b"GnUlInUx"
    return struct.pack("<II", 0x184D2A50, len(body)) + body


def tar_header(name, size=0, typ=tarfile.REGTYPE, link=""):
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname, ti.mode, ti.mtime = size, typ, link, 0o644, 0
    return ti.tobuf(format=tarfile.USTAR_FORMAT)


def pad(n):
    return bytes(-n % 512)


def sha(data):
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_layer(zstd=False, chunk=16, files=None, mangle=None):
    """A tiny eStargz or zstd:chunked blob: members + TOC + footer."""
    comp = zst if zstd else gz
    files = files or [("a/", None), ("a/f", b"hello world\n" * 3),
                      ("a/g", bytes(range(40))), ("a/s", "f"),
                      ("a/h", ("hardlink", "a/f")), ("a/empty", b"")]
    out, pending, entries = bytearray(), bytearray(), []

    def flush():
        nonlocal pending
        if pending:
            out.extend(comp(bytes(pending)))
        pending = bytearray()

    for name, data in files:
        if data is None:
            pending += tar_header(name, typ=tarfile.DIRTYPE)
            entries.append({"name": name, "type": "dir", "mode": 493})
        elif isinstance(data, str):
            pending += tar_header(name, typ=tarfile.SYMTYPE, link=data)
            entries.append({"name": name, "type": "symlink",
                            "linkName": data})
        elif isinstance(data, tuple):
            pending += tar_header(name, typ=tarfile.LNKTYPE, link=data[1])
            entries.append({"name": name, "type": "hardlink",
                            "linkName": data[1]})
        else:
            pending += tar_header(name, len(data))
            ent = {"name": name, "type": "reg", "size": len(data),
                   "digest": sha(data)}
            entries.append(ent)
            for co in range(0, len(data), chunk):
                flush()
                piece = data[co:co + chunk]
                rec = ent if co == 0 else {"name": name, "type": "chunk",
                                           "chunkOffset": co}
                rec["offset"] = len(out)
                if len(data) > chunk and co + chunk < len(data):
                    rec["chunkSize"] = chunk
                rec["chunkDigest"] = sha(piece)
                if co:
                    entries.append(rec)
                pending += piece
            pending += pad(len(data))
    flush()
    toc = {"version": 1, "entries": entries}
    LAST_TOC[:] = entries
    if mangle:
        mangle(toc)
    tj = json.dumps(toc, indent="\t").encode()
    if zstd:
        ct = zst(tj)
        off = len(out) + 8
        out += struct.pack("<II", 0x184D2A50, len(ct)) + ct
        out += zstd_footer(off, len(ct), len(tj))
    else:
        off = len(out)
        out += gz(tar_header("stargz.index.json", len(tj)) + tj +
                  pad(len(tj)) + bytes(1024))
        out += estargz_footer(off)
    return bytes(out)


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    root = sys.argv[1]
    for sub in ("footer", "toc", "chunk", "layer"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)

    # footer: valid, then broken
    d = os.path.join(root, "footer")
    write(d, "estargz", bytes(100) + estargz_footer(20))
    write(d, "legacy", bytes(100) + estargz_footer(20, legacy=True))
    write(d, "zstd", bytes(100) + zstd_footer(16, 40, 300))
    write(d, "bad-truncated", estargz_footer(20)[:40])
    write(d, "bad-magic", bytes(100) + b"\x1f\x8c" + estargz_footer(20)[2:])
    write(d, "bad-offset-past-end", bytes(10) + estargz_footer(0x1000))
    write(d, "bad-zstd-type", bytes(100) + zstd_footer(16, 40, 300, 2))
    write(d, "bad-zstd-overflow",
          bytes(100) + zstd_footer(2**64 - 8, 40, 300))

    # toc: valid, then hostile
    d = os.path.join(root, "toc")
    E = lambda *e: json.dumps({"version": 1, "entries": list(e)}).encode()
    write(d, "good", E(
        {"name": "./", "type": "dir", "mode": 16877,
         "modtime": "2021-03-04T05:06:07Z"},
        {"name": "./etc/", "type": "dir", "uid": 1000, "userName": "u",
         "gid": 5, "groupName": "g"},
        {"name": "./etc/f", "type": "reg", "size": 25, "offset": 100,
         "chunkSize": 10, "digest": D1, "chunkDigest": D1, "uid": 1000,
         "modtime": "2021-03-04T05:06:07.123+02:00"},
        {"name": "./etc/f", "type": "chunk", "offset": 200,
         "chunkOffset": 10, "chunkSize": 10},
        {"name": "./etc/f", "type": "chunk", "offset": 300,
         "chunkOffset": 20},
        {"name": "p", "type": "reg", "size": 3, "offset": 300,
         "innerOffset": 512},
        {"name": "usr/lib/h", "type": "hardlink", "linkName": "etc/f"},
        {"name": "usr/s", "type": "symlink", "linkName": "../etc"},
        {"name": "dev/c", "type": "char", "devMajor": 1, "devMinor": 3},
        {"name": "dev/b", "type": "block", "devMajor": 7},
        {"name": "dev/p", "type": "fifo"},
        {"name": "x", "type": "dir",
         "xattrs": {"user.a": "aGk=", "trusted.overlay.opaque": "eQ=="}},
        {"name": ".prefetch.landmark", "type": "reg", "size": 1,
         "offset": 400}))
    write(d, "good-empty", b'{"version":1,"entries":[]}')
    write(d, "bad-dotdot", E({"name": "../../etc/passwd", "type": "reg"}))
    write(d, "bad-duplicate", E({"name": "a", "type": "dir"},
                                {"name": "./a/", "type": "dir"}))
    write(d, "bad-overlap", E(
        {"name": "a", "type": "reg", "size": 10, "offset": 0,
         "chunkSize": 6},
        {"name": "a", "type": "chunk", "offset": 10, "chunkOffset": 4}))
    write(d, "bad-gap", E(
        {"name": "a", "type": "reg", "size": 10, "offset": 0,
         "chunkSize": 4},
        {"name": "a", "type": "chunk", "offset": 10, "chunkOffset": 6}))
    write(d, "bad-huge-size", E({"name": "a", "type": "reg",
                                 "size": 2**62, "offset": 0}))
    write(d, "bad-offset-past-payload", E({"name": "a", "type": "reg",
                                           "size": 1, "offset": 2**40}))
    write(d, "bad-deep-nesting",
          b'{"entries":[{"name":"a","type":"dir","x":' + b"[" * 4000 +
          b"]" * 4000 + b"}]}")
    write(d, "bad-unknown-type", E({"name": "a", "type": "socket"}))
    write(d, "bad-digest", E({"name": "a", "type": "reg",
                              "digest": "sha256:zz"}))
    write(d, "bad-hardlink-cycle", E(
        {"name": "a", "type": "hardlink", "linkName": "b"},
        {"name": "b", "type": "hardlink", "linkName": "a"}))
    write(d, "bad-parent-not-dir", E({"name": "f", "type": "fifo"},
                                     {"name": "f/x", "type": "reg"}))
    write(d, "bad-base64", E({"name": "a", "type": "dir",
                              "xattrs": {"user.x": "!!!"}}))
    write(d, "bad-truncated", E({"name": "a", "type": "dir"})[:-5])

    # chunk: header byte (bit 0: zstd; bits 1-2: gzip path), LE16 inner
    # offset, LE24 length, then the member
    d = os.path.join(root, "chunk")
    data = b"".join(b"line %d of the chunk\n" % i for i in range(60))
    hdr = lambda flags, inner, n: (bytes([flags]) + struct.pack("<H", inner)
                                   + struct.pack("<I", n)[:3])
    g, z = gz(data + bytes(1024)), zst(data + bytes(1024))
    write(d, "gzip-auto", hdr(0, 20, 500) + g)
    write(d, "gzip-libdeflate", hdr(2, 0, len(data)) + g)
    write(d, "gzip-zlib", hdr(4, 7, 100) + g)
    write(d, "zstd", hdr(1, 33, 900) + z)
    write(d, "bad-gzip-corrupt", hdr(0, 0, 500) + g[:30] + b"\xff" * 8 +
          g[38:])
    write(d, "bad-gzip-truncated", hdr(4, 0, 1000) + g[:len(g) // 2])
    write(d, "bad-gzip-short", hdr(0, 2000, 500) + g)
    write(d, "bad-zstd-corrupt", hdr(1, 0, 500) + z[:20] + b"\x00" * 10 +
          z[30:])
    write(d, "bad-zstd-truncated", hdr(1, 0, 1000) + z[:len(z) // 2])

    # layer: small valid blobs, then broken ones
    d = os.path.join(root, "layer")
    est = build_layer()
    write(d, "estargz", est)
    write(d, "zstd-chunked", build_layer(zstd=True))
    write(d, "estargz-onechunk", build_layer(mangle=lambda t: None,
                                             chunk=4096))
    write(d, "bad-truncated", est[:len(est) - 30])
    write(d, "bad-footer-magic", est[:-19] + b"X" + est[-18:])
    write(d, "bad-toc-offset-past-end",
          est[:-51] + estargz_footer(len(est) + 5))
    corrupt = bytearray(est)
    first = [e for e in LAST_TOC if e.get("name") == "a/f"][0]["offset"]
    corrupt[first + 12] ^= 0x55
    write(d, "bad-chunk-corrupt", bytes(corrupt))

    def dotdot(t):
        t["entries"][1]["name"] = "../../evil"
    write(d, "bad-toc-dotdot", build_layer(mangle=dotdot))

    def overlap(t):
        for e in t["entries"]:
            if e.get("type") == "chunk":
                e["chunkOffset"] -= 1
                break
    write(d, "bad-toc-overlap", build_layer(mangle=overlap))
    toc_off = int(est[-51:][16:32], 16)
    m = bytearray(est)
    m[toc_off + 15] ^= 0xff
    write(d, "bad-toc-gzip-corrupt", bytes(m))


if __name__ == "__main__":
    main()
