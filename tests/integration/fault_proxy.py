#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fault-injecting HTTP proxy for test_registry.sh (loopback only).

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_PORT MODE_FILE LOG_FILE

Forwards each request (one per connection) to 127.0.0.1:UPSTREAM_PORT and
writes every request line to LOG_FILE. MODE_FILE holds "MODE N": the next N
requests that match the mode are faulted, later ones pass. Writing the file
again re-arms the counter. Modes: pass, reset, 503, 429, truncate, short206,
ignore-range (Range stripped: 200 with the whole blob), multi400 (400 to
multi-range), stall (no answer), wrongrange (Content-Range shifted by one),
redirect (307 from blob GETs straight to the upstream), corrupt (one byte
of a 206 blob body inverted: well-formed replies carrying wrong bytes),
suffix416 (416 without Content-Range to a suffix range "bytes=-N"),
wrongtotal (a self-consistent Content-Range claiming a blob 1000 bytes
larger, the same bytes), unterminated (a blob reply sent chunked, every
byte in, then the connection reset before the closing zero-size chunk),
blob404 and blob503 (that status to blob GETs of a byte range, not to
suffix ranges "bytes=-N": a mount's footer and TOC read still works).
A range-less host: rangeless (every blob GET has its Range stripped, so
the upstream answers 200 and the whole blob; N does not count down),
rangeless-cut (the same, and the first N such replies are cut in half and
the connection reset), rangeless-bad (the same, and every such 200 carries
one byte inverted in its middle: a body that is not the blob).
referrers-stall: no answer for 120 s to the referrers API
(/v2/NAME/referrers/DIGEST) and the referrers tag (manifests/sha256-HEX),
every other request passes.
path-stall N SUB...: no answer for 120 s to requests whose path holds one
of the strings SUB (e.g. an artifact's digest), every other one passes.
hold-until N HELD AWAITED: a request from lazypull (its User-Agent) whose
path holds HELD is not forwarded until a request whose path holds AWAITED
has arrived (before or after it; at most HOLD_MAX_S), then passes; LOG_FILE says which
("held PATH: released by AWAITED" or "held PATH: released by the clock"),
so a test can tell two requests were in flight at once without timing.
referrers-api-index N: the referrers API (/v2/NAME/referrers/DIGEST)
answered 200 with an empty OCI index, as a registry with the API would
when nothing refers to the digest; every other request passes.
lazypull-blob404: 404 to whole-blob GETs (no Range) from lazypull (its
User-Agent "lazypull/..."), e.g. the snapshotter fetching a gzip index;
containerd's own requests pass.
"""
import http.client
import os
import socket
import struct
import sys
import threading
import time

LISTEN, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])
MODE_FILE, LOG_FILE = sys.argv[3], sys.argv[4]
HOLD_MAX_S = 20
lock = threading.Lock()
arrived_cond = threading.Condition(lock)  # a request arrived (hold-until)
arrived = []  # the paths of every request so far (protected by lock)
state = {"mtime": None, "mode": "pass", "left": 0, "subs": []}


def take_fault(is_blob, is_multi, is_suffix, is_referrers=False,
               is_lazypull_whole=False, path="", is_lazypull=False):
    with lock:
        try:
            st = os.stat(MODE_FILE)
            if st.st_mtime_ns != state["mtime"]:
                state["mtime"] = st.st_mtime_ns
                parts = open(MODE_FILE).read().split()
                state["mode"] = parts[0] if parts else "pass"
                state["left"] = int(parts[1]) if len(parts) > 1 else 1
                state["subs"] = parts[2:]
        except FileNotFoundError:
            pass
        mode = state["mode"]
        if mode.startswith("rangeless") and state["left"] <= 0:
            return "rangeless" if is_blob else "pass"
        if mode == "pass" or state["left"] <= 0:
            return "pass"
        if mode in ("truncate", "short206", "ignore-range", "wrongrange",
                    "redirect", "wrongtotal", "unterminated", "rangeless",
                    "rangeless-cut", "rangeless-bad") and not is_blob:
            return "pass"
        if mode == "suffix416" and not is_suffix:
            return "pass"
        if mode in ("blob404", "blob503") and (not is_blob or is_suffix):
            return "pass"
        if mode == "multi400" and not is_multi:
            return "pass"
        if mode == "lazypull-blob404":
            if not is_lazypull_whole:
                return "pass"
            state["left"] -= 1
            return "blob404"
        if mode == "path-stall":
            if not any(x in path for x in state["subs"]):
                return "pass"
            state["left"] -= 1
            return "stall-long"
        if mode == "hold-until":
            if (len(state["subs"]) != 2 or state["subs"][0] not in path
                    or not is_lazypull):
                return "pass"
            state["left"] -= 1
            return "hold"
        if mode == "referrers-api-index":
            if "/referrers/" not in path:
                return "pass"
            state["left"] -= 1
            return mode
        if mode == "referrers-stall":
            if not is_referrers:
                return "pass"
            state["left"] -= 1
            return "stall-long"
        state["left"] -= 1
        return mode


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = []
    length = 0
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
        if k.strip().lower() == "content-length":
            length = int(v)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return method, path, headers, body


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    conn.close()


def send(conn, status, reason, headers, body, cut=None):
    out = "HTTP/1.1 %d %s\r\n" % (status, reason)
    for k, v in headers:
        out += "%s: %s\r\n" % (k, v)
    out += "Connection: close\r\n\r\n"
    conn.sendall(out.encode("latin-1") + (body if cut is None else body[:cut]))


def handle(conn):
    try:
        req = read_request(conn)
        if not req:
            conn.close()
            return
        method, path, headers, body = req
        rng = [v for k, v in headers if k.lower() == "range"]
        is_blob = "/blobs/sha256:" in path and method == "GET"
        is_multi = bool(rng) and "," in rng[0]
        with lock:
            with open(LOG_FILE, "a") as f:
                f.write("%s %s %s\n" % (method, path, rng[0] if rng else "-"))
            arrived.append(path)
            arrived_cond.notify_all()
        is_suffix = is_blob and bool(rng) and rng[0].startswith("bytes=-")
        is_referrers = "/referrers/" in path or "/manifests/sha256-" in path
        ua = [v for k, v in headers if k.lower() == "user-agent"]
        is_lazypull = bool(ua) and ua[0].startswith("lazypull/")
        is_lazypull_whole = is_blob and not rng and is_lazypull
        fault = take_fault(is_blob, is_multi, is_suffix, is_referrers,
                           is_lazypull_whole, path, is_lazypull)
        if fault == "reset":
            reset(conn)
            return
        if fault == "hold":
            with lock:
                awaited = state["subs"][1]
                came = arrived_cond.wait_for(
                    lambda: any(awaited in p for p in arrived), HOLD_MAX_S)
                with open(LOG_FILE, "a") as f:
                    f.write("held %s: released by %s\n" %
                            (path, awaited if came else "the clock"))
        if fault == "referrers-api-index":
            body = (b'{"schemaVersion":2,"mediaType":'
                    b'"application/vnd.oci.image.index.v1+json",'
                    b'"manifests":[]}')
            send(conn, 200, "OK",
                 [("Content-Type", "application/vnd.oci.image.index.v1+json"),
                  ("Content-Length", str(len(body)))], body)
            conn.close()
            return
        if fault in ("stall", "stall-long"):
            time.sleep(30 if fault == "stall" else 120)
            conn.close()
            return
        if fault == "503":
            send(conn, 503, "Service Unavailable", [("Content-Length", "0")],
                 b"")
            conn.close()
            return
        if fault == "429":
            send(conn, 429, "Too Many Requests",
                 [("Retry-After", "1"), ("Content-Length", "0")], b"")
            conn.close()
            return
        if fault in ("blob404", "blob503"):
            code = int(fault[4:])
            body = b'{"errors":[{"code":"BLOB_UNKNOWN"}]}' if code == 404 else b""
            send(conn, code, "Not Found" if code == 404 else "Service Unavailable",
                 [("Content-Length", str(len(body)))], body)
            conn.close()
            return
        if fault == "suffix416":
            send(conn, 416, "Range Not Satisfiable",
                 [("Content-Length", "0")], b"")
            conn.close()
            return
        if fault == "multi400":
            send(conn, 400, "Bad Request", [("Content-Length", "0")], b"")
            conn.close()
            return
        if fault == "redirect":
            send(conn, 307, "Temporary Redirect",
                 [("Location", "http://127.0.0.1:%d%s" % (UPSTREAM, path)),
                  ("Content-Length", "0")], b"")
            conn.close()
            return
        fwd = [(k, v) for k, v in headers
               if k.lower() not in ("connection", "host")]
        if fault in ("ignore-range", "rangeless", "rangeless-cut",
                     "rangeless-bad"):
            fwd = [(k, v) for k, v in fwd if k.lower() != "range"]
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        up.putrequest(method, path, skip_host=True,
                      skip_accept_encoding=True)
        up.putheader("Host", "127.0.0.1:%d" % UPSTREAM)
        for k, v in fwd:
            up.putheader(k, v)
        up.endheaders(body if body else None)
        resp = up.getresponse()
        rbody = resp.read()
        rh = [(k, v) for k, v in resp.getheaders()
              if k.lower() not in ("connection", "transfer-encoding",
                                   "content-length")]
        up.close()
        if fault == "rangeless-cut":
            rh.append(("Content-Length", str(len(rbody))))
            send(conn, resp.status, resp.reason, rh, rbody,
                 cut=len(rbody) // 2)
            reset(conn)
            return
        if fault == "rangeless-bad" and resp.status == 200 and rbody:
            i = len(rbody) // 2
            rbody = rbody[:i] + bytes([rbody[i] ^ 0xFF]) + rbody[i + 1:]
        if fault == "truncate":
            rh.append(("Content-Length", str(len(rbody))))
            send(conn, resp.status, resp.reason, rh, rbody,
                 cut=len(rbody) // 2)
            reset(conn)
            return
        if fault == "unterminated":
            rh.append(("Transfer-Encoding", "chunked"))
            out = "HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)
            for k, v in rh:
                out += "%s: %s\r\n" % (k, v)
            out += "\r\n%x\r\n" % len(rbody)
            conn.sendall(out.encode("latin-1") + rbody + b"\r\n")
            time.sleep(0.2)
            reset(conn)
            return
        if fault == "corrupt" and resp.status == 206 and rbody:
            i = len(rbody) // 2
            rbody = rbody[:i] + bytes([rbody[i] ^ 0xFF]) + rbody[i + 1:]
        if fault == "short206" and resp.status == 206:
            rbody = rbody[:len(rbody) // 2]
        if fault == "wrongrange" and resp.status == 206:
            nh = []
            for k, v in rh:
                if k.lower() == "content-range":
                    a, rest = v.split(" ", 1)[1].split("-", 1)
                    b, total = rest.split("/")
                    v = "bytes %d-%d/%s" % (int(a) + 1, int(b) + 1, total)
                nh.append((k, v))
            rh = nh
        if fault == "wrongtotal" and resp.status == 206:
            nh = []
            for k, v in rh:
                if k.lower() == "content-range":
                    a, rest = v.split(" ", 1)[1].split("-", 1)
                    b, total = rest.split("/")
                    v = "bytes %d-%d/%d" % (int(a) + 1000, int(b) + 1000,
                                            int(total) + 1000)
                nh.append((k, v))
            rh = nh
        if method == "HEAD":
            # no body, but the length of the one a GET would carry
            rbody = b""
            rh.append(("Content-Length",
                       resp.getheader("Content-Length", "0")))
        else:
            rh.append(("Content-Length", str(len(rbody))))
        send(conn, resp.status, resp.reason, rh, rbody)
        conn.close()
    except (OSError, ValueError):
        try:
            conn.close()
        except OSError:
            pass


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", LISTEN))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


main()
