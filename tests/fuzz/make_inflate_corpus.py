#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the seed corpus of fuzz_inflate: raw deflate streams from
zlib at every level and strategy, with flushes of every kind, over text,
random bytes, runs and zeros (one whose output fills several of the
decoder's output buffers), and broken ones that must be refused (cut off,
block type 3, stored LEN != ~NLEN, a distance too far back, a corrupt
dynamic header, a preset dictionary). Each starts with the two bytes
fuzz_inflate.c reads: how the input is handed over, and stop_out.
Deterministic; needs only python3.

    python3 tests/fuzz/make_inflate_corpus.py tests/fuzz/corpus/inflate
"""
import os
import random
import sys
import zlib

R = random.Random(1)
WORDS = [b"lazy", b"pull", b"deflate", b"block", b"window", b"the", b"of",
         b"layer", b"index", b"\n", b"span", b"gzip", b"1234", b"\t"]


def text(n):
    out = bytearray()
    while len(out) < n:
        out += R.choice(WORDS) + b" "
    return bytes(out[:n])


def noise(n):
    return bytes(R.getrandbits(8) for _ in range(n))


def runs(n):
    out = bytearray()
    while len(out) < n:
        pat = noise(R.randint(1, 8))
        out += (pat * 700)[:R.randint(1, 700)] + noise(R.randint(0, 5))
    return bytes(out[:n])


def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, mem=8,
            step=0, flush=zlib.Z_NO_FLUSH, zdict=None):
    kw = {"zdict": zdict} if zdict else {}
    c = zlib.compressobj(level, zlib.DEFLATED, -15, mem, strategy, **kw)
    out = bytearray()
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        out += c.compress(data[i:i + step])
        if flush != zlib.Z_NO_FLUSH and i + step < len(data):
            out += c.flush(flush)
    return bytes(out + c.flush(zlib.Z_FINISH))


class Bits:
    """A deflate bit writer: fields least significant bit first."""

    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, v, n):
        self.acc |= v << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 255)
            self.acc >>= 8
            self.n -= 8

    def code(self, c, n):  # a Huffman code: most significant bit first
        self.put(int(format(c, "0%db" % n)[::-1], 2), n)

    def done(self):
        if self.n:
            self.put(0, 8 - self.n)
        return bytes(self.out)


def fixed_lit(b, sym):
    if sym < 144:
        b.code(0x30 + sym, 8)
    elif sym < 256:
        b.code(0x190 + sym - 144, 9)
    elif sym < 280:
        b.code(sym - 256, 7)
    else:
        b.code(0xc0 + sym - 280, 8)


def too_far():
    """A fixed block: 'abc', then length 3 at distance 4."""
    b = Bits()
    b.put(1, 1)
    b.put(1, 2)
    for c in b"abc":
        fixed_lit(b, c)
    fixed_lit(b, 257)  # length 3
    b.code(3, 5)  # distance 4
    fixed_lit(b, 256)
    return b.done()


def len258():
    """A fixed block: 'xy', then length 258 as code 284 + 31 at distance 2."""
    b = Bits()
    b.put(1, 1)
    b.put(1, 2)
    for c in b"xy":
        fixed_lit(b, c)
    fixed_lit(b, 284)
    b.put(31, 5)
    b.code(1, 5)  # distance 2
    fixed_lit(b, 256)
    return b.done()


def lead_empty(data):
    """An empty stored block first: a boundary at output 0."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.flush(zlib.Z_SYNC_FLUSH) + c.compress(data)
    return out + c.flush(zlib.Z_FINISH)


def write(d, name, how, stop, data):
    assert len(data) < 20000, name
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes([how, stop]) + data)


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    t = text(12000)
    good = deflate(t)
    # how: low 3 bits the pieces (0 whole, 1: 1 byte, 2: 7, 3: 100,
    # 4: 1023, 5: 1024, 6: 4096, 7: random), bit 3 spans; stop: 0 every
    # boundary, 255 none, else stop**2 * 64 bytes
    write(d, "text-6", 0x00, 0, good)
    write(d, "text-9-mem1", 0x01, 0, deflate(t, 9, mem=1))
    write(d, "noise-1", 0x02, 0, deflate(noise(6000), 1))
    write(d, "runs-rle", 0x04, 10, deflate(runs(15000), 9, zlib.Z_RLE))
    write(d, "text-fixed", 0x07, 0, deflate(t, 6, zlib.Z_FIXED))
    write(d, "text-huffman", 0x03, 255, deflate(t, 6, zlib.Z_HUFFMAN_ONLY))
    write(d, "text-filtered-sync", 0x0f, 5,
          deflate(t, 6, zlib.Z_FILTERED, step=1000, flush=zlib.Z_SYNC_FLUSH))
    write(d, "stored-full", 0x05, 0,
          deflate(noise(3000) + t[:3000], 0, step=700,
                  flush=zlib.Z_FULL_FLUSH))
    write(d, "partial", 0x0f, 3,
          deflate(runs(4000), 6, step=150, flush=zlib.Z_PARTIAL_FLUSH))
    write(d, "zblock", 0x06, 0,
          deflate(t, 9, mem=2, step=333, flush=zlib.Z_BLOCK))
    write(d, "zeros-1m", 0x06, 40, deflate(bytes(1 << 20), 9))
    write(d, "lead-empty", 0x00, 0, lead_empty(t[:3000]))
    write(d, "repeat-1m", 0x07, 0, deflate(noise(1000) * 1048, 9))
    write(d, "len258-as-284", 0x00, 0, len258())
    write(d, "stored-trailing", 0x00, 0, deflate(t[:100], 0) + noise(50))
    write(d, "empty", 0x00, 0, deflate(b""))
    write(d, "one-byte", 0x01, 0, deflate(b"x"))
    # broken: each must be refused
    write(d, "bad-cut", 0x02, 0, good[:len(good) // 2])
    write(d, "bad-type3", 0x00, 0, bytes([0x07]) + bytes(8))
    write(d, "bad-stored-nlen", 0x01, 0, bytes([1, 5, 0, 0, 0]) + b"hello")
    write(d, "bad-stored-nlen-high", 0x00, 0,
          bytes([1, 5, 0, 0xfa, 0]) + b"hello")
    write(d, "bad-too-far", 0x00, 0, too_far())
    bad = bytearray(good)
    bad[3] ^= 0x5a
    write(d, "bad-dynamic-header", 0x07, 0, bytes(bad))
    write(d, "bad-dictionary", 0x00, 0,
          deflate(t[:500], 9, zdict=t[500:2000]))
    write(d, "trailing", 0x07, 0, good + noise(100))


if __name__ == "__main__":
    main()
