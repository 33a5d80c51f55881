#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The registry client against Debian's docker-registry (CNCF distribution
# 2.8) on loopback: push a small image with our push code, fetch manifests
# (tag, digest, index with platform selection) and blobs (whole, Range,
# multi-range, random reads from threads compared with the local copy);
# Basic auth over TLS with a test CA; and a fault-injecting proxy (resets,
# 5xx, 429 + Retry-After, truncated bodies, 200 to a range, 400 to
# multi-range, shifted Content-Range, stalls, redirects): the client must
# return exact bytes or a clear error, never wrong bytes, never hang.
set -euo pipefail
# lib.sh for the missing-component rule (lp_require) and $T; this script
# keeps its own ok/fail, which count failures rather than stop at the first.
. "$(dirname "$0")/lib.sh"

CLIENT="$LP_BUILD_DIR/tests/reg_client"
PROXY="$LP_SOURCE_DIR/tests/integration/fault_proxy.py"
lp_require docker-registry
[ -x "$CLIENT" ] || { echo "FAIL: $CLIENT not built (target reg_client)"; exit 1; }

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

fails=0
ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; fails=$((fails + 1)); }
wait_http() { # URL [curl args...]
	local url=$1 i
	shift
	for i in $(seq 1 100); do
		curl -s -o /dev/null "$@" "$url" && return 0
		sleep 0.1
	done
	echo "server at $url did not start"
	return 1
}
# run the client with a hard wall-clock limit: "never hangs"
client() { timeout 60 "$CLIENT" "$@"; }

# ---- plain registry --------------------------------------------------
PORT=$(free_port)
mkdir -p "$T/store"
cat >"$T/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT/v2/"
R="127.0.0.1:$PORT"

# an image: a 1.5 MiB random "layer", a config, an OCI manifest, an index
head -c 1572864 /dev/urandom >"$T/layer"
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
read -r LD LS < <(client push-blob "$R/test/app:v1" "$T/layer")
read -r CD CS < <(client push-blob "$R/test/app:v1" "$T/config")
[ "$LD" = "sha256:$(sha256sum "$T/layer" | cut -d' ' -f1)" ] && ok "push blob" || fail "push blob digest"
client push-blob "$R/test/app:v1" "$T/layer" >/dev/null && ok "push existing blob" || fail "push existing blob"
cat >"$T/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CD","size":$CS},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$LD","size":$LS,"annotations":{"containerd.io/snapshot/stargz/toc.digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001"}}]}
JSON
MD=$(client push-manifest "$R/test/app:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest")
MS=$(stat -c %s "$T/manifest")
sed 's/"layers"/"annotations":{"arch":"arm64"},"layers"/' "$T/manifest" >"$T/manifest-arm64"
AD=$(client push-manifest "$R/test/app@sha256:$(sha256sum "$T/manifest-arm64" | cut -d' ' -f1)" application/vnd.oci.image.manifest.v1+json "$T/manifest-arm64")
AS=$(stat -c %s "$T/manifest-arm64")
cat >"$T/index" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$AD","size":$AS,"platform":{"os":"linux","architecture":"arm64"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$MD","size":$MS,"platform":{"os":"linux","architecture":"amd64"}}]}
JSON
client push-manifest "$R/test/app:multi" application/vnd.oci.image.index.v1+json "$T/index" >/dev/null && ok "push index" || fail "push index"

# manifests
out=$(client manifest "$R/test/app:v1")
grep -q "^manifest $MD " <<<"$out" && grep -q "^layer $LD $LS .*tar+gzip sha256:0000" <<<"$out" &&
	ok "manifest by tag" || fail "manifest by tag: $out"
client manifest "$R/test/app@$MD" | grep -q "^config $CD $CS" && ok "manifest by digest" || fail "manifest by digest"
client manifest "$R/test/app:multi" | grep -q "^manifest $MD " && ok "index -> linux/amd64" || fail "index platform selection"
client manifest "$R/test/app:multi" linux/arm64/v8 | grep -q "^manifest $AD " && ok "index -> linux/arm64/v8" || fail "index arm64"
client manifest "$R/test/app:multi" linux/s390x 2>"$T/err" && fail "no platform" ||
	{ grep -q "no manifest for platform" "$T/err" && ok "no platform -> clear error" || fail "unexpected: $(cat "$T/err")"; }
BAD=sha256:2222222222222222222222222222222222222222222222222222222222222222
client manifest "$R/test/app@$BAD" 2>/dev/null && fail "unknown digest" || ok "unknown manifest -> error"
client manifest "$R/test/nothere:v1" 2>"$T/err" && fail "unknown repo" || { grep -q "404" "$T/err" && ok "unknown repo -> 404 error" || fail "unexpected: $(cat "$T/err")"; }

# blobs
client fetch "$R/test/app" "$LD" "$LS" "$T/got" && cmp -s "$T/got" "$T/layer" && ok "fetch whole blob" || fail "fetch whole blob"
client fetch "$R/test/app" "$CD" "$LS" "$T/got" 2>/dev/null && fail "fetch with wrong size" || ok "fetch short blob -> error"
client fetch "$R/test/app" "$BAD" 10 "$T/got" 2>/dev/null && fail "fetch absent blob" || ok "fetch absent blob -> error"
range() { dd if="$T/layer" bs=1 skip="$1" count="$2" status=none; }
client pread "$R/test/app" "$LD" "$LS" 1000 5000 >"$T/got" && cmp -s "$T/got" <(range 1000 5000) && ok "pread 1000+5000" || fail "pread"
client pread "$R/test/app" "$LD" "$LS" $((LS - 7)) 7 >"$T/got" && cmp -s "$T/got" <(range $((LS - 7)) 7) && ok "pread last bytes" || fail "pread tail"
client pread "$R/test/app" "$LD" "$LS" $((LS - 7)) 8 >/dev/null 2>&1 && fail "pread past end" || ok "pread past end -> error"
client multi "$R/test/app" "$LD" "$LS" 0:100,5000:3000,1000000:4096 >"$T/got" &&
	cmp -s "$T/got" <(range 0 100; range 5000 3000; range 1000000 4096) && ok "multi-range (multipart/byteranges)" || fail "multi-range"
client check "$R/test/app" "$LD" "$T/layer" 8 100 >"$T/out" && ok "random reads, 8 threads: $(cat "$T/out")" || fail "random reads: $(cat "$T/out")"

# ---- fault-injecting proxy -------------------------------------------
PP=$(free_port)
echo pass >"$T/mode"
python3 "$PROXY" "$PP" "$PORT" "$T/mode" "$T/proxy.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$PP/v2/"
P="127.0.0.1:$PP"
fault() { echo "$1 ${2:-1}" >"$T/mode"; : >"$T/proxy.log"; }
exact() { # name, then a range read that must succeed with exact bytes
	local name=$1
	if client pread "$P/test/app" "$LD" "$LS" 12345 70000 >"$T/got" 2>"$T/err" &&
		cmp -s "$T/got" <(range 12345 70000); then ok "$name"; else fail "$name: $(cat "$T/err")"; fi
}
# connections opened ahead of a burst (registry/warm.c): N pings of the
# API root, each on a connection of its own, once per LP_REG_WARM_EVERY_MS
fault pass
client warm "$P/test/app" 3 >"$T/out" 2>"$T/err" || fail "warm: $(cat "$T/err")"
n=$(grep -c "^GET /v2/ " "$T/proxy.log" || true)
[ "$n" = 3 ] && ok "lp_reg_warm: 3 pings, the second call within 10 s none" ||
	fail "lp_reg_warm: $n pings of /v2/ (want 3): $(tr '\n' ' ' <"$T/proxy.log")"
fault reset 2; exact "connection resets retried"
fault 503 2; exact "503 retried"
fault 429 1; s=$(date +%s%N); exact "429 retried"
[ $(( ($(date +%s%N) - s) / 1000000 )) -ge 900 ] && ok "Retry-After honoured" || fail "Retry-After not honoured"
fault truncate 1; exact "truncated body retried"
fault short206 1; exact "short 206 retried"
fault ignore-range 1; exact "200 to a range sliced"
fault unterminated 1; exact "every byte in, then a reset: no retry"
n=$(grep -c "bytes=" "$T/proxy.log" || true)
[ "$n" = 1 ] && ok "a reply broken after its last byte is not asked again" ||
	fail "unterminated reply: $n range requests: $(tr '\n' ' ' <"$T/proxy.log")"
# streamed reads (the prefetch path): a retry resumes where the reply broke
# off, never re-delivering or skipping bytes
stream_exact() { # name: a streamed range read that must give exact bytes
	if client stream "$P/test/app" "$LD" "$LS" 12345 700000 >"$T/got" 2>"$T/err" &&
		cmp -s "$T/got" <(range 12345 700000) && grep -q "0 out of order, last 700000" "$T/err"; then
		ok "$1 ($(tail -1 "$T/err"))"
	else fail "$1: $(cat "$T/err")"; fi
}
resumed() { # the retry asked for the rest only
	local a
	a=$(grep -o "bytes=[0-9]*-" "$T/proxy.log" | sed -n 2p | tr -dc 0-9)
	[ -n "$a" ] && [ "$a" -gt 12345 ] && ok "$1: retry resumed at $a" || fail "$1: retry ranges $(grep -o "bytes=.*" "$T/proxy.log" | tr '\n' ' ')"
}
fault pass 0; stream_exact "streamed read"
fault truncate 1; stream_exact "streamed read, truncated body"; resumed "truncated stream"
fault short206 1; stream_exact "streamed read, short 206"; resumed "short 206 stream"
fault reset 2; stream_exact "streamed read, connection resets"
fault ignore-range 1; stream_exact "streamed read, 200 to a range sliced"
fault wrongrange 100
client stream "$P/test/app" "$LD" "$LS" 100 100 >/dev/null 2>"$T/err" && fail "streamed: shifted Content-Range accepted" ||
	ok "streamed: shifted Content-Range -> error"
fault ignore-range 1
client multi "$P/test/app" "$LD" "$LS" 10:10,100000:20 >"$T/got" && cmp -s "$T/got" <(range 10 10; range 100000 20) &&
	ok "200 to multi-range -> single ranges" || fail "200 to multi-range"
fault multi400 1
client multi "$P/test/app" "$LD" "$LS" 10:10,100000:20 >"$T/got" && cmp -s "$T/got" <(range 10 10; range 100000 20) &&
	ok "400 to multi-range -> single ranges" || fail "400 to multi-range"
fault wrongrange 100
client pread "$P/test/app" "$LD" "$LS" 100 100 >"$T/got" 2>"$T/err" && fail "shifted Content-Range accepted" ||
	{ grep -q "Content-Range" "$T/err" && ok "shifted Content-Range -> error: $(head -c 150 "$T/err")" || fail "shifted: $(cat "$T/err")"; }
fault reset 100
LP_REG_ATTEMPTS=3 client pread "$P/test/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" && fail "endless resets" ||
	{ grep -q "gave up after 3 attempts" "$T/err" && ok "bounded retries: $(head -c 150 "$T/err")" || fail "unexpected: $(cat "$T/err")"; }
fault 429 100
s=$(date +%s)
LP_REG_BUDGET_MS=2500 client pread "$P/test/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" && fail "endless 429" ||
	{ [ $(($(date +%s) - s)) -le 5 ] && ok "429 bounded by retry budget ($(($(date +%s) - s)) s)" || fail "unexpected: $(cat "$T/err")"; }
fault stall 100
s=$(date +%s)
LP_REG_LOW_SPEED_S=1 LP_REG_ATTEMPTS=2 LP_REG_TIMEOUT_MS=1500 client pread "$P/test/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" && fail "stall" ||
	{ el=$(($(date +%s) - s)); [ "$el" -le 8 ] && ok "stalled server -> error in $el s: $(head -c 120 "$T/err")" || fail "stall took $el s"; }
fault redirect 1
client multi "$P/test/app" "$LD" "$LS" 0:10,2000:10 >/dev/null 2>&1  # warm the blob's redirect cache
fault redirect 100
client check "$P/test/app" "$LD" "$T/layer" 2 20 >"$T/out" && ok "redirected blob reads: $(cat "$T/out")" || fail "redirect: $(cat "$T/out")"
n=$(grep -c "/blobs/" "$T/proxy.log" || true)
[ "$n" -le 4 ] && ok "redirect target cached ($n blob requests reached the registry for 40 reads)" || fail "redirect not cached: $n requests"
# the tail by a suffix range (the snapshotter's first read of a layer)
tail_ok() { # name, size hint, want, requests expected at most
	local name=$1 n=$3 got
	[ "$n" -gt "$LS" ] && n=$LS
	if client tail "$P/test/app" "$LD" "$2" "$3" >"$T/got" 2>"$T/err" &&
		cmp -s "$T/got" <(range $((LS - n)) "$n") && grep -qx "size $LS" "$T/err"; then
		got=$(grep -c "/blobs/" "$T/proxy.log" || true)
		[ "$got" -le "$4" ] && ok "$name ($got request(s))" || fail "$name: $got requests"
	else
		fail "$name: $(cat "$T/err")"
	fi
}
fault pass 0; tail_ok "tail: suffix range gives bytes and size" 0 100000 1
fault pass 0; tail_ok "tail longer than the blob: whole blob" 0 $((LS + 4096)) 1
fault ignore-range 1; tail_ok "tail: 200 to a suffix stopped, explicit range" 0 100000 2
fault ignore-range 1; tail_ok "tail: 200 of a blob that fits" 0 $((LS + 1)) 1
fault suffix416 1; tail_ok "tail: 416 to a suffix, size known" "$LS" 4096 2
fault suffix416 1
client tail "$P/test/app" "$LD" 0 4096 >/dev/null 2>"$T/err" && fail "tail: 416, no size" ||
	{ grep -q "does not answer a suffix range" "$T/err" && ok "tail: 416 and no size -> clear error" || fail "416: $(cat "$T/err")"; }
fault wrongrange 100
client tail "$P/test/app" "$LD" 0 4096 >"$T/got" 2>"$T/err" && fail "tail: shifted Content-Range accepted" ||
	{ grep -q "Content-Range" "$T/err" && ok "tail: shifted Content-Range -> error" || fail "tail shifted: $(cat "$T/err")"; }
fault wrongtotal 100
client tail "$P/test/app" "$LD" "$LS" 4096 >"$T/got" 2>"$T/err" && fail "tail: wrong total accepted" ||
	{ grep -q "Content-Range" "$T/err" && ok "tail: total unlike the known size -> error" || fail "tail total: $(cat "$T/err")"; }
client tail "$P/test/app" "$LD" 0 0 >/dev/null 2>&1 && fail "tail of 0 bytes" || ok "tail of 0 bytes -> error"
fault pass 0
client check "$P/test/app" "$LD" "$T/layer" 4 30 >"$T/out" && ok "through proxy: $(cat "$T/out")" || fail "proxy pass"

# ---- TLS + Basic auth ------------------------------------------------
(
	cd "$T"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=lp-test-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext.cnf 2>/dev/null
	htpasswd -Bbn alice s3cret >htpasswd 2>/dev/null
)
TPORT=$(free_port)
mkdir -p "$T/store2"
cat >"$T/reg2.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store2}}
http: {addr: 127.0.0.1:$TPORT, tls: {certificate: $T/srv.pem, key: $T/srv.key}}
auth: {htpasswd: {realm: lp-test, path: $T/htpasswd}}
YML
docker-registry serve "$T/reg2.yml" >"$T/reg2.log" 2>&1 &
PIDS+=($!)
wait_http "https://127.0.0.1:$TPORT/v2/" --cacert "$T/ca.pem"
S="127.0.0.1:$TPORT"
export LP_REG_HTTPS=1 LP_REG_CA="$T/ca.pem"
LP_REG_USER=alice LP_REG_PASS=s3cret client push-blob "$S/sec/app:v1" "$T/layer" >/dev/null && ok "TLS+Basic push" || fail "TLS+Basic push"
mkdir -p "$T/dcfg"
printf '{"auths":{"https://127.0.0.1:%s":{"auth":"%s"}}}\n' "$TPORT" "$(printf alice:s3cret | base64)" >"$T/dcfg/config.json"
DOCKER_CONFIG="$T/dcfg" client pread "$S/sec/app" "$LD" "$LS" 777 9999 >"$T/got" && cmp -s "$T/got" <(range 777 9999) &&
	ok "TLS+Basic via docker config.json" || fail "TLS+Basic docker config"
DOCKER_CONFIG="$T/nocfg" client pread "$S/sec/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" && fail "no credentials accepted" ||
	{ grep -q "needs credentials" "$T/err" && ok "no credentials -> $(cat "$T/err")" || fail "unexpected: $(cat "$T/err")"; }
LP_REG_USER=alice LP_REG_PASS=wrong client pread "$S/sec/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" && fail "wrong password accepted" ||
	{ grep -q "refused" "$T/err" && ok "wrong password -> $(cat "$T/err")" || fail "unexpected: $(cat "$T/err")"; }
LP_REG_CA=/etc/ssl/certs/ca-certificates.crt LP_REG_USER=alice LP_REG_PASS=s3cret client pread "$S/sec/app" "$LD" "$LS" 0 10 >/dev/null 2>"$T/err" &&
	fail "untrusted certificate accepted" || ok "untrusted CA -> $(head -c 120 "$T/err")"
unset LP_REG_HTTPS LP_REG_CA

# ---- Bearer token auth (auth.token + tests/integration/token_server.py) --
(
	cd "$T"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout tok.key -out tok.pem -days 1 -subj /CN=lp-token 2>/dev/null
)
KPORT=$(free_port)
BPORT=$(free_port)
python3 "$LP_SOURCE_DIR/tests/integration/token_server.py" "$KPORT" "$T/tok.key" "$T/tok.pem" "$T/token.log" alice:s3cret 1 &
PIDS+=($!)
mkdir -p "$T/store3"
cat >"$T/reg3.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store3}}
http: {addr: 127.0.0.1:$BPORT}
auth: {token: {realm: "http://127.0.0.1:$KPORT/token", service: lp-test, issuer: lp-issuer, rootcertbundle: $T/tok.pem}}
YML
docker-registry serve "$T/reg3.yml" >"$T/reg3.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BPORT/v2/"
wait_http "http://127.0.0.1:$KPORT/health"
: >"$T/token.log"
B="127.0.0.1:$BPORT"
LP_REG_USER=alice LP_REG_PASS=s3cret client push-blob "$B/tok/app:v1" "$T/layer" >/dev/null 2>"$T/err" &&
	ok "Bearer push (first token stale, refreshed on 401)" || fail "Bearer push: $(cat "$T/err")"
grep -q "stale=True" "$T/token.log" && grep -q "authed=True stale=False" "$T/token.log" && ok "stale token replaced" || fail "token log: $(cat "$T/token.log")"
: >"$T/token.log"
client check "$B/tok/app" "$LD" "$T/layer" 4 50 >"$T/out" 2>"$T/err" && ok "Bearer anonymous pull: $(cat "$T/out")" || fail "Bearer pull: $(cat "$T/err")"
n=$(grep -c token "$T/token.log" || true)
[ "$n" -le 4 ] && ok "token cached per scope ($n token requests for 200 reads)" || fail "token not cached: $n requests"
client push-blob "$B/tok/app:v1" "$T/config" >/dev/null 2>"$T/err" && fail "anonymous push allowed" ||
	{ grep -qi "token\|401\|denied\|scope" "$T/err" && ok "anonymous push refused: $(head -c 150 "$T/err")" || fail "unexpected: $(cat "$T/err")"; }

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
