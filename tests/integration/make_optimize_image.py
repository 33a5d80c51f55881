#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build the 4-layer busybox-static test image of test_optimize.sh.

Usage: make_optimize_image.py DIR

An OCI image layout (Docker-free, tar+gzip layers, not eStargz) tagged:
  app    Cmd ["sh", "-c", "cat /etc/a.conf /data/b.txt"]; layers:
         0  the busybox rootfs of make_oci_image.py (bin/busybox, applet
            symlinks, /etc files)
         1  etc/a.conf (shadowed by layer 2) and var/old.txt
         2  etc/a.conf, data/b.txt and data/big.bin (4 MiB, never read)
         3  opt/never/x.txt (never read)
  nocmd  the same layers, a config without Entrypoint or Cmd
"""
import json
import os
import random
import sys
import tarfile
import io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_oci_image import Layout, add, gz, rootfs_tar, sha  # noqa: E402


def tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            add(t, *e[:2], **(e[2] if len(e) > 2 else {}))
    return buf.getvalue()


def main():
    L = Layout(sys.argv[1])
    big = random.Random(11).randbytes(1 << 20) * 4  # 4 MiB, incompressible
    layers = [
        rootfs_tar(),
        tar([("etc", tarfile.DIRTYPE, {"mode": 0o755}),
             ("etc/a.conf", tarfile.REGTYPE, {"data": b"a.conf from layer 1 (shadowed)\n"}),
             ("var", tarfile.DIRTYPE, {"mode": 0o755}),
             ("var/old.txt", tarfile.REGTYPE, {"data": b"old\n"})]),
        tar([("etc", tarfile.DIRTYPE, {"mode": 0o755}),
             ("etc/a.conf", tarfile.REGTYPE, {"data": b"a.conf: setting=layer2\n"}),
             ("data", tarfile.DIRTYPE, {"mode": 0o755}),
             ("data/b.txt", tarfile.REGTYPE, {"data": b"b.txt: hello from layer 2\n"}),
             ("data/big.bin", tarfile.REGTYPE, {"data": big})]),
        tar([("opt", tarfile.DIRTYPE, {"mode": 0o755}),
             ("opt/never", tarfile.DIRTYPE, {"mode": 0o755}),
             ("opt/never/x.txt", tarfile.REGTYPE, {"data": b"never read\n"})]),
    ]
    ids = [sha(t) for t in layers]
    ol = "application/vnd.oci.image.layer.v1.tar+gzip"
    oc = "application/vnd.oci.image.config.v1+json"
    om = "application/vnd.oci.image.manifest.v1+json"
    descs = [L.desc(ol, gz(t)) for t in layers]
    for tag, cmd in (("app", ["sh", "-c", "cat /etc/a.conf /data/b.txt"]), ("nocmd", None)):
        c = {"architecture": "amd64", "os": "linux",
             "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"},
             "rootfs": {"type": "layers", "diff_ids": ids}}
        if cmd:
            c["config"]["Cmd"] = cmd
        m = {"schemaVersion": 2, "mediaType": om,
             "config": L.desc(oc, json.dumps(c).encode()), "layers": descs}
        L.tag(tag, om, json.dumps(m).encode())
    L.finish()
    with open(os.path.join(sys.argv[1], "..", "layer2.tar.gz"), "wb") as f:
        f.write(gz(layers[2]))


if __name__ == "__main__":
    main()
