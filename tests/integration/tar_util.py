# SPDX-License-Identifier: Apache-2.0
"""Deterministic tar members for the test images (make_snap_image.py,
make_restart_image.py): fixed mtime and owner, tar built in memory."""
import hashlib
import io
import tarfile

MTIME = 1672531200  # 2023-01-01


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def add(t, name, typ=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.mtime = MTIME
    ti.uname = ti.gname = "root"
    ti.linkname = link
    ti.size = len(data) if typ == tarfile.REGTYPE else 0
    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)


def tar_of(build):
    """the bytes of a PAX tar whose members build(t) adds"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        build(t)
    return buf.getvalue()
