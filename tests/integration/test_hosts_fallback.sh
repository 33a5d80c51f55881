#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# How `lazypull mount --registry-config-dir` passes over a failing hosts.toml
# mirror for the next host (the origin, a docker-registry on loopback). The
# "mirror" is the fault-injecting proxy (fault_proxy.py) in front of the
# origin, so that each failure can be made on demand while a layer is
# mounted; every case is a fresh mount (fresh host state):
#   1. 404 to blob ranges: each read is answered from the origin at once,
#      and the mirror is asked once for that blob, not once per read (the
#      host is passed over for that blob);
#   2. 503 to every request: after the retries of one read the mirror is
#      passed over for every request (logged once), reads come from the
#      origin;
#   3. a mirror that stalls: the read ends by the timeout, then comes from
#      the origin;
#   4. bytes that do not verify (one byte of a reply inverted): never
#      wrong bytes (the read that got them is retried or fails), the mount says
#      the mirror's bytes did not verify, and every later read of the blob
#      goes to the origin (lp_blob_reject() from the chunk verifier).
# In every case, every regular file then has GNU tar's bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry
PROXY="$LP_SOURCE_DIR/tests/integration/fault_proxy.py"
PIDS=()
MOUNTS=()
cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${LP_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

lp_start_registry
ORIGIN=$R
sed -i 's/accesslog: {disabled: true}/accesslog: {disabled: false}/' "$T/reg.yml"
kill "${PIDS[0]}" && wait "${PIDS[0]}" 2>/dev/null || true
docker-registry serve "$T/reg.yml" >"$T/reg.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the origin" curl -fsS "http://$ORIGIN/v2/"
PP=$(free_port)
MIRROR="127.0.0.1:$PP"
echo pass >"$T/mode"
python3 "$PROXY" "$PP" "${ORIGIN#*:}" "$T/mode" "$T/proxy.log" &
PIDS+=($!)
wait_for 20 "the fault proxy" curl -fsS "http://$MIRROR/v2/"
fault() { echo "$1 ${2:-1}" >"$T/mode"; }

say "an eStargz image on the origin; the proxy named as its mirror"
python3 "$LP_SOURCE_DIR/tests/integration/make_snap_image.py" "$T/layout"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	--registry-config-dir "" "oci:$T/layout:two" "$ORIGIN/bb:esgz" ||
	{ show_err "$T/conv.err"; fail "lazypull convert"; }
IMG="$ORIGIN/bb:esgz"
layer0=$(layout_layer "$T/layout" two 0)
mkdir -p "$T/ref"
tar -xzf "$layer0" -C "$T/ref" || fail "GNU tar could not extract layer 0"
tree_listing "$T/ref" >"$T/ref.files"
mkdir -p "$T/certs.d/$ORIGIN"
cat >"$T/certs.d/$ORIGIN/hosts.toml" <<EOF
server = "http://$ORIGIN"
[host."http://$MIRROR"]
EOF
ok "origin $ORIGIN, mirror $MIRROR (fault proxy)"

# mount_case N [ARGS...]: mount layer 0 at $T/mntN, log in $T/logN
mount_case() {
	local n=$1
	shift
	mkdir -p "$T/mnt$n"
	MOUNTS+=("$T/mnt$n")
	lp_run "$T/out$n" "$T/err$n" "$LAZYPULL" -v mount --layer 0 \
		--registry-config-dir "$T/certs.d" --no-prefetch --no-background-fetch \
		--log-file "$T/log$n" "$@" "$IMG" "$T/mnt$n" ||
		{ show_err "$T/err$n"; fail "mount $n"; }
}
# check_files N: every regular file has GNU tar's bytes; unmount
check_files() {
	tree_listing "$T/mnt$1" >"$T/mnt$1.files"
	same_file "$T/ref.files" "$T/mnt$1.files" "file contents of mount $1 and GNU tar's extraction"
	fusermount3 -u "$T/mnt$1" || fail "fusermount3 -u"
}
# range_gets: the proxy's blob GETs of a byte range (not the tail)
range_gets() { grep -c "GET .*/blobs/sha256:[0-9a-f]*?ns=[^ ]* bytes=[0-9]" "$T/proxy.log" || true; }
# origin_reads FROM: lazypull's blob GETs at the origin from line FROM on
origin_reads() {
	tail -n +"$1" "$T/reg.log" | grep '"GET /v2/[^ ]*/blobs/sha256:' | grep -c '"lazypull/' || true
}
# daemon_log N: the mount's messages so far (stderr before it detached)
daemon_log() { cat "$T/err$1" "$T/log$1" 2>/dev/null; }

# --- 1. 404 ---------------------------------------------------------------------
say "1. the mirror answers 404 to blob ranges"
mount_case 1
: >"$T/proxy.log"
fault blob404 1000000
o0=$(($(wc -l <"$T/reg.log") + 1))
cmp "$T/mnt1/etc/passwd" "$T/ref/etc/passwd" || fail "etc/passwd through a 404 mirror"
cmp "$T/mnt1/data/big.bin" "$T/ref/data/big.bin" || fail "data/big.bin through a 404 mirror"
cmp "$T/mnt1/bin/busybox" "$T/ref/bin/busybox" || fail "bin/busybox through a 404 mirror"
n=$(range_gets)
[ "$n" = 1 ] || fail "the mirror was asked $n times for ranges of a blob it does not have (want 1)"
[ "$(origin_reads "$o0")" -ge 3 ] || fail "the reads did not go to the origin"
daemon_log 1 | grep -q "HTTP 404; the next host is asked for it" ||
	{ daemon_log 1 >&2; fail "no message about the 404"; }
check_files 1
ok "404: one request to the mirror for the blob, the reads from the origin; files match"
fault pass 0

# --- 2. 503 ---------------------------------------------------------------------
say "2. the mirror answers 503 to everything"
mount_case 2
: >"$T/proxy.log"
fault 503 1000000
cmp "$T/mnt2/etc/passwd" "$T/ref/etc/passwd" || fail "etc/passwd through a 503 mirror"
cmp "$T/mnt2/data/big.bin" "$T/ref/data/big.bin" || fail "data/big.bin through a 503 mirror"
n=$(range_gets)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "the failing mirror was asked $n times (want its retries of one read: 2)"
n=$(daemon_log 2 | grep -c "registry host http://$MIRROR failed" || true)
[ "$n" = 1 ] || { daemon_log 2 >&2; fail "the mirror's failure was logged $n times (want once)"; }
check_files 2
ok "503: passed over after one read's retries, logged once; files match"
fault pass 0

# --- 3. stall -------------------------------------------------------------------
say "3. the mirror stalls"
mount_case 3 --timeout 2
: >"$T/proxy.log"
fault stall 1000000
t0=$(date +%s)
cmp "$T/mnt3/etc/passwd" "$T/ref/etc/passwd" || fail "etc/passwd through a stalled mirror"
t=$(($(date +%s) - t0))
[ "$t" -lt 20 ] || fail "the read took $t s"
daemon_log 3 | grep -q "registry host http://$MIRROR failed" ||
	{ daemon_log 3 >&2; fail "the stalled mirror was not passed over"; }
check_files 3
ok "stall: the read came from the origin after the timeout ($t s); files match"
fault pass 0

# --- 4. bytes that do not verify -------------------------------------------------
say "4. the mirror corrupts a reply"
mount_case 4
: >"$T/proxy.log"
fault corrupt 1
o0=$(($(wc -l <"$T/reg.log") + 1))
# the corrupted byte is in the middle of the reply: inside a 4 MiB chunk
# of data/big.bin (8 MiB of random bytes, read in one request). The read
# gets the right bytes (the chunk fetch tries again, and the retry goes to
# the origin) or EIO, never wrong bytes.
rc=0
cat "$T/mnt4/data/big.bin" >"$T/got" 2>"$T/cat.err" || rc=$?
if [ $rc = 0 ]; then
	cmp -s "$T/got" "$T/ref/data/big.bin" || fail "data/big.bin read with wrong bytes"
	how="right bytes at once (retried from the origin)"
else
	grep -q "Input/output error" "$T/cat.err" || { cat "$T/cat.err" >&2; fail "corrupt: not EIO"; }
	how="EIO"
fi
wait_for 10 "a message that the mirror's bytes did not verify" \
	sh -c "cat '$T/err4' '$T/log4' | grep -q 'from $MIRROR did not verify'"
cmp "$T/mnt4/data/big.bin" "$T/ref/data/big.bin" || fail "data/big.bin on the next read"
[ "$(range_gets)" = 1 ] || fail "the mirror was asked for ranges again after its bytes did not verify"
check_files 4
[ "$(origin_reads "$o0")" -ge 1 ] || fail "no read went to the origin"
ok "corrupt: the read that got the bytes: $how; later reads from the origin only; files match"

done_ok
