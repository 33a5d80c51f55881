#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull layer extract` gives the same tree as GNU tar's extraction of the
# source layer: types, modes (setuid, sticky), owners, sizes, mtimes, device
# numbers, symlink targets, hardlinks, xattrs (user.*, trusted.*,
# security.*) and contents (compare_trees.py). Checked on every vector and on
# lazypull's own eStargz and zstd:chunked conversions of a busybox rootfs.
# Whiteout files (.wh.*) are ordinary files in an extraction. One digest
# policy (lp_chunk_check) for every reader: in layers whose TOC was
# rewritten, a single-chunk file without chunkDigest whose file digest lies,
# and a file of several chunks without chunkDigests, make `layer extract`
# and `layer verify` exit 1 naming the file and the reason, and extract
# leaves DIR as it was (no partial output, no staging directory); the same
# rewrite with an honest file digest extracts like GNU tar (control).
# Needs root (owners, devices, trusted.* xattrs), as a container runtime does.
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
[ -z "$(ls -A "$T/got-bad")" ] || fail "extract of a corrupt layer left output: $(ls -A "$T/got-bad" | head -5 | tr '\n' ' ')"
ok "extract fails on a corrupt chunk of $name: $(head -1 "$T/err"), DIR left empty"

# --- one digest policy ------------------------------------------------------
# rewrite_toc IN OUT MODE: OUT is IN with its TOC rewritten (payload and
# footer unchanged: the TOC offset stays), printing the new TOC digest and
# the name of the file it changed. MODE:
#   honest  the largest single-chunk file loses its chunkDigest
#   lie     ... and its file digest becomes that of other bytes
#   multi   every chunk of the file of most chunks loses its chunkDigest
#           (its file digest stays, and is right)
rewrite_toc() {
	python3 - "$1" "$2" "$3" <<'PY'
import gzip, hashlib, io, json, sys, tarfile
src, dst, mode = sys.argv[1:4]
blob = open(src, "rb").read()
foot = blob[-51:]
assert foot[12:14] == b"SG", "not an eStargz footer"
tocoff = int(foot[16:32], 16)
tf = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob[tocoff:-51])))
toc = json.load(tf.extractfile("stargz.index.json"))
ents = toc["entries"]
files = {}
for i, e in enumerate(ents):
    if e["type"] == "reg" and e.get("size", 0) > 0:
        files[e["name"]] = [i]
        cur = e["name"]
    elif e["type"] == "chunk":
        files[cur].append(i)
if mode == "multi":
    name = max(files, key=lambda n: len(files[n]))
    assert len(files[name]) > 1, "no file of several chunks"
    for i in files[name]:
        del ents[i]["chunkDigest"]
else:
    single = [n for n in files if len(files[n]) == 1 and not ents[files[n][0]]["name"].endswith("landmark")]
    name = max(single, key=lambda n: ents[files[n][0]]["size"])
    e = ents[files[name][0]]
    assert e["digest"] == e["chunkDigest"]
    del e["chunkDigest"]
    if mode == "lie":
        e["digest"] = "sha256:" + hashlib.sha256(b"not the bytes of " + name.encode()).hexdigest()
js = json.dumps(toc, indent="\t").encode()
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
    ti = tarfile.TarInfo("stargz.index.json")
    ti.size = len(js)
    t.addfile(ti, io.BytesIO(js))
open(dst, "wb").write(blob[:tocoff] + gzip.compress(out.getvalue()) + foot)
print("sha256:" + hashlib.sha256(js).hexdigest(), name[2:] if name.startswith("./") else name)
PY
}

# no_output DIR: DIR is still there and empty, and nothing was left beside it.
no_output() {
	[ -d "$1" ] || fail "extract removed $1"
	[ -z "$(ls -A "$1")" ] || fail "failed extract left output in $1: $(ls -A "$1" | head -5 | tr '\n' ' ')"
	! ls -a "$(dirname "$1")" | grep -q "^\.$(basename "$1")\.lazypull-" ||
		fail "failed extract left its staging directory beside $1"
}

say "a rewritten TOC with an honest file digest and no chunkDigest (control)"
read -r toc name < <(rewrite_toc "$LP_VECTORS_DIR/v1-default.esgz" "$T/honest.esgz" honest)
check_extract "honest-no-chunkdigest" "$T/honest.esgz" "$T/want-v1"
lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify --toc-digest "$toc" "$T/honest.esgz" ||
	{ show_err "$T/err"; fail "verify refused $name, verified by its file digest"; }
ok "verify accepts $name by its file digest"

for mode in lie multi; do
	say "a rewritten TOC: $mode"
	read -r toc name < <(rewrite_toc "$LP_VECTORS_DIR/v1-default.esgz" "$T/$mode.esgz" $mode)
	case $mode in
	lie) why="file digest mismatch" ;;
	multi) why="no chunkDigest to verify against" ;;
	esac
	mkdir -p "$T/got-$mode"
	rc=0
	"$LAZYPULL" layer extract "$T/$mode.esgz" "$T/got-$mode" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "$mode: extract exit status $rc (expected 1)"; }
	grep -q "^lazypull: .*$name.*$why" "$T/err" ||
		{ show_err "$T/err"; fail "$mode: extract's message does not name $name and '$why'"; }
	no_output "$T/got-$mode"
	ok "$mode: extract exits 1 ($(head -1 "$T/err")), DIR untouched"
	# into a missing DIR: it is not created
	rc=0
	"$LAZYPULL" layer extract "$T/$mode.esgz" "$T/new-$mode" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] && [ ! -e "$T/new-$mode" ] || fail "$mode: extract into a missing DIR: exit $rc, DIR $(ls -d "$T/new-$mode" 2>&1)"
	ok "$mode: extract into a missing DIR exits 1 and makes nothing"
	rc=0
	"$LAZYPULL" layer verify --toc-digest "$toc" "$T/$mode.esgz" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "$mode: verify exit status $rc (expected 1)"; }
	grep -q "^lazypull: .*$name.*$why" "$T/err" ||
		{ show_err "$T/err"; fail "$mode: verify's message does not name $name and '$why'"; }
	ok "$mode: verify refuses it the same way ($(head -1 "$T/err"))"
done

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
