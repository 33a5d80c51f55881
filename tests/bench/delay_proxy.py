#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A TCP delay line for benchmarks: adds a fixed one-way delay to each
direction of every connection, and counts bytes, connections and HTTP
requests.

Usage: delay_proxy.py --listen HOST:PORT --target HOST:PORT
                      [--delay-ms MS] [--control HOST:PORT]

Every byte read from one side is written to the other MS milliseconds
later (so a round trip gains 2*MS). It is a pipelined delay line, not
stop-and-wait: reading goes on while earlier bytes wait out their delay, so
a stream keeps its bandwidth (up to --max-inflight bytes per direction, a
bound well above any bandwidth-delay product here). Bandwidth itself is
not limited: shape it elsewhere (tc on the link to the target).

HTTP requests are counted by their request line (`GET /v2/... HTTP/1.1`) in
the client-to-target stream, Range requests by their `Range:` header: good
enough for a registry's pull traffic, which has no request bodies.

The control port speaks one command per line and answers one JSON line:
  stats        {"bytes_down":N,"bytes_up":N,"requests":N,"range_requests":N,
                "connections":N,"delay_ms":MS}   (down = target to client)
  reset        zero the counters, then as stats
  delay MS     set the one-way delay for new bytes, then as stats
  trace PATH   append a timeline to PATH from now on (one line per event,
               seconds on CLOCK_MONOTONIC: "T CONN req RANGE" when a request
               line reaches the proxy, RANGE its Range header or "-";
               "T CONN down N" when N bytes are handed to the client), then
               as stats; "trace off" closes it. coldstart_lib.py trace reads it.
Loopback only: no authentication. Runs until SIGTERM/SIGINT.
"""
import argparse
import asyncio
import json
import re
import signal
import socket
import time

REQ_RE = re.compile(rb"(?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^ \r\n]* HTTP/1\.[01]\r\n")
RANGE_RE = re.compile(rb"\r\nrange: *bytes=", re.IGNORECASE)
RANGE_VAL_RE = re.compile(rb"\r\nrange: *bytes=([-0-9, ]+)", re.IGNORECASE)
READ_SIZE = 256 * 1024
SCAN_CARRY = 512  # bytes kept across reads so a split request line is seen


class Stats:
    def __init__(self, delay_ms):
        self.delay = delay_ms / 1000.0
        self.reset()

        self.trace = None

    def reset(self):
        self.down = self.up = self.requests = self.ranges = self.conns = 0

    def event(self, conn, what):
        if self.trace:
            self.trace.write("%.6f %d %s\n" % (time.monotonic(), conn, what))

    def json(self):
        return json.dumps({"bytes_down": self.down, "bytes_up": self.up,
                           "requests": self.requests,
                           "range_requests": self.ranges,
                           "connections": self.conns,
                           "delay_ms": self.delay * 1000.0})


class RequestScanner:
    """Counts request lines and Range headers in a byte stream read in
    pieces, each match once, whatever the piece boundaries."""

    def __init__(self, stats, conn):
        self.stats = stats
        self.conn = conn
        self.tail = b""

    def feed(self, data):
        buf = self.tail + data
        skip = len(self.tail)  # matches ending inside the tail were counted
        for rx, attr in ((REQ_RE, "requests"), (RANGE_RE, "ranges")):
            n = sum(1 for m in rx.finditer(buf) if m.end() > skip)
            setattr(self.stats, attr, getattr(self.stats, attr) + n)
        if self.stats.trace:
            for m in REQ_RE.finditer(buf):
                if m.end() > skip:
                    r = RANGE_VAL_RE.search(buf, m.end())
                    self.stats.event(self.conn, "req " + (
                        r.group(1).decode().replace(" ", "") if r else "-"))
        self.tail = buf[-SCAN_CARRY:]


async def pump(reader, writer, stats, attr, scanner, max_inflight, conn=0):
    """Copies reader to writer, each piece delayed by stats.delay from the
    moment it was read. A reader task and a writer task share a queue, so
    reading never waits for an earlier piece's delay."""
    q = asyncio.Queue()
    room = asyncio.Condition()
    inflight = 0

    async def read_side():
        nonlocal inflight
        try:
            while True:
                data = await reader.read(READ_SIZE)
                due = time.monotonic() + stats.delay
                if not data:
                    break
                setattr(stats, attr, getattr(stats, attr) + len(data))
                if scanner:
                    scanner.feed(data)
                async with room:
                    await room.wait_for(lambda: inflight < max_inflight)
                    inflight += len(data)
                q.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        q.put_nowait((time.monotonic() + stats.delay, None))

    async def write_side():
        nonlocal inflight
        try:
            while True:
                due, data = await q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    break
                writer.write(data)
                if attr == "down":
                    stats.event(conn, "down %d" % len(data))
                await writer.drain()
                async with room:
                    inflight -= len(data)
                    room.notify_all()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read_side(), write_side())


def nodelay(writer):
    s = writer.get_extra_info("socket")
    if s is not None:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def handle(creader, cwriter, target, stats, max_inflight):
    stats.conns += 1
    conn = stats.conns
    try:
        treader, twriter = await asyncio.open_connection(*target)
    except OSError:
        cwriter.close()
        return
    nodelay(cwriter)
    nodelay(twriter)
    # The connection handshake to the target costs a round trip too.
    if stats.delay > 0:
        await asyncio.sleep(2 * stats.delay)
    try:
        await asyncio.gather(
            pump(creader, twriter, stats, "up", RequestScanner(stats, conn),
                 max_inflight, conn),
            pump(treader, cwriter, stats, "down", None, max_inflight, conn))
    finally:
        for w in (twriter, cwriter):
            try:
                w.close()
            except OSError:
                pass


async def control(reader, writer, stats):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            words = line.decode(errors="replace").split()
            if words[:1] == ["reset"]:
                stats.reset()
            elif words[:1] == ["trace"] and len(words) == 2:
                if stats.trace:
                    stats.trace.close()
                    stats.trace = None
                if words[1] != "off":
                    stats.trace = open(words[1], "a", buffering=1 << 20)
            elif words[:1] == ["delay"] and len(words) == 2:
                stats.delay = max(0.0, float(words[1])) / 1000.0
            elif words[:1] != ["stats"]:
                writer.write(b'{"error":"commands: stats, reset, delay MS, trace PATH|off"}\n')
                await writer.drain()
                continue
            writer.write(stats.json().encode() + b"\n")
            await writer.drain()
    except (ConnectionError, OSError, ValueError):
        pass
    writer.close()


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--target", required=True, type=hostport)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--control", type=hostport)
    ap.add_argument("--max-inflight", type=int, default=64 << 20)
    a = ap.parse_args()
    stats = Stats(a.delay_ms)
    srv = await asyncio.start_server(
        lambda r, w: handle(r, w, a.target, stats, a.max_inflight), *a.listen)
    servers = [srv]
    if a.control:
        servers.append(await asyncio.start_server(
            lambda r, w: control(r, w, stats), *a.control))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("delay_proxy: %s:%d -> %s:%d, %.1f ms each way" %
          (a.listen + a.target + (a.delay_ms,)), flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
