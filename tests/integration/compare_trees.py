#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compare two extracted directory trees the way a container runtime would
see them: for every path (os.lstat, never following links) the file type,
full mode (setuid/setgid/sticky included), uid, gid, size, mtime to within a
second (a TOC's modtime is RFC 3339 in whole seconds and the reference
converter rounds, so a layer with sub-second pax mtimes may extract up to
0.5 s off; the tar stream inside the blob keeps them exactly),
device numbers, symlink target, xattrs (every namespace but security.selinux,
which the host may add), content sha256, and which paths are hardlinks of
each other. Used by test_extract.sh.

usage: compare_trees.py [--ignore-top NAME]... EXPECTED ACTUAL
Prints each difference and exits 1 if there are any; --ignore-top names are
skipped at the top level of both trees (reported if present).
"""
import argparse
import hashlib
import os
import stat
import sys

IGNORED_XATTRS = {b"security.selinux"}


def describe(root):
    entries, inodes = {}, {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": oct(stat.S_IMODE(st.st_mode)),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "mtime": st.st_mtime,
            }
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                e["sha256"] = h.hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            xa = {}
            try:
                names = os.listxattr(p, follow_symlinks=False)
            except OSError:
                names = []
            for x in names:
                if x.encode() in IGNORED_XATTRS:
                    continue
                xa[x] = os.getxattr(p, x, follow_symlinks=False)
            e["xattrs"] = xa
            entries[rel] = e
    for group in inodes.values():
        if len(group) > 1:
            g = tuple(sorted(group))
            for rel in group:
                entries[rel]["hardlinks"] = g
    # The root directory itself: the layer's "./" entry sets it.
    st = os.lstat(root)
    entries[b"."] = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                    "uid": st.st_uid, "gid": st.st_gid}
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ignore-top", action="append", default=[])
    ap.add_argument("expected")
    ap.add_argument("actual")
    a = ap.parse_args()
    exp, act = describe(a.expected.encode()), describe(a.actual.encode())
    for name in a.ignore_top:
        for label, t in (("expected", exp), ("actual", act)):
            if t.pop(name.encode(), None) is not None:
                print(f"note: {label} tree has /{name} (ignored)")
    diffs = []
    for rel in sorted(set(exp) | set(act)):
        r = rel.decode(errors="backslashreplace") if isinstance(rel, bytes) else rel
        if rel not in act:
            diffs.append(f"missing in actual: {r}")
            continue
        if rel not in exp:
            diffs.append(f"extra in actual: {r}")
            continue
        for k in sorted(set(exp[rel]) | set(act[rel])):
            e, g = exp[rel].get(k), act[rel].get(k)
            if k == "mtime" and e is not None and g is not None and abs(e - g) < 1.0:
                continue
            if e != g:
                diffs.append(f"{r}: {k}: expected {e!r}, got {g!r}")
    for d in diffs[:60]:
        print(d)
    if len(diffs) > 60:
        print(f"... and {len(diffs) - 60} more")
    print(f"compared {len(exp)} paths: {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
