#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build a small busybox-static test image as an OCI image layout.

Usage: make_oci_image.py DIR

Writes DIR/oci-layout, DIR/index.json and DIR/blobs/sha256/* with these tags
(org.opencontainers.image.ref.name):
  v1       Docker schema2 manifest and media types, two tar+gzip layers:
           a rootfs (/bin/busybox, its applets as symlinks, /etc files) and
           a second layer with a file and a whiteout (.wh.hostname)
  ocigz    the same under an OCI manifest (skopeo reads no Docker types here)
  oci      the same layers under an OCI manifest, the second one plain tar
  multi    an OCI index: linux/amd64 and linux/arm64/v8 images of v1's layers
           (plus an attestation-like entry for unknown/unknown)
  nottar   an OCI image whose second layer is gzip'ed random bytes
  corrupt  an OCI image whose second layer blob does not match its digest
Deterministic: the same bytes every run (fixed times, owners, order).
"""
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile

MTIME = 1672531200  # 2023-01-01


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self.entries = []

    def blob(self, data):
        d = sha(data)
        with open(os.path.join(self.root, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def desc(self, mt, data, **extra):
        d = {"mediaType": mt, "digest": self.blob(data), "size": len(data)}
        d.update(extra)
        return d

    def tag(self, name, mt, data, **extra):
        d = self.desc(mt, data, **extra)
        d["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.entries.append(d)

    def finish(self):
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": self.entries}
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(idx, f)


def add(t, name, typ=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.mtime = MTIME
    ti.uname = ti.gname = "root"
    ti.linkname = link
    ti.size = len(data) if typ == tarfile.REGTYPE else 0
    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)


def rootfs_tar():
    bb = open("/bin/busybox", "rb").read()
    applets = subprocess.run(["/bin/busybox", "--list-full"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().split()
    dirs = {"bin", "etc", "tmp", "root"}
    for a in applets:
        d = os.path.dirname(a)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    dirs = sorted(dirs)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in dirs:
            add(t, d, tarfile.DIRTYPE, mode=0o755)
        add(t, "bin/busybox", data=bb, mode=0o755)
        for a in sorted(applets):
            if a != "bin/busybox":
                add(t, a, tarfile.SYMTYPE, link="/bin/busybox", mode=0o777)
        add(t, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
        add(t, "etc/group", data=b"root:x:0:\n")
        add(t, "etc/hostname", data=b"lazypull\n")
    return buf.getvalue()


def second_tar(extra=b""):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        add(t, "etc", tarfile.DIRTYPE, mode=0o755)
        add(t, "etc/.wh.hostname")
        add(t, "etc/motd", data=b"converted by lazypull\n" + extra)
        add(t, "srv", tarfile.DIRTYPE, mode=0o755)
        r = random.Random(7)
        add(t, "srv/data.bin", data=bytes(r.getrandbits(8) for _ in range(300000)) * 2)
    return buf.getvalue()


def gz(b):
    return gzip.compress(b, compresslevel=6, mtime=0)


def config(arch, diff_ids, variant=None):
    c = {"architecture": arch, "os": "linux",
         "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"],
                    "Labels": {"org.example.big": 12345678901234, "ratio": 0.5}},
         "created": "2023-01-01T00:00:00Z",
         "history": [{"created": "2023-01-01T00:00:00Z", "created_by": "rootfs"},
                     {"created": "2023-01-01T00:00:00Z", "created_by": "motd </etc>"}],
         "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if variant:
        c["variant"] = variant
    return json.dumps(c, indent=2).encode()


def main():
    L = Layout(sys.argv[1])
    l1, l2 = rootfs_tar(), second_tar()
    g1, g2 = gz(l1), gz(l2)
    ids = [sha(l1), sha(l2)]
    dl = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    ol = "application/vnd.oci.image.layer.v1.tar+gzip"
    oc = "application/vnd.oci.image.config.v1+json"
    om = "application/vnd.oci.image.manifest.v1+json"

    # v1: Docker media types
    m = {"schemaVersion": 2,
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": L.desc("application/vnd.docker.container.image.v1+json", config("amd64", ids)),
         "layers": [L.desc(dl, g1), L.desc(dl, g2)]}
    L.tag("v1", m["mediaType"], json.dumps(m).encode())

    # ocigz: v1 under OCI media types (skopeo reads only those from a layout)
    m = {"schemaVersion": 2, "mediaType": om, "config": L.desc(oc, config("amd64", ids)),
         "layers": [L.desc(ol, g1), L.desc(ol, g2)]}
    L.tag("ocigz", om, json.dumps(m).encode())

    # oci: OCI media types, second layer uncompressed, manifest annotations
    m = {"schemaVersion": 2, "mediaType": om, "config": L.desc(oc, config("amd64", ids)),
         "layers": [L.desc(ol, g1), L.desc("application/vnd.oci.image.layer.v1.tar", l2,
                                           annotations={"org.example.layer": "second"})],
         "annotations": {"org.opencontainers.image.title": "busybox"}}
    L.tag("oci", om, json.dumps(m).encode())

    # multi: an index of two platforms sharing the layers
    ents = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        m = {"schemaVersion": 2, "mediaType": om,
             "config": L.desc(oc, config(arch, ids, variant)),
             "layers": [L.desc(ol, g1), L.desc(ol, g2)]}
        p = {"os": "linux", "architecture": arch}
        if variant:
            p["variant"] = variant
        ents.append(L.desc(om, json.dumps(m).encode(), platform=p))
    att = {"schemaVersion": 2, "mediaType": om,
           "config": L.desc(oc, b"{}"),
           "layers": [L.desc("application/vnd.in-toto+json", b"{}")]}
    ents.append(L.desc(om, json.dumps(att).encode(),
                       platform={"os": "unknown", "architecture": "unknown"}))
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": ents}
    L.tag("multi", idx["mediaType"], json.dumps(idx).encode())

    # nottar: gzip'ed random bytes as a layer
    junk = gz(bytes(random.Random(3).getrandbits(8) for _ in range(70000)))
    junk_id = sha(gzip.decompress(junk))
    m = {"schemaVersion": 2, "mediaType": om,
         "config": L.desc(oc, config("amd64", [ids[0], junk_id])),
         "layers": [L.desc(ol, g1), L.desc(ol, junk)]}
    L.tag("nottar", om, json.dumps(m).encode())

    # corrupt: the second layer's blob file is changed after it was named
    l3 = second_tar(b"corrupt\n")
    g3 = gz(l3)
    d3 = L.desc(ol, g3)
    path = os.path.join(L.root, "blobs", "sha256", d3["digest"][7:])
    with open(path, "r+b") as f:
        f.seek(len(g3) // 2)
        c = f.read(1)
        f.seek(len(g3) // 2)
        f.write(bytes([c[0] ^ 0x55]))
    m = {"schemaVersion": 2, "mediaType": om,
         "config": L.desc(oc, config("amd64", [ids[0], sha(l3)])),
         "layers": [L.desc(ol, g1), d3]}
    L.tag("corrupt", om, json.dumps(m).encode())
    L.finish()
    # the source layers as files, for `lazypull layer convert` comparisons
    for n, b in (("layer1.tar.gz", g1), ("layer2.tar.gz", g2)):
        with open(os.path.join(sys.argv[1], "..", n), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
