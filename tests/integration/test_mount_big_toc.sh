#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A mounted layer whose TOC's digest table is big (40,000 small files, 40,000
# chunkDigests: 1.25 MiB, over LP_TOC_SPILL_MIN) keeps the table in an
# unlinked file in the mount's cache directory (docs/architecture.md,
# "Digests out of memory"), and every chunk is still verified against it:
#   - the daemon holds one deleted file under --cache-dir, and a small
#     layer's mount holds none (its digests stay in memory);
#   - every file reads back byte for byte through FUSE;
#   - a layer with two same-length gzip members swapped (both inflate; only
#     the spilled chunk digests can tell) serves every other file and
#     refuses that one (EIO), the daemon's log naming the digest mismatch.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_root "mounts"
lp_require_fuse

NDIRS=200
NFILES=200 # per directory: 40,000 chunks of 32-byte digests = 1.25 MiB
M="$T/mnt"
PID=
# the spilled table's directory: on a disk (a tmpfs keeps it in memory)
C=$(mktemp -d /var/tmp/lp-$LP_TEST.XXXXXX)
cleanup() {
	if mountpoint -q "$M" 2>/dev/null; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	fi
	[ -z "$PID" ] || wait "$PID" 2>/dev/null || true
	rm -rf "$T" "$C"
}
trap cleanup EXIT
case $(stat -f -c %T "$C") in
tmpfs | ramfs) lp_skip_or_fail "/var/tmp is memory-backed: nothing to spill to" ;;
esac

# make_tree DIR NDIRS NFILES: small files of distinct contents
make_tree() {
	python3 - "$@" <<'PY'
import os, sys
root, nd, nf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(nd):
    os.makedirs(f"{root}/d{d:03d}", exist_ok=True)
    for f in range(nf):
        with open(f"{root}/d{d:03d}/f{f:03d}.txt", "w") as fh:
            fh.write(f"file {d} {f} " * (1 + (d * f) % 7))
PY
}

# mount_bg BLOB DIGEST CACHE: a foreground daemon in the background, $PID,
# until the mount answers
mount_bg() {
	mkdir -p "$M" "$3"
	"$LAZYPULL" mount --foreground --no-prefetch --no-background-fetch \
		--cache-dir "$3" --toc-digest "$2" "$1" "$M" \
		>"$T/mount.out" 2>"$T/mount.err" &
	PID=$!
	for _ in $(seq 600); do
		mountpoint -q "$M" && return 0
		kill -0 "$PID" 2>/dev/null || { show_err "$T/mount.err"; fail "the mount of $1 exited"; }
		sleep 0.05
	done
	fail "the mount of $1 did not come up in 30 s"
}

unmount_bg() {
	fusermount3 -u "$M"
	wait "$PID" || fail "the daemon exited with an error: $(cat "$T/mount.err")"
	PID=
}

# deleted_in DIR: the daemon's descriptors of deleted files under DIR
deleted_in() {
	local n=0 f
	for f in /proc/"$PID"/fd/*; do
		case $(readlink "$f" 2>/dev/null) in
		"$1"/*"(deleted)") n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}

say "generate and convert a layer of $((NDIRS * NFILES)) small files, and one of 100"
make_tree "$T/big" "$NDIRS" "$NFILES"
make_tree "$T/small" 1 100
tar -cf "$T/big.tar" -C "$T/big" .
tar -cf "$T/small.tar" -C "$T/small" .
lp_run "$T/cv.out" "$T/cv.err" "$LAZYPULL" layer convert "$T/big.tar" "$T/big.esgz" ||
	{ show_err "$T/cv.err"; fail "convert"; }
BIG_DIGEST=$(toc_digest_of "$T/cv.out")
lp_run "$T/cv.out" "$T/cv.err" "$LAZYPULL" layer convert "$T/small.tar" "$T/small.esgz" ||
	{ show_err "$T/cv.err"; fail "convert"; }
SMALL_DIGEST=$(toc_digest_of "$T/cv.out")

say "the small layer keeps its digests in memory"
mount_bg "$T/small.esgz" "$SMALL_DIGEST" "$C/cache"
[ "$(deleted_in "$C/cache")" = 0 ] || fail "a small TOC's digests went to a file"
ok "no digest file for 100 chunks"
diff -r "$T/small" "$M" >"$T/diff" || { head -20 "$T/diff" >&2; fail "the small layer reads back different"; }
ok "the small layer reads back"
unmount_bg

say "the big layer's digests go to one unlinked file in the cache directory"
mount_bg "$T/big.esgz" "$BIG_DIGEST" "$C/cache"
[ "$(deleted_in "$C/cache")" = 1 ] || {
	ls -l /proc/"$PID"/fd >&2
	fail "no (or more than one) deleted digest file under $C/cache"
}
ok "one deleted file under the cache directory"
[ -z "$(find "$C/cache" -maxdepth 1 -name '.lazypull-digests*')" ] ||
	fail "a named digest file was left in the cache directory"
ok "nothing named left behind"
diff -r "$T/big" "$M" >"$T/diff" || { head -20 "$T/diff" >&2; fail "the big layer reads back different"; }
ok "all $((NDIRS * NFILES)) files read back byte for byte (each chunk verified against the file's digests)"
unmount_bg

say "a chunk replaced by another valid member is refused by its digest, every other file served"
# Swap two gzip members of the same compressed length whose files have the
# same size: both still inflate cleanly (no decoder error), each to the other
# file's bytes, so only the chunk digest (read back from the spilled table)
# can tell. swap_members prints "TARGET PARTNER".
swap_members() {
	toc_json "$1" >"$T/.toc.json"
	python3 - "$1" "$2" "$T/.toc.json" "$(toc_offset "$1")" <<'PY'
import json, sys
src, dst, tocf, tocoff = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
toc = json.load(open(tocf))
ents = [(e["offset"], e["name"].lstrip("./"), e["size"]) for e in toc["entries"]
        if e["type"] == "reg" and e.get("offset", 0) > 0]
starts = sorted(o for o, _, _ in ents) + [tocoff]
nxt = {starts[i]: starts[i + 1] for i in range(len(starts) - 1)}
by_shape = {}
for o, n, sz in sorted(ents):
    by_shape.setdefault((nxt[o] - o, sz), []).append((o, n))
pair = None
for o, n, sz in sorted(ents):
    if not n.startswith("d100/"):
        continue
    for po, pn in by_shape[(nxt[o] - o, sz)]:
        if pn.startswith("d0"):
            pair = ((o, n), (po, pn))
            break
    if pair:
        break
if not pair:
    sys.exit("no two members of the same length and file size")
(a, an), (b, bn) = pair
blob = bytearray(open(src, "rb").read())
ma, mb = bytes(blob[a:nxt[a]]), bytes(blob[b:nxt[b]])
assert ma != mb and len(ma) == len(mb)
blob[a:nxt[a]], blob[b:nxt[b]] = mb, ma
open(dst, "wb").write(blob)
print(an, bn)
PY
}
read -r NAME PARTNER < <(swap_members "$T/big.esgz" "$T/bad.esgz")
[ -n "${PARTNER:-}" ] || fail "no two same-length members to swap"
# the swapped member still inflates: the bytes are another file's
python3 - "$T/bad.esgz" "$(chunk_ranges "$T/bad.esgz" | awk -v n="$NAME" '$3 == n {print $1, $2}')" <<'PY' ||
import sys, zlib
start, end = map(int, sys.argv[2].split())
data = open(sys.argv[1], "rb").read()[start:end]
d = zlib.decompressobj(16 + zlib.MAX_WBITS)
d.decompress(data)
sys.exit(0 if d.eof else 1)
PY
	fail "the swapped member of $NAME does not inflate on its own"
ok "$NAME's member swapped with $PARTNER's (both valid gzip, same length)"
# the TOC is untouched; a new cache (the old one holds the good chunks)
mount_bg "$T/bad.esgz" "$BIG_DIGEST" "$C/cache2"
[ "$(deleted_in "$C/cache2")" = 1 ] || fail "the digests are not in a file"
if cat "$M/$NAME" >/dev/null 2>"$T/cat.err"; then
	fail "$NAME was served from another file's chunk"
fi
grep -q "Input/output error" "$T/cat.err" || { show_err "$T/cat.err"; fail "$NAME: not EIO"; }
ok "$NAME refused (EIO)"
NEIGH=$(dirname "$NAME")/f199.txt
[ "$NEIGH" != "$NAME" ] || NEIGH=$(dirname "$NAME")/f198.txt
cmp -s "$T/big/$NEIGH" "$M/$NEIGH" || fail "its neighbour $NEIGH is not served"
cmp -s "$T/big/d199/f199.txt" "$M/d199/f199.txt" || fail "d199/f199.txt is not served"
ok "other files served"
unmount_bg
grep -q "$NAME.*chunk digest mismatch" "$T/mount.err" || {
	show_err "$T/mount.err"
	fail "the daemon's log does not say $NAME's chunk digest mismatched"
}
grep -q "bad compressed data" "$T/mount.err" && fail "the decoder refused the chunk (the digest check was not reached)"
ok "the daemon's log: $NAME's chunk digest mismatched (no decoder error)"

done_ok
