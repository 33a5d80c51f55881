#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bearer tokens that expire while a mount lives. Debian's docker-registry
# with auth.token trusts tests/integration/token_server.py, whose tokens the
# registry refuses 5 s after they are issued; the registry sits behind the
# delay line (tests/bench/delay_proxy.py, 150 ms each way) so that
# concurrent reads overlap. `lazypull mount --layer` of the 64 KiB-chunk
# vector layer, read in 4 KiB pieces far apart (each one a registry fetch):
#   A. the reply says expires_in 5 (issued_at now): a series of reads over
#      15 s keeps working, the token renewed before it expires; after 6 s
#      idle, 8 concurrent readers of uncached files cause ONE token request
#   B. the reply lies (expires_in 300) so the client only learns of the
#      expiry from the registry's 401s: 8 concurrent readers on an expired
#      token still cause ONE token request (single flight on 401)
#   C. the token server answers 500 when the token has expired: 8
#      concurrent readers cause ONE token request (the mount makes no
#      retries), all fail with its error, and reads work again once the
#      server is back
# The token server answers 500 ms late, so that the readers of a burst
# must overlap with the one fetch.
# Every piece read is compared with GNU tar's extraction, and at the end
# every file (mount_compare.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry openssl
CLIENT="$LP_BUILD_DIR/tests/reg_client"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"

MOUNTS=()
PIDS=()
cleanup() {
	local i p
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		if mountpoint -q "${MOUNTS[i]}"; then
			fusermount3 -u "${MOUNTS[i]}" 2>/dev/null ||
				umount -l "${MOUNTS[i]}" 2>/dev/null || true
		fi
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

wait_http() { # URL: up to 10 s
	local i
	for i in $(seq 100); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	fail "server at $1 did not start"
}
# a control command to the delay proxy; prints its JSON answer
proxy_ctl() {
	python3 - "$CPORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip())
PY
}
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
tokens() { grep -c "^token " "$T/token.log" || true; }

say "token server (tokens refused 5 s after issue), registry, delay line"
(cd "$T" && openssl req -x509 -newkey rsa:2048 -nodes -keyout tok.key -out tok.pem \
	-days 1 -subj /CN=lp-token 2>/dev/null) || fail "openssl could not make the token key"
KPORT=$(free_port)
PORT=$(free_port)
PPORT=$(free_port)
CPORT=$(free_port)
echo "5 5" >"$T/ttl"
LP_TOKEN_DELAY_MS=500 LP_TOKEN_FAIL_FILE="$T/token-fail" \
	python3 "$LP_SOURCE_DIR/tests/integration/token_server.py" "$KPORT" "$T/tok.key" "$T/tok.pem" \
	"$T/token.log" alice:s3cret 0 "$T/ttl" 2>"$T/token.err" &
PIDS+=($!)
mkdir -p "$T/store"
cat >"$T/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store}}
http: {addr: 127.0.0.1:$PORT}
auth: {token: {realm: "http://127.0.0.1:$KPORT/token", service: lp-test, issuer: lp-issuer, rootcertbundle: $T/tok.pem}}
YML
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
PIDS+=($!)
python3 "$LP_SOURCE_DIR/tests/bench/delay_proxy.py" --listen "127.0.0.1:$PPORT" \
	--target "127.0.0.1:$PORT" --delay-ms 150 --control "127.0.0.1:$CPORT" 2>"$T/proxy.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT/v2/"
wait_http "http://127.0.0.1:$KPORT/health"
wait_http "http://127.0.0.1:$PPORT/v2/"
R="127.0.0.1:$PORT"

say "push the v1-chunk64k vector layer (authenticated push)"
export LP_REG_USER=alice LP_REG_PASS=s3cret
cp "$LP_VECTORS_DIR/v1-chunk64k.esgz" "$T/layer.esgz"
read -r LD LS < <("$CLIENT" push-blob "$R/lp/tok:v1" "$T/layer.esgz") || fail "push of the layer failed"
printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
	"$(dpkg --print-architecture 2>/dev/null || echo amd64)" "$(cat "$LP_VECTORS_DIR/v1-chunk64k.diff-id")" >"$T/config"
read -r CD CS < <("$CLIENT" push-blob "$R/lp/tok:v1" "$T/config") || fail "push of the config failed"
cat >"$T/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CD","size":$CS},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$LD","size":$LS,
   "annotations":{"containerd.io/snapshot/stargz/toc.digest":"$(cat "$LP_VECTORS_DIR/v1-chunk64k.toc-digest")"}}]}
JSON
"$CLIENT" push-manifest "$R/lp/tok:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null ||
	fail "push of the manifest failed"
unset LP_REG_USER LP_REG_PASS
ok "pushed $R/lp/tok:v1"

# the registry really refuses a token after 5 s (else this test proves nothing)
tok=$(curl -s "http://127.0.0.1:$KPORT/token?service=lp-test&scope=repository:lp/tok:pull" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
code=$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $tok" -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$R/v2/lp/tok/manifests/v1")
[ "$code" = 200 ] || fail "a fresh token: HTTP $code"
sleep 6
code=$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $tok" -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$R/v2/lp/tok/manifests/v1")
[ "$code" = 401 ] || fail "a 6 s old token: HTTP $code, not 401 (the registry does not expire it)"
ok "the registry accepts a token, and 401s it 6 s later"

REF="$T/ref"
mkdir -p "$REF"
tar -xzf "$LP_VECTORS_DIR/v1.tar.gz" -C "$REF" --same-owner --same-permissions \
	--numeric-owner --xattrs --xattrs-include='*' || fail "GNU tar could not extract v1.tar.gz"
# 4 KiB pieces 256 KiB apart in the big files (none at 0: a read at 0 is
# sequential and reads ahead): with 64 KiB chunks each is
# a chunk of its own, far from the others, so every read is a registry fetch
mapfile -t PIECES < <(cd "$REF" && find . -type f -size +1M -printf '%s %P\n' | sort -k2 |
	while read -r size f; do
		for ((o = 262144; o + 4096 <= size; o += 262144)); do echo "$((o / 4096)) $f"; done
	done)
[ "${#PIECES[@]}" -ge 40 ] || fail "only ${#PIECES[@]} pieces in the vector's big files"

M="$T/mnt"
mkdir -p "$M"
mount_it() { # LOG [OPTION...]
	local log=$1
	shift
	MOUNTS+=("$M")
	lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount --layer 0 --no-prefetch \
		--no-background-fetch --log-file "$log" "$@" "127.0.0.1:$PPORT/lp/tok:v1" "$M" ||
		{ show_err "$T/mount.err"; fail "mount failed"; }
	mountpoint -q "$M" || fail "$M is not a mount point"
}
umount_it() {
	fusermount3 -u "$M" || fail "fusermount3 -u $M failed"
	sleep 0.5
}
NEXT=0
piece() { # INDEX: the piece from the mount and from GNU tar's copy agree
	local blk f
	read -r blk f <<<"${PIECES[$1]}"
	cmp -s <(dd if="$M/$f" bs=4096 skip="$blk" count=1 status=none) \
		<(dd if="$REF/$f" bs=4096 skip="$blk" count=1 status=none)
}
read_one() {
	piece "$NEXT" || fail "piece ${PIECES[NEXT]} differs (or failed to read) at $(date +%T)"
	NEXT=$((NEXT + 1))
}
# N concurrent readers of the next N pieces; each must give the right bytes
burst() { # N
	local n=$1 i pids=() bad=0
	for ((i = 0; i < n; i++)); do
		piece $((NEXT + i)) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
	NEXT=$((NEXT + n))
	[ "$bad" = 0 ] || fail "$bad of $n concurrent readers failed or got wrong bytes"
}

dump_a() { cat "$M/.lazypull/stats" "$T/mnt-a.log" "$T/token.log" >&2 || true; }
say "A: expires_in 5 s, a read every second for 15 s"
mount_it "$T/mnt-a.log"
proxy_ctl reset >/dev/null
t0=$(tokens)
s=$(date +%s)
for i in $(seq 15); do
	read_one
	sleep 1
done
el=$(($(date +%s) - s))
n=$(($(tokens) - t0))
[ "$el" -ge 12 ] || fail "the series took $el s"
[ "$n" -ge 3 ] || { dump_a; fail "$n token requests in $el s of 5 s tokens: not renewed"; }
[ "$n" -le 8 ] || fail "$n token requests in $el s of 5 s tokens (about one per 4 s expected)"
# renewed before it expired: no read was refused and sent again
rr=$(jget "$(proxy_ctl stats)" range_requests)
[ "$rr" -le 15 ] || { dump_a; fail "15 reads made $rr range requests: tokens expired in use (401s)"; }
ok "15 reads over $el s, all right; $n token requests, $rr range requests (renewed before expiry, no 401)"
sleep 6 # the token has expired
proxy_ctl reset >/dev/null
t0=$(tokens)
burst 8
n=$(($(tokens) - t0))
st=$(proxy_ctl stats)
rq=$(jget "$st" range_requests)
[ "$rq" -ge 2 ] || fail "the burst made $rq range requests: the readers did not overlap"
[ "$n" = 1 ] || fail "8 concurrent readers on an expired token made $n token requests (single flight: 1)"
ok "8 concurrent readers after expiry: $rq range requests, $n token request"
umount_it

say "B: expires_in says 300 s, the registry refuses after 5 s: 401s"
echo "5 300" >"$T/ttl"
mount_it "$T/mnt-b.log"
read_one
sleep 6
proxy_ctl reset >/dev/null
t0=$(tokens)
burst 8
n=$(($(tokens) - t0))
st=$(proxy_ctl stats)
rq=$(jget "$st" requests)
rr=$(jget "$st" range_requests)
# each reader that reached the registry sent its range twice (401, again)
[ "$rr" -ge 4 ] || fail "the burst made $rr range requests ($rq requests): the readers did not overlap"
[ "$n" = 1 ] || fail "8 concurrent readers meeting 401s made $n token requests (single flight: 1)"
ok "8 concurrent readers on a token the registry refuses: $rr range requests, $n token request"
for i in $(seq 4); do
	sleep 2
	read_one
done
ok "reads after the 401 renewal go on (4 more over 8 s)"
umount_it

say "C: the token server fails (HTTP 500) when the token has expired"
echo "5 5" >"$T/ttl"
mount_it "$T/mnt-c.log" --retries 0
read_one
sleep 6 # the token has expired
touch "$T/token-fail"
t0=$(tokens)
bad=0
pids=()
for ((i = 0; i < 8; i++)); do
	piece $((NEXT + i)) &
	pids+=($!)
done
for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
NEXT=$((NEXT + 8))
n=$(($(tokens) - t0))
nf=$(grep -c "status=500" "$T/token.log" || true)
[ "$bad" = 8 ] || fail "$bad of 8 readers failed while the token server answers 500"
[ "$n" = 1 ] || { cat "$T/token.log" >&2; fail "8 concurrent readers and a failing token server: $n token requests (single flight: 1)"; }
grep -q "no token for\|fetched by another request" "$T/mnt-c.log" ||
	fail "the readers' failure does not say the token fetch failed"
rm -f "$T/token-fail"
sleep 1.5 # a failed fetch is the answer for 1 s (LP_REG_TOKEN_FAIL_HOLD_MS)
read_one
ok "8 concurrent readers, token server failing: $n token request ($nf answered 500), all 8 failed with its error; reads work again after"

say "every file against GNU tar"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$M" 4 60 >"$T/cmp.out" ||
	fail "mount differs from GNU tar's extraction"
ok "every file: $(cat "$T/cmp.out")"
umount_it
done_ok
