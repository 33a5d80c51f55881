#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compare a lazypull mount with GNU tar's extraction of the same layer.

Usage: mount_compare.py REF_DIR MOUNT_DIR [THREADS] [READS_PER_THREAD]

Metadata: every name (overlayfs view: `.wh.X` in the tar is a 0/0 char
device X in the mount, `.wh..wh..opq` is hidden and its directory carries
trusted.overlay.opaque=y, landmark files are hidden), type, permission bits,
owner, size, mtime (to the second, +-1: the TOC rounds), symlink targets,
device numbers, xattrs, and hardlinks (same inode exactly when tar made
them the same). Content: every regular file read whole, then THREADS threads
doing random-offset, random-length reads against the reference bytes at
once. Exits non-zero with a message on the first difference.
"""
import os
import random
import stat
import sys
import threading

WH = ".wh."
OPQ = ".wh..wh..opq"
LANDMARKS = {".prefetch.landmark", ".no.prefetch.landmark"}
OPAQUE_XATTR = "trusted.overlay.opaque"


def fail(msg):
    sys.exit("mount_compare: " + msg)


def xattrs(path):
    out = {}
    for n in os.listxattr(path, follow_symlinks=False):
        out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def expected_tree(ref):
    """rel path -> (lstat-like dict) of what the mount must show."""
    want = {}
    for d, dirs, files in os.walk(ref):
        names = dirs + files
        opaque = OPQ in names
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, ref)
            if n == OPQ:
                continue
            if d == ref and n in LANDMARKS:
                continue
            if n.startswith(WH):
                shown = os.path.join(os.path.dirname(rel), n[len(WH):])
                st = os.lstat(p)
                want[os.path.normpath(shown)] = dict(
                    mode=stat.S_IFCHR, uid=0, gid=0, rdev=0, xattrs={},
                    mtime=int(st.st_mtime), path=None, ino=None)
                continue
            st = os.lstat(p)
            x = xattrs(p)
            want[rel] = dict(
                mode=st.st_mode, uid=st.st_uid, gid=st.st_gid,
                rdev=st.st_rdev if stat.S_ISCHR(st.st_mode) or
                stat.S_ISBLK(st.st_mode) else 0,
                size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                mtime=int(st.st_mtime), xattrs=x, path=p, ino=st.st_ino,
                link=os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
        # an opaque marker shows as an xattr on its directory
        if opaque:
            rel = os.path.relpath(d, ref)
            if rel in want:
                want[rel]["xattrs"][OPAQUE_XATTR] = b"y"
    return want


def check_metadata(ref, mnt, want):
    seen = set()
    for d, dirs, files in os.walk(mnt):
        for n in dirs + files:
            seen.add(os.path.relpath(os.path.join(d, n), mnt))
    if seen != set(want):
        fail("names differ: only in mount %s; only in tar %s" % (
            sorted(seen - set(want))[:10], sorted(set(want) - seen)[:10]))
    inos = {}
    for rel, w in sorted(want.items()):
        p = os.path.join(mnt, rel)
        st = os.lstat(p)
        if st.st_mode != w["mode"]:
            fail("%s: mode %o, tar %o" % (rel, st.st_mode, w["mode"]))
        if (st.st_uid, st.st_gid) != (w["uid"], w["gid"]):
            fail("%s: owner %d:%d, tar %d:%d" % (
                rel, st.st_uid, st.st_gid, w["uid"], w["gid"]))
        if st.st_rdev != w["rdev"]:
            fail("%s: rdev %x, tar %x" % (rel, st.st_rdev, w["rdev"]))
        if w.get("size") is not None and st.st_size != w["size"]:
            fail("%s: size %d, tar %d" % (rel, st.st_size, w["size"]))
        # the reference converter rounds tar's nanoseconds to a second
        if abs(int(st.st_mtime) - w["mtime"]) > 1:
            fail("%s: mtime %d, tar %d" % (rel, st.st_mtime, w["mtime"]))
        if w.get("link") is not None and os.readlink(p) != w["link"]:
            fail("%s: link %s, tar %s" % (rel, os.readlink(p), w["link"]))
        if xattrs(p) != w["xattrs"]:
            fail("%s: xattrs %s, tar %s" % (rel, xattrs(p), w["xattrs"]))
        if w["ino"] is not None and stat.S_ISREG(st.st_mode):
            inos.setdefault(w["ino"], set()).add(st.st_ino)
    # hardlinks: one mount inode per tar inode, and distinct across them
    flat = [next(iter(s)) for s in inos.values()]
    if any(len(s) != 1 for s in inos.values()) or len(flat) != len(set(flat)):
        fail("hardlink structure differs")


def check_content(ref, mnt, want, threads, reads):
    files = sorted(r for r, w in want.items()
                   if w["path"] and stat.S_ISREG(w["mode"]))
    data = {}
    for rel in files:
        with open(os.path.join(ref, rel), "rb") as f:
            data[rel] = f.read()
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        fds = {}
        try:
            for _ in range(reads):
                rel = rng.choice(files)
                blob = data[rel]
                if rel not in fds:
                    fds[rel] = os.open(os.path.join(mnt, rel), os.O_RDONLY)
                off = rng.randrange(len(blob) + 1)
                n = rng.choice((1, 100, 4096, 65536, 1 << 20, 5 << 20))
                got = os.pread(fds[rel], n, off)
                if got != blob[off:off + n]:
                    errors.append("%s: bytes at %d+%d differ" % (rel, off, n))
                    return
        except OSError as e:
            errors.append("%s" % e)
        finally:
            for fd in fds.values():
                os.close(fd)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("parallel reads: " + errors[0])
    # then every file whole, sequentially
    for rel in files:
        with open(os.path.join(mnt, rel), "rb") as f:
            if f.read() != data[rel]:
                fail("%s: content differs" % rel)
    return len(files)


def main():
    ref, mnt = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    reads = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    want = expected_tree(ref)
    check_metadata(ref, mnt, want)
    n = check_content(ref, mnt, want, threads, reads)
    print("%d names, %d files, %d parallel reads: same" % (
        len(want), n, threads * reads))


if __name__ == "__main__":
    main()
