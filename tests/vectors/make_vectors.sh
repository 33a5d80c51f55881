#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes the eStargz test vectors into OUT_DIR with the reference converter
# (tests/interop/estargz-ref over Debian's stargz-snapshotter sources, built
# into REF_DIR by tests/interop/build.sh): the deterministic source layer
# v1.tar.gz (make_layer.py), its four conversions and, per conversion, the
# TOC digest, the diff-id and the reference reader's file listing. The
# layout is that of tests/vectors/README.md (copied into OUT_DIR), the same
# as a hand-made set passed with -DLP_VECTORS_DIR.
#
# Everything is written to a temporary directory beside OUT_DIR and renamed
# into place at the end, so OUT_DIR is either a whole set or absent; the
# last file written is OUT_DIR/.complete (the build's stamp).
#
# usage: make_vectors.sh OUT_DIR REF_DIR
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 OUT_DIR REF_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$1
refdir=$2
die() { echo "make_vectors.sh: $*" >&2; exit 1; }

# The reference converter, under the lock the integration tests take
# (tests/integration/lib.sh ref_checker) so that parallel builders agree.
mkdir -p "$refdir"
(
	flock 9
	bash "$here/../interop/build.sh" "$refdir" >/dev/null
) 9>"$refdir/.build.lock" || die "could not build the reference converter (tests/interop/build.sh)"
REF="$refdir/estargz-ref"

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

python3 "$here/make_layer.py" "$tmp/v1.tar.gz" || die "make_layer.py failed"
printf '%s\n' ./usr/bin/tool ./etc/conf.d/app.conf >"$tmp/prio.list"

# convert NAME ARGS...: v1.tar.gz -> NAME.esgz, NAME.toc-digest,
# NAME.diff-id, NAME.files (the reference reader's verify listing).
convert() {
	local name=$1 toc diff dec
	shift
	"$REF" convert "$@" "$tmp/v1.tar.gz" "$tmp/$name.esgz" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
		die "estargz-ref convert $* failed: $(cat "$tmp/$name.err")"
	# a prioritised file that is not in the layer would be a silent miss
	! grep -q 'not found' "$tmp/$name.err" || die "$name: $(cat "$tmp/$name.err")"
	toc=$(sed -n 's/^toc-digest=//p' "$tmp/$name.out")
	diff=$(sed -n 's/^diff-id=//p' "$tmp/$name.out")
	[[ $toc == sha256:* && $diff == sha256:* ]] || die "$name: no digests in $(cat "$tmp/$name.out")"
	echo "$toc" >"$tmp/$name.toc-digest"
	echo "$diff" >"$tmp/$name.diff-id"
	# independent of the converter: the sha256 of the decompressed blob
	case $name in *zstd*) dec="zstd -dc" ;; *) dec="gzip -dc" ;; esac
	[ "$diff" = "sha256:$($dec <"$tmp/$name.esgz" | sha256sum | cut -d' ' -f1)" ] ||
		die "$name: diff-id is not the sha256 of the decompressed blob"
	"$REF" verify "$tmp/$name.esgz" "$toc" >"$tmp/$name.files" 2>"$tmp/$name.err" ||
		die "estargz-ref verify $name failed: $(cat "$tmp/$name.err")"
	rm -f "$tmp/$name.out" "$tmp/$name.err"
}
convert v1-default
convert v1-chunk64k --chunk-size 65536
convert v1-prio --prioritize "$tmp/prio.list"
convert v1-zstd --zstd
rm -f "$tmp/prio.list"

# the shape the tests rely on (a generator change that loses one fails here)
grep -q '^\.prefetch\.landmark ' "$tmp/v1-prio.files" || die "v1-prio has no .prefetch.landmark"
for v in v1-default v1-chunk64k v1-zstd; do
	grep -q '^\.no\.prefetch\.landmark ' "$tmp/$v.files" || die "$v has no .no.prefetch.landmark"
done
[ "$(wc -l <"$tmp/v1-default.files")" -ge 210 ] || die "v1-default.files lists too few files"

cp "$here/README.md" "$tmp/README.md"
chmod 0755 "$tmp"
chmod 0644 "$tmp"/*
: >"$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
