#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull index` against Debian's docker-registry on loopback: an image of
# one plain gzip layer (the busybox-static rootfs of the other tests, gzip'ed
# by gzip(1), pushed by skopeo) is indexed; the index goes to the registry as
# a referrer of the image manifest (referrers tag schema) and, with
# --output, to a directory. Checks: the image's manifest and digest do not
# change; the referrers tag holds an OCI index naming an artifact whose
# subject is the manifest; every file, directory, link and device read back
# through the index by random access from the registry (`index extract`)
# equals GNU tar's extraction of the same tar (compare_trees.py: contents,
# types, modes, owners, mtimes, xattrs, hardlinks); one small file
# (`index cat`) fetches far less than the layer (a cold read: the layer up
# to the file's span, no more); a layer of concatenated
# gzip members and a GNU-format one (long-name records) are indexed and
# read back; --all-platforms gives every platform image a referrer and
# builds a shared layer once; the index stays under 5% of the layer. Hostile indexes (a checkpoint past the blob, a lying span digest, a
# path pointed at another file's bytes, a lying window, also at the
# checkpoint `index cat` would start at, huge counts, a 300-deep path,
# overlapping entries) and an index of another layer are refused with one
# clear error line and a non-zero exit. The referrers lookup (reg_client,
# through fault_proxy.py) asks the API and the referrers tag at once, and
# takes the API's index over the tag's when it has one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require docker-registry skopeo python3 tar gzip
lp_require_root "the busybox layer has devices, other owners and trusted.* xattrs"

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

GI="$(dirname "$0")/gzip_index.py"
COMPARE="$(dirname "$0")/compare_trees.py"
lp_start_registry

lp_push_busybox_gzip
raw() { skopeo inspect --raw --tls-verify=false "docker://$1"; }
raw "$IMG" >"$T/manifest.before"
MDIG=sha256:$(sha256sum <"$T/manifest.before" | cut -d' ' -f1)
grep -q "$LAYER" "$T/manifest.before" || fail "skopeo changed the layer (not $LAYER)"
ok "image $IMG (manifest $MDIG), one gzip layer of $LSIZE bytes"

# expect_fail WHAT PATTERN CMD...: CMD fails, one "lazypull:" line, PATTERN in it
expect_fail() {
	local what=$1 pat=$2
	shift 2
	if lp_run "$T/out" "$T/err" timeout 120 "$@"; then fail "$what: succeeded"; fi
	grep -q -- "$pat" "$T/err" || { show_err "$T/err"; fail "$what: no '$pat' in the error"; }
	[ "$(grep -c '^lazypull: ' "$T/err")" = 1 ] || { show_err "$T/err"; fail "$what: not one error line"; }
	ok "$what refused: $(grep '^lazypull: ' "$T/err" | cut -c1-170)"
}

say "lazypull index (push as a referrer)"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http "$IMG" ||
	{ show_err "$T/err"; fail "lazypull index"; }
cat "$T/out"
cp "$T/out" "$T/index.out"
grep -q "^layer=$LAYER index=sha256:" "$T/out" || fail "no index line for the layer"
grep -q "^manifest=$MDIG referrer=sha256:[0-9a-f]* via=referrers-tag" "$T/out" ||
	fail "the referrer was not pushed under the tag schema"
RATIO=$(sed -n 's/.* ratio=\([0-9.]*\)%.*/\1/p' "$T/out")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 5.0 else 1)" "$RATIO" ||
	fail "index is $RATIO% of the layer (over 5%)"
ok "index is $RATIO% of the layer"
raw "$IMG" >"$T/manifest.after"
same_file "$T/manifest.before" "$T/manifest.after" "the image manifest before and after indexing"
ok "manifest digest unchanged ($MDIG)"
TAG="sha256-${MDIG#sha256:}"
raw "$R/bb:$TAG" >"$T/referrers.json" || fail "no referrers tag $TAG"
ART=$(python3 - "$T/referrers.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
assert i["mediaType"] == "application/vnd.oci.image.index.v1+json", i
m = [e for e in i["manifests"] if e.get("artifactType") == "application/vnd.lazypull.gzip-index.v1"]
assert len(m) == 1, i
print(m[0]["digest"])
PY
) || fail "the referrers tag does not hold an index naming the artifact"
raw "$R/bb@$ART" >"$T/artifact.json" || fail "artifact manifest $ART"
python3 - "$T/artifact.json" "$MDIG" "$LAYER" <<'PY' || fail "artifact manifest"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["subject"]["digest"] == sys.argv[2], a["subject"]
assert a["artifactType"] == "application/vnd.lazypull.gzip-index.v1"
l = a["layers"][0]
assert l["annotations"]["dev.lazypull.gzip-index.layer"] == sys.argv[3], l
assert l["mediaType"] == "application/vnd.lazypull.gzip-index.v1+gzip", l
PY
ok "referrers tag $TAG -> artifact $ART (subject $MDIG)"
# the gzip transport: the pushed layer is one gzip member of the index,
# named (index=) by the sha256 of the uncompressed bytes
WIRE=$(sed -n 's/.* pushed=\(sha256:[0-9a-f]*\) .*/\1/p' "$T/index.out")
IXD=$(sed -n 's/^layer=[^ ]* index=\(sha256:[0-9a-f]*\) .*/\1/p' "$T/index.out")
grep -q "\"digest\":\"$WIRE\"" "$T/artifact.json" || fail "the artifact's layer is not pushed=$WIRE"
curl -fsS "http://$R/v2/bb/blobs/$WIRE" | gzip -dc >"$T/wire.gzidx" || fail "the pushed layer is not gzip"
[ "sha256:$(sha256sum <"$T/wire.gzidx" | cut -d' ' -f1)" = "$IXD" ] ||
	fail "the pushed layer inflates to another index than index=$IXD"
ok "the index travels gzip'ed ($(stat -c %s "$T/wire.gzidx") -> $(sed -n 's/.* pushed-size=\([0-9]*\).*/\1/p' "$T/index.out") bytes), named by its uncompressed digest"

say "the referrers API and the referrers tag asked at once; the API's index wins"
# through the fault proxy, the referrers API's request is held until the
# referrers tag's has arrived: a client that asks the tag only after the
# API's answer (serially) meets the proxy's clock instead (20 s), and the
# log says so. Then the proxy answers the API itself (an empty index, as
# a registry with the API would): that answer is taken over the tag's
# one referrer, and the second lookup of the same client asks the API
# alone (its host is known to have it).
CLIENT="$LP_BUILD_DIR/tests/reg_client"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"
PP=$(free_port)
echo "hold-until 1 /referrers/ /manifests/$TAG" >"$T/proxy.mode"
python3 "$(dirname "$0")/fault_proxy.py" "$PP" "$PORT" "$T/proxy.mode" "$T/proxy.log" \
	>"$T/proxy.out" 2>&1 &
PIDS+=($!)
wait_for 10 "the fault proxy" curl -fsS -o /dev/null "http://127.0.0.1:$PP/v2/"
IXT=application/vnd.lazypull.gzip-index.v1
lp_run "$T/out" "$T/err" timeout 60 "$CLIENT" referrers "127.0.0.1:$PP/bb" "$MDIG" "$IXT" ||
	{ show_err "$T/err"; fail "reg_client referrers"; }
grep -qx "via=tag n=1" "$T/out" && grep -qx "referrer $ART $IXT" "$T/out" ||
	fail "referrers through the proxy: $(cat "$T/out")"
grep -q "^held /v2/bb/referrers/$MDIG?artifactType=$IXT: released by /manifests/$TAG\$" "$T/proxy.log" ||
	fail "the referrers tag was not asked while the API's answer was held: $(grep '^held' "$T/proxy.log")"
ok "the referrers tag was asked while the API's answer (404) was held; the tag's index taken"
echo "referrers-api-index 1000" >"$T/proxy.mode"
t0=$(grep -c "^GET /v2/bb/manifests/$TAG " "$T/proxy.log" || true)
a0=$(grep -c "^GET /v2/bb/referrers/$MDIG " "$T/proxy.log" || true)
lp_run "$T/out" "$T/err" timeout 60 "$CLIENT" referrers "127.0.0.1:$PP/bb" "$MDIG" "" 2 ||
	{ show_err "$T/err"; fail "reg_client referrers (API)"; }
[ "$(grep -cx "via=api n=0" "$T/out")" = 2 ] || fail "the API's index did not win: $(cat "$T/out")"
t1=$(grep -c "^GET /v2/bb/manifests/$TAG " "$T/proxy.log" || true)
a1=$(grep -c "^GET /v2/bb/referrers/$MDIG " "$T/proxy.log" || true)
[ $((a1 - a0)) = 2 ] && [ $((t1 - t0)) = 1 ] ||
	fail "two lookups asked the API $((a1 - a0)) and the tag $((t1 - t0)) times (want 2 and 1)"
ok "a registry with the API: its (empty) index taken over the tag's, the tag asked by the first lookup only"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index verify --plain-http "$IMG" "$LAYER" ||
	{ show_err "$T/err"; fail "index verify of the pushed index"; }
ok "the pushed index is what the layer gives ($(cat "$T/out"))"
# --uncompressed: the old transport, the same index; the newest artifact
# (this one) is what verify reads
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http --uncompressed "$IMG" ||
	{ show_err "$T/err"; fail "lazypull index --uncompressed"; }
[ "$(sed -n 's/^layer=[^ ]* index=\(sha256:[0-9a-f]*\) .*/\1/p' "$T/out")" = "$IXD" ] ||
	fail "--uncompressed built another index: $(cat "$T/out")"
grep -q " pushed=$IXD pushed-size=" "$T/out" || fail "--uncompressed pushed another blob than the index: $(cat "$T/out")"
raw "$R/bb:$TAG" >"$T/referrers2.json" || fail "no referrers tag $TAG"
ART2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][-1]["digest"])' "$T/referrers2.json")
raw "$R/bb@$ART2" | grep -q '"mediaType":"application/vnd.lazypull.gzip-index.v1",' ||
	fail "--uncompressed: the artifact's layer is not of the plain media type"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index verify --plain-http "$IMG" "$LAYER" ||
	{ show_err "$T/err"; fail "index verify of the --uncompressed index"; }
ok "--uncompressed pushes the index as it is (plain media type); verify reads it ($(cat "$T/out"))"
# grain digests: the rebuild takes the given index's grain size (4K, none),
# and a grain digest that lies is found
for g in 4K 0; do
	lp_run "$T/out" "$T/err" "$LAZYPULL" index build --grain-size $g "$T/layer.tar.gz" "$T/g.gzidx" ||
		{ show_err "$T/err"; fail "index build --grain-size $g"; }
	lp_run "$T/out" "$T/err" "$LAZYPULL" index inspect "$T/g.gzidx" || fail "inspect --grain-size $g"
	want=$([ $g = 0 ] && echo "grain-size=0 grains=0" || echo "grain-size=4096 grains=[1-9]")
	grep -q "$want" "$T/out" || { cat "$T/out"; fail "inspect of a --grain-size $g index"; }
	lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index verify --plain-http --index "$T/g.gzidx" \
		"$IMG" "$LAYER" || { show_err "$T/err"; fail "index verify of a --grain-size $g index"; }
done
lp_run "$T/out" "$T/err" "$LAZYPULL" index build --grain-size 4K "$T/layer.tar.gz" "$T/g.gzidx" ||
	fail "index build --grain-size 4K"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[1], "wb").write(b)' \
	"$T/g.gzidx"
expect_fail "a lying grain digest (verify rebuilds)" "differs from the one the layer gives" \
	"$LAZYPULL" index verify --plain-http --index "$T/g.gzidx" "$IMG" "$LAYER"
ok "grain digests: 4K and none verify with their own grain size"

say "every entry read back through the index by random access from the registry"
mkdir -p "$T/gnu"
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$T/rootfs.tar" -C "$T/gnu" ||
	fail "GNU tar could not extract the layer"
for seed in 1 2; do
	rm -rf "$T/x"
	lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index extract --plain-http --seed $seed \
		"$IMG" "$LAYER" "$T/x" || { show_err "$T/err"; fail "index extract (seed $seed)"; }
	python3 "$COMPARE" "$T/gnu" "$T/x" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "index extract differs from GNU tar (seed $seed)"; }
	got=$(sed -n 's/.* fetched=\([0-9]*\) .*/\1/p' "$T/out")
	# each span once (a byte split between two spans twice)
	[ -n "$got" ] && [ "$got" -le $((LSIZE + 64)) ] ||
		fail "extract fetched $got bytes of a $LSIZE-byte layer"
	ok "seed $seed: every entry equals GNU tar's ($(cat "$T/out"))"
done

say "one small file fetches a span, not the layer"
lp_run "$T/hostname" "$T/err" "$LAZYPULL" index cat --plain-http "$IMG" "$LAYER" etc/hostname ||
	{ show_err "$T/err"; fail "index cat etc/hostname"; }
same_file "$T/gnu/etc/hostname" "$T/hostname" "etc/hostname through the index"
FETCHED=$(sed -n 's/^fetched=\([0-9]*\) .*/\1/p' "$T/err")
[ -n "$FETCHED" ] && [ "$FETCHED" -gt 0 ] && [ $((FETCHED * 3)) -lt "$LSIZE" ] ||
	fail "etc/hostname fetched $FETCHED bytes of a $LSIZE-byte layer (not under a third)"
ok "etc/hostname: $FETCHED of $LSIZE layer bytes fetched (default 2 MiB spans)"
lp_run "$T/busybox" "$T/err" "$LAZYPULL" index cat --plain-http "$IMG" "$LAYER" bin/busybox ||
	{ show_err "$T/err"; fail "index cat bin/busybox"; }
same_file "$T/gnu/bin/busybox" "$T/busybox" "bin/busybox (a hardlink in the tar) through the index"
ok "bin/busybox: $(cat "$T/err")"

say "--output DIR and small spans; the image named by a host only hosts.toml maps to the registry"
mkdir -p "$T/ixdir"
# nothing listens on DEAD: without --registry-config-dir the pulls fail
DEAD="127.0.0.1:$(free_port)"
mkdir -p "$T/hosts.d/$DEAD"
printf 'server = "http://%s"\n' "$R" >"$T/hosts.d/$DEAD/hosts.toml"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --span-size 256K --output "$T/ixdir" \
	--registry-config-dir "$T/hosts.d" "$DEAD/bb:v1" ||
	{ show_err "$T/err"; fail "lazypull index --output through hosts.toml"; }
IX="$T/ixdir/${LAYER#sha256:}.gzidx"
[ -s "$IX" ] || fail "no $IX"
grep -q '^manifest=' "$T/out" && fail "--output pushed a referrer"
lp_run "$T/hostname" "$T/err" "$LAZYPULL" index cat --plain-http --index-dir "$T/ixdir" "$IMG" "$LAYER" etc/hostname ||
	{ show_err "$T/err"; fail "index cat --index-dir"; }
same_file "$T/gnu/etc/hostname" "$T/hostname" "etc/hostname through the 256K index"
SMALL=$(sed -n 's/^fetched=\([0-9]*\) .*/\1/p' "$T/err")
# A new process has proven no checkpoint but the first (docs/format.md,
# "Reading"): a cold read inflates the layer from its start up to the file,
# and not a span past it.
PREFIX=$(python3 "$GI" prefix "$IX" etc/hostname) || fail "prefix of etc/hostname"
[ "$SMALL" -gt 0 ] && [ "$SMALL" -le "$PREFIX" ] && [ $((SMALL * 3)) -lt "$LSIZE" ] ||
	fail "etc/hostname fetched $SMALL bytes of $LSIZE with 256 KiB spans (not under a third, or past the $PREFIX bytes up to its span's end)"
ok "etc/hostname with 256 KiB spans: $SMALL of $LSIZE bytes (at most $PREFIX: the layer up to its span)"
rm -rf "$T/x"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index extract --plain-http --index "$IX" --seed 3 "$IMG" "$LAYER" "$T/x" ||
	{ show_err "$T/err"; fail "index extract --index (256K spans)"; }
python3 "$COMPARE" "$T/gnu" "$T/x" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "256K-span extract differs from GNU tar"; }
ok "256 KiB spans: every entry equals GNU tar's ($(cat "$T/out"))"

say "a layer of several gzip members (as parallel compressors write)"
python3 - "$T/rootfs.tar" "$T/multi.tar.gz" <<'PY'
import gzip, sys
b = open(sys.argv[1], "rb").read()
step = 700 * 1024 + 123
with open(sys.argv[2], "wb") as f:
    for i in range(0, len(b), step):
        f.write(gzip.compress(b[i:i + step], 6, mtime=0))
PY
python3 "$GI" layout "$T/multi.tar.gz" "$T/mlayout"
skopeo copy -q --dest-tls-verify=false "oci:$T/mlayout:v1" "docker://$R/multi:v1" || fail "skopeo copy (multi)"
MLAYER=$(python3 -c 'import hashlib,sys; print("sha256:"+hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$T/multi.tar.gz")
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http --span-size 128K "$R/multi:v1" ||
	{ show_err "$T/err"; fail "lazypull index of a multi-member layer"; }
rm -rf "$T/x"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index extract --plain-http --seed 4 "$R/multi:v1" "$MLAYER" "$T/x" ||
	{ show_err "$T/err"; fail "index extract (multi-member)"; }
python3 "$COMPARE" "$T/gnu" "$T/x" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "multi-member extract differs from GNU tar"; }
ok "multi-member layer: every entry equals GNU tar's"

say "a GNU-format tar (long names and link targets in 'L'/'K' records)"
g="$T/gnu-tree"
long_d=$(printf 'd%.0s' $(seq 120)) long_f=$(printf 'f%.0s' $(seq 150))
mkdir -p "$g/$long_d"
echo long >"$g/$long_d/$long_f"
ln -s "$(printf 't%.0s' $(seq 130))" "$g/longlink"
head -c 300000 "$T/rootfs.tar" >"$g/data"
ln "$g/data" "$g/$(printf 'h%.0s' $(seq 140))"
tar --format=gnu --numeric-owner -C "$g" -cf "$T/gnu.tar" . || fail "GNU tar of the long-name tree"
gzip -n <"$T/gnu.tar" >"$T/gnu.tar.gz"
python3 "$GI" layout "$T/gnu.tar.gz" "$T/glayout"
skopeo copy -q --dest-tls-verify=false "oci:$T/glayout:v1" "docker://$R/gnu:v1" || fail "skopeo copy (gnu)"
GLAYER=$(python3 -c 'import hashlib,sys; print("sha256:"+hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$T/gnu.tar.gz")
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http --span-size 64K "$R/gnu:v1" ||
	{ show_err "$T/err"; fail "lazypull index of a GNU-format layer"; }
rm -rf "$T/x" "$T/gnu-gt"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index extract --plain-http "$R/gnu:v1" "$GLAYER" "$T/x" ||
	{ show_err "$T/err"; fail "index extract (GNU format)"; }
mkdir -p "$T/gnu-gt"
tar --numeric-owner -xpf "$T/gnu.tar" -C "$T/gnu-gt" || fail "GNU tar -x of the GNU-format layer"
python3 "$COMPARE" "$T/gnu-gt" "$T/x" >"$T/cmp" 2>&1 || { cat "$T/cmp" >&2; fail "GNU-format extract differs from GNU tar"; }
ok "GNU-format layer: every entry equals GNU tar's"

say "--all-platforms: an OCI index of two platforms sharing their layers"
python3 "$LP_SOURCE_DIR/tests/integration/make_oci_image.py" "$T/multi-layout" >/dev/null
skopeo copy -q --all --dest-tls-verify=false "oci:$T/multi-layout:multi" "docker://$R/ma:v1" ||
	fail "skopeo copy --all of the multi-platform image"
raw "$R/ma:v1" >"$T/ma.before"
lp_run "$T/out" "$T/err" timeout 300 "$LAZYPULL" index --plain-http --all-platforms "$R/ma:v1" ||
	{ show_err "$T/err"; fail "lazypull index --all-platforms"; }
[ "$(grep -c '^manifest=.* via=referrers-tag' "$T/out")" = 2 ] ||
	{ cat "$T/out" >&2; fail "--all-platforms: not one referrer per platform image"; }
[ "$(grep -c ' reused=1$' "$T/out")" = 2 ] ||
	{ cat "$T/out" >&2; fail "--all-platforms: the shared layers were indexed twice"; }
grep -q 'skipped=not-gzip' "$T/out" || fail "--all-platforms: the attestation-like layer was not skipped"
raw "$R/ma:v1" >"$T/ma.after"
same_file "$T/ma.before" "$T/ma.after" "the multi-platform index before and after indexing"
for d in $(python3 -c 'import json,sys; [print(m["digest"]) for m in json.load(open(sys.argv[1]))["manifests"] if m.get("platform",{}).get("os")=="linux"]' "$T/ma.before"); do
	raw "$R/ma:sha256-${d#sha256:}" >/dev/null || fail "no referrers tag for platform manifest $d"
done
ok "--all-platforms: a referrer per platform manifest, shared layers indexed once, the index unchanged"

say "hostile indexes"
forged() { python3 "$GI" forge "$IX" "$T/forged.gzidx" "$@" || fail "forging $*"; }
CATF=("$LAZYPULL" index cat --plain-http --index "$T/forged.gzidx" "$IMG" "$LAYER")
forged blob-offset
expect_fail "a checkpoint past the blob" "past the blob" "${CATF[@]}" etc/hostname
forged span-digest etc/hostname
expect_fail "a lying span digest" "digest mismatch" "${CATF[@]}" etc/hostname
forged swap-path etc/hostname etc/passwd
expect_fail "a path pointed at another file's bytes" "names another path" "${CATF[@]}" etc/hostname
rm -rf "$T/x"
expect_fail "extract through that index" "names another path" \
	"$LAZYPULL" index extract --plain-http --index "$T/forged.gzidx" "$IMG" "$LAYER" "$T/x"
forged mode etc/hostname
expect_fail "a setuid bit the layer does not give" "mode or owner differs" "${CATF[@]}" etc/hostname
forged window
rm -rf "$T/x"
expect_fail "a lying window (extract passes every checkpoint)" "window is not the layer's" \
	"$LAZYPULL" index extract --plain-http --index "$T/forged.gzidx" "$IMG" "$LAYER" "$T/x"
expect_fail "a lying window (verify rebuilds)" "differs from the one the layer gives" \
	"$LAZYPULL" index verify --plain-http --index "$T/forged.gzidx" "$IMG" "$LAYER"
forged window-at etc/hostname
expect_fail "a lying window at the checkpoint the read starts at" "window is not the layer's" "${CATF[@]}" etc/hostname
forged window -1
rm -rf "$T/x"
expect_fail "a lying window at the last checkpoint" "window is not the layer's" \
	"$LAZYPULL" index extract --plain-http --index "$T/forged.gzidx" "$IMG" "$LAYER" "$T/x"
forged huge-files
expect_fail "a huge file count" "files (max" "${CATF[@]}" etc/hostname
forged huge-strings
expect_fail "a huge strings section" "bytes of strings" "${CATF[@]}" etc/hostname
forged deep-path
expect_fail "a 300-deep path" "components" "${CATF[@]}" etc/hostname
forged overlap
expect_fail "overlapping entries" "overlapping" "${CATF[@]}" etc/hostname
"$LAZYPULL" index build "$T/multi.tar.gz" "$T/other.gzidx" >/dev/null || fail "index build"
expect_fail "the index of another layer" "another blob" \
	"$LAZYPULL" index cat --plain-http --index "$T/other.gzidx" "$IMG" "$LAYER" etc/hostname

raw "$IMG" >"$T/manifest.end"
same_file "$T/manifest.before" "$T/manifest.end" "the image manifest at the end"
ok "manifest digest still $MDIG"
done_ok
