#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14 through the snapshotter: plain gzip images nobody converted run
# lazily under containerd once `lazypull index` has indexed them. Debian's
# docker-registry on loopback, `lazypull snapshotter`, containerd 1.6,
# ctr-remote and runc, all under a temporary directory. The busybox-static
# rootfs of the other tests is gzip'ed (one layer, a different gzip level
# per image so that every image has its own layer digest) and pushed by
# skopeo, never converted:
#   ix     indexed with `lazypull index` (pushed as a referrer of the image
#          manifest: the referrers tag sha256-<hex>, the index gzip'ed);
#          rpull mounts its layer lazily through the index (log,
#          lazypull_index_mounts_total), a container prints a file, the
#          layer fetched less than its size, the blob opened with the
#          manifest's size (no 1-byte suffix read; local's mount makes one),
#          the manifest digest is what it was before indexing
#   noix   no index anywhere: plain path, reason no_index (counted)
#   local  indexed with `lazypull index --output DIR`, DIR in the
#          snapshotter's config (index_dirs): mounted through the local file
#   bad    DIR holds another layer's index under this layer's name: refused,
#          plain path with reason bad_index, the container still runs
#   bomb   a +gzip index layer that inflates past the bound for its layer:
#          refused naming the bound, plain path with reason bad_index
#   zstd   a tar+zstd layer: plain path, reason zstd_unindexed
#   two    two plain layers, no index: both no_index, and the registry is
#          asked for the image's manifest and referrers once, not per layer
#   cri    indexed like ix but `--uncompressed` (the plain transport),
#          pulled by containerd's CRI plugin (PullImage
#          from tests/integration/cri_kubelet.py, the cri.* labels):
#          mounted through its index, a container runs in k8s.io
#   crip   like cri, through tests/integration/fault_proxy.py: the manifest
#          (by the digest the labels give) and the referrers are asked at
#          once (the manifest's answer held until the referrers' request
#          arrives)
# `ctr image pull` of the indexed image (another namespace, no labels) still
# works as before: plain path, same manifest digest, the container runs.
# Then SIGTERM and a new daemon: it resumes the indexed layers from its fd
# holder through the kept index, and the ix container runs again; then the
# holder killed (a new one kept from starting) and SIGTERM: the layers are
# unmounted, and the next daemon remounts the committed ones through the
# kept indexes (one removed: looked up again), the ix container runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
lp_require python3 gzip zstd curl
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import grpc' 2>/dev/null ||
	lp_skip_or_fail "python3-grpcio for /usr/bin/python3 not installed"
KUBELET="/usr/bin/python3 $LP_SOURCE_DIR/tests/integration/cri_kubelet.py"

cleanup() {
	local rc=$? m
	set +e
	[ -n "${LOCKER:-}" ] && kill "$LOCKER" 2>/dev/null
	[ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null
	lp_stack_stop
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 40 20
}
trap cleanup EXIT

fallbacks() { metric "lazypull_fallbacks_total{reason=\"$1\"}"; }
# manifest_digest REPO TAG: what the registry says the manifest's digest is
manifest_digest() {
	curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/$2" | tr -d '\r' |
		awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

start_snapshotter() {
	local started
	started=$(grep -c "snapshotter: serving" "$T/snap.log" 2>/dev/null || true)
	"$LAZYPULL" -v snapshotter --config "$T/snap.json" --root "$ROOT" --address "$SOCK" \
		--metrics-address "127.0.0.1:$MPORT" --no-background-fetch \
		>>"$T/snap.log" 2>&1 &
	SNAP_PID=$!
	wait_for 20 "the snapshotter to serve" sh -c \
		"[ \$(grep -c 'snapshotter: serving' '$T/snap.log') -gt ${started:-0} ]"
}

# --- registry and images ---------------------------------------------------
mkdir -p "$T/tmp"
export TMPDIR="$T/tmp"
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}}" # access log on
GI="$LP_SOURCE_DIR/tests/integration/gzip_index.py"

say "building the busybox layer and pushing five plain images with skopeo"
make_busybox_rootfs "$T/rootfs.tar"
# name_tar NAME: /image-name (NAME) followed by the rootfs tar, so that every
# image has its own DiffID (containerd would reuse the snapshot of an equal
# one and never ask the snapshotter); first in the stream, so that reading
# it is as cheap as reading /etc/hostname
name_tar() {
	mkdir -p "$T/name.$1"
	echo "$1" >"$T/name.$1/image-name"
	touch -d '2023-01-01 00:00:00 UTC' "$T/name.$1/image-name"
	tar --format=pax --pax-option=delete=atime,delete=ctime --numeric-owner \
		-C "$T/name.$1" -cf "$T/$1.tar" ./image-name || fail "tar of $1's name"
	tar -Af "$T/$1.tar" "$T/rootfs.tar" || fail "tar -A for $1"
}
# push_gzip NAME LEVEL: NAME's tar gzip'ed at LEVEL as image $R/NAME/bb:v1
push_gzip() {
	name_tar "$1"
	gzip -n "-$2" <"$T/$1.tar" >"$T/$1.tar.gz"
	python3 "$GI" layout "$T/$1.tar.gz" "$T/$1.layout"
	skopeo copy -q --dest-tls-verify=false "oci:$T/$1.layout:v1" "docker://$R/$1/bb:v1" ||
		fail "skopeo copy of $1"
}
push_gzip ix 6
push_gzip noix 1
push_gzip local 9
push_gzip bad 4
push_gzip cri 5
push_gzip slow 2
push_gzip many 7
push_gzip fsize 3
push_gzip gone 8
push_gzip bomb 6
push_gzip crip 5
# make_layout DIR TAR:LAYER:MEDIATYPE...: an OCI layout (tag v1) of those
# layers, bottom first (TAR: the uncompressed tar, for the DiffID)
make_layout() {
	python3 - "$@" <<'PY' || fail "the layout $1"
import hashlib, json, os, sys
root, specs = sys.argv[1], [a.split(":", 2) for a in sys.argv[2:]]
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
def blob(b):
    d = sha(b)
    open(os.path.join(root, "blobs", "sha256", d[7:]), "wb").write(b)
    return {"digest": d, "size": len(b)}
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers",
                             "diff_ids": [sha(open(t, "rb").read()) for t, _, _ in specs]}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **blob(cfg)),
                  "layers": [dict(mediaType=mt, **blob(open(l, "rb").read()))
                             for _, l, mt in specs]}).encode()
d = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **blob(man))
d["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
json.dump({"schemaVersion": 2, "manifests": [d]}, open(os.path.join(root, "index.json"), "w"))
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
}
GZ_MT=application/vnd.oci.image.layer.v1.tar+gzip
# the same tree as one tar+zstd layer (containerd 1.6 applies zstd layers)
name_tar zstd
zstd -q -3 <"$T/zstd.tar" >"$T/zstd.tar.zst"
make_layout "$T/zstd.layout" "$T/zstd.tar:$T/zstd.tar.zst:application/vnd.oci.image.layer.v1.tar+zstd"
skopeo copy -q --dest-tls-verify=false "oci:$T/zstd.layout:v1" "docker://$R/zstd/bb:v1" ||
	fail "skopeo copy of the zstd image"
# two plain layers, no index: the tree, then /upper.txt
name_tar two
gzip -n -3 <"$T/two.tar" >"$T/two.tar.gz"
mkdir -p "$T/upper"
echo "upper layer" >"$T/upper/upper.txt"
tar --numeric-owner -C "$T/upper" -cf "$T/upper.tar" ./upper.txt || fail "tar of the upper layer"
gzip -n <"$T/upper.tar" >"$T/upper.tar.gz"
make_layout "$T/two.layout" "$T/two.tar:$T/two.tar.gz:$GZ_MT" "$T/upper.tar:$T/upper.tar.gz:$GZ_MT"
skopeo copy -q --dest-tls-verify=false "oci:$T/two.layout:v1" "docker://$R/two/bb:v1" ||
	fail "skopeo copy of the two-layer image"
LSIZE=$(stat -c %s "$T/ix.tar.gz")
LAYER_IX=$(sha_of "$T/ix.tar.gz")
LAYER_LOCAL=$(sha_of "$T/local.tar.gz")
LAYER_BAD=$(sha_of "$T/bad.tar.gz")
LAYER_CRI=$(sha_of "$T/cri.tar.gz")
ok "images pushed: ix/noix/local/bad/cri (gzip, ix layer $LSIZE bytes), zstd, two (2 gzip layers)"

say "indexing: ix into the registry, local into a directory, a wrong one for bad"
MD_BEFORE=$(manifest_digest ix/bb v1)
[ -n "$MD_BEFORE" ] || fail "no manifest digest for ix/bb:v1"
lp_run "$T/index.out" "$T/index.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	"$R/ix/bb:v1" || { show_err "$T/index.err"; fail "lazypull index ix"; }
grep -q "via=referrers-tag" "$T/index.out" || fail "index not pushed by the referrers tag: $(cat "$T/index.out")"
lp_run "$T/index4.out" "$T/index4.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	--uncompressed "$R/cri/bb:v1" || { show_err "$T/index4.err"; fail "lazypull index cri"; }
lp_run "$T/index6.out" "$T/index6.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	"$R/gone/bb:v1" || { show_err "$T/index6.err"; fail "lazypull index gone"; }
lp_run "$T/index7.out" "$T/index7.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	"$R/crip/bb:v1" || { show_err "$T/index7.err"; fail "lazypull index crip"; }
MD_AFTER=$(manifest_digest ix/bb v1)
[ "$MD_AFTER" = "$MD_BEFORE" ] || fail "indexing changed the manifest digest: $MD_BEFORE -> $MD_AFTER"
curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
	"http://$R/v2/ix/bb/manifests/sha256-${MD_BEFORE#sha256:}" ||
	fail "no referrers tag sha256-<hex> after lazypull index"
mkdir -p "$T/ixdir" "$T/other"
lp_run "$T/index2.out" "$T/index2.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	--output "$T/ixdir" "$R/local/bb:v1" || { show_err "$T/index2.err"; fail "lazypull index --output"; }
[ -s "$T/ixdir/${LAYER_LOCAL#sha256:}.gzidx" ] || fail "no local index of the local image's layer"
lp_run "$T/index3.out" "$T/index3.err" timeout 300 "$LAZYPULL" index --plain-http \
	--output "$T/other" "$R/noix/bb:v1" || { show_err "$T/index3.err"; fail "lazypull index --output (noix)"; }
# a valid index, of another layer, under the bad image's layer name
cp "$T/other/"*.gzidx "$T/ixdir/${LAYER_BAD#sha256:}.gzidx"
# fsize's own index, saying its blob is 4096 bytes larger than it is
LAYER_FSIZE=$(sha_of "$T/fsize.tar.gz")
mkdir -p "$T/fsdir"
lp_run "$T/index5.out" "$T/index5.err" timeout 300 "$LAZYPULL" index --plain-http --span-size 256K \
	--output "$T/fsdir" "$R/fsize/bb:v1" || { show_err "$T/index5.err"; fail "lazypull index --output (fsize)"; }
python3 "$GI" forge "$T/fsdir/${LAYER_FSIZE#sha256:}.gzidx" "$T/ixdir/${LAYER_FSIZE#sha256:}.gzidx" blob-size ||
	fail "forging fsize's index"
ok "ix indexed (manifest digest $MD_BEFORE unchanged, referrers tag present); local index in $T/ixdir"

# --- snapshotter and containerd ---------------------------------------------
# an index_dirs entry that is no directory: the daemon refuses to start,
# naming the key (not every plain layer bad_index later)
cat >"$T/snap-bad.json" <<EOF
{"index_dirs": ["$T/ixdir", "$T/rootfs.tar"]}
EOF
rc=0
timeout 20 "$LAZYPULL" snapshotter --config "$T/snap-bad.json" --root "$T/badroot" \
	--address "$T/bad.sock" >"$T/badstart.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "the snapshotter started (rc $rc) with a file in index_dirs"
grep -q "index_dirs\[1\] $T/rootfs.tar" "$T/badstart.out" ||
	fail "the refusal does not name index_dirs: $(cat "$T/badstart.out")"
ok "a file in index_dirs: the snapshotter refuses to start, naming index_dirs[1]"
cat >"$T/snap.json" <<EOF
{"index_dirs": ["$T/ixdir"], "index_lookup": true}
EOF
start_snapshotter
# the fault proxy's port (slow, gone, crip), a CRI mirror too (crip)
PP=$(free_port)
lp_stack_containerd "" "$(lp_cri_plugin_conf "$R" "127.0.0.1:$PP")"

# run_image NAME: rpull $R/NAME/bb:v1 with ctr-remote and cat files in it
run_image() {
	lp_run "$T/$1.rpull" "$T/$1.rpull.err" ctr-remote --address "$CSOCK" images rpull \
		--plain-http --snapshotter lazypull "$R/$1/bb:v1" || { show_err "$T/$1.rpull.err"; fail "rpull $1"; }
	lp_run "$T/$1.out" "$T/$1.err" timeout 60 ctr --address "$CSOCK" run --rm \
		--snapshotter lazypull "$R/$1/bb:v1" "c-$1" cat /etc/hostname /image-name ||
		{ show_err "$T/$1.err"; fail "ctr run $1"; }
	[ "$(cat "$T/$1.out")" = "lazypull-test
$1" ] || fail "$1: the container printed '$(cat "$T/$1.out")'"
}
layer_stat() { # layer_stat DIGEST KEY: a key of the layer mount's stats
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$ROOT/layers/${1#sha256:}/.lazypull/stats" "$2"
}

# lreq REPO PATH: the snapshotter's GETs of /v2/REPO/PATH (its user agent;
# containerd's is its own, `lazypull index` is done before the count)
lreq() { grep '"lazypull/' "$T/reg.log" | grep -c "\"GET /v2/$1/$2 " || true; }

say "ix: rpull mounts the layer through its index from the registry"
m0=$(lreq ix/bb manifests/v1)
t0=$(lreq ix/bb "manifests/sha256-${MD_BEFORE#sha256:}")
run_image ix
grep -q "layer $LAYER_IX: gzip index sha256:[0-9a-f]* ([0-9]* bytes) from registry artifact" "$T/snap.log" ||
	fail "no log line of the index found in the registry"
grep -q "layer $LAYER_IX mounted lazily through its gzip index" "$T/snap.log" ||
	fail "the ix layer was not mounted through its index"
grep -q "layer $LAYER_IX: remote snapshot" "$T/snap.log" || fail "ix: no remote snapshot"
mountpoint -q "$ROOT/layers/${LAYER_IX#sha256:}" || fail "ix: the layer is not mounted"
[ "$(metric lazypull_index_mounts_total)" = 1 ] || fail "lazypull_index_mounts_total is $(metric lazypull_index_mounts_total)"
FETCHED=$(layer_stat "$LAYER_IX" fetched_bytes)
[ "$FETCHED" -gt 0 ] && [ "$FETCHED" -lt "$LSIZE" ] ||
	fail "ix: fetched $FETCHED bytes of a $LSIZE-byte layer (not lazy)"
[ "$(layer_stat "$LAYER_IX" blob_bytes)" = "$LSIZE" ] || fail "ix: blob_bytes is not the layer size"
ok "ix: the container printed the file; layer mounted through its registry index, $FETCHED of $LSIZE bytes fetched"
grep -q "layer $LAYER_IX: gzip index sha256:[0-9a-f]* ([0-9]* bytes) from registry artifact sha256:[0-9a-f]* (+gzip)" "$T/snap.log" ||
	fail "ix: the index was not taken from a +gzip artifact layer"
# the manifest gave the blob's size and the index was checked against it:
# the mount opens the blob with it, no 1-byte suffix read (206, 1 byte)
probes() { grep '"lazypull/' "$T/reg.log" | grep -c "\"GET /v2/$1/blobs/$2 HTTP/1.1\" 206 1 " || true; }
[ "$(probes ix/bb "$LAYER_IX")" = 0 ] || fail "ix: the mount asked the registry the blob's size ($(probes ix/bb "$LAYER_IX") suffix reads)"
ok "ix: the index came gzip'ed; the blob opened with the manifest's size (no suffix read)"
# the prefetch profile lookup of the mount takes the manifest and the
# referrers the index lookup got (no profile there: nothing else to ask)
grep -q "layer $LAYER_IX: no prefetch profile" "$T/snap.log" || fail "ix: no profile lookup logged"
m1=$(lreq ix/bb manifests/v1)
t1=$(lreq ix/bb "manifests/sha256-${MD_BEFORE#sha256:}")
[ $((m1 - m0)) = 1 ] && [ $((t1 - t0)) = 1 ] ||
	fail "ix: the snapshotter asked for the manifest $((m1 - m0)) and the referrers tag $((t1 - t0)) times, not once each"
ok "ix: the index and the profile lookups asked for the manifest and the referrers tag once"
ctr_ images ls | awk -v r="$R/ix/bb:v1" '$1 == r { print $3 }' >"$T/ix.target"
[ "$(cat "$T/ix.target")" = "$MD_BEFORE" ] || fail "containerd's image target is $(cat "$T/ix.target"), not $MD_BEFORE"
ok "ix: containerd's image target is the original manifest digest"

say "noix: no index anywhere -> plain path, no_index"
n0=$(fallbacks no_index)
run_image noix
[ "$(fallbacks no_index)" = $((n0 + 1)) ] || fail "no_index went $n0 -> $(fallbacks no_index)"
grep -q "plain path: no_index: " "$T/snap.log" || fail "no plain-path no_index log line"
[ "$(metric lazypull_index_mounts_total)" = 1 ] || fail "noix was counted as an index mount"
ok "noix: plain path with reason no_index (counted, logged), the container runs"

say "local: the index from index_dirs"
run_image local
grep -q "layer $LAYER_LOCAL: gzip index sha256:[0-9a-f]* ([0-9]* bytes) from $T/ixdir/${LAYER_LOCAL#sha256:}.gzidx" "$T/snap.log" ||
	fail "the local layer's index was not taken from $T/ixdir"
grep -q "layer $LAYER_LOCAL mounted lazily through its gzip index" "$T/snap.log" ||
	fail "the local layer was not mounted through its index"
[ "$(metric lazypull_index_mounts_total)" = 2 ] || fail "lazypull_index_mounts_total is $(metric lazypull_index_mounts_total)"
LFETCHED=$(layer_stat "$LAYER_LOCAL" fetched_bytes)
LLSIZE=$(stat -c %s "$T/local.tar.gz")
[ "$LFETCHED" -gt 0 ] && [ "$LFETCHED" -lt "$LLSIZE" ] || fail "local: fetched $LFETCHED of $LLSIZE bytes"
ok "local: mounted through $T/ixdir's index, $LFETCHED of $LLSIZE bytes fetched, the container runs"
# checked against no manifest: the size comes from the registry (the
# control of ix's count: the access log shows such a read)
[ "$(probes local/bb "$LAYER_LOCAL")" -ge 1 ] || fail "local: no suffix read of the blob's size in the registry's log"
ok "local: an index_dirs index: the blob's size asked of the registry (suffix read)"

say "bad: another layer's index under its name -> refused, bad_index"
n0=$(fallbacks bad_index)
run_image bad
[ "$(fallbacks bad_index)" = $((n0 + 1)) ] || fail "bad_index went $n0 -> $(fallbacks bad_index)"
grep -q "layer $LAYER_BAD: gzip index from $T/ixdir/.* refused: it indexes layer" "$T/snap.log" ||
	fail "no log line of the refused index"
grep -q "plain path: bad_index: " "$T/snap.log" || fail "no plain-path bad_index log line"
mountpoint -q "$ROOT/layers/${LAYER_BAD#sha256:}" && fail "the bad layer was mounted"
ok "bad: the wrong index refused, plain path with reason bad_index, the container runs"

say "fsize: an index_dirs index of the right layer with the wrong blob size -> refused, bad_index"
n0=$(fallbacks bad_index)
run_image fsize
[ "$(fallbacks bad_index)" = $((n0 + 1)) ] || fail "fsize: bad_index went $n0 -> $(fallbacks bad_index)"
mountpoint -q "$ROOT/layers/${LAYER_FSIZE#sha256:}" && fail "fsize: mounted through an index of another blob size"
grep -q "layer $LAYER_FSIZE (.*): cannot mount lazily" "$T/snap.log" || fail "fsize: no log line of the refusal"
ok "fsize: the index's blob size checked against the registry's, refused, bad_index, the container runs"

say "many: a referrer offering big and many bogus indexes -> bounded before fetching, bad_index"
# one artifact referring to many's manifest offers six "indexes" of its
# layer: two of 2 MiB (over the bound for a layer of ~4 MB: size / 8 +
# 1 MiB), then four small bogus ones; only LP_SNAP_INDEX_CANDIDATES_MAX (3)
# are tried, the big ones refused by their descriptor's size, never fetched
LAYER_MANY=$(sha_of "$T/many.tar.gz")
python3 - "$R" many/bb "$(manifest_digest many/bb v1)" "$LAYER_MANY" >"$T/many.blobs" <<'PYX' ||
import hashlib, json, os, sys, urllib.request
reg, repo, subject, layer = sys.argv[1:5]
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request("http://%s%s" % (reg, url) if url.startswith("/") else url,
                               data=data, method=method)
    r.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(b):
    loc = req("POST", "/v2/%s/blobs/uploads/" % repo, b"").headers["Location"]
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + sha(b), b, "application/octet-stream")
    return {"digest": sha(b), "size": len(b)}
MT = "application/vnd.lazypull.gzip-index.v1"
big = [os.urandom(2 << 20) for _ in range(2)]
small = [os.urandom(1000) for _ in range(4)]
cfg = blob(b"{}")
layers = []
for b in big + small:
    d = blob(b)
    print(("big " if len(b) > 1000 else "small ") + d["digest"])
    layers.append(dict(mediaType=MT, annotations={"dev.lazypull.gzip-index.layer": layer}, **d))
subj = req("HEAD", "/v2/%s/manifests/%s" % (repo, subject)).headers
art = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "artifactType": MT,
                  "config": dict(mediaType="application/vnd.oci.empty.v1+json", **cfg),
                  "layers": layers,
                  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": subject, "size": int(subj["Content-Length"])}}).encode()
req("PUT", "/v2/%s/manifests/%s" % (repo, sha(art)), art, "application/vnd.oci.image.manifest.v1+json")
# a referrer of another artifact type, listed last (examined first): never
# fetched by the snapshotter
OT = "application/vnd.example.sbom.v1+json"
sbom = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "artifactType": OT,
                   "config": dict(mediaType="application/vnd.oci.empty.v1+json", **cfg),
                   "layers": [dict(mediaType=OT, **blob(b'{"sbom": true}'))],
                   "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": subject, "size": int(subj["Content-Length"])}}).encode()
req("PUT", "/v2/%s/manifests/%s" % (repo, sha(sbom)), sbom, "application/vnd.oci.image.manifest.v1+json")
print("other " + sha(sbom))
ix = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": sha(art), "size": len(art), "artifactType": MT},
                               {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": sha(sbom), "size": len(sbom), "artifactType": OT}]}).encode()
req("PUT", "/v2/%s/manifests/sha256-%s" % (repo, subject[7:]), ix, "application/vnd.oci.image.index.v1+json")
PYX
	fail "pushing many's hostile referrer"
n0=$(fallbacks bad_index)
run_image many
[ "$(fallbacks bad_index)" = $((n0 + 1)) ] || fail "many: bad_index went $n0 -> $(fallbacks bad_index)"
got() { grep '"lazypull/' "$T/reg.log" | grep -c "\"GET /v2/many/bb/blobs/$1 " || true; }
nget=0
other=$(awk '$1 == "other" { print $2 }' "$T/many.blobs")
n=$(grep '"lazypull/' "$T/reg.log" | grep -c "\"GET /v2/many/bb/manifests/$other " || true)
[ "$n" = 0 ] || fail "many: the snapshotter fetched a referrer of another artifact type ($n times)"
# the referrers API is asked for the index artifact type only
wait_for 10 "the registry's access log line of the referrers API request with ?artifactType=" sh -c \
	"grep '\"lazypull/' '$T/reg.log' | grep -q '\"GET /v2/many/bb/referrers/sha256:[0-9a-f]*?artifactType=application/vnd.lazypull.gzip-index.v1 '"
while read -r kind d; do
	[ "$kind" = other ] && continue
	n=$(got "$d")
	[ "$kind" = big ] && [ "$n" != 0 ] && fail "many: the snapshotter fetched a $kind offer over the bound ($d, $n times)"
	nget=$((nget + n))
done <"$T/many.blobs"
[ "$nget" -le 1 ] || fail "many: $nget offered indexes fetched; the bound allows 3 candidates, 2 of them over the size bound"
grep -q "layer $LAYER_MANY: gzip index in registry artifact .*over the bound" "$T/snap.log" ||
	fail "many: no log line of an offer refused by its size"
grep -q "layer $LAYER_MANY: more than 3 gzip indexes offered" "$T/snap.log" ||
	fail "many: no log line of the candidates bound"
ok "many: the big offers refused unfetched, $nget small one fetched (3 candidates at most), the other artifact type not fetched, bad_index, the container runs"

say "bomb: a +gzip index layer inflating past the bound -> refused, bad_index"
# 16 MiB of zeros gzip'ed (16 KiB): under the fetch bound for a ~4 MB layer
# (size / 8 + 1 MiB), far over it inflated; never inflated further
LAYER_BOMB=$(sha_of "$T/bomb.tar.gz")
python3 - "$R" bomb/bb "$(manifest_digest bomb/bb v1)" "$LAYER_BOMB" <<'PYB' ||
import gzip, hashlib, json, sys, urllib.request
reg, repo, subject, layer = sys.argv[1:5]
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request("http://%s%s" % (reg, url) if url.startswith("/") else url,
                               data=data, method=method)
    r.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(b):
    loc = req("POST", "/v2/%s/blobs/uploads/" % repo, b"").headers["Location"]
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + sha(b), b, "application/octet-stream")
    return {"digest": sha(b), "size": len(b)}
MT = "application/vnd.lazypull.gzip-index.v1"
cfg = blob(b"{}")
bomb = blob(gzip.compress(bytes(16 << 20), 9, mtime=0))
subj = req("HEAD", "/v2/%s/manifests/%s" % (repo, subject)).headers
art = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "artifactType": MT,
                  "config": dict(mediaType="application/vnd.oci.empty.v1+json", **cfg),
                  "layers": [dict(mediaType=MT + "+gzip",
                                  annotations={"dev.lazypull.gzip-index.layer": layer}, **bomb)],
                  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": subject, "size": int(subj["Content-Length"])}}).encode()
req("PUT", "/v2/%s/manifests/%s" % (repo, sha(art)), art, "application/vnd.oci.image.manifest.v1+json")
ix = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": sha(art), "size": len(art), "artifactType": MT}]}).encode()
req("PUT", "/v2/%s/manifests/sha256-%s" % (repo, subject[7:]), ix, "application/vnd.oci.image.index.v1+json")
PYB
	fail "pushing bomb's artifact"
n0=$(fallbacks bad_index)
run_image bomb
[ "$(fallbacks bad_index)" = $((n0 + 1)) ] || fail "bomb: bad_index went $n0 -> $(fallbacks bad_index)"
grep -q "layer $LAYER_BOMB: gzip index in registry artifact sha256:[0-9a-f]* (+gzip) refused: its gzip layer of [0-9]* bytes inflates to more than the bound [0-9]*" "$T/snap.log" ||
	fail "bomb: no log line of the refusal naming the bound: $(grep "$LAYER_BOMB" "$T/snap.log" | tail -3)"
mountpoint -q "$ROOT/layers/${LAYER_BOMB#sha256:}" && fail "bomb: the layer was mounted"
ok "bomb: the +gzip index inflating past the bound refused, plain path with reason bad_index, the container runs"

say "zstd: a tar+zstd layer -> plain path, zstd_unindexed"
n0=$(fallbacks zstd_unindexed)
run_image zstd
[ "$(fallbacks zstd_unindexed)" = $((n0 + 1)) ] || fail "zstd_unindexed went $n0 -> $(fallbacks zstd_unindexed)"
ok "zstd: plain path with reason zstd_unindexed, the container runs"

say "two: two unindexed layers, the registry asked once"
n0=$(fallbacks no_index)
MD_TWO=$(manifest_digest two/bb v1)
lp_run "$T/two.rpull" "$T/two.rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "$R/two/bb:v1" || { show_err "$T/two.rpull.err"; fail "rpull two"; }
[ "$(fallbacks no_index)" = $((n0 + 2)) ] || fail "no_index went $n0 -> $(fallbacks no_index) for two layers"
for u in manifests/v1 "referrers/$MD_TWO?artifactType=application/vnd.lazypull.gzip-index.v1" \
	"manifests/sha256-${MD_TWO#sha256:}"; do
	[ "$(lreq two/bb "$u")" = 1 ] || fail "the snapshotter asked for $u $(lreq two/bb "$u") times, not once"
done
out=$(timeout 60 ctr --address "$CSOCK" run --rm --snapshotter lazypull "$R/two/bb:v1" c-two \
	cat /image-name /upper.txt) || fail "ctr run of two"
[ "$out" = "two
upper layer" ] || fail "two: the container printed '$out'"
ok "two: both layers no_index; the manifest, the referrers API and the referrers tag asked for once each; the container runs"

say "slow: a registry that never answers the referrers -> plain path within the lookup's deadline"
# the fault proxy in front of the registry stalls (120 s, no answer) every
# referrers request (API and tag); without a deadline on the lookup the
# Prepare would wait for those requests' timeouts and retries (minutes)
echo "referrers-stall 1000" >"$T/proxy.mode"
python3 "$LP_SOURCE_DIR/tests/integration/fault_proxy.py" "$PP" "${R#*:}" "$T/proxy.mode" "$T/proxy.log" \
	>"$T/proxy.out" 2>&1 &
PROXY_PID=$!
wait_for 10 "the fault proxy" curl -fsS -o /dev/null "http://127.0.0.1:$PP/v2/"
n0=$(($(fallbacks registry) + $(fallbacks index_timeout)))
t0=$(date +%s)
lp_run "$T/slow.rpull" "$T/slow.rpull.err" timeout 120 ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "127.0.0.1:$PP/slow/bb:v1" ||
	{ show_err "$T/slow.rpull.err"; fail "rpull slow"; }
t1=$(date +%s)
grep -q "/referrers/\|/manifests/sha256-" "$T/proxy.log" || fail "slow: the snapshotter never asked for the referrers"
n1=$(($(fallbacks registry) + $(fallbacks index_timeout)))
[ "$n1" = $((n0 + 1)) ] || fail "slow: registry + index_timeout went $n0 -> $n1"
# the lookup's deadline (5 s) and one bounded request (2 s), containerd's
# own pull and unpack of a 4 MB layer: 25 s is a generous margin
[ $((t1 - t0)) -le 25 ] || fail "slow: the rpull took $((t1 - t0)) s with a stalling registry"
out=$(timeout 60 ctr --address "$CSOCK" run --rm --snapshotter lazypull "127.0.0.1:$PP/slow/bb:v1" c-slow \
	cat /image-name) || fail "ctr run of slow"
[ "$out" = slow ] || fail "slow: the container printed '$out'"
ok "slow: the referrers stalled, the layer took the plain path in $((t1 - t0)) s (reason counted), the container runs"

say "gone: the registry does not deliver the offered index blob -> registry, not bad_index"
# indexed, but through the proxy the snapshotter's GET of the index blob is
# answered 404 (containerd's requests pass): the registry's failure, not a
# refused index
echo "lazypull-blob404 1000" >"$T/proxy.mode"
nb=$(fallbacks bad_index)
nr=$(fallbacks registry)
lp_run "$T/gone.rpull" "$T/gone.rpull.err" timeout 120 ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "127.0.0.1:$PP/gone/bb:v1" ||
	{ show_err "$T/gone.rpull.err"; fail "rpull gone"; }
grep -q "GET /v2/gone/bb/blobs/sha256:" "$T/proxy.log" || fail "gone: no blob GET through the proxy"
[ "$(fallbacks registry)" = $((nr + 1)) ] || fail "gone: registry went $nr -> $(fallbacks registry)"
[ "$(fallbacks bad_index)" = "$nb" ] || fail "gone: counted as bad_index ($nb -> $(fallbacks bad_index))"
out=$(timeout 60 ctr --address "$CSOCK" run --rm --snapshotter lazypull "127.0.0.1:$PP/gone/bb:v1" c-gone \
	cat /image-name) || fail "ctr run of gone"
[ "$out" = gone ] || fail "gone: the container printed '$out'"
kill "$PROXY_PID" 2>/dev/null || true
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=
ok "gone: the index blob not delivered (404): plain path with reason registry, not bad_index, the container runs"

say "cri: CRI PullImage (cri.* labels) mounts the layer through its index"
$KUBELET "$CSOCK" pull "$R/cri/bb:v1" >"$T/cri.pull" 2>"$T/cri.pull.err" ||
	{ show_err "$T/cri.pull.err"; fail "CRI PullImage of the cri image"; }
grep -q "layer $LAYER_CRI: gzip index sha256:[0-9a-f]* ([0-9]* bytes) from registry artifact sha256:[0-9a-f]* in" "$T/snap.log" ||
	fail "no log line of the cri layer's (--uncompressed) index found in the registry"
grep -q "layer $LAYER_CRI mounted lazily through its gzip index" "$T/snap.log" ||
	fail "the cri layer was not mounted through its index"
[ "$(metric lazypull_index_mounts_total)" = 3 ] || fail "lazypull_index_mounts_total is $(metric lazypull_index_mounts_total)"
out=$(timeout 60 ctr --address "$CSOCK" -n k8s.io run --rm --snapshotter lazypull "$R/cri/bb:v1" c-cri \
	cat /etc/hostname /image-name) || fail "ctr run of the CRI-pulled image"
[ "$out" = "lazypull-test
cri" ] || fail "cri: the container printed '$out'"
CFETCHED=$(layer_stat "$LAYER_CRI" fetched_bytes)
CLSIZE=$(stat -c %s "$T/cri.tar.gz")
[ "$CFETCHED" -gt 0 ] && [ "$CFETCHED" -lt "$CLSIZE" ] || fail "cri: fetched $CFETCHED of $CLSIZE bytes"
ok "cri: PullImage mounted the layer through its index, the container runs in k8s.io ($CFETCHED of $CLSIZE bytes fetched)"

say "crip: with the manifest digest known (cri labels), its referrers are asked at once with it"
# through the fault proxy (left running: the layer's later remounts read
# through it), the snapshotter's GET of the manifest by digest is held
# until its referrers request has arrived: a lookup that asks the
# referrers only once it has the manifest meets the proxy's clock (20 s)
# instead, its manifest request times out, and the log says so
LAYER_CRIP=$(sha_of "$T/crip.tar.gz")
MD_CRIP=$(manifest_digest crip/bb v1)
echo "hold-until 1000 /crip/bb/manifests/$MD_CRIP /crip/bb/referrers/" >"$T/proxy.mode"
python3 "$LP_SOURCE_DIR/tests/integration/fault_proxy.py" "$PP" "${R#*:}" "$T/proxy.mode" "$T/proxy.log" \
	>"$T/proxy.out" 2>&1 &
PROXY_PID=$!
wait_for 10 "the fault proxy" curl -fsS -o /dev/null "http://127.0.0.1:$PP/v2/"
$KUBELET "$CSOCK" pull "127.0.0.1:$PP/crip/bb:v1" >"$T/crip.pull" 2>"$T/crip.pull.err" ||
	{ show_err "$T/crip.pull.err"; fail "CRI PullImage of the crip image"; }
wait_for 30 "the proxy's release of the held manifest request" \
	grep -q "^held /v2/crip/bb/manifests/$MD_CRIP: released by " "$T/proxy.log"
grep -q "^held /v2/crip/bb/manifests/$MD_CRIP: released by /crip/bb/referrers/\$" "$T/proxy.log" ||
	fail "crip: the referrers were not asked while the manifest was held: $(grep '^held' "$T/proxy.log")"
grep -q "layer $LAYER_CRIP mounted lazily through its gzip index" "$T/snap.log" ||
	fail "the crip layer was not mounted through its index"
echo "pass 0" >"$T/proxy.mode"
ok "crip: the referrers asked while the manifest's answer was held; the layer mounted through its index"

say "ctr image pull of the indexed image still works as before"
n0=$(metric 'lazypull_fallbacks_total{reason="no_labels"}')
lp_run "$T/pull.out" "$T/pull.err" ctr_ -n plain images pull --plain-http --snapshotter lazypull "$R/ix/bb:v1" ||
	{ show_err "$T/pull.err"; fail "ctr images pull"; }
[ "$(metric 'lazypull_fallbacks_total{reason="no_labels"}')" = $((n0 + 1)) ] || fail "ctr pull did not take the plain path"
t=$(ctr_ -n plain images ls | awk -v r="$R/ix/bb:v1" '$1 == r { print $3 }')
[ "$t" = "$MD_BEFORE" ] || fail "ctr pull: image target $t, not $MD_BEFORE"
out=$(timeout 60 ctr --address "$CSOCK" -n plain run --rm --snapshotter lazypull "$R/ix/bb:v1" c-plain cat /image-name) ||
	fail "ctr run of the plainly pulled image"
[ "$out" = ix ] || fail "plain pull: the container printed '$out'"
ok "ctr image pull: plain path, manifest digest $t, the container runs"

say "restart: a new daemon resumes the indexed layers through the kept index"
ls "$ROOT/indexes/${LAYER_IX#sha256:}".* >/dev/null 2>&1 || fail "no kept index of the ix layer under $ROOT/indexes"
kill "$SNAP_PID"
wait "$SNAP_PID" 2>/dev/null || true
SNAP_PID=
mountpoint -q "$ROOT/layers/${LAYER_IX#sha256:}" || fail "the ix layer mount went away with the daemon"
start_snapshotter
wait_for 20 "the ix layer to be resumed" grep -q "layer $LAYER_IX resumed through its gzip index" "$T/snap.log"
grep -q "layer $LAYER_LOCAL resumed through its gzip index" "$T/snap.log" || fail "the local layer was not resumed"
# counted like lazypull_remote_mounts_total: a resume is a mount of this daemon
[ "$(metric lazypull_index_mounts_total)" -ge 2 ] ||
	fail "lazypull_index_mounts_total is $(metric lazypull_index_mounts_total) after resuming 2+ indexed layers"
# containerd's gRPC client may be in its reconnect back-off (as below)
wait_for 60 "containerd to reconnect to the snapshotter" ctr_ snapshots --snapshotter lazypull ls
out=$(timeout 60 ctr --address "$CSOCK" run --rm --snapshotter lazypull "$R/ix/bb:v1" c-ix-2 \
	cat /etc/os-release) || fail "ctr run of ix after the restart"
echo "$out" | grep -q '^ID=busybox$' || fail "after the restart the container printed '$out'"
ok "after SIGTERM and a new daemon: both indexed layers resumed, the ix container runs"

say "restart without an fd holder: the committed indexed layers are remounted through their indexes"
# the holder killed and a new one kept from starting (its lock taken), so
# that SIGTERM finds no holder and unmounts every layer; the kept indexes
# must survive that: the next daemon remounts the committed snapshots'
# layers from them (the local one's removed: looked up again, by digest)
HOLDER_PAT="[f]dholder --root $ROOT" # [f]: a pattern that does not match itself
holder=$(pgrep -f "$HOLDER_PAT" || true)
[ -n "$holder" ] || fail "no fd holder process for $ROOT"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(300)' \
	"$ROOT/fdholder.lock" >"$T/locker.out" 2>&1 &
LOCKER=$!
# the daemon stopped meanwhile: it starts a new holder when its holder
# dies, which could take the lock before the locker does
kill -STOP "$SNAP_PID"
kill -9 $holder
wait_for 10 "the holder's lock to be taken" grep -q locked "$T/locker.out"
kill -CONT "$SNAP_PID"
kill -TERM "$SNAP_PID"
wait_for 90 "the daemon to stop" sh -c "! kill -0 $SNAP_PID 2>/dev/null"
st=0
wait "$SNAP_PID" 2>/dev/null || st=$?
SNAP_PID=
[ $st -eq 0 ] || fail "SIGTERM without a holder: the snapshotter exited with status $st (it unmounts and exits 0)"
kill "$LOCKER" 2>/dev/null || true
wait "$LOCKER" 2>/dev/null || true
grep -q "no fd holder to hand the layers to: unmounting" "$T/snap.log" ||
	fail "the daemon stopped with a holder: $(grep -i holder "$T/snap.log" | tail -3)"
mountpoint -q "$ROOT/layers/${LAYER_IX#sha256:}" && fail "the ix layer is still mounted without a holder"
ls "$ROOT/indexes/${LAYER_IX#sha256:}".* >/dev/null 2>&1 ||
	fail "the stop without a holder deleted the kept index of the committed ix layer"
rm -f "$ROOT/indexes/${LAYER_LOCAL#sha256:}".*
nmounts=$(grep -c "layer $LAYER_IX mounted lazily through its gzip index" "$T/snap.log")
nlocal=$(grep -c "layer $LAYER_LOCAL mounted lazily through its gzip index" "$T/snap.log")
start_snapshotter
[ "$(grep -c "layer $LAYER_IX mounted lazily through its gzip index" "$T/snap.log")" -gt "$nmounts" ] ||
	fail "the ix layer was not remounted through its index: $(grep "$LAYER_IX" "$T/snap.log" | tail -3)"
[ "$(grep -c "layer $LAYER_LOCAL mounted lazily through its gzip index" "$T/snap.log")" -gt "$nlocal" ] ||
	fail "the local layer (kept index removed) was not remounted: $(grep "$LAYER_LOCAL" "$T/snap.log" | tail -3)"
grep -q "layer $LAYER_CRI mounted lazily through its gzip index" "$T/snap.log" || fail "cri layer never mounted"
mountpoint -q "$ROOT/layers/${LAYER_IX#sha256:}" || fail "the ix layer is not mounted after the restart"
ls "$ROOT/indexes/${LAYER_LOCAL#sha256:}".* >/dev/null 2>&1 || fail "the local layer's index was not kept again"
# the snapshotter was away for a while: containerd's gRPC client may be in
# its reconnect back-off
wait_for 60 "containerd to reconnect to the snapshotter" ctr_ snapshots --snapshotter lazypull ls
out=$(timeout 60 ctr --address "$CSOCK" run --rm --snapshotter lazypull "$R/ix/bb:v1" c-ix-3 \
	cat /image-name) || fail "ctr run of ix after the holder-less restart"
[ "$out" = ix ] || fail "after the holder-less restart the container printed '$out'"
ok "holder-less SIGTERM and a new daemon: the indexed layers remounted through their kept (or looked up again) indexes, the ix container runs"
done_ok
