#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build the restart test's images as an OCI image layout (tar+gzip layers).

Usage: make_restart_image.py DIR NFILES [NLAYERS]

Tag `data`: one layer: busybox-static (/bin/busybox, applets as symlinks),
  /data/f/fN for N in 1000 .. 1000+NFILES-1 (2 KiB of random bytes each,
  seed 12) and /data/SUMS ("SHA256 fN" per line, in that order).
Tags `small1` .. `small6`: one small layer each: busybox-static and
  /id.txt ("small K").
With NLAYERS (the restart benchmark, tests/bench/restart-bench.sh): tag
  `many`, NLAYERS layers, layer K holding /lK/fN for N in 0 .. NFILES-1
  (2 KiB of random bytes each, seed K) and /lK/SUMS.
Deterministic bytes.
"""
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile

from tar_util import add, sha, tar_of


def busybox(t):
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp",
              "proc", "sys", "dev", "out"):
        add(t, d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
    add(t, "bin/busybox", data=open("/bin/busybox", "rb").read(), mode=0o755)
    applets = subprocess.run(["/bin/busybox", "--list-full"], check=True,
                             stdout=subprocess.PIPE).stdout.decode().split()
    for a in sorted(applets):
        if a != "bin/busybox":
            add(t, a, tarfile.SYMTYPE, link="/bin/busybox")
    add(t, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    add(t, "etc/group", data=b"root:x:0:\n")


def main():
    root, nfiles = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def blob(data):
        d = sha(data)
        with open(os.path.join(root, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def image(build, tag, builds=None):
        layers, diff_ids = [], []
        for b in builds or [build]:
            raw = tar_of(b)
            gz = gzip.compress(raw, compresslevel=1, mtime=0)
            layers.append({"mediaType":
                           "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": blob(gz), "size": len(gz)})
            diff_ids.append(sha(raw))
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }, sort_keys=True).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": blob(config), "size": len(config)},
            "layers": layers,
        }, sort_keys=True).encode()
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": blob(manifest), "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag}}

    def data(t):
        busybox(t)
        add(t, "data", tarfile.DIRTYPE, mode=0o755)
        add(t, "data/f", tarfile.DIRTYPE, mode=0o755)
        r = random.Random(12)
        sums = []
        for n in range(1000, 1000 + nfiles):
            b = r.randbytes(2048)
            add(t, "data/f/f%d" % n, data=b)
            sums.append("%s  f%d\n" % (hashlib.sha256(b).hexdigest(), n))
        add(t, "data/SUMS", data="".join(sums).encode())

    def write_index(manifests):
        with open(os.path.join(root, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(os.path.join(root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": manifests}, f)

    if len(sys.argv) > 3:
        def layer(t, k):
            add(t, "l%d" % k, tarfile.DIRTYPE, mode=0o755)
            r = random.Random(k)
            sums = []
            for n in range(nfiles):
                b = r.randbytes(2048)
                add(t, "l%d/f%d" % (k, n), data=b)
                sums.append("%s  f%d\n" % (hashlib.sha256(b).hexdigest(), n))
            add(t, "l%d/SUMS" % k, data="".join(sums).encode())
        builds = [lambda t, k=k: layer(t, k) for k in range(int(sys.argv[3]))]
        write_index([image(None, "many", builds)])
        return
    manifests = [image(data, "data")]
    for k in range(1, 7):
        def small(t, k=k):
            busybox(t)
            add(t, "id.txt", data=b"small %d\n" % k)
        manifests.append(image(small, "small%d" % k))
    write_index(manifests)


main()
