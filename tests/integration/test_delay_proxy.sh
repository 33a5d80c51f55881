#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Smoke test of the cold-start benchmark's delay line (tests/bench/
# delay_proxy.py), loopback only, a few seconds:
#   1. a request/response round trip through a 50 ms one-way proxy takes
#      at least 100 ms (and not much more)
#   2. 16 MiB streamed back take well under what stop-and-wait would
#      (the line is pipelined: bandwidth is kept)
#   3. the control port counts bytes, connections, HTTP requests and Range
#      headers, and resets them; `delay MS` changes the delay
set -euo pipefail
. "$(dirname "$0")/lib.sh"

say "delay proxy: latency, pipelining, counters"
timeout 30 python3 - "$LP_SOURCE_DIR/tests/bench/delay_proxy.py" >"$T/out" 2>"$T/err" <<'PY' ||
import json, os, socket, subprocess, sys, threading, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

BIG = 16 << 20
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
tport = srv.getsockname()[1]

def serve():  # a fake registry: each request line answered; "big" streams BIG bytes
    while True:
        c, _ = srv.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()

def conn(c):
    f = c.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            break
        if line.startswith(b"GET /v2/big"):
            c.sendall(b"\0" * BIG)
        elif line.startswith(b"GET "):
            c.sendall(b"ok\n")
    c.close()

threading.Thread(target=serve, daemon=True).start()
lport, cport = free_port(), free_port()
p = subprocess.Popen([sys.executable, sys.argv[1], "--listen", "127.0.0.1:%d" % lport,
                      "--target", "127.0.0.1:%d" % tport, "--delay-ms", "50",
                      "--control", "127.0.0.1:%d" % cport], stdout=subprocess.PIPE)
try:
    assert p.stdout.readline().startswith(b"delay_proxy:"), "proxy did not start"
    ctl = socket.create_connection(("127.0.0.1", cport)).makefile("rwb")
    def cmd(s):
        ctl.write(s.encode() + b"\n"); ctl.flush()
        return json.loads(ctl.readline())

    c = socket.create_connection(("127.0.0.1", lport))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb")
    c.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); f.readline()  # connect + warm up
    t = time.monotonic()
    c.sendall(b"GET /v2/x HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n"); f.readline()
    rtt = time.monotonic() - t
    assert 0.100 <= rtt < 0.300, "round trip %.3f s, want 0.100..0.300" % rtt
    print("ok: round trip %.0f ms through a 50 ms one-way line" % (rtt * 1000))

    t = time.monotonic()
    c.sendall(b"GET /v2/big HTTP/1.1\r\n\r\n")
    n = 0
    while n < BIG:
        b = c.recv(1 << 20)
        assert b, "stream ended early"
        n += len(b)
    dt = time.monotonic() - t
    # stop-and-wait of 256 KiB pieces would need 64 round trips: 6.4 s
    assert dt < 2.0, "16 MiB took %.2f s: not pipelined" % dt
    print("ok: 16 MiB in %.2f s (%.0f MB/s after the 100 ms round trip)" % (dt, BIG / 1e6 / max(dt - 0.1, 0.01)))

    s = cmd("stats")
    assert s["requests"] == 3 and s["range_requests"] == 1 and s["connections"] == 1, s
    assert s["bytes_down"] == BIG + 6 and s["bytes_up"] > 60, s
    print("ok: counted %s" % json.dumps(s))
    s = cmd("reset")
    assert s["requests"] == 0 and s["bytes_down"] == 0, s
    s = cmd("delay 5")
    assert s["delay_ms"] == 5.0, s
    t = time.monotonic()
    c.sendall(b"GET /v2/y HTTP/1.1\r\n\r\n"); f.readline()
    rtt = time.monotonic() - t
    assert rtt < 0.080, "round trip %.3f s after delay 5" % rtt
    print("ok: reset, then delay 5: round trip %.0f ms" % (rtt * 1000))
finally:
    p.terminate()
    p.wait(5)
PY
	{ show_err "$T/err"; cat "$T/out"; fail "delay proxy"; }
while read -r line; do ok "${line#ok: }"; done <"$T/out"
[ "$(grep -c '^ok:' "$T/out")" = 4 ] || fail "expected 4 checks: $(cat "$T/out")"
done_ok
