#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tiny registry token server for test_registry.sh (loopback only).

Usage: token_server.py PORT KEY.pem CERT.pem LOG_FILE USER:PASS STALE [TTL_FILE]

Answers GET /token?service=S&scope=repository:NAME:ACTIONS with a JWT the
registry's auth.token accepts (RS256, x5c = CERT, signed with openssl(1)).
Basic USER:PASS gets every action asked for; anyone else gets "pull" only.
The first STALE tokens issued are already expired, so that the client has
to come back after the registry's 401. Each request is logged to LOG_FILE.

With TTL_FILE, each request reads "TTL ADVERTISED" from it: the registry
refuses the token TTL seconds after it is issued (its exp claim is set
TTL - 60 s ahead, as distribution accepts a token 60 s past exp), and the
reply says expires_in ADVERTISED with issued_at now (RFC 3339). Without
it, tokens live 300 s and say so.
"""
import base64
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.parse

PORT, KEY, CERT, LOG, CRED = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                              sys.argv[4], sys.argv[5])
stale = [int(sys.argv[6])]
TTL_FILE = sys.argv[7] if len(sys.argv) > 7 else None
LEEWAY = 60  # distribution's registry/auth/token Leeway
lock = threading.Lock()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der():
    pem = open(CERT).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END")[0]
    return "".join(body.split())


def sign(payload):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der()]}
    msg = (b64(json.dumps(header).encode()) + "." +
           b64(json.dumps(payload).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY],
                         input=msg, capture_output=True, check=True).stdout
    return msg.decode() + "." + b64(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        q = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        authed = auth == "Basic " + base64.b64encode(CRED.encode()).decode()
        access = []
        for scope in q.get("scope", []):
            typ, name, actions = scope.split(":", 2)
            acts = actions.split(",") if authed else \
                [a for a in actions.split(",") if a == "pull"]
            access.append({"type": typ, "name": name, "actions": acts})
        now = int(time.time())
        ttl, advertised = 300, 300
        if TTL_FILE:
            ttl, advertised = (int(x) for x in open(TTL_FILE).read().split())
        with lock:
            expired = stale[0] > 0
            stale[0] -= 1
            with open(LOG, "a") as f:
                f.write("token %s authed=%s stale=%s at=%.3f\n" %
                        (q.get("scope"), authed, expired, time.time()))
        exp = now - 3600 if expired else \
            (now + ttl - LEEWAY if TTL_FILE else now + ttl)
        tok = sign({"iss": "lp-issuer", "sub": "alice" if authed else "",
                    "aud": q.get("service", [""])[0], "exp": exp,
                    "nbf": now - 3600 if expired else now - 10,
                    "iat": now - 3600 if expired else now,
                    "jti": str(time.time_ns()), "access": access})
        reply = {"token": tok, "expires_in": advertised}
        if TTL_FILE:
            reply["issued_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(now))
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
