#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lazypull writes what the reference reads, and reads what the reference
# writes. Each lazypull conversion (defaults, 64 KiB chunks, zstd:chunked,
# prioritised files) of the vectors' source layer and of a busybox rootfs
# built here is checked by the reference implementation's reader
# (tests/interop/estargz-ref, built into $LP_BUILD_DIR/interop): the TOC
# verifies against the toc-digest lazypull printed, every chunk verifies, and
# the file listing equals GNU tar's extraction of the source (plus the
# landmark file). `lazypull layer verify --list` must agree, and the printed
# diff-id, uncompressed-size and size must be true. Then the other way round:
# the reference converter's output of the busybox layer verifies with lazypull.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

REF=$(ref_checker)
say "reference checker: $REF"
LANDMARK_SHA=sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8

say "building the busybox rootfs layer"
make_busybox_rootfs "$T/busybox.tar"
cp "$LP_VECTORS_DIR/v1.tar.gz" "$T/v1.tar.gz"
printf '%s\n' usr/bin/tool etc/conf.d/app.conf >"$T/v1.prio"
printf '%s\n' bin/busybox bin/sh etc/passwd etc/init.d/rcS >"$T/busybox.prio"

for src in v1 busybox; do
	in="$T/$src.tar"
	[ -f "$in" ] || in="$T/$src.tar.gz"
	tar_listing "$in" >"$T/$src.listing"
	[ -s "$T/$src.listing" ] || fail "empty listing of $in"
	say "$src: GNU tar extracts $(wc -l <"$T/$src.listing") regular files"
done
# The vectors' own listing is GNU tar's plus the landmark: a check of the
# check.
{ cat "$T/v1.listing"; echo ".no.prefetch.landmark $LANDMARK_SHA"; } | sort >"$T/v1.expect"
[ -f "$LP_VECTORS_DIR/v1-default.files" ] || fail "$LP_VECTORS_DIR/v1-default.files is missing (an incomplete vector set)"
same_file "$LP_VECTORS_DIR/v1-default.files" "$T/v1.expect" "GNU tar's listing of v1.tar.gz and v1-default.files"
ok "listing of GNU tar -x v1.tar.gz matches v1-default.files"

# expect_listing SRC LANDMARK: the listing a converted SRC must give.
expect_listing() { { cat "$T/$1.listing"; echo "$2 $LANDMARK_SHA"; } | sort; }

# check_output NAME SRC FORMAT LANDMARK: checks of one lazypull output.
check_output() {
	local name=$1 src=$2 fmt=$3 landmark=$4 out="$T/$1.out" meta="$T/$1.meta"
	local toc diff usize size
	toc=$(toc_digest_of "$meta")
	diff=$(sed -n 's/^diff-id=//p' "$meta")
	usize=$(sed -n 's/^uncompressed-size=//p' "$meta")
	size=$(sed -n 's/^size=//p' "$meta")
	[ -n "$diff" ] && [ -n "$usize" ] && [ -n "$size" ] ||
		fail "$name: convert output lacks diff-id=, uncompressed-size= or size=: $(cat "$meta")"

	expect_listing "$src" "$landmark" >"$T/$name.expect"
	lp_run "$T/$name.ref" "$T/err" "$REF" verify "$out" "$toc" ||
		{ show_err "$T/err"; fail "$name: the reference reader rejects lazypull's output (toc-digest $toc)"; }
	same_file "$T/$name.expect" "$T/$name.ref" "$name: reference reader's listing and GNU tar's"
	ok "$name: reference reader verifies TOC + all chunks; listing equals GNU tar -x of $src"

	lp_run "$T/$name.list" "$T/err" "$LAZYPULL" layer verify "$out" --toc-digest "$toc" --list ||
		{ show_err "$T/err"; fail "$name: lazypull layer verify --list fails on its own output"; }
	same_file "$T/$name.expect" "$T/$name.list" "$name: lazypull verify --list and GNU tar's listing"
	ok "$name: lazypull verify --list equals the same listing"

	[ "$size" = "$(stat -c %s "$out")" ] || fail "$name: size=$size but the blob has $(stat -c %s "$out") bytes"
	local dec=gzip
	[ "$fmt" = zstd-chunked ] && dec=zstd
	read -r got_usize got_diff < <($dec -dc "$out" | python3 -c '
import hashlib, sys
h, n = hashlib.sha256(), 0
for b in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
    h.update(b); n += len(b)
print(n, "sha256:" + h.hexdigest())')
	[ "$got_diff" = "$diff" ] || fail "$name: diff-id=$diff but $dec -dc | sha256 gives $got_diff"
	[ "$got_usize" = "$usize" ] || fail "$name: uncompressed-size=$usize but $dec -dc gives $got_usize bytes"
	ok "$name: printed size, diff-id and uncompressed-size are true ($dec -dc)"

	lp_run "$T/inspect" "$T/err" "$LAZYPULL" layer inspect "$out" ||
		{ show_err "$T/err"; fail "$name: layer inspect failed"; }
	grep -Eq "^[[:space:]\"]*format[\"]?[[:space:]]*[=:][[:space:]]*\"?$fmt\"?[,[:space:]]*$" "$T/inspect" ||
		{ cat "$T/inspect" >&2; fail "$name: layer inspect does not say $fmt"; }
	ok "$name: inspect says $fmt"
}

# convert NAME SRC ARGS...: lazypull layer convert, output in $T/NAME.out.
convert() {
	local name=$1 src=$2 in
	shift 2
	in="$T/$src.tar"
	[ -f "$in" ] || in="$T/$src.tar.gz"
	say "$name: lazypull layer convert $* $(basename "$in")"
	lp_run "$T/$name.meta" "$T/err" "$LAZYPULL" layer convert "$@" "$in" "$T/$name.out" ||
		{ show_err "$T/err"; fail "$name: lazypull layer convert $* failed"; }
}

for src in v1 busybox; do
	convert "$src-default" "$src"
	check_output "$src-default" "$src" estargz .no.prefetch.landmark

	convert "$src-chunk64k" "$src" --chunk-size 65536
	check_output "$src-chunk64k" "$src" estargz .no.prefetch.landmark
	toc_json "$T/$src-chunk64k.out" | python3 -c '
import json, sys
ents = json.load(sys.stdin)["entries"]
big = [e for e in ents if e["type"] == "chunk"]
assert big, "no chunk entries with --chunk-size 65536"
assert all(e.get("chunkSize", 0) <= 65536 for e in ents if e["type"] in ("reg", "chunk")), "a chunk is over 65536 bytes"
' || fail "$src-chunk64k: TOC chunks do not follow --chunk-size 65536"
	ok "$src-chunk64k: files over 64 KiB are split into chunks of at most 65536 bytes"

	convert "$src-zstd" "$src" --format zstd-chunked
	check_output "$src-zstd" "$src" zstd-chunked .no.prefetch.landmark

	convert "$src-prio" "$src" --prioritize "$T/$src.prio"
	check_output "$src-prio" "$src" estargz .prefetch.landmark
	toc_json "$T/$src-prio.out" | python3 -c '
import json, sys
prio = [l.strip() for l in open(sys.argv[1]) if l.strip()]
names = [e["name"][2:] if e["name"].startswith("./") else e["name"]
         for e in json.load(sys.stdin)["entries"] if e["type"] != "chunk"]
lm = names.index(".prefetch.landmark")
before = set(names[:lm])
missing = [p for p in prio if p not in before]
assert not missing, "not before .prefetch.landmark: %s" % missing
assert ".no.prefetch.landmark" not in names
' "$T/$src.prio" || fail "$src-prio: prioritised files are not all before .prefetch.landmark"
	ok "$src-prio: every prioritised file comes before .prefetch.landmark"
done

say "convert --json"
lp_run "$T/json" "$T/err" "$LAZYPULL" layer convert --json "$T/busybox.tar" "$T/json.out" ||
	{ show_err "$T/err"; fail "layer convert --json failed"; }
python3 - "$T/json" "$T/json.out" >"$T/json-toc" <<'PY' || fail "convert --json did not print one JSON object with toc-digest, diff-id, uncompressed-size, size: $(cat "$T/json")"
import json, os, sys
o = json.load(open(sys.argv[1]))
assert isinstance(o, dict)
assert o["size"] == os.path.getsize(sys.argv[2]), "size"
assert o["uncompressed-size"] > 0 and o["diff-id"].startswith("sha256:")
print(o["toc-digest"])
PY
"$REF" verify "$T/json.out" "$(cat "$T/json-toc")" >/dev/null ||
	fail "the reference reader rejects the --json conversion with its printed toc-digest"
ok "convert --json prints one object; its toc-digest verifies with the reference reader"

# The other direction: the reference converter's blobs of a layer that is
# not among the vectors.
for mode in default zstd; do
	flag=()
	[ $mode = zstd ] && flag=(--zstd)
	say "reference converter ($mode) -> lazypull verify"
	"$REF" convert "${flag[@]}" "$T/busybox.tar" "$T/ref-$mode.out" >"$T/ref-$mode.meta" ||
		fail "reference converter failed on busybox.tar"
	toc=$(toc_digest_of "$T/ref-$mode.meta")
	lp_run "$T/ref-$mode.list" "$T/err" "$LAZYPULL" layer verify "$T/ref-$mode.out" --toc-digest "$toc" --list ||
		{ show_err "$T/err"; fail "lazypull rejects the reference converter's $mode blob of busybox.tar"; }
	expect_listing busybox .no.prefetch.landmark >"$T/ref.expect"
	same_file "$T/ref.expect" "$T/ref-$mode.list" "lazypull's listing of the reference $mode blob and GNU tar's"
	ok "reference $mode blob of busybox.tar: lazypull verify --list equals GNU tar's listing"
done
done_ok
