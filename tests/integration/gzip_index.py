#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of test_index.sh, written from docs/format.md ("gzip index")
alone, so that the test does not lean on lazypull's own parser.

usage:
  gzip_index.py layout LAYER.tar.gz DIR   one-layer OCI image layout (tag v1)
  gzip_index.py show INDEX                header fields and paths, as JSON
  gzip_index.py prefix INDEX PATH         the blob bytes a cold read of PATH
                                          may fetch: up to the end of the
                                          span holding its last byte, one
                                          shared byte per span more
  gzip_index.py forge INDEX OUT HOW [ARG] a hostile copy of INDEX:
     blob-offset        a checkpoint's compressed offset past the blob
     span-digest PATH   the digest of the span PATH's header is in flipped
     swap-path PATH OTHER  the entry of OTHER renamed PATH (so PATH points
                        at OTHER's bytes, in stream order, all else right)
     window [N]         checkpoint N's (default 1, -1 the last) window
                        replaced by other bytes
     window-at PATH     the window of the checkpoint a read of PATH starts
                        at (the last with out <= its header offset) with
                        its last 4 KiB changed; span digests all right
     mode PATH          PATH's mode given the setuid bit
     blob-size          the indexed blob's size 4096 bytes larger
     huge-files         the file count 0xffffffff
     huge-strings       the strings section size 0xffffffff
     deep-path          a path of 300 components
     overlap            an entry's header moved into the entry before it
"""
import gzip
import hashlib
import json
import os
import struct
import sys
import zlib

HDR = 96
CP = 64
FILE = 72


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layout(layer_path, root):
    layer = open(layer_path, "rb").read()
    diff = sha(gzip.decompress(layer))
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def blob(b):
        d = sha(b)
        with open(os.path.join(root, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(b)
        return {"digest": d, "size": len(b)}

    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    man = {"schemaVersion": 2,
           "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **blob(cfg)),
           "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer))]}
    mb = json.dumps(man).encode()
    d = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **blob(mb))
    d["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [d]}, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


class Index:
    def __init__(self, b):
        assert b[:8] == b"LPGZIDX\n", "no magic"
        self.h = bytearray(b[:HDR])
        (self.version, self.flags, self.blob_size, self.usize) = struct.unpack_from("<IIQQ", b, 8)
        self.ncp, self.nfiles, self.nstrings = struct.unpack_from("<III", b, 68)
        self.nwindows = struct.unpack_from("<Q", b, 80)[0]
        o = HDR
        self.cps = [bytearray(b[o + i * CP:o + (i + 1) * CP]) for i in range(self.ncp)]
        o += self.ncp * CP
        self.files = [bytearray(b[o + i * FILE:o + (i + 1) * FILE]) for i in range(self.nfiles)]
        o += self.nfiles * FILE
        self.strings = bytearray(b[o:o + self.nstrings])
        o += self.nstrings
        self.windows = bytes(b[o:o + self.nwindows])
        assert len(self.windows) == self.nwindows
        # grain digests (flags bit 0): the last section, 32 bytes each
        self.grains = bytes(b[o + self.nwindows:])
        ngrains = struct.unpack_from("<I", b, 92)[0] if self.flags & 1 else 0
        assert len(self.grains) == 32 * ngrains

    def string(self, ref):
        n = struct.unpack_from("<H", self.strings, ref)[0]
        return bytes(self.strings[ref + 2:ref + 2 + n]).decode("utf-8", "replace")

    def path_of(self, rec):
        return self.string(struct.unpack_from("<I", rec, 52)[0])

    def find(self, path):
        for i, r in enumerate(self.files):
            if self.path_of(r) == path:
                return i
        raise SystemExit("no %s in the index" % path)

    def add_string(self, s):
        ref = len(self.strings)
        b = s.encode()
        self.strings += struct.pack("<H", len(b)) + b
        return ref

    def serialise(self):
        h = bytearray(self.h)
        struct.pack_into("<III", h, 68, len(self.cps), len(self.files), len(self.strings))
        return (bytes(h) + b"".join(self.cps) + b"".join(self.files) + bytes(self.strings) +
                self.windows + self.grains)


def forge(src, out, how, args):
    ix = Index(open(src, "rb").read())
    raw = None
    if how == "blob-offset":
        c = ix.cps[-1] if len(ix.cps) > 1 else ix.cps[0]
        struct.pack_into("<Q", c, 0, ix.blob_size + 4096)
    elif how == "span-digest":
        hdr = struct.unpack_from("<Q", ix.files[ix.find(args[0])], 0)[0]
        c = [c for c in ix.cps if struct.unpack_from("<Q", c, 8)[0] <= hdr][-1]
        c[32] ^= 0xFF
    elif how == "swap-path":
        path, other = args
        i = ix.find(other)
        struct.pack_into("<I", ix.files[i], 52, ix.add_string(path))
    elif how == "window":
        # a checkpoint's window (1, or ARG: an index, -1 the last) replaced
        c = ix.cps[int(args[0]) if args else 1]
        raw_len = struct.unpack_from("<H", c, 26)[0]
        fake = zlib.compress(b"A" * raw_len, 9)
        woff = len(ix.windows)
        ix.windows += fake
        struct.pack_into("<II", c, 16, woff, len(fake))
        raw = bytearray(ix.serialise())
        struct.pack_into("<Q", raw, 80, len(ix.windows))
    elif how == "window-at":
        hdr = struct.unpack_from("<Q", ix.files[ix.find(args[0])], 0)[0]
        k = [i for i, c in enumerate(ix.cps) if struct.unpack_from("<Q", c, 8)[0] <= hdr][-1]
        c = ix.cps[k]
        if k == 0 or c[25] != 0:
            raise SystemExit("%s: its checkpoint #%d has no window" % (args[0], k))
        woff, wlen = struct.unpack_from("<II", c, 16)
        win = bytearray(zlib.decompress(ix.windows[woff:woff + wlen]))
        for i in range(max(0, len(win) - 4096), len(win)):
            win[i] ^= 0x55
        fake = zlib.compress(bytes(win), 9)
        woff = len(ix.windows)
        ix.windows += fake
        struct.pack_into("<II", c, 16, woff, len(fake))
        raw = bytearray(ix.serialise())
        struct.pack_into("<Q", raw, 80, len(ix.windows))
    elif how == "mode":
        # an entry's mode made setuid, all else right
        rec = ix.files[ix.find(args[0])]
        struct.pack_into("<I", rec, 32, struct.unpack_from("<I", rec, 32)[0] | 0o4000)
    elif how == "blob-size":
        # the indexed blob's size said 4096 bytes larger, all else right
        # (the last span's grains as many as that length has)
        if ix.flags & 1:
            g, n = struct.unpack_from("<II", ix.h, 88)
            c = ix.cps[-1]
            start = struct.unpack_from("<Q", c, 0)[0] - (1 if c[24] else 0)
            old = ix.blob_size - start
            more = (old + 4096 + g - 1) // g - (old + g - 1) // g
            ix.grains += bytes(32 * more)
            struct.pack_into("<I", ix.h, 92, n + more)
        raw = bytearray(ix.serialise())
        struct.pack_into("<Q", raw, 16, ix.blob_size + 4096)
    elif how == "huge-files":
        raw = bytearray(ix.serialise())
        struct.pack_into("<I", raw, 72, 0xFFFFFFFF)
    elif how == "huge-strings":
        raw = bytearray(ix.serialise())
        struct.pack_into("<I", raw, 76, 0xFFFFFFFF)
    elif how == "deep-path":
        struct.pack_into("<I", ix.files[-1], 52, ix.add_string("/".join(["d"] * 300)))
    elif how == "overlap":
        i = len(ix.files) - 1
        prev = ix.files[i - 1]
        struct.pack_into("<Q", ix.files[i], 0, struct.unpack_from("<Q", prev, 0)[0])
    else:
        raise SystemExit("unknown forgery " + how)
    with open(out, "wb") as f:
        f.write(raw if raw is not None else ix.serialise())


def main():
    cmd = sys.argv[1]
    if cmd == "layout":
        layout(sys.argv[2], sys.argv[3])
    elif cmd == "show":
        ix = Index(open(sys.argv[2], "rb").read())
        print(json.dumps({"blob_size": ix.blob_size, "usize": ix.usize,
                          "checkpoints": ix.ncp, "files": ix.nfiles,
                          "paths": [ix.path_of(r) for r in ix.files]}))
    elif cmd == "prefix":
        ix = Index(open(sys.argv[2], "rb").read())
        rec = ix.files[ix.find(sys.argv[3])]
        data, size = struct.unpack_from("<QQ", rec, 8)
        last = data + size - 1 if size else data
        ends = [struct.unpack_from("<Q", c, 0)[0] for c in ix.cps
                if struct.unpack_from("<Q", c, 8)[0] > last]
        print((ends[0] if ends else ix.blob_size) + ix.ncp)
    elif cmd == "forge":
        forge(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
