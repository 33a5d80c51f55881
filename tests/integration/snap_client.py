#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for containerd's snapshots client, talking to a snapshotter's
socket directly (containerd.services.snapshots.v1.Snapshots), for tests
that need calls containerd would not make at will (e.g. many Prepares
held at once). Run with Debian's /usr/bin/python3 (python3-grpcio). The
messages are encoded by hand with containerd's field numbers
(api/services/snapshots/v1/snapshots.proto): no generated code.

Usage: snap_client.py SOCKET prepare KEY PARENT [LABEL=VALUE...]
       snap_client.py SOCKET stat KEY
Prints "ok" (prepare: the mounts' count; stat: the snapshot's name); on
an error status prints "CODE: details" to stderr and exits 2.
"""
import sys

import grpc

from pb_wire import fields, ld, unary

SVC = "/containerd.services.snapshots.v1.Snapshots/"
SNAPSHOTTER = "lazypull"


def main():
    sock, cmd = sys.argv[1], sys.argv[2]
    ch = grpc.insecure_channel("unix:" + sock)

    def call(method, req):
        return unary(ch, SVC + method, req)

    if cmd == "prepare":
        # PrepareSnapshotRequest{snapshotter = 1, key = 2, parent = 3,
        # labels = 4 (map<string, string>: entries {key = 1, value = 2})}
        req = ld(1, SNAPSHOTTER) + ld(2, sys.argv[3]) + ld(3, sys.argv[4])
        for kv in sys.argv[5:]:
            k, v = kv.split("=", 1)
            req += ld(4, ld(1, k) + ld(2, v))
        resp = call("Prepare", req)
        # PrepareSnapshotResponse{mounts = 1}
        print("ok %d" % sum(1 for num, _, _ in fields(resp) if num == 1))
    elif cmd == "stat":
        # StatSnapshotRequest{snapshotter = 1, key = 2}
        call("Stat", ld(1, SNAPSHOTTER) + ld(2, sys.argv[3]))
        print("ok")
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
