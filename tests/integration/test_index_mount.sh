#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull mount --index` against Debian's docker-registry on loopback: an
# image of one plain gzip layer (the busybox-static rootfs of the other
# tests, gzip'ed by gzip(1), pushed by skopeo, never converted) is indexed
# with `lazypull index --output` and its layer mounted lazily from the
# registry through the index. Checks: reading one small file fetches far
# less than the layer (the mount's /.lazypull/stats); the whole tree
# equals GNU tar's extraction of the same tar (compare_trees.py: contents,
# types, modes, owners, mtimes, xattrs, hardlinks; whiteouts in the overlay
# form every mount shows); reading every file fetches at most 1.1x the
# layer (window rule, proven-only, and proven-only while the proving pass
# runs: the span cache fetches each span once); forged indexes (a span
# digest that lies; a file table that points a path at another file's
# bytes) mount, but reading the file gives EIO, never wrong bytes; the
# proving pass (background fetch on) proves a true index whole; a forged
# window serves no wrong byte and the proving pass then poisons the mount
# (EIO, logged once); --index-proven-only reads a file with a stream from
# the layer's first byte and refuses the forged window; hostile counts and
# offsets are refused at mount time,
# as is an index of another layer.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse
lp_require docker-registry skopeo python3 tar gzip
lp_require_root "the busybox layer has devices, other owners and trusted.* xattrs"

MOUNTS=()
PIDS=()
trap lp_cleanup EXIT

GI="$(dirname "$0")/gzip_index.py"
COMPARE="$(dirname "$0")/compare_trees.py"
lp_start_registry

lp_push_busybox_gzip
mkdir -p "$T/gnu"
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$T/rootfs.tar" -C "$T/gnu" ||
	fail "GNU tar could not extract the layer"
# what a mount shows as an overlayfs lower layer (fs/lp_fs.h): .wh.NAME as a
# 0/0 character device NAME owned by root, .wh..wh..opq as the opaque xattr
python3 - "$T/gnu" <<'PY' || fail "turning the whiteouts into overlayfs form"
import os, sys
for d, dirs, files in os.walk(sys.argv[1]):
    st = os.stat(d)
    for f in files:
        p = os.path.join(d, f)
        if f == ".wh..wh..opq":
            os.unlink(p)
            os.setxattr(d, "trusted.overlay.opaque", b"y")
        elif f.startswith(".wh."):
            t = os.lstat(p)
            os.unlink(p)
            q = os.path.join(d, f[4:])
            os.mknod(q, 0o020000, os.makedev(0, 0))
            os.chown(q, 0, 0)
            os.utime(q, ns=(t.st_mtime_ns, t.st_mtime_ns))
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
ok "image $IMG, one gzip layer of $LSIZE bytes"

mkdir -p "$T/ixdir"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K --output "$T/ixdir" "$IMG" ||
	{ show_err "$T/err"; fail "lazypull index --output"; }
IX="$T/ixdir/${LAYER#sha256:}.gzidx"
[ -s "$IX" ] || fail "no $IX"
ok "indexed with 256 KiB spans: $(stat -c %s "$IX") bytes"

# lp_mount MOUNTPOINT INDEX [background] [proven-only] [cache]: mount the layer
# through INDEX, nothing fetched ahead (so the stats count what reads
# fetched); with background the background fetch (and with it the proving
# pass) on, logging to MOUNTPOINT's name .log; with proven-only
# --index-proven-only (the default), else --index-window-rule (the opt-in
# whose behaviour most of this script measures); with cache --cache-dir
# $T/cache (the spans' disk tier)
lp_mount() {
	local m=$1 ix=$2 bg=--no-background-fetch strict=(--index-window-rule) how cache=()
	for how in "${@:3}"; do
		case "$how" in
		background) bg=--log-file=$T/$(basename "$m").log ;;
		proven-only) strict=(--index-proven-only) ;;
		cache) cache=(--cache-dir "$T/cache") ;;
		esac
	done
	mkdir -p "$m"
	MOUNTS+=("$m")
	lp_run "$T/mount.out" "$T/mount.err" "$LAZYPULL" mount --plain-http --layer "$LAYER" \
		--index "$ix" --no-prefetch "$bg" "${strict[@]}" "${cache[@]}" "$IMG" "$m" ||
		{ show_err "$T/mount.err"; fail "mount on $m failed"; }
	mountpoint -q "$m" || fail "$m is not a mount point after mount returned"
}
stat_of() { # MOUNTPOINT KEY (a python expression on the stats dict s)
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1/.lazypull/stats" "$2"
}
# fetch_bound MOUNTPOINT WHAT: reading every file fetched at most 1.1x the
# layer (the issue's target). Every index reader fetches through the span
# cache, one fetch per span (test_index_fs test_one_fetch_per_span), so it
# is the layer plus the byte two spans share, once per span; the 10% are
# for a cache over its limit refetching evicted spans (64 MiB here, the
# layer 4 MiB: none) and would still catch a span fetched twice per file.
fetch_bound() {
	local got
	got=$(stat_of "$1" "s['fetched_bytes']")
	[ $((got * 10)) -le $((LSIZE * 11)) ] ||
		fail "$2: every file fetched $got bytes of a $LSIZE-byte layer (over 1.1x)"
	ok "$2: every file fetched $got bytes, $(python3 -c "print('%.3f' % ($got / $LSIZE))")x the layer (bound 1.1x)"
}
# wait_proof MOUNTPOINT: until the proving pass is over; prints its state
wait_proof() {
	local i st=running
	for i in $(seq 600); do
		st=$(stat_of "$1" "s['gzip_index']['proof']")
		[ "$st" = running ] || break
		sleep 0.1
	done
	echo "$st"
}

say "one small file through the index fetches a span or two, not the layer"
M="$T/m"
lp_mount "$M" "$IX"
[ "$(stat_of "$M" "s['fetched_bytes']")" = 0 ] || fail "the mount fetched before any read"
cat "$M/etc/hostname" >"$T/hostname" || fail "reading etc/hostname through the mount"
same_file "$T/gnu/etc/hostname" "$T/hostname" "etc/hostname through the mount"
FETCHED=$(stat_of "$M" "s['fetched_bytes']")
[ "$FETCHED" -gt 0 ] && [ $((FETCHED * 4)) -lt "$LSIZE" ] ||
	fail "etc/hostname fetched $FETCHED bytes of a $LSIZE-byte layer (not under a quarter)"
ok "etc/hostname: $FETCHED of $LSIZE layer bytes fetched ($(stat_of "$M" "s['gzip_index']['window_rereads']") window rereads)"

say "the whole tree through the mount equals GNU tar's extraction"
T0=$(date +%s.%N)
python3 "$COMPARE" "$T/gnu" "$M" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "the mounted tree differs from GNU tar's"; }
T1=$(date +%s.%N)
[ "$(stat_of "$M" "s['errors']['verify_failures']")" = 0 ] || fail "verify failures on a true index"
ok "every entry equals GNU tar's ($(stat_of "$M" "s['fetched_bytes']") bytes fetched in all, $(stat_of "$M" "s['gzip_index']['window_rereads']") window rereads, $(python3 -c "print('%.2f' % ($T1 - $T0))") s)"
fetch_bound "$M" "window rule"
lp_umount "$M"

say "forged indexes: EIO, never wrong bytes"
forged() { python3 "$GI" forge "$IX" "$T/forged.gzidx" "$@" || fail "forging $*"; }
# expect_eio MOUNT PATH WHAT
expect_eio() {
	if cat "$1/$2" >"$T/got" 2>"$T/cat.err"; then
		fail "$3: $2 read without an error"
	fi
	grep -q "Input/output error" "$T/cat.err" || { show_err "$T/cat.err"; fail "$3: not EIO"; }
	ok "$3: reading $2 gives EIO"
}
forged span-digest etc/hostname
lp_mount "$T/f1" "$T/forged.gzidx"
expect_eio "$T/f1" etc/hostname "a lying span digest"
[ "$(stat_of "$T/f1" "s['errors']['verify_failures']")" -gt 0 ] || fail "no verify failure counted"
lp_umount "$T/f1"
forged swap-path etc/hostname etc/passwd
lp_mount "$T/f2" "$T/forged.gzidx"
expect_eio "$T/f2" etc/hostname "a path pointed at another file's bytes"
lp_umount "$T/f2"

say "the proving pass: a true index proven whole, every checkpoint"
lp_mount "$T/p1" "$IX" background
[ "$(wait_proof "$T/p1")" = done ] || { cat "$T/p1.log" >&2; fail "the proving pass of a true index did not end done"; }
[ "$(stat_of "$T/p1" "s['gzip_index']['proven'] == s['gzip_index']['checkpoints']")" = True ] ||
	fail "not every checkpoint proven after the pass"
[ "$(stat_of "$T/p1" "s['gzip_index']['poisoned']")" = False ] || fail "a true index poisoned the mount"
cat "$T/p1/etc/hostname" >"$T/hostname" || fail "reading etc/hostname after the proof"
same_file "$T/gnu/etc/hostname" "$T/hostname" "etc/hostname after the proof"
ok "proven: $(stat_of "$T/p1" "s['gzip_index']['checkpoints']") checkpoints, $(stat_of "$T/p1" "s['fetched_bytes']") bytes fetched"
lp_umount "$T/p1"

say "a forged window: never a wrong byte, and the proving pass poisons the mount"
# the window of the checkpoint a read of etc/passwd starts at, its last 4 KiB
# changed: cold reads serve the layer's bytes or EIO, never others
WPATH=etc/passwd
forged window-at "$WPATH"
lp_mount "$T/f4" "$T/forged.gzidx"
if cat "$T/f4/$WPATH" >"$T/got" 2>"$T/cat.err"; then
	same_file "$T/gnu/$WPATH" "$T/got" "$WPATH through a forged window"
	ok "a forged window: $WPATH read right (the window rule read around it)"
else
	grep -q "Input/output error" "$T/cat.err" || { show_err "$T/cat.err"; fail "a forged window: not EIO"; }
	ok "a forged window: reading $WPATH gives EIO"
fi
# every file: the layer's bytes or EIO
python3 - "$T/gnu" "$T/f4" <<'PY' || fail "a forged window served a wrong byte"
import errno, os, sys
gnu, mnt = sys.argv[1:]
bad = n_eio = n_ok = 0
for d, dirs, files in os.walk(gnu):
    for f in files:
        p = os.path.join(d, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        rel = os.path.relpath(p, gnu)
        try:
            got = open(os.path.join(mnt, rel), "rb").read()
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            n_eio += 1
            continue
        if got != open(p, "rb").read():
            print("WRONG BYTES:", rel); bad += 1
        n_ok += 1
print("forged window: %d files right, %d EIO" % (n_ok, n_eio), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
lp_umount "$T/f4"
lp_mount "$T/f5" "$T/forged.gzidx" background
[ "$(wait_proof "$T/f5")" = failed ] || fail "the proving pass did not fail on a forged window"
[ "$(stat_of "$T/f5" "s['gzip_index']['poisoned']")" = True ] || fail "a forged window did not poison the mount"
expect_eio "$T/f5" etc/hostname "a poisoned mount"
expect_eio "$T/f5" etc/passwd "a poisoned mount"
[ "$(grep -c "gzip index lies" "$T/f5.log")" = 1 ] || { cat "$T/f5.log" >&2; fail "the lie not logged exactly once"; }
ok "the lie logged once: $(grep "gzip index lies" "$T/f5.log" | cut -c1-200)"
lp_umount "$T/f5"

say "--index-proven-only: reads only from proven checkpoints"
lp_mount "$T/s1" "$IX" proven-only
cat "$T/s1/etc/hostname" >"$T/hostname" || fail "reading etc/hostname through a proven-only mount"
same_file "$T/gnu/etc/hostname" "$T/hostname" "etc/hostname through a proven-only mount"
# a stream from the layer's first byte up to the span of the file's last byte
# (the header check); the chunk's span then comes from the span cache
PREFIX=$(python3 "$GI" prefix "$IX" etc/hostname)
FETCHED=$(stat_of "$T/s1" "s['fetched_bytes']")
[ $((FETCHED * 4)) -le $((PREFIX * 5)) ] && [ $((FETCHED * 10)) -ge $((PREFIX * 9)) ] ||
	fail "proven-only: etc/hostname fetched $FETCHED bytes, a stream to its span is $PREFIX"
ok "proven-only: etc/hostname fetched $FETCHED of $LSIZE layer bytes (the stream up to its span: $PREFIX)"
T0=$(date +%s.%N)
python3 "$COMPARE" "$T/gnu" "$T/s1" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "the proven-only tree differs from GNU tar's"; }
T1=$(date +%s.%N)
ok "proven-only: every entry equals GNU tar's ($(stat_of "$T/s1" "s['fetched_bytes']") bytes fetched in all, $(python3 -c "print('%.2f' % ($T1 - $T0))") s)"
fetch_bound "$T/s1" "proven-only"
lp_umount "$T/s1"
# the default as the snapshotter mounts: proven-only, the proving pass on,
# every file read while it runs; the pass and the reads share each span.
# The blob comes through a delay line (50 ms each way, and at most 64 KiB
# in flight a connection: about 1.3 MB/s), so that the pass is still
# running when the reads come: on loopback it is over first (it fetches
# the layer in one or two big requests, docs/format.md), and a layer
# nobody read while its pass ran keeps none of the pass's spans
DPROXY="$LP_SOURCE_DIR/tests/bench/delay_proxy.py"
DPORT=$(free_port)
python3 "$DPROXY" --listen "127.0.0.1:$DPORT" --target "$R" --delay-ms 50 \
	--max-inflight 65536 >"$T/delay.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the delay line" curl -fsS "http://127.0.0.1:$DPORT/v2/"
IMG="127.0.0.1:$DPORT/bb:v1" lp_mount "$T/s3" "$IX" background proven-only
python3 "$COMPARE" "$T/gnu" "$T/s3" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "the tree read during the proving pass differs from GNU tar's"; }
[ "$(wait_proof "$T/s3")" = done ] || { cat "$T/s3.log" >&2; fail "the proving pass did not end done"; }
fetch_bound "$T/s3" "proven-only with the proving pass"
# each span fetched once exactly (the pass reads every one), every other
# read of it a hit of the span cache
[ "$(stat_of "$T/s3" "s['gzip_index']['span_cache']['fetches'] == s['gzip_index']['checkpoints']")" = True ] ||
	fail "proven-only with the proving pass: $(stat_of "$T/s3" "s['gzip_index']['span_cache']") for $(stat_of "$T/s3" "s['gzip_index']['checkpoints']") spans"
# the case was exercised: readers waited for the pass, or for a fetch of it
[ "$(stat_of "$T/s3" "s['gzip_index']['span_cache']['waits'] + s['gzip_index']['span_cache']['pass_waits'] > 0")" = True ] ||
	fail "the reads did not overlap the proving pass: $(stat_of "$T/s3" "s['gzip_index']['span_cache']")"
ok "span cache: $(stat_of "$T/s3" "s['gzip_index']['span_cache']")"
lp_umount "$T/s3"

say "the spans' disk tier: after the pass every file is read from disk, and after a remount too"
# wait_written MOUNTPOINT: until the disk tier wrote every span (10 s)
wait_written() {
	local i
	for i in $(seq 100); do
		[ "$(stat_of "$1" "s['gzip_index']['span_cache']['disk_writes'] >= s['gzip_index']['checkpoints']")" = True ] && return 0
		sleep 0.1
	done
	fail "$1: the disk tier did not write every span: $(stat_of "$1" "s['gzip_index']['span_cache']")"
}
lp_mount "$T/d1" "$IX" background proven-only cache
[ "$(wait_proof "$T/d1")" = done ] || { cat "$T/d1.log" >&2; fail "the proving pass (with a cache dir) did not end done"; }
wait_written "$T/d1"
PASS_BYTES=$(stat_of "$T/d1" "s['fetched_bytes']")
python3 "$COMPARE" "$T/gnu" "$T/d1" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "the tree read after the pass (disk tier) differs from GNU tar's"; }
[ "$(stat_of "$T/d1" "s['fetched_bytes']")" = "$PASS_BYTES" ] ||
	fail "reading every file after the pass fetched $(($(stat_of "$T/d1" "s['fetched_bytes']") - PASS_BYTES)) more bytes: $(stat_of "$T/d1" "s['gzip_index']['span_cache']")"
ok "after the pass ($PASS_BYTES bytes in $(stat_of "$T/d1" "s['gzip_index']['span_cache']['pass_requests']") requests), every file read fetched 0 more bytes: $(stat_of "$T/d1" "s['gzip_index']['span_cache']")"
lp_umount "$T/d1"
lp_mount "$T/d2" "$IX" background proven-only cache
python3 "$COMPARE" "$T/gnu" "$T/d2" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "the tree read after a remount (disk tier) differs from GNU tar's"; }
[ "$(wait_proof "$T/d2")" = done ] || { cat "$T/d2.log" >&2; fail "the proving pass after a remount did not end done"; }
[ "$(stat_of "$T/d2" "s['fetched_bytes']")" = 0 ] ||
	fail "a remount on the same cache dir fetched $(stat_of "$T/d2" "s['fetched_bytes']") bytes: $(stat_of "$T/d2" "s['gzip_index']['span_cache']")"
ok "a remount: every file and the proving pass fetched 0 bytes: $(stat_of "$T/d2" "s['gzip_index']['span_cache']")"
lp_umount "$T/d2"
forged window-at "$WPATH"
lp_mount "$T/s2" "$T/forged.gzidx" proven-only
expect_eio "$T/s2" "$WPATH" "proven-only, a forged window"
lp_umount "$T/s2"

say "hostile indexes refused at mount: offsets past the blob, huge counts"
for how in blob-offset huge-files huge-strings deep-path overlap; do
	forged "$how"
	mkdir -p "$T/h-$how"
	if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --plain-http --layer "$LAYER" --index "$T/forged.gzidx" \
		--no-background-fetch "$IMG" "$T/h-$how"; then
		MOUNTS+=("$T/h-$how")
		fail "a mount through a forged index ($how) succeeded"
	fi
	grep -q "^lazypull: mount: gzip index" "$T/err" || { show_err "$T/err"; fail "$how: no clear error"; }
	ok "$how refused: $(grep '^lazypull: ' "$T/err" | cut -c1-140)"
done

gzip -n -1 <"$T/rootfs.tar" >"$T/other.tar.gz"
"$LAZYPULL" index build "$T/other.tar.gz" "$T/other.gzidx" >/dev/null ||
	fail "index build of another layer"
mkdir -p "$T/f3"
if lp_run "$T/out" "$T/err" "$LAZYPULL" mount --plain-http --layer "$LAYER" --index "$T/other.gzidx" \
	--foreground "$IMG" "$T/f3"; then
	MOUNTS+=("$T/f3")
	fail "a mount through the index of another layer succeeded"
fi
grep -q "gzip index is of layer" "$T/err" || { show_err "$T/err"; fail "no clear error for another layer's index"; }
ok "the index of another layer is refused: $(grep '^lazypull: ' "$T/err" | cut -c1-160)"
done_ok
