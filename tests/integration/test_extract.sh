#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull layer extract` gives the same tree as GNU tar's extraction of the
# source layer: types, modes (setuid, sticky), owners, sizes, mtimes, device
# numbers, symlink targets, hardlinks, xattrs (user.*, trusted.*,
# security.*) and contents (compare_trees.py). Checked on every vector and on
# lazypull's own eStargz and zstd:chunked conversions of a busybox rootfs.
# Whiteout files (.wh.*) are ordinary files in an extraction. Like tar -x,
# extract writes into DIR in place: into a non-empty DIR (its other files
# stay, the layer's replace theirs; two layers stack) and into a mount point.
# One digest policy for every reader: in layers whose TOC was rewritten, a
# file that nothing vouches for or whose digest lies (a single-chunk file
# with a lying file digest or no digest at all; a file of several chunks
# without chunkDigests whose file digest lies) makes `layer extract` and
# `layer verify` exit 1 naming the file and the reason, and extract leaves
# no file of that name and no temporary file; what it wrote before is
# verified. A file of several chunks without chunkDigests but with a true
# file digest (legacy writers), and a single-chunk file with a true file
# digest, extract like GNU tar and verify (controls). A signal while a
# file is written removes its temporary file.
# Needs root (owners, devices, trusted.* xattrs, a tmpfs mount), as a
# container runtime does.
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

# no_bad_output DIR NAME WANT: after a failed extract into DIR, there is no
# NAME (the file that failed), no temporary file, and every regular file
# that was written equals WANT's (it was verified before it got its name).
no_bad_output() {
	[ -d "$1" ] || fail "extract removed $1"
	[ ! -e "$1/$2" ] && [ ! -L "$1/$2" ] || fail "failed extract left $2 in $1"
	local tmps
	tmps=$(find "$1" -name '*.lazypull-*' | head -5)
	[ -z "$tmps" ] || fail "failed extract left temporary files: $tmps"
	python3 - "$1" "$3" <<'PY' || fail "failed extract left a file that differs from GNU tar's"
import filecmp, os, sys
got, want = sys.argv[1:3]
for d, ds, fs in os.walk(got):
    for n in fs:
        p = os.path.join(d, n)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        rel = os.path.relpath(p, got)
        if rel in (".prefetch.landmark", ".no.prefetch.landmark", "stargz.index.json"):
            continue  # not layer files (IGNORE)
        w = os.path.join(want, rel)
        if not os.path.isfile(w) or not filecmp.cmp(p, w, shallow=False):
            sys.exit(f"{p}: not the layer's bytes")
PY
}

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
no_bad_output "$T/got-bad" "$name" "$T/want-v1"
ok "extract fails on a corrupt chunk of $name: $(head -1 "$T/err"); no $name, no temporary file, the rest verified"

# --- one digest policy ------------------------------------------------------
# rewrite_toc IN OUT MODE: OUT is IN with its TOC rewritten (payload and
# footer unchanged: the TOC offset stays), printing the new TOC digest and
# the name of the file it changed. MODE:
#   honest  the largest single-chunk file loses its chunkDigest
#   lie     ... and its file digest becomes that of other bytes
#   none    ... and its file digest too
#   multi   every chunk of the file of most chunks loses its chunkDigest
#           (its file digest stays, and is right)
#   multilie ... and its file digest becomes that of other bytes
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
if mode in ("multi", "multilie"):
    name = max(files, key=lambda n: len(files[n]))
    assert len(files[name]) > 1, "no file of several chunks"
    for i in files[name]:
        del ents[i]["chunkDigest"]
    if mode == "multilie":
        ents[files[name][0]]["digest"] = "sha256:" + hashlib.sha256(b"not the bytes of " + name.encode()).hexdigest()
else:
    single = [n for n in files if len(files[n]) == 1 and not ents[files[n][0]]["name"].endswith("landmark")]
    name = max(single, key=lambda n: ents[files[n][0]]["size"])
    e = ents[files[name][0]]
    assert e["digest"] == e["chunkDigest"]
    del e["chunkDigest"]
    if mode == "lie":
        e["digest"] = "sha256:" + hashlib.sha256(b"not the bytes of " + name.encode()).hexdigest()
    if mode == "none":
        del e["digest"]
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

for mode in honest multi; do
	say "a rewritten TOC: $mode (control: a true file digest and no chunkDigest)"
	read -r toc name < <(rewrite_toc "$LP_VECTORS_DIR/v1-default.esgz" "$T/$mode.esgz" $mode)
	check_extract "$mode-no-chunkdigest" "$T/$mode.esgz" "$T/want-v1"
	lp_run "$T/out" "$T/err" "$LAZYPULL" layer verify --toc-digest "$toc" "$T/$mode.esgz" ||
		{ show_err "$T/err"; fail "$mode: verify refused $name, verified by its file digest"; }
	ok "$mode: verify accepts $name by its file digest"
done

for mode in lie none multilie; do
	say "a rewritten TOC: $mode"
	read -r toc name < <(rewrite_toc "$LP_VECTORS_DIR/v1-default.esgz" "$T/$mode.esgz" $mode)
	case $mode in
	lie | multilie) why="file digest mismatch" ;;
	none) why="no chunkDigest and no file digest" ;;
	esac
	mkdir -p "$T/got-$mode"
	rc=0
	"$LAZYPULL" layer extract "$T/$mode.esgz" "$T/got-$mode" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "$mode: extract exit status $rc (expected 1)"; }
	grep -q "^lazypull: .*$name.*$why" "$T/err" ||
		{ show_err "$T/err"; fail "$mode: extract's message does not name $name and '$why'"; }
	no_bad_output "$T/got-$mode" "$name" "$T/want-v1"
	ok "$mode: extract exits 1 ($(head -1 "$T/err")); no $name, no temporary file, the rest verified"
	# over an old $name: the old file stays, not replaced by unverified bytes
	rm -rf "$T/got-$mode"
	mkdir -p "$(dirname "$T/got-$mode/$name")"
	echo "the old $name" >"$T/got-$mode/$name"
	rc=0
	"$LAZYPULL" layer extract "$T/$mode.esgz" "$T/got-$mode" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "$mode: extract over an old $name: exit status $rc (expected 1)"; }
	[ "$(cat "$T/got-$mode/$name")" = "the old $name" ] || fail "$mode: the old $name was replaced"
	[ -z "$(find "$T/got-$mode" -name '*.lazypull-*')" ] || fail "$mode: a temporary file was left"
	ok "$mode: extract over an old $name exits 1 and leaves the old file"
	rc=0
	"$LAZYPULL" layer verify --toc-digest "$toc" "$T/$mode.esgz" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || { show_err "$T/err"; fail "$mode: verify exit status $rc (expected 1)"; }
	grep -q "^lazypull: .*$name.*$why" "$T/err" ||
		{ show_err "$T/err"; fail "$mode: verify's message does not name $name and '$why'"; }
	ok "$mode: verify refuses it the same way ($(head -1 "$T/err"))"
done

# --- in place, as tar -x ----------------------------------------------------
say "extract into a non-empty directory overlays it as GNU tar does"
read -r _ _ file _ < <(chunk_ranges "$LP_VECTORS_DIR/v1-default.esgz" | grep -v landmark | head -1)
read -r _ _ file2 _ < <(chunk_ranges "$LP_VECTORS_DIR/v1-default.esgz" | grep -v landmark | tail -1)
[ "$file" != "$file2" ] || fail "the vector has one file only"
mkdir -p "$T/pre/extra" "$(dirname "$T/pre/$file")" "$(dirname "$T/pre/$file2")"
echo keep >"$T/pre/extra/keep.txt"
echo "old bytes" >"$T/pre/$file"
chmod 0600 "$T/pre/$file"
echo outside >"$T/outside.txt"
ln -s "$T/outside.txt" "$T/pre/$file2"
cp -a "$T/pre" "$T/want-ov"
cp -a "$T/pre" "$T/got-ov"
tar -x --xattrs --xattrs-include='*' --same-owner -p --numeric-owner -f "$LP_VECTORS_DIR/v1.tar.gz" -C "$T/want-ov" ||
	fail "GNU tar -x into a non-empty directory failed"
lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$LP_VECTORS_DIR/v1-default.esgz" "$T/got-ov" ||
	{ show_err "$T/err"; fail "extract into a non-empty directory failed"; }
[ "$(cat "$T/got-ov/extra/keep.txt")" = keep ] || fail "extract lost a file the layer does not name"
[ "$(cat "$T/outside.txt")" = outside ] || fail "extract wrote through a symlink at $file2"
python3 "$COMPARE" "${IGNORE[@]}" "$T/want-ov" "$T/got-ov" >"$T/cmp" ||
	{ sed 's/^/    /' "$T/cmp" >&2; fail "extract into a non-empty directory differs from GNU tar's"; }
[ -z "$(find "$T/got-ov" -name '*.lazypull-*')" ] || fail "a temporary file was left"
ok "overlay equals GNU tar -x into the same tree ($(tail -1 "$T/cmp" | cut -d: -f1)): extra/keep.txt stays, $file replaced, the symlink at $file2 replaced"

say "extract into a DIR that is a symlink to a directory"
mkdir -p "$T/real"
ln -s real "$T/link"
lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$LP_VECTORS_DIR/v1-default.esgz" "$T/link" ||
	{ show_err "$T/err"; fail "extract into a symlink to a directory failed"; }
[ -L "$T/link" ] || fail "extract replaced the symlink DIR"
python3 "$COMPARE" "${IGNORE[@]}" "$T/want-v1" "$T/real" >"$T/cmp" ||
	{ sed 's/^/    /' "$T/cmp" >&2; fail "extract through a symlink DIR differs from GNU tar's"; }
ok "extract through a symlink DIR fills its target ($(tail -1 "$T/cmp" | cut -d: -f1))"

say "extract into a mount point"
mkdir -p "$T/mnt"
mount -t tmpfs -o size=64m,mode=1777 lp-test-extract "$T/mnt" || fail "cannot mount a tmpfs on $T/mnt"
trap 'umount "$T/mnt"; rm -rf "$T"' EXIT
lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$LP_VECTORS_DIR/v1-default.esgz" "$T/mnt" ||
	{ show_err "$T/err"; fail "extract into a mount point failed"; }
python3 "$COMPARE" "${IGNORE[@]}" "$T/want-v1" "$T/mnt" >"$T/cmp" ||
	{ sed 's/^/    /' "$T/cmp" >&2; fail "extract into a mount point differs from GNU tar's"; }
ok "extract into a tmpfs mount point equals GNU tar -x ($(tail -1 "$T/cmp" | cut -d: -f1); the layer's ./ gave it mode $(stat -c %a "$T/mnt"))"
umount "$T/mnt" || fail "cannot unmount $T/mnt"
trap 'rm -rf "$T"' EXIT

say "a signal while a file is written removes its temporary file"
# one large file (zeros: quick to make, 48 chunks); extract runs in short
# slices between SIGSTOPs until a temporary file shows, then gets SIGTERM
mkdir -p "$T/sig-src"
truncate -s 192M "$T/sig-src/big.zero"
tar -C "$T/sig-src" -cf "$T/sig.tar" big.zero
lp_run "$T/meta" "$T/err" "$LAZYPULL" layer convert "$T/sig.tar" "$T/sig.esgz" ||
	{ show_err "$T/err"; fail "layer convert of sig.tar failed"; }
rm -rf "$T/sig-src" "$T/sig.tar"
mkdir -p "$T/got-sig"
# stopped PID: true once PID is in state T (kill -STOP does not wait)
stopped() {
	local st
	for _ in $(seq 1000); do
		st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
		[ "$st" = T ] && return 0
		[ -n "$st" ] || return 1
		sleep 0.001
	done
	return 1
}
"$LAZYPULL" layer extract "$T/sig.esgz" "$T/got-sig" >"$T/out" 2>"$T/err" &
pid=$!
kill -STOP $pid
seen=
for _ in $(seq 2000); do
	stopped $pid || break
	seen=$(find "$T/got-sig" -name '*.lazypull-*' | head -1)
	[ -z "$seen" ] || break
	kill -CONT $pid 2>/dev/null || break
	sleep 0.005
	kill -STOP $pid 2>/dev/null || break
done
[ -n "$seen" ] || { kill -CONT $pid 2>/dev/null; wait $pid || true; fail "extract ended before its temporary file was seen"; }
kill -TERM $pid
kill -CONT $pid
rc=0
wait $pid || rc=$?
[ $rc = 143 ] || fail "extract after SIGTERM: exit status $rc (expected 143, killed by SIGTERM)"
[ -z "$(find "$T/got-sig" -name '*.lazypull-*')" ] || fail "SIGTERM left the temporary file: $(find "$T/got-sig" -name '*.lazypull-*')"
[ ! -e "$T/got-sig/big.zero" ] || fail "SIGTERM left big.zero under its name"
ok "SIGTERM while ${seen#"$T/got-sig/"} exists: extract dies, no temporary file, no big.zero"
rm -rf "$T/got-sig" "$T/sig.esgz"

say "busybox rootfs"
make_busybox_rootfs "$T/busybox.tar"
gnu_extract "$T/busybox.tar" "$T/want-busybox"
for fmt in estargz zstd-chunked; do
	say "lazypull layer convert --format $fmt busybox.tar"
	lp_run "$T/meta" "$T/err" "$LAZYPULL" layer convert --format "$fmt" "$T/busybox.tar" "$T/bb-$fmt.out" ||
		{ show_err "$T/err"; fail "layer convert --format $fmt failed"; }
	check_extract "busybox-$fmt" "$T/bb-$fmt.out" "$T/want-busybox"
done

say "two layers stacked in one directory, as two tar -x"
gnu_extract "$LP_VECTORS_DIR/v1.tar.gz" "$T/want-stack"
gnu_extract "$T/busybox.tar" "$T/want-stack"
for blob in "$LP_VECTORS_DIR/v1-default.esgz" "$T/bb-zstd-chunked.out"; do
	lp_run "$T/out" "$T/err" "$LAZYPULL" layer extract "$blob" "$T/got-stack" ||
		{ show_err "$T/err"; fail "extract of $blob onto the stack failed"; }
done
python3 "$COMPARE" "${IGNORE[@]}" "$T/want-stack" "$T/got-stack" >"$T/cmp" ||
	{ sed 's/^/    /' "$T/cmp" >&2; fail "stacked extraction differs from GNU tar's"; }
ok "v1 then busybox (zstd:chunked) in one DIR equals two GNU tar -x ($(tail -1 "$T/cmp" | cut -d: -f1))"

say "v1 converted by lazypull with 64 KiB chunks"
lp_run "$T/meta" "$T/err" "$LAZYPULL" layer convert --chunk-size 65536 "$LP_VECTORS_DIR/v1.tar.gz" "$T/v1-64k.out" ||
	{ show_err "$T/err"; fail "layer convert --chunk-size 65536 failed"; }
check_extract "v1-lazypull-chunk64k" "$T/v1-64k.out" "$T/want-v1"

done_ok
