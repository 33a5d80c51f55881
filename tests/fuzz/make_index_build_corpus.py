#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Regenerate the seed corpus of fuzz_index_build: small tar.gz layers, each
# prefixed with the target's choice byte (bit 0: grain digests, bit 1: a
# verified digest). One member, several, stored and fixed-Huffman blocks,
# a header with FEXTRA/FNAME/FCOMMENT/FHCRC, zero padding, and a few
# broken ones (a CRC32 that lies, bytes after the data, cut off).
# Deterministic.
#
#     python3 tests/fuzz/make_index_build_corpus.py tests/fuzz/corpus/index_build
import io
import os
import struct
import sys
import tarfile
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def tar_bytes(n_files, size):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("d")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for i in range(n_files):
            data = bytes((i * 7 + j * 13) % 251 for j in range(size * (i + 1)))
            ti = tarfile.TarInfo("d/f%d" % i)
            ti.size = len(data)
            ti.pax_headers = {"SCHILY.xattr.user.k": "v%d" % i} if i == 1 else {}
            t.addfile(ti, io.BytesIO(data))
        s = tarfile.TarInfo("d/s")
        s.type = tarfile.SYMTYPE
        s.linkname = "f0"
        t.addfile(s)
        h = tarfile.TarInfo("d/h")
        h.type = tarfile.LNKTYPE
        h.linkname = "d/f0"
        t.addfile(h)
    return buf.getvalue()


def member(raw, level=6, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)
    return c.compress(raw) + c.flush()


def member_with_header(raw):
    flags = 2 | 4 | 8 | 16  # FHCRC FEXTRA FNAME FCOMMENT
    hdr = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff"
    hdr += struct.pack("<H", 4) + b"ab\0\0" + b"name\0" + b"comment\0"
    hdr += struct.pack("<H", zlib.crc32(hdr) & 0xFFFF)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(raw) + c.flush()
    return hdr + body + struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


raw = tar_bytes(3, 700)
half = len(raw) // 2
seeds = {
    "one-member": (0, member(raw)),
    "grains-verified": (3, member(raw, 9)),
    "stored": (1, member(raw, 0)),
    "fixed": (0, member(raw, 6, zlib.Z_FIXED)),
    "two-members": (1, member(raw[:half]) + member(raw[half:])),
    "empty-member": (0, member(b"") + member(raw)),
    "header-fields": (0, member_with_header(raw)),
    "zero-padding": (0, member(raw) + b"\0" * 100),
    "bad-crc": (0, member(raw)[:-8] + b"\0\0\0\0" + member(raw)[-4:]),
    "bad-trailing": (0, member(raw) + b"junk"),
    "bad-cut": (2, member(raw)[:-20]),
}
for name, (choice, data) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([choice]) + data)
