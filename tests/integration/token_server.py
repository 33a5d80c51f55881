#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tiny registry token server for test_registry.sh (loopback only).

Usage: token_server.py PORT KEY.pem CERT.pem LOG_FILE USER:PASS STALE
                       [TTL_FILE|-] [REFRESH_TOKEN]

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

POST /token is the OAuth2 flow (what containerd tries first, and what an
identity token needs): a form with grant_type=refresh_token and
refresh_token=REFRESH_TOKEN, or grant_type=password with USER:PASS, gets
{"access_token": ...} with every action asked for; anything else 401.
With LP_TOKEN_ANON_PULL=0 anonymous GETs get no action at all.
LP_TOKEN_DELAY_MS=N answers every token request N ms late (so that
concurrent clients must overlap with a fetch). While the file named by
LP_TOKEN_FAIL_FILE exists, every token request is answered HTTP 500 (and
logged with status=500).
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

PORT, KEY, CERT, LOG, CRED = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                              sys.argv[4], sys.argv[5])
stale = [int(sys.argv[6])]
TTL_FILE = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] != "-" else None
# the identity (refresh) token that a POST grant_type=refresh_token must
# carry; anonymous requests get pull unless LP_TOKEN_ANON_PULL=0
REFRESH = sys.argv[8] if len(sys.argv) > 8 else None
ANON_PULL = os.environ.get("LP_TOKEN_ANON_PULL", "1") != "0"
DELAY = int(os.environ.get("LP_TOKEN_DELAY_MS", "0")) / 1000.0
FAIL_FILE = os.environ.get("LP_TOKEN_FAIL_FILE")
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

    def answer(self, code, body=b"", ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def issue(self, scopes, service, authed, how, key, client=""):
        if DELAY:
            time.sleep(DELAY)
        if FAIL_FILE and os.path.exists(FAIL_FILE):
            with lock, open(LOG, "a") as f:
                f.write("token %s authed=%s at=%.3f via=%s status=500\n" %
                        (scopes, authed, time.time(), how))
            self.answer(500, b'{"errors":[{"code":"UNAVAILABLE"}]}')
            return
        access = []
        for scope in scopes:
            typ, name, actions = scope.split(":", 2)
            acts = actions.split(",") if authed else \
                [a for a in actions.split(",") if a == "pull" and ANON_PULL]
            access.append({"type": typ, "name": name, "actions": acts})
        now = int(time.time())
        ttl, advertised = 300, 300
        if TTL_FILE:
            ttl, advertised = (int(x) for x in open(TTL_FILE).read().split())
        with lock:
            expired = stale[0] > 0
            stale[0] -= 1
            with open(LOG, "a") as f:
                f.write("token %s authed=%s stale=%s at=%.3f via=%s "
                        "client=%s\n" % (scopes, authed, expired, time.time(),
                                          how, client))
        exp = now - 3600 if expired else \
            (now + ttl - LEEWAY if TTL_FILE else now + ttl)
        tok = sign({"iss": "lp-issuer", "sub": "alice" if authed else "",
                    "aud": service, "exp": exp,
                    "nbf": now - 3600 if expired else now - 10,
                    "iat": now - 3600 if expired else now,
                    "jti": str(time.time_ns()), "access": access})
        reply = {key: tok, "expires_in": advertised}
        if TTL_FILE:
            reply["issued_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(now))
        self.answer(200, json.dumps(reply).encode())

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/health":
            self.answer(200, b"ok", "text/plain")
            return
        if url.path != "/token":
            self.answer(404)
            return
        q = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        authed = auth == "Basic " + base64.b64encode(CRED.encode()).decode()
        self.issue(q.get("scope", []), q.get("service", [""])[0], authed,
                   "get", "token")

    def do_POST(self):
        # OAuth2 (distribution's token spec): a form with grant_type
        # refresh_token (an identity token) or password
        if urllib.parse.urlparse(self.path).path != "/token":
            self.answer(404)
            return
        n = int(self.headers.get("Content-Length", "0"))
        q = urllib.parse.parse_qs(self.rfile.read(n).decode())
        grant = q.get("grant_type", [""])[0]
        if grant == "refresh_token":
            authed = REFRESH is not None and \
                q.get("refresh_token", [""])[0] == REFRESH
        elif grant == "password":
            authed = "%s:%s" % (q.get("username", [""])[0],
                                q.get("password", [""])[0]) == CRED
        else:
            self.answer(400, b'{"error":"unsupported_grant_type"}')
            return
        if not authed:
            self.answer(401, b'{"error":"invalid_grant"}')
            return
        scopes = [x for s in q.get("scope", []) for x in s.split(" ") if x]
        self.issue(scopes, q.get("service", [""])[0], True, "post:" + grant,
                   "access_token", q.get("client_id", [""])[0])


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
