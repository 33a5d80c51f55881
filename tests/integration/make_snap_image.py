#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build the snapshotter test image as an OCI image layout (tar+gzip layers).

Usage: make_snap_image.py DIR

Tag `two`: an OCI image of two layers.
  layer 1: busybox-static (/bin/busybox, applets as symlinks), /etc files,
           /data/dir/{a,b}, /data/keep and /data/big.bin (8 MiB of random
           bytes nobody reads: a lazy pull must not fetch it)
  layer 2: deletes /etc/hostname (.wh.hostname), makes /data/dir opaque
           (.wh..wh..opq) with a new /data/dir/c, adds /hello.txt
The config runs `cat /hello.txt`. Deterministic bytes.
"""
import gzip
import json
import os
import random
import subprocess
import sys
import tarfile

from tar_util import add, sha, tar_of


def layer1(t):
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp",
              "proc", "sys", "dev", "data", "data/dir"):
        add(t, d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
    add(t, "bin/busybox", data=open("/bin/busybox", "rb").read(), mode=0o755)
    applets = subprocess.run(["/bin/busybox", "--list-full"], check=True,
                             stdout=subprocess.PIPE).stdout.decode().split()
    for a in sorted(applets):
        if a != "bin/busybox":
            add(t, a, tarfile.SYMTYPE, link="/bin/busybox")
    add(t, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    add(t, "etc/group", data=b"root:x:0:\n")
    add(t, "etc/hostname", data=b"lazypull-test\n")
    add(t, "data/dir/a", data=b"a\n")
    add(t, "data/dir/b", data=b"b\n")
    add(t, "data/keep", data=b"kept\n")
    r = random.Random(7)
    add(t, "data/big.bin", data=bytes(r.getrandbits(8) for _ in range(8 << 20)))


def layer2(t):
    add(t, "etc", tarfile.DIRTYPE, mode=0o755)
    add(t, "etc/.wh.hostname")
    add(t, "data", tarfile.DIRTYPE, mode=0o755)
    add(t, "data/dir", tarfile.DIRTYPE, mode=0o755)
    add(t, "data/dir/.wh..wh..opq")
    add(t, "data/dir/c", data=b"c\n")
    add(t, "hello.txt", data=b"hello from lazypull\n")


def main():
    root = sys.argv[1]
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def blob(data):
        d = sha(data)
        with open(os.path.join(root, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    layers, diff_ids = [], []
    for build in (layer1, layer2):
        raw = tar_of(build)
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": blob(gz), "size": len(gz)})
        diff_ids.append(sha(raw))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config), "size": len(config)},
        "layers": layers,
    }, sort_keys=True).encode()
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2,
                   "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": blob(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "two"}}]},
                  f)


if __name__ == "__main__":
    main()
