#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull mount --layer ... IMAGE-REF` against Debian's docker-registry on
# loopback: an image of two vector layers (eStargz and zstd:chunked, with
# their toc.digest annotations) is pushed with our own client and mounted
# by reference; a read in the middle of a chunked file fetches only that
# chunk; every file matches GNU tar's extraction; the TOC digest comes from
# the annotation and a contradicting --toc-digest is refused. Failure
# behaviour: with the registry killed, uncached reads fail with EIO after
# bounded retries while cached files still read; once it is back, reads
# work again without a remount. Through a fault-injecting proxy, corrupted
# and truncated replies give EIO, never wrong bytes. Background fetch reads
# retryability from the error, as the registry client decided it: a blob
# that answers 404 stops it after a bounded number of requests, logged
# once; a 503 is retried with back-off (logged once, not per retry) until
# the registry answers again, and then the whole layer arrives.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry
CLIENT="$LP_BUILD_DIR/tests/reg_client"
PROXY="$LP_SOURCE_DIR/tests/integration/fault_proxy.py"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"

# Mounts, then servers, are undone on exit whatever happens.
MOUNTS=()
PIDS=()
trap lp_cleanup EXIT

PORT=$(free_port)
REG_PID=
start_registry() {
	docker-registry serve "$T/reg.yml" >>"$T/reg.log" 2>&1 &
	REG_PID=$!
	PIDS+=("$REG_PID")
	wait_http "http://127.0.0.1:$PORT/v2/"
}
stop_registry() {
	kill "$REG_PID"
	wait "$REG_PID" 2>/dev/null || true
	! curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" || fail "registry still answers"
}
mkdir -p "$T/store"
cat >"$T/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/store}}
http: {addr: 127.0.0.1:$PORT}
YML
start_registry
R="127.0.0.1:$PORT"

stat_of() { # MOUNTPOINT KEY (a python expression on the stats dict s)
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1/.lazypull/stats" "$2"
}

say "push an image of two vector layers (blobs copied, never touched in place)"
for v in v1-default v1-zstd; do
	cp "$LP_VECTORS_DIR/$v.esgz" "$T/$v.esgz"
	read -r dg size < <("$CLIENT" push-blob "$R/lp/img:v1" "$T/$v.esgz") ||
		fail "push of $v failed"
	eval "D_${v//-/_}=$dg S_${v//-/_}=$size"
done
printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s","%s"]}}' \
	"$(dpkg --print-architecture 2>/dev/null || echo amd64)" \
	"$(cat "$LP_VECTORS_DIR/v1-default.diff-id")" "$(cat "$LP_VECTORS_DIR/v1-zstd.diff-id")" >"$T/config"
read -r CD CS < <("$CLIENT" push-blob "$R/lp/img:v1" "$T/config")
TOC_GZ=$(cat "$LP_VECTORS_DIR/v1-default.toc-digest")
TOC_ZS=$(cat "$LP_VECTORS_DIR/v1-zstd.toc-digest")
ANN=containerd.io/snapshot/stargz/toc.digest
cat >"$T/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CD","size":$CS},
 "layers":[
  {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$D_v1_default","size":$S_v1_default,
   "annotations":{"$ANN":"$TOC_GZ"}},
  {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"$D_v1_zstd","size":$S_v1_zstd,
   "annotations":{"$ANN":"$TOC_ZS"}}]}
JSON
"$CLIENT" push-manifest "$R/lp/img:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null ||
	fail "push of the manifest failed"
# the same layer without its annotation
sed "s|\"annotations\":{\"$ANN\":\"$TOC_GZ\"}|\"annotations\":{}|" "$T/manifest" >"$T/manifest-noann"
"$CLIENT" push-manifest "$R/lp/img:noann" application/vnd.oci.image.manifest.v1+json "$T/manifest-noann" >/dev/null ||
	fail "push of the manifest without annotation failed"
ok "pushed 127.0.0.1:$PORT/lp/img:v1 (layers $D_v1_default, $D_v1_zstd)"

REF="$T/ref"
mkdir -p "$REF"
tar -xzf "$LP_VECTORS_DIR/v1.tar.gz" -C "$REF" --same-owner --same-permissions \
	--numeric-owner --xattrs --xattrs-include='*' || fail "GNU tar could not extract v1.tar.gz"

say "mount by reference, TOC digest from the annotation"
M="$T/mnt"
lp_mount "$M" --layer 0 --plain-http --no-prefetch --no-background-fetch \
	--retries 2 --timeout 3 --log-file "$T/mnt.log" "$R/lp/img:v1"
# a read in the middle of the 9 MiB file: its second 4 MiB chunk only
cmp <(dd if="$M/usr/lib/big.bin" bs=4096 skip=1500 count=16 status=none) \
	<(dd if="$REF/usr/lib/big.bin" bs=4096 skip=1500 count=16 status=none) ||
	fail "middle of big.bin differs"
fetched=$(stat_of "$M" 's["fetched_bytes"]')
[ "$fetched" -lt $((S_v1_default / 2)) ] || fail "a 64 KiB read fetched $fetched of $S_v1_default bytes"
ok "64 KiB from the middle of big.bin: right bytes, fetched $fetched of $S_v1_default blob bytes"
cat "$M/etc/conf.d/app.conf" "$M/usr/bin/tool" >/dev/null || fail "cannot read small files"

say "registry killed: uncached reads fail with EIO, cached ones still work"
stop_registry
s=$(date +%s%N)
if head -c 100 "$M/usr/lib/exact4m.bin" >/dev/null 2>"$T/err"; then
	fail "read uncached data with the registry down"
fi
el=$((($(date +%s%N) - s) / 1000000))
grep -q "Input/output error" "$T/err" || { cat "$T/err" >&2; fail "uncached read: not EIO"; }
[ "$el" -le 15000 ] || fail "the failing read took $el ms (--timeout 3)"
ok "uncached read -> EIO after $el ms (--retries 2 --timeout 3)"
cmp "$M/usr/bin/tool" "$REF/usr/bin/tool" || fail "cached file differs"
cmp <(dd if="$M/usr/lib/big.bin" bs=4096 skip=1500 count=16 status=none) \
	<(dd if="$REF/usr/lib/big.bin" bs=4096 skip=1500 count=16 status=none) || fail "cached range differs"
ls -lR "$M" >/dev/null || fail "metadata needs the registry"
ok "cached files, cached ranges and all metadata still served"
grep -q "exact4m.bin" "$T/mnt.log" || { cat "$T/mnt.log" >&2; fail "no log line naming the file"; }
ok "log: $(grep -m1 exact4m.bin "$T/mnt.log" | cut -c1-160)"

say "registry back: the same mount reads again"
start_registry
cmp "$M/usr/lib/exact4m.bin" "$REF/usr/lib/exact4m.bin" || fail "exact4m.bin after the registry returned"
ok "the read that failed works without a remount"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$M" 4 60 >"$T/cmp.out" ||
	fail "mount differs from GNU tar's extraction"
ok "every file vs GNU tar: $(cat "$T/cmp.out")"
[ "$(stat_of "$M" 's["errors"]["verify_failures"]')" = 0 ] || fail "verify failures"
lp_umount "$M"

say "the zstd:chunked layer by digest, read whole"
lp_mount "$M" --layer "$D_v1_zstd" --log-file "$T/mnt2.log" "$R/lp/img:v1"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$M" 4 30 >"$T/cmp.out" ||
	fail "zstd:chunked mount differs from GNU tar's extraction"
ok "layer $D_v1_zstd: $(cat "$T/cmp.out")"
lp_umount "$M"

say "TOC digest checks"
mkdir -p "$T/mnt-bad"
bad=sha256:$(printf '%064d' 0)
if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --layer 0 --toc-digest "$bad" "$R/lp/img:v1" "$T/mnt-bad"; then
	MOUNTS+=("$T/mnt-bad")
	fail "mounted with a --toc-digest contradicting the annotation"
fi
grep -q "does not match" "$T/err" || { cat "$T/err" >&2; fail "unclear error"; }
ok "--toc-digest contradicting the annotation refused: $(head -c 150 "$T/err")"
if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --layer 0 "$R/lp/img:noann" "$T/mnt-bad"; then
	MOUNTS+=("$T/mnt-bad")
	fail "mounted a layer without annotation and without --toc-digest"
fi
ok "no annotation and no --toc-digest refused: $(head -c 150 "$T/err")"
lp_mount "$M" --layer 0 --toc-digest "$TOC_GZ" "$R/lp/img:noann"
ok "no annotation, explicit --toc-digest: mounted"
lp_umount "$M"
for l in 2 sha256:$(printf '%064d' 7); do
	if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --layer "$l" "$R/lp/img:v1" "$T/mnt-bad"; then
		MOUNTS+=("$T/mnt-bad")
		fail "mounted absent layer $l"
	fi
	ok "--layer $l: $(head -c 120 "$T/err")"
done

say "fault-injecting proxy: wrong or cut bytes give EIO, never wrong data"
PP=$(free_port)
echo pass >"$T/mode"
python3 "$PROXY" "$PP" "$PORT" "$T/mode" "$T/proxy.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$PP/v2/"
fault() { echo "$1 ${2:-1}" >"$T/mode"; }
lp_mount "$M" --layer 0 --no-prefetch --no-background-fetch --retries 1 --timeout 3 \
	--log-file "$T/proxy-mnt.log" "127.0.0.1:$PP/lp/img:v1"
fault corrupt 1000
if cat "$M/usr/bin/tool" >"$T/got" 2>"$T/err"; then
	fail "read through a corrupting proxy succeeded"
fi
grep -q "Input/output error" "$T/err" || { cat "$T/err" >&2; fail "corrupt: not EIO"; }
[ "$(stat_of "$M" 's["errors"]["verify_failures"]')" -ge 1 ] || fail "no verify failure counted"
ok "corrupted reply -> EIO (chunk digest mismatch: $(grep -m1 -o 'usr/bin/tool[^"]*mismatch' "$T/proxy-mnt.log" || true))"
fault truncate 1000
if cat "$M/usr/bin/tool" >"$T/got" 2>"$T/err"; then
	fail "read through a truncating proxy succeeded"
fi
grep -q "Input/output error" "$T/err" || { cat "$T/err" >&2; fail "truncate: not EIO"; }
ok "truncated replies -> EIO after bounded retries"
fault wrongrange 1000
if cat "$M/etc/conf.d/app.conf" >"$T/got" 2>"$T/err"; then
	fail "read through a shifting proxy succeeded"
fi
ok "shifted Content-Range -> EIO"
fault pass 0
cmp "$M/usr/bin/tool" "$REF/usr/bin/tool" || fail "tool differs once the proxy behaves"
cmp "$M/etc/conf.d/app.conf" "$REF/etc/conf.d/app.conf" || fail "app.conf differs once the proxy behaves"
ok "the proxy behaves again: right bytes, same mount"
lp_umount "$M"

say "background fetch: a 404 blob stops it, a 503 is retried"
# blob GETs of byte ranges fail; the mount's suffix read (footer, TOC) passes
blob_gets() { grep -c "GET .*/blobs/$D_v1_default bytes=[0-9]" "$T/proxy.log" || true; }
bg_state() { stat_of "$M" 's["background"]["state"]'; }
: >"$T/proxy.log"
fault blob404 1000000
lp_mount "$M" --layer 0 --no-prefetch --retries 1 --timeout 3 \
	--log-file "$T/bg404.log" "127.0.0.1:$PP/lp/img:v1"
for i in $(seq 100); do
	[ "$(bg_state)" = failed ] && break
	sleep 0.1
done
[ "$(bg_state)" = failed ] || fail "background fetch of a 404 blob: state $(bg_state), not failed"
n1=$(blob_gets)
sleep 2
n2=$(blob_gets)
[ "$n1" -ge 1 ] && [ "$n1" -le 3 ] || fail "404: $n1 range requests before the background fetch stopped"
[ "$n2" = "$n1" ] || fail "404: requests went on after it stopped ($n1, then $n2)"
[ "$(stat_of "$M" 's["background"]["retries"]')" = 0 ] || fail "404 retried"
[ "$(grep -c 'background fetch stopped' "$T/bg404.log")" = 1 ] ||
	{ cat "$T/bg404.log" >&2; fail "404: not logged exactly once"; }
grep 'background fetch stopped' "$T/bg404.log" | grep -q 'HTTP 404' ||
	{ cat "$T/bg404.log" >&2; fail "404: the log line does not say HTTP 404"; }
ok "404: background fetch stopped after $n1 request(s), none in 2 s more: $(grep -m1 -o 'background fetch stopped.*' "$T/bg404.log" | cut -c1-140)"
lp_umount "$M"

: >"$T/proxy.log"
fault blob503 1000000
lp_mount "$M" --layer 0 --no-prefetch --retries 1 --timeout 3 \
	--log-file "$T/bg503.log" "127.0.0.1:$PP/lp/img:v1"
for i in $(seq 300); do
	[ "$(stat_of "$M" 's["background"]["retries"]')" -ge 3 ] && break
	sleep 0.1
done
retries=$(stat_of "$M" 's["background"]["retries"]')
[ "$retries" -ge 3 ] || fail "503: background fetch retried $retries times in 30 s"
[ "$(bg_state)" = running ] || fail "503: background state $(bg_state), not running"
n1=$(blob_gets)
[ "$n1" -ge 3 ] || fail "503: only $n1 requests"
[ "$(grep -c 'background fetch waits for the source' "$T/bg503.log")" = 1 ] ||
	{ cat "$T/bg503.log" >&2; fail "503: the outage is not logged exactly once"; }
! grep -q 'background fetch stopped' "$T/bg503.log" || fail "503: background fetch gave up"
ok "503: background fetch retried $retries times ($n1 requests), logged once"
fault pass 0
for i in $(seq 600); do
	[ "$(bg_state)" = done ] && break
	sleep 0.1
done
[ "$(bg_state)" = done ] || fail "503 over: background state $(bg_state), not done"
[ "$(stat_of "$M" 's["background"]["error"]')" = 0 ] || fail "503 over: background error"
grep -q 'background fetch resumed' "$T/bg503.log" || fail "503 over: no log line for the end of the outage"
python3 "$LP_SOURCE_DIR/tests/integration/mount_compare.py" "$REF" "$M" 4 30 >"$T/cmp.out" ||
	fail "after the 503 outage the mount differs from GNU tar's extraction"
ok "503 over: the whole layer arrived; every file vs GNU tar: $(cat "$T/cmp.out")"
lp_umount "$M"

done_ok
