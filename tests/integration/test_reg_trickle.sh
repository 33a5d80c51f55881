#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A blob fetched into memory (a config, a gzip index:
# lp_reg_fetch_blob_mem()) has the request's whole-time limit, as a
# manifest has: a host that trickles its body (a byte every 0.2 s, fast
# enough for the low-speed limit) fails the fetch with ETIMEDOUT when
# request_timeout_ms (1 s here) is up, instead of holding the caller for
# the whole trickle (8 s). The same host serving a blob at once is fetched
# whole under the same limit (the server and the client work). What is
# checked is the error code, not a time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLIENT="$LP_BUILD_DIR/tests/reg_client"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"
T=$(mktemp -d)
trap lp_cleanup EXIT

head -c 40 /dev/urandom >"$T/slow"
head -c 40 /dev/urandom >"$T/fast"
SLOW=sha256:$(sha256sum "$T/slow" | cut -d' ' -f1)
FAST=sha256:$(sha256sum "$T/fast" | cut -d' ' -f1)
PORT=$(free_port)
/usr/bin/python3 - "$PORT" "$T" >"$T/server.log" 2>&1 <<'PY' &
import hashlib, http.server, os, sys, time
port, d = int(sys.argv[1]), sys.argv[2]
blobs = {}
for name, delay in (("slow", 0.2), ("fast", 0)):
    data = open(os.path.join(d, name), "rb").read()
    blobs["sha256:" + hashlib.sha256(data).hexdigest()] = (data, delay)

class H(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        digest = self.path.rsplit("/", 1)[-1]
        if self.path in ("/v2/", "/v2"):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "/blobs/" not in self.path or digest not in blobs:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, delay = blobs[digest]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(delay)
        except OSError:
            pass

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
PIDS+=($!)
wait_up "${PIDS[0]}" "$T/server.log" 10 "the trickling registry" \
	curl -sf "http://127.0.0.1:$PORT/v2/"

export LP_REG_TIMEOUT_MS=1000 LP_REG_ATTEMPTS=1
say "a blob served at once: fetched whole under the limit"
"$CLIENT" fetch-mem "127.0.0.1:$PORT/t/img:latest" "$FAST" 4096 "$T/got-fast" 2>"$T/err-fast" ||
	{ show_err "$T/err-fast"; fail "the fast blob was not fetched"; }
cmp -s "$T/fast" "$T/got-fast" || fail "the fast blob's bytes differ"
ok "fast blob fetched"

say "a trickled blob: the whole-request limit ends it with ETIMEDOUT"
if "$CLIENT" fetch-mem "127.0.0.1:$PORT/t/img:latest" "$SLOW" 4096 "$T/got-slow" 2>"$T/err-slow"; then
	fail "the trickled blob was fetched whole: no whole-request limit on fetch_blob_mem"
fi
grep -q "(-110)" "$T/err-slow" || # -ETIMEDOUT
	{ show_err "$T/err-slow"; fail "the trickled fetch failed, but not with ETIMEDOUT"; }
ok "trickled blob: ETIMEDOUT"
done_ok
