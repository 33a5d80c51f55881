#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull convert` against Debian's docker-registry on loopback and OCI
# layouts: a small busybox-static image (make_oci_image.py) converted
# oci -> registry, registry -> registry and registry -> oci, to eStargz and
# zstd:chunked, one platform and all of an index. Checks with skopeo (what a
# third party sees): OCI media types, the layer annotations, config diff_ids
# equal to `lazypull layer convert`'s diff-ids, every layer verifying with
# `lazypull layer verify --toc-digest` and the reference checker, eStargz
# layers reused by a second conversion. Bad input (missing image, wrong
# platform, non-tar layer, blobs that do not match their digests, in a
# layout and served by the registry) must fail clearly and tag nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require docker-registry skopeo

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

lp_start_registry

SK=(skopeo --override-os linux --override-arch amd64)
# convert ARGS...: lazypull convert, output in $T/out, stderr in $T/err
convert() { lp_run "$T/out" "$T/err" timeout 120 "$LAZYPULL" convert "$@"; }
# raw REF: the manifest (or index) skopeo sees
raw() { "${SK[@]}" inspect --raw --tls-verify=false "docker://$1"; }
# fetch_blob REPO DIGEST FILE
fetch_blob() { curl -sf -o "$3" "http://$R/v2/$1/blobs/$2" || fail "GET blob $2 from $1"; }
# no_tag REPO TAG: nothing is tagged
no_tag() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/$2")
	[ "$code" = 404 ] || fail "$1:$2 exists after a failed conversion (HTTP $code)"
}
# expect_fail WHAT PATTERN ARGS...: convert must fail with PATTERN in stderr
expect_fail() {
	local what=$1 pat=$2
	shift 2
	if convert "$@"; then fail "$what: converted"; fi
	grep -q -- "$pat" "$T/err" || { show_err "$T/err"; fail "$what: no '$pat' in the error"; }
	[ "$(grep -c '^lazypull: ' "$T/err")" = 1 ] || { show_err "$T/err"; fail "$what: not one error line"; }
	ok "$what: $(grep '^lazypull: ' "$T/err" | cut -c1-160)"
}

REF=$(ref_checker)

say "building the test image (busybox-static, 2 layers) as an OCI layout"
mkdir -p "$T/src"
python3 "$LP_SOURCE_DIR/tests/integration/make_oci_image.py" "$T/src/layout"
SRC="$T/src/layout"
for i in 1 2; do
	"$LAZYPULL" layer convert "$T/src/layer$i.tar.gz" "$T/src/layer$i.esgz" >"$T/src/layer$i.kv"
	"$LAZYPULL" layer convert --format zstd-chunked "$T/src/layer$i.tar.gz" "$T/src/layer$i.zck" >"$T/src/layer$i.zkv"
done
DIFF1=$(sed -n 's/^diff-id=//p' "$T/src/layer1.kv")
DIFF2=$(sed -n 's/^diff-id=//p' "$T/src/layer2.kv")
ZDIFF1=$(sed -n 's/^diff-id=//p' "$T/src/layer1.zkv")
ZDIFF2=$(sed -n 's/^diff-id=//p' "$T/src/layer2.zkv")

# check_image REF FORMAT DIFF1 DIFF2: manifest, annotations, diff_ids, and
# every layer verified by us and by the reference checker
check_image() {
	local ref=$1 fmt=$2 d1=$3 d2=$4 repo=${1#*/}
	repo=${repo%%[:@]*}
	raw "$ref" >"$T/m.json" || fail "skopeo inspect $ref"
	"${SK[@]}" inspect --config --raw --tls-verify=false "docker://$ref" >"$T/c.json" ||
		fail "skopeo inspect --config $ref"
	python3 - "$T/m.json" "$T/c.json" "$fmt" "$d1" "$d2" >"$T/layers" <<'PY' || fail "$ref: manifest/config check"
import json, sys
m = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); fmt = sys.argv[3]
assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", m["mediaType"]
assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
want_mt = "application/vnd.oci.image.layer.v1.tar+" + ("zstd" if fmt == "zstd-chunked" else "gzip")
assert c["rootfs"]["diff_ids"] == sys.argv[4:6], (c["rootfs"]["diff_ids"], sys.argv[4:6])
assert c["config"]["Labels"]["org.example.big"] == 12345678901234 and c["history"][1]["created_by"] == "motd </etc>"
for l in m["layers"]:
    a = l["annotations"]
    assert l["mediaType"] == want_mt, l["mediaType"]
    assert a["containerd.io/snapshot/stargz/toc.digest"].startswith("sha256:")
    assert int(a["io.containers.estargz.uncompressed-size"]) > 0
    if fmt == "zstd-chunked":
        assert a["io.containers.zstd-chunked.manifest-checksum"].startswith("sha256:")
        assert len(a["io.containers.zstd-chunked.manifest-position"].split(":")) == 4
    print(l["digest"], a["containerd.io/snapshot/stargz/toc.digest"], a["io.containers.estargz.uncompressed-size"])
PY
	local n=0 dig toc usize
	while read -r dig toc usize; do
		n=$((n + 1))
		fetch_blob "$repo" "$dig" "$T/blob"
		"$LAZYPULL" layer verify --toc-digest "$toc" "$T/blob" >/dev/null 2>"$T/verr" ||
			{ show_err "$T/verr"; fail "$ref layer $n: lazypull layer verify"; }
		if [ -n "$REF" ] && [ "$fmt" = estargz ]; then
			"$REF" verify "$T/blob" "$toc" >/dev/null 2>"$T/verr" ||
				{ show_err "$T/verr"; fail "$ref layer $n: reference checker"; }
		fi
		[ "$(gzip -dc <"$T/blob" 2>/dev/null | wc -c)" = "$usize" ] || [ "$fmt" != estargz ] ||
			fail "$ref layer $n: uncompressed-size annotation"
	done <"$T/layers"
	[ "$n" = 2 ] || fail "$ref: $n layers"
}

say "oci -> registry (Docker media types in, OCI out)"
convert "oci:$SRC:v1" "$R/conv/busybox:esgz" || { show_err "$T/err"; fail "oci -> registry"; }
grep -q '^converted=2$' "$T/out" && grep -q '^reused=0$' "$T/out" || fail "summary: $(cat "$T/out")"
grep -q 'layer 2/2 sha256:.* done' "$T/err" || { show_err "$T/err"; fail "no per-layer progress lines"; }
grep -q 'in [0-9.]* s$' "$T/err" || fail "no summary line"
check_image "$R/conv/busybox:esgz" estargz "$DIFF1" "$DIFF2"
ok "oci -> registry: annotations, diff_ids = layer convert's, layers verify${REF:+ (and with estargz-ref)}"
cp "$T/layers" "$T/layers.esgz"
SECS=$(sed -n 's/^seconds=//p' "$T/out")

say "registry -> registry"
skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$SRC:ocigz" "docker://$R/src/busybox:v1" ||
	fail "skopeo copy to the registry"
raw "$R/src/busybox:v1" | grep -q 'application/vnd.docker.image.rootfs.diff.tar.gzip' || fail "source not in Docker media types"
convert --jobs 1 "$R/src/busybox:v1" "$R/conv/busybox:r2r" || { show_err "$T/err"; fail "registry -> registry"; }
check_image "$R/conv/busybox:r2r" estargz "$DIFF1" "$DIFF2"
cmp -s "$T/layers" "$T/layers.esgz" || fail "registry -> registry gave other layers than oci -> registry"
ok "registry -> registry: same layers as oci -> registry (deterministic)"

say "already eStargz: reused, not reconverted"
convert "$R/conv/busybox:esgz" "$R/conv2/busybox:again" || { show_err "$T/err"; fail "second conversion"; }
grep -q '^reused=2$' "$T/out" && grep -q '^converted=0$' "$T/out" || fail "not reused: $(cat "$T/out")"
check_image "$R/conv2/busybox:again" estargz "$DIFF1" "$DIFF2"
cmp -s "$T/layers" "$T/layers.esgz" || fail "reused layers changed"
ok "second conversion reused both layers (same digests, cross-repository)"

say "registry -> oci"
convert "$R/src/busybox:v1" "oci:$T/outlayout:conv" || { show_err "$T/err"; fail "registry -> oci"; }
"${SK[@]}" inspect --raw "oci:$T/outlayout:conv" >"$T/m2.json" || fail "skopeo cannot read the layout we wrote"
python3 - "$T/m2.json" "$T/layers.esgz" <<'PY' || fail "registry -> oci layers differ"
import json, sys
m = json.load(open(sys.argv[1]))
got = [l["digest"] for l in m["layers"]]
want = [l.split()[0] for l in open(sys.argv[2])]
assert got == want, (got, want)
PY
skopeo copy -q --dest-tls-verify=false "oci:$T/outlayout:conv" "docker://$R/conv/fromlayout:v1" ||
	fail "skopeo copy of our layout"
check_image "$R/conv/fromlayout:v1" estargz "$DIFF1" "$DIFF2"
ok "registry -> oci: skopeo reads it; same layers; annotations survive a skopeo copy"

say "zstd:chunked, OCI source with a plain tar layer"
convert --format zstd-chunked "oci:$SRC:oci" "$R/conv/busybox:zstd" || { show_err "$T/err"; fail "zstd-chunked"; }
check_image "$R/conv/busybox:zstd" zstd-chunked "$ZDIFF1" "$ZDIFF2"
python3 - "$T/m.json" <<'PY' || fail "manifest/layer annotations of the source not kept"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["annotations"]["org.opencontainers.image.title"] == "busybox"
assert m["layers"][1]["annotations"]["org.example.layer"] == "second"
PY
ok "zstd:chunked: +zstd media type, manifest-checksum/position, layers verify; other annotations kept"

say "multi-platform index"
convert --all-platforms "oci:$SRC:multi" "$R/conv/multi:all" || { show_err "$T/err"; fail "--all-platforms"; }
grep -q '^platforms=2$' "$T/out" && grep -q '^layers=2$' "$T/out" || fail "all platforms: $(cat "$T/out")"
raw "$R/conv/multi:all" | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert i["mediaType"] == "application/vnd.oci.image.index.v1+json"
p = [(e["platform"]["architecture"], e["platform"].get("variant")) for e in i["manifests"]]
assert p == [("amd64", None), ("arm64", "v8")], p
print(i["manifests"][1]["digest"])' >"$T/arm" || fail "index of the output"
check_image "$R/conv/multi@$(cat "$T/arm")" estargz "$DIFF1" "$DIFF2"
convert --platform linux/arm64 "oci:$SRC:multi" "$R/conv/multi:arm64" || { show_err "$T/err"; fail "--platform linux/arm64"; }
"${SK[@]}" inspect --config --raw --tls-verify=false "docker://$R/conv/multi:arm64" |
	grep -q '"architecture":"arm64"' || fail "--platform linux/arm64 picked another image"
ok "--all-platforms: an index of 2 (attestation entry dropped, shared layers once); --platform picks arm64"

say "prioritised files per layer"
# name layer 1 by its source digest (from the OCI manifest)
L1=$(python3 -c "
import json
idx = json.load(open('$SRC/index.json'))
d = [e for e in idx['manifests'] if e['annotations']['org.opencontainers.image.ref.name'] == 'oci'][0]['digest']
m = json.load(open('$SRC/blobs/sha256/' + d[7:]))
print(m['layers'][0]['digest'])")
printf '{"path":"etc/motd","layer_index":1}\n{"path":"bin/busybox","layer_digest":"%s"}\n' "$L1" >"$T/prio"
convert --prioritize "$T/prio" "oci:$SRC:oci" "oci:$T/prio-out:p" || { show_err "$T/err"; fail "--prioritize"; }
"${SK[@]}" inspect --raw "oci:$T/prio-out:p" >"$T/m3.json"
n=0
for dig in $(python3 -c "import json;[print(l['digest'][7:]) for l in json.load(open('$T/m3.json'))['layers']]"); do
	n=$((n + 1))
	toc_json "$T/prio-out/blobs/sha256/$dig" >"$T/toc.json"
	want=$([ $n = 1 ] && echo bin/busybox || echo etc/motd)
	python3 - "$T/toc.json" "$want" <<'PY' || fail "layer $n: $want not before .prefetch.landmark"
import json, sys
names = [e["name"] for e in json.load(open(sys.argv[1]))["entries"] if e["type"] != "chunk"]
i = names.index(".prefetch.landmark")
assert sys.argv[2] in names[:i], names[:i + 1]
assert len([n for n in names[:i] if n not in ("bin", "etc", "bin/", "etc/")]) == 1, names[:i]
PY
done
ok "--prioritize: each layer's named file (by digest, by index) before .prefetch.landmark, nothing else"

say "bad input: nothing tagged"
expect_fail "missing image" "404\|not found\|no such\|unknown" "$R/src/nothere:v1" "$R/bad/a:t1"
no_tag bad/a t1
expect_fail "missing tag in a layout" "no image tagged 'nope'" "oci:$SRC:nope" "$R/bad/b:t1"
expect_fail "wrong platform (index)" "no image for platform linux/s390x (the index has: linux/amd64, linux/arm64/v8)" \
	--platform linux/s390x "oci:$SRC:multi" "$R/bad/c:t1"
no_tag bad/c t1
expect_fail "wrong platform (single image)" "the image is for linux/amd64, not linux/arm64" \
	--platform linux/arm64 "oci:$SRC:v1" "$R/bad/c:t2"
no_tag bad/c t2
expect_fail "non-tar layer" "layer sha256:[0-9a-f]* (application/vnd.oci.image.layer.v1.tar+gzip, layer 1)" \
	"oci:$SRC:nottar" "$R/bad/d:t1"
no_tag bad/d t1
expect_fail "non-tar layer, oci DST" "layer 1" "oci:$SRC:nottar" "oci:$T/badout:t1"
[ ! -e "$T/badout/index.json" ] || fail "index.json written after a failed conversion"
ok "oci DST: no index.json after a failure"
expect_fail "blob not matching its digest (layout)" "digest mismatch" "oci:$SRC:corrupt" "$R/bad/e:t1"
no_tag bad/e t1
# the registry serves bytes that do not match the digest it is asked for
skopeo copy -q --dest-tls-verify=false "oci:$SRC:oci" "docker://$R/liar/busybox:v1" || fail "skopeo copy"
victim=$(raw "$R/liar/busybox:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][1]["digest"][7:])')
data="$T/store/docker/registry/v2/blobs/sha256/${victim:0:2}/$victim/data"
[ -f "$data" ] || fail "registry storage layout changed: $data"
flip_byte "$data" 1000
expect_fail "registry serving wrong bytes" "digest mismatch" "$R/liar/busybox:v1" "$R/bad/f:t1"
no_tag bad/f t1
[ -z "$(ls -A "$T/tmp")" ] || fail "temporary files left behind: $(ls "$T/tmp")"
ok "no temporary files left after failures"

say "oci -> registry took ${SECS} s (2 layers, $(($(stat -c %s "$T/src/layer1.tar.gz") + $(stat -c %s "$T/src/layer2.tar.gz"))) bytes)"
done_ok
