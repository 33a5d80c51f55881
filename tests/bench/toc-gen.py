#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""toc-gen.py: write a big eStargz TOC (the JSON of stargz.index.json) for
the TOC benchmark (tests/bench/toc-bench.sh), deterministically.

usage: toc-gen.py ENTRIES OUT.json [--mix realistic|empty] [--shuffle]
                  [--layer OUT.esgz]

The layout is what a converter writes for a big tree: directories of 16-64
entries three levels deep, each directory before its contents, written as
Go's json.MarshalIndent(toc, "", "\\t") does (the reference writer's and our
converter's format). --mix realistic (the default): per 100 entries about 6
directories, 70 small files with content (offset, size, digest and
chunkDigest, as single-chunk files have), 18 empty files, 4 symlinks, 1
hardlink, and every 5000th file a 3-chunk file of 12 MiB; some entries
owned by uid 1000 with names, some with xattrs. --mix empty: directories
and empty files only (no chunk records; the empty files carry the digest of
no bytes, as converters write it). --shuffle writes the
entries in a seeded random order (children before parents, chunks apart
from their files is not allowed by the format, so a chunked file keeps its
chunk records right after it): the parser must give the same tree.

The payload offsets are synthetic (increasing, as in a real blob); the
TOC's payload_end is printed on stderr as "payload_end N" (pass it to the
driver). Nothing here reads a blob: the parser consumes only the JSON.
--layer also writes an eStargz blob around the TOC that `lazypull mount`
opens: a sparse payload of zeros up to payload_end (lookups and getattr
work; a read fails its digest check), the TOC member (tar header, JSON, tar
end) and the 51-byte footer; "toc_digest sha256:..." goes to stderr.
"""
import argparse
import gzip
import hashlib
import random
import sys
import tarfile

CHUNK = 4 * 1024 * 1024
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


def digest(seed):
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("entries", type=int)
    ap.add_argument("out")
    ap.add_argument("--mix", choices=("realistic", "empty"),
                    default="realistic")
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--layer")
    a = ap.parse_args()
    n, out, mix, shuffle = a.entries, a.out, a.mix, a.shuffle
    rnd = random.Random(1234)

    entries = []  # list of lists of JSON entry dicts (a file + its chunks)
    offset = 0
    files = []  # regular file names, for hardlinks

    def add_dir(path):
        entries.append([{"name": path + "/", "type": "dir",
                         "modtime": "2024-03-01T10:00:00Z", "mode": 16877}])

    def add_file(path, i):
        nonlocal offset
        kind = rnd.randrange(100)
        mtime = "2024-03-%02dT%02d:%02d:%02dZ" % (
            1 + i % 28, i % 24, i % 60, (i * 7) % 60)
        e = {"name": path, "modtime": mtime, "mode": 33188}
        if i % 37 == 0:
            e.update(uid=1000, gid=1000, userName="user", groupName="user")
        if mix == "empty":
            kind = 80
        if kind < 70:
            size = 1 + rnd.randrange(8192)
            if i % 5000 == 0:
                size = 3 * CHUNK
            e.update(type="reg", size=size, offset=offset)
            if i % 101 == 0:
                e["xattrs"] = {"user.tag": "dGFn"}
            group = [e]
            if size > CHUNK:
                e["digest"] = digest("f%d" % i)
                e["chunkSize"] = CHUNK
                e["chunkDigest"] = digest("c%d.0" % i)
                offset += CHUNK // 2
                for k in range(1, 3):
                    group.append({"name": path, "type": "chunk",
                                  "offset": offset,
                                  "chunkOffset": k * CHUNK,
                                  "chunkSize": CHUNK,
                                  "chunkDigest": digest("c%d.%d" % (i, k))})
                    offset += CHUNK // 2
                group[-1].pop("chunkSize")  # the last runs to the end
            else:
                d = digest("f%d" % i)
                e.update(digest=d, chunkSize=size, chunkDigest=d)
                offset += size // 2 + 64
            files.append(path)
            entries.append(group)
            return
        if kind < 92 or not files:
            # an empty file: converters give it the digest of no bytes
            e.update(type="reg", digest=EMPTY)
            files.append(path)
        elif kind < 96:
            e.update(type="symlink", linkName="../target/of/link%d" % i,
                     mode=41471)
        elif kind < 97:
            e.update(type="hardlink", linkName=files[rnd.randrange(len(files))])
        else:
            e.update(type="reg")
            files.append(path)
        entries.append([e])

    count = 0
    i = 0
    d1 = 0
    while count < n:
        top = "usr/lib/pkg%04d" % d1
        add_dir("usr") if d1 == 0 else None
        add_dir("usr/lib") if d1 == 0 else None
        add_dir(top)
        count += 3 if d1 == 0 else 1
        for d2 in range(8):
            if count >= n:
                break
            sub = "%s/mod%02d" % (top, d2)
            add_dir(sub)
            count += 1
            for d3 in range(2):
                if count >= n:
                    break
                leaf = "%s/part%d" % (sub, d3)
                add_dir(leaf)
                count += 1
                for f in range(8 + rnd.randrange(24)):
                    if count >= n:
                        break
                    add_file("%s/file_%06d.py" % (leaf, i), i)
                    i += 1
                    count += 1
        d1 += 1
    if shuffle:
        rnd.shuffle(entries)
    with open(out, "w") as fp:
        fp.write('{\n\t"version": 1,\n\t"entries": [')
        first = True
        for group in entries:
            for e in group:
                fp.write("\n\t\t{" if first else ",\n\t\t{")
                first = False
                items = []
                for k in ("name", "type", "size", "modtime", "linkName",
                          "mode", "uid", "gid", "userName", "groupName",
                          "offset", "digest", "chunkOffset", "chunkSize",
                          "chunkDigest", "xattrs"):
                    if k not in e:
                        continue
                    v = e[k]
                    if isinstance(v, str):
                        s = '"%s"' % v
                    elif isinstance(v, dict):
                        s = "{\n" + ",\n".join(
                            '\t\t\t\t"%s": "%s"' % kv for kv in v.items()
                        ) + "\n\t\t\t}"
                    else:
                        s = str(v)
                    items.append('\n\t\t\t"%s": %s' % (k, s))
                fp.write(",".join(items) + "\n\t\t}")
        fp.write("\n\t]\n}")
    payload_end = offset + 1024
    print("payload_end %d" % payload_end, file=sys.stderr)
    print("entries %d" % sum(len(g) for g in entries), file=sys.stderr)
    if a.layer:
        write_layer(out, a.layer, payload_end)


def write_layer(toc_path, out, payload_end):
    with open(toc_path, "rb") as fp:
        js = fp.read()
    ti = tarfile.TarInfo("stargz.index.json")
    ti.size = len(js)
    ti.mode = 0o644
    tar = ti.tobuf(format=tarfile.USTAR_FORMAT) + js
    tar += b"\0" * (-len(tar) % 512) + b"\0" * 1024
    member = gzip.compress(tar, compresslevel=1, mtime=0)
    footer = (bytes.fromhex("1f8b0804 00000000 00ff 1a00 5347 1600".replace(" ", ""))
              + b"%016xSTARGZ" % payload_end
              + bytes.fromhex("010000ffff") + b"\0" * 8)
    assert len(footer) == 51
    with open(out, "wb") as fp:
        fp.truncate(payload_end)  # sparse: no payload bytes on disk
        fp.seek(payload_end)
        fp.write(member)
        fp.write(footer)
    print("toc_digest sha256:%s" % hashlib.sha256(js).hexdigest(),
          file=sys.stderr)


if __name__ == "__main__":
    main()
