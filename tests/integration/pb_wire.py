# SPDX-License-Identifier: Apache-2.0
"""Protocol buffers' wire format by hand, for the test clients that talk
gRPC with raw bytes (cri_kubelet.py, snap_client.py): a message is built
from fields with varint() and ld(), and read back with fields(). No
generated code, no .proto needed; unary() makes one call with them."""
import sys

import grpc


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def ld(num, data):  # a length-delimited field
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def read_varint(buf, i):  # (value, index after it) of the varint at @i
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def fields(buf):  # (number, wire type, value) of each field
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
            yield num, wt, v
        elif wt == 2:
            n, i = read_varint(buf, i)
            yield num, wt, buf[i:i + n]
            i += n
        elif wt == 1:
            yield num, wt, buf[i:i + 8]
            i += 8
        elif wt == 5:
            yield num, wt, buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)


def unary(ch, method, req):
    """@req (bytes) to @method on channel @ch, its reply's bytes; on an
    error status prints "CODE: details" to stderr and exits 2"""
    f = ch.unary_unary(method, request_serializer=lambda x: x,
                       response_deserializer=lambda x: x)
    try:
        return f(req, timeout=120)
    except grpc.RpcError as e:
        sys.stderr.write("%s: %s\n" % (e.code().name, e.details()))
        sys.exit(2)
