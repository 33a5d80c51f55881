#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for kubelet's image client (runtime.v1.ImageService) for
test_cri.sh. Run with Debian's /usr/bin/python3 (python3-grpcio). The CRI
messages are encoded and decoded here by hand with the upstream field
numbers (kubernetes/cri-api pkg/apis/runtime/v1/api.proto): no generated
code, no .proto needed.

Usage: cri_kubelet.py SOCKET pull IMAGE [USER PASSWORD | --auth B64 |
                                         --identity-token TOKEN]
       cri_kubelet.py SOCKET list | fsinfo
       cri_kubelet.py SOCKET status IMAGE | remove IMAGE
       cri_kubelet.py SOCKET call METHOD      (an empty request to METHOD)
       cri_kubelet.py SOCKET bigfsinfo BYTES  (ImageFsInfo, request padded
                                               with an unknown field)
       cri_kubelet.py SOCKET cancel IMAGE SECONDS  (PullImage, no deadline,
                                                  cancelled after SECONDS)
Prints the reply (pull: the image_ref; list: one repo tag a line; status:
the image id or "absent"); on an error status prints "CODE: details" to
stderr and exits 2.
"""
import sys

import grpc

from pb_wire import fields, ld, unary

SVC = "/runtime.v1.ImageService/"


def image_spec(ref):  # ImageSpec{image = 1}
    return ld(1, ref)


def main():
    sock, cmd = sys.argv[1], sys.argv[2]
    ch = grpc.insecure_channel("unix:" + sock)

    def call(method, req):
        return unary(ch, method, req)

    if cmd == "pull":
        # PullImageRequest{image = 1: ImageSpec, auth = 2: AuthConfig}
        req = ld(1, image_spec(sys.argv[3]))
        if len(sys.argv) > 5 and sys.argv[4] == "--auth":
            req += ld(2, ld(3, sys.argv[5]))  # AuthConfig.auth
        elif len(sys.argv) > 5 and sys.argv[4] == "--identity-token":
            host = sys.argv[3].split("/")[0]
            # AuthConfig{server_address = 4, identity_token = 5}
            req += ld(2, ld(4, "http://" + host) + ld(5, sys.argv[5]))
        elif len(sys.argv) > 5:
            # AuthConfig{username = 1, password = 2, server_address = 4};
            # with a scheme: containerd 1.6 cannot parse a bare host:port
            host = sys.argv[3].split("/")[0]
            req += ld(2, ld(1, sys.argv[4]) + ld(2, sys.argv[5]) +
                      ld(4, "http://" + host))
        resp = call(SVC + "PullImage", req)
        for num, _, v in fields(resp):
            if num == 1:  # PullImageResponse.image_ref
                print(v.decode())
    elif cmd == "list":
        resp = call(SVC + "ListImages", b"")
        for num, _, img in fields(resp):  # ListImagesResponse.images = 1
            if num == 1:
                for n2, _, v in fields(img):
                    if n2 == 2:  # Image.repo_tags
                        print(v.decode())
    elif cmd == "status":
        resp = call(SVC + "ImageStatus", ld(1, image_spec(sys.argv[3])))
        img = [v for num, _, v in fields(resp) if num == 1]
        ids = [v.decode() for num, _, v in fields(img[0]) if num == 1] \
            if img else []
        print(ids[0] if ids else "absent")
    elif cmd == "remove":
        call(SVC + "RemoveImage", ld(1, image_spec(sys.argv[3])))
        print("removed")
    elif cmd == "fsinfo":
        resp = call(SVC + "ImageFsInfo", b"")
        # ImageFsInfoResponse.image_filesystems = 1: FilesystemUsage
        n = sum(1 for num, _, _ in fields(resp) if num == 1)
        print("filesystems %d" % n)
    elif cmd == "bigfsinfo":
        # field 1000, unknown to ImageFsInfoRequest: skipped by containerd
        resp = call(SVC + "ImageFsInfo", ld(1000, b"x" * int(sys.argv[3])))
        n = sum(1 for num, _, _ in fields(resp) if num == 1)
        print("filesystems %d" % n)
    elif cmd == "cancel":
        # kubelet cancels a pull (pod deleted): no deadline to propagate,
        # only the cancellation
        f = ch.unary_unary(SVC + "PullImage",
                           request_serializer=lambda x: x,
                           response_deserializer=lambda x: x)
        fut = f.future(ld(1, image_spec(sys.argv[3])))
        try:
            fut.result(timeout=float(sys.argv[4]))
        except grpc.FutureTimeoutError:
            pass
        except grpc.RpcError:
            pass
        if fut.done():
            sys.exit("PullImage ended before the cancel: %s" % fut.code())
        fut.cancel()
        print("cancelled")
    elif cmd == "call":
        call(sys.argv[3], b"")
        print("ok")
    else:
        sys.exit("unknown command " + cmd)


main()
