#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull layer extract` gives the same tree as GNU tar's extraction of the
# source layer: types, modes (setuid, sticky), owners, sizes, mtimes, device
# numbers, symlink targets, hardlinks, xattrs (user.*, trusted.*,
# security.*) and contents (compare_trees.py). Checked on every vector and on
# lazypull's own eStargz and zstd:chunked conversions of a busybox rootfs.
# Whiteout files (.wh.*) are ordinary files in an extraction. Needs root
# (owners, devices, trusted.* xattrs), as a container runtime does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_root "extraction sets owners, makes devices and trusted.* xattrs"
COMPARE="$(dirname "$0")/compare_trees.py"
# Not layer files: landmarks and the TOC may or may not be materialised.
IGNORE=(--ignore-top .prefetch.landmark --ignore-top .no.prefetch.landmark --ignore-top stargz.index.json)

# gnu_extract SRC DIR: the expected tree.
gnu_extract() {
	mkdir -p "$2"
	tar -x --xattrs --xattrs-include='*' --same-owner -p --numeric-owner -f "$1" -C "$2" ||
		fail "GNU tar -x of $1 failed"
}

# check_extract NAME BLOB EXPECTED_DIR: extract BLOB, compare with EXPECTED_DIR.
check_extract() {
	local name=$1 blob=$2 want=$3 got="$T/got-$1"
	mkdir -p "$got"
	lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$blob" "$got" ||
		{ show_err "$T/err"; fail "$name: lazypull layer extract failed"; }
	if ! python3 "$COMPARE" "${IGNORE[@]}" "$want" "$got" >"$T/cmp"; then
		sed 's/^/    /' "$T/cmp" >&2
		fail "$name: lazypull's extraction differs from GNU tar's"
	fi
	ok "$name: extraction equals GNU tar -x ($(tail -1 "$T/cmp" | cut -d: -f1))"
	rm -rf "$got"
}

say "expected trees from GNU tar"
gnu_extract "$LP_VECTORS_DIR/v1.tar.gz" "$T/want-v1"
# Sanity: the source has what this test claims to cover.
python3 - "$T/want-v1" <<'PY' || fail "GNU tar's extraction of v1.tar.gz lacks features this test relies on"
import os, stat, sys
r = sys.argv[1]
kinds = set()
for d, ds, fs in os.walk(r):
    for n in ds + fs:
        st = os.lstat(os.path.join(d, n))
        kinds.add(stat.S_IFMT(st.st_mode))
        if os.listxattr(os.path.join(d, n), follow_symlinks=False):
            kinds.add("xattr")
        if n.startswith(".wh."):
            kinds.add("whiteout")
want = {stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, "xattr", "whiteout"}
missing = want - kinds
assert not missing, missing
PY
ok "v1.tar.gz extracts with regular files, dirs, symlinks, devices, a fifo, xattrs, whiteouts"

for v in $(lp_vectors); do
	say "vector $v"
	check_extract "$v" "$LP_VECTORS_DIR/$v.esgz" "$T/want-v1"
done

# Corrupt data must not be extracted silently: chunk digests are in the TOC.
say "extract of a blob with a corrupt chunk"
read -r start end name _ < <(chunk_ranges "$LP_VECTORS_DIR/v1-default.esgz" | awk '{print $2 - $1, $0}' |
	sort -k1,1nr | head -1 | cut -d' ' -f2-)
cp "$LP_VECTORS_DIR/v1-default.esgz" "$T/bad.esgz"
chmod u+w "$T/bad.esgz"
flip_byte "$T/bad.esgz" $((start + (end - start) / 2))
mkdir -p "$T/got-bad"
if lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$T/bad.esgz" "$T/got-bad"; then
	fail "extract succeeded although a chunk of $name is corrupt"
fi
[ -s "$T/err" ] || fail "corrupt chunk rejected without a message on stderr"
ok "extract fails on a corrupt chunk of $name: $(head -1 "$T/err")"

say "busybox rootfs"
make_busybox_rootfs "$T/busybox.tar"
gnu_extract "$T/busybox.tar" "$T/want-busybox"
for fmt in estargz zstd-chunked; do
	say "lazypull layer convert --format $fmt busybox.tar"
	lp_run "$T/meta" "$T/err" "$LAZYPULL" layer convert --format "$fmt" "$T/busybox.tar" "$T/bb-$fmt.out" ||
		{ show_err "$T/err"; fail "layer convert --format $fmt failed"; }
	check_extract "busybox-$fmt" "$T/bb-$fmt.out" "$T/want-busybox"
done

say "v1 converted by lazypull with 64 KiB chunks"
lp_run "$T/meta" "$T/err" "$LAZYPULL" layer convert --chunk-size 65536 "$LP_VECTORS_DIR/v1.tar.gz" "$T/v1-64k.out" ||
	{ show_err "$T/err"; fail "layer convert --chunk-size 65536 failed"; }
check_extract "v1-lazypull-chunk64k" "$T/v1-64k.out" "$T/want-v1"

done_ok
