#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signed gzip indexes through the snapshotter (docs/format.md "Signed
# indexes"): Debian's docker-registry on loopback, `lazypull snapshotter`
# (background fetch off: no proving pass runs) with index_trusted_keys =
# key A, containerd 1.6 and ctr-remote. Three plain gzip images of one tree
# (the busybox rootfs, then 8 MiB of random bytes, then /deep.txt at the
# layer's end), each indexed by `lazypull index --sign-key`:
#   sig    signed with A (trusted): the first read of /deep.txt is served
#          from its own span (trusted_reads > 0, the checkpoint unproven,
#          fetched far below the layer), the bytes are the file's; counted
#          lazypull_index_trust_total{result="signed"}; a container cats it
#   unk    signed with B (not trusted): today's proven-only default, the
#          read streams the layer up to the file; unknown_key
#   swap   signed with A, then its index blob replaced in the registry by
#          another valid index of the same layer (another span size), the
#          signature annotations kept: not trusted (bad_signature),
#          proven-only, still mounted and correct
# Then "proven once": the daemon restarted with the background fetch on
# resumes the layers; unk's proving pass reads its layer whole and records
# (layer, index blob) under ROOT/indexes; the next daemon trusts unk's
# index from the start (lazypull_index_trust_total{result="proven"}).
# Last, `lazypull mount --layer --index` with the sidecar `lazypull index
# --output DIR --sign-key` wrote: trusted with --index-trusted-key A (the
# deep file from its own span), proven-only with B.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
lp_require python3 gzip curl openssl cmp

cleanup() {
	local rc=$? m
	set +e
	lp_stack_stop
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 40 20
}
trap cleanup EXIT

trust() { metric "lazypull_index_trust_total{result=\"$1\"}"; }
# stat_of DIGEST PATH.TO.KEY: a value of the layer mount's stats
stat_of() {
	python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(str(v).lower())' "$ROOT/layers/${1#sha256:}/.lazypull/stats" "$2"
}

mkdir -p "$T/tmp"
export TMPDIR="$T/tmp"
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}}"
GI="$LP_SOURCE_DIR/tests/integration/gzip_index.py"

say "keys: A (trusted by the snapshotter) and B (not)"
for k in a b; do
	openssl genpkey -algorithm ed25519 -out "$T/$k.pem" 2>/dev/null || fail "openssl genpkey"
	openssl pkey -in "$T/$k.pem" -pubout -out "$T/$k.pub" 2>/dev/null || fail "openssl pkey -pubout"
done
KEY_A="sha256:$(openssl pkey -pubin -in "$T/a.pub" -outform DER | tail -c 32 | sha256sum | cut -d' ' -f1)"

say "three plain images: the busybox tree, 8 MiB of random bytes, /deep.txt last"
make_busybox_rootfs "$T/rootfs.tar"
mkdir -p "$T/pad"
head -c $((8 << 20)) /dev/urandom >"$T/pad/pad.bin"
seq 1 20000 | sed 's/^/deep line /' >"$T/pad/deep.txt"
touch -d '2023-01-01 00:00:00 UTC' "$T/pad/pad.bin" "$T/pad/deep.txt"
tar --format=pax --pax-option=delete=atime,delete=ctime --numeric-owner \
	-C "$T/pad" -cf "$T/pad.tar" ./pad.bin ./deep.txt || fail "tar of the padding"
push_image() { # push_image NAME: $R/NAME/bb:v1, its own name first
	mkdir -p "$T/name.$1"
	echo "$1" >"$T/name.$1/image-name"
	touch -d '2023-01-01 00:00:00 UTC' "$T/name.$1/image-name"
	tar --format=pax --pax-option=delete=atime,delete=ctime --numeric-owner \
		-C "$T/name.$1" -cf "$T/$1.tar" ./image-name || fail "tar of $1's name"
	tar -Af "$T/$1.tar" "$T/rootfs.tar" || fail "tar -A rootfs"
	tar -Af "$T/$1.tar" "$T/pad.tar" || fail "tar -A pad"
	gzip -n -6 <"$T/$1.tar" >"$T/$1.tar.gz"
	python3 "$GI" layout "$T/$1.tar.gz" "$T/$1.layout"
	skopeo copy -q --dest-tls-verify=false "oci:$T/$1.layout:v1" "docker://$R/$1/bb:v1" ||
		fail "skopeo copy of $1"
}
for n in sig unk swap; do push_image $n; done
LSIZE=$(stat -c %s "$T/sig.tar.gz")
ok "images pushed (layers of about $LSIZE bytes)"

say "indexing and signing: sig and swap with A, unk with B"
index_signed() { # index_signed NAME KEY
	lp_run "$T/$1.index.out" "$T/$1.index.err" timeout 120 "$LAZYPULL" index --plain-http \
		--span-size 256K --sign-key "$T/$2.pem" "$R/$1/bb:v1" ||
		{ show_err "$T/$1.index.err"; fail "lazypull index --sign-key $1"; }
}
index_signed sig a
index_signed unk b
index_signed swap a
# the newest referrer artifact of REPO's v1: its manifest digest, then its
# annotations as JSON, one line each
artifact_ann() {
	python3 - "$R" "$1" <<'PY'
import json, sys, urllib.request
reg, repo = sys.argv[1:3]
def get(path, accept):
    r = urllib.request.Request("http://%s/v2/%s/%s" % (reg, repo, path))
    r.add_header("Accept", accept)
    resp = urllib.request.urlopen(r)
    return resp.read(), resp.headers.get("Docker-Content-Digest")
_, md = get("manifests/v1", "application/vnd.oci.image.manifest.v1+json")
ix, _ = get("manifests/sha256-" + md[7:], "application/vnd.oci.image.index.v1+json")
art, _ = get("manifests/" + json.loads(ix)["manifests"][-1]["digest"],
             "application/vnd.oci.image.manifest.v1+json")
print(md)
print(json.dumps(json.loads(art)["annotations"]))
PY
}
# the artifact manifest carries the statement, signature and A's key id
artifact_ann sig/bb >"$T/sig.ann" || fail "sig's artifact"
python3 -c '
import base64, json, sys
md, ann = open(sys.argv[1]).read().split("\n")[:2]
ann, key = json.loads(ann), sys.argv[2]
assert ann["dev.lazypull.gzip-index.key"] == key, ann
st = base64.b64decode(ann["dev.lazypull.gzip-index.statement"]).decode()
assert st.startswith("lazypull-index-signature-v1\nmanifest " + md + "\nlayer "), st
assert len(base64.b64decode(ann["dev.lazypull.gzip-index.signature"])) == 64
' "$T/sig.ann" "$KEY_A" || fail "sig's artifact does not carry A's signature"
# dup: sig's image with its layer listed twice (as BuildKit's empty layer
# is): signed, the layer one line of the statement
python3 - "$T/sig.layout" "$T/dup.layout" <<'PY' || fail "making dup's layout"
import hashlib, json, shutil, sys
src, dst = sys.argv[1:3]
shutil.copytree(src, dst)
def blob(d): return dst + "/blobs/sha256/" + d[7:]
def put(obj):
    b = json.dumps(obj).encode()
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(blob(d), "wb").write(b)
    return d, len(b)
ix = json.load(open(dst + "/index.json"))
man = json.load(open(blob(ix["manifests"][0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
cfg["rootfs"]["diff_ids"] *= 2
man["config"]["digest"], man["config"]["size"] = put(cfg)
man["layers"] *= 2
ix["manifests"][0]["digest"], ix["manifests"][0]["size"] = put(man)
json.dump(ix, open(dst + "/index.json", "w"))
PY
skopeo copy -q --dest-tls-verify=false "oci:$T/dup.layout:v1" "docker://$R/dup/bb:v1" ||
	fail "skopeo copy of dup"
index_signed dup a
grep -q "reused=1" "$T/dup.index.out" || fail "dup's second layer was not reused: $(cat "$T/dup.index.out")"
artifact_ann dup/bb >"$T/dup.ann" || fail "dup's artifact"
python3 -c '
import base64, json, sys
ann = json.loads(open(sys.argv[1]).read().split("\n")[1])
st = base64.b64decode(ann["dev.lazypull.gzip-index.statement"]).decode()
assert st.count("\nlayer ") == 1, st
' "$T/dup.ann" || fail "dup's statement"
ok "dup (its layer listed twice) signed: one statement line for the layer"
# swap: another valid index of its layer (1 MiB spans) in place of the
# signed one (pushed plain, the signed one was gzip'ed), the signature
# annotations kept
lp_run "$T/swap.build.out" "$T/swap.build.err" "$LAZYPULL" index build --span-size 1M \
	"$T/swap.tar.gz" "$T/swap.other.gzidx" || { show_err "$T/swap.build.err"; fail "index build"; }
python3 - "$R" swap/bb "$T/swap.other.gzidx" <<'PY' || fail "replacing swap's index blob"
import hashlib, json, sys, urllib.request
reg, repo, path = sys.argv[1:4]
MT = "application/vnd.oci.image.manifest.v1+json"
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
def req(method, url, data=None, ctype=None, accept=MT):
    r = urllib.request.Request(url if url.startswith("http") else "http://%s%s" % (reg, url),
                               data=data, method=method)
    r.add_header("Accept", accept)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
md = req("GET", "/v2/%s/manifests/v1" % repo).headers["Docker-Content-Digest"]
tag = "/v2/%s/manifests/sha256-%s" % (repo, md[7:])
IT = "application/vnd.oci.image.index.v1+json"
ix = json.loads(req("GET", tag, accept=IT).read())
art = json.loads(req("GET", "/v2/%s/manifests/%s" % (repo, ix["manifests"][-1]["digest"])).read())
other = open(path, "rb").read()
loc = req("POST", "/v2/%s/blobs/uploads/" % repo, b"").headers["Location"]
req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + sha(other), other, "application/octet-stream")
assert art["layers"][0]["digest"] != sha(other)
art["layers"][0]["digest"], art["layers"][0]["size"] = sha(other), len(other)
# the other index as it is (the signed one travels gzip'ed): a statement
# names the uncompressed index, whatever the transport
assert art["layers"][0]["mediaType"] == "application/vnd.lazypull.gzip-index.v1+gzip"
art["layers"][0]["mediaType"] = "application/vnd.lazypull.gzip-index.v1"
b = json.dumps(art).encode()
req("PUT", "/v2/%s/manifests/%s" % (repo, sha(b)), b, MT)
ix["manifests"] = [{"mediaType": MT, "digest": sha(b), "size": len(b),
                    "artifactType": art["artifactType"]}]
req("PUT", tag, json.dumps(ix).encode(), IT)
PY
ok "indexed and signed; sig's artifact carries A's key id and a statement naming its manifest; swap's index blob replaced"

cat >"$T/snap.json" <<EOF
{"index_trusted_keys": ["$T/a.pub"], "index_lookup": true}
EOF
start_snapshotter() { # start_snapshotter [OPTION...]
	local started
	started=$(grep -c "snapshotter: serving" "$T/snap.log" 2>/dev/null || true)
	"$LAZYPULL" -v snapshotter --config "$T/snap.json" --root "$ROOT" --address "$SOCK" \
		--metrics-address "127.0.0.1:$MPORT" "$@" >>"$T/snap.log" 2>&1 &
	SNAP_PID=$!
	wait_for 20 "the snapshotter to serve" sh -c \
		"[ \$(grep -c 'snapshotter: serving' '$T/snap.log') -gt ${started:-0} ]"
}
stop_snapshotter() {
	kill "$SNAP_PID"
	wait "$SNAP_PID" || fail "the snapshotter exited with $? on SIGTERM"
	SNAP_PID=
}
start_snapshotter --no-background-fetch
lp_stack_containerd "" ""

# deep NAME: rpull, then read /deep.txt from the layer's mount (the first
# read of it: nothing else reads the layer), compared with the source
deep() {
	lp_run "$T/$1.rpull" "$T/$1.rpull.err" timeout 60 ctr-remote --address "$CSOCK" images rpull \
		--plain-http --snapshotter lazypull "$R/$1/bb:v1" || { show_err "$T/$1.rpull.err"; fail "rpull $1"; }
	LAYER=$(sha_of "$T/$1.tar.gz")
	mountpoint -q "$ROOT/layers/${LAYER#sha256:}" || fail "$1: the layer is not mounted lazily"
	[ "$(stat_of "$LAYER" gzip_index.proof)" = off ] || fail "$1: a proving pass runs"
	cmp "$ROOT/layers/${LAYER#sha256:}/deep.txt" "$T/pad/deep.txt" || fail "$1: /deep.txt differs"
	FETCHED=$(stat_of "$LAYER" fetched_bytes)
}

say "sig: trusted, the deep file read from its own span"
deep sig
grep -q "layer $LAYER: gzip index sha256:[0-9a-f]* trusted: signed by a trusted key" "$T/snap.log" ||
	fail "sig: no log line of the trusted index"
[ "$(trust signed)" = 1 ] || fail "sig: signed count is $(trust signed)"
[ "$(stat_of "$LAYER" gzip_index.trusted)" = true ] || fail "sig: the mount does not trust the index"
TR=$(stat_of "$LAYER" gzip_index.trusted_reads)
[ "$TR" -gt 0 ] || fail "sig: no read started at an unproven checkpoint"
[ "$FETCHED" -lt $((LSIZE / 4)) ] || fail "sig: fetched $FETCHED of $LSIZE bytes for the deep file"
ok "sig: /deep.txt right, $FETCHED of $LSIZE bytes fetched, $TR reads from unproven checkpoints, counted signed"

say "unk: signed by a key the node does not trust -> proven-only"
deep unk
[ "$(trust unknown_key)" = 1 ] || fail "unk: unknown_key count is $(trust unknown_key)"
grep -q "layer $LAYER: gzip index sha256:[0-9a-f]* unknown_key: signed by key sha256:" "$T/snap.log" ||
	fail "unk: no log line with the reason"
[ "$(stat_of "$LAYER" gzip_index.trusted)" = false ] || fail "unk: the index is trusted"
[ "$(stat_of "$LAYER" gzip_index.trusted_reads)" = 0 ] || fail "unk: reads from unproven checkpoints"
[ "$FETCHED" -gt $((LSIZE * 3 / 4)) ] || fail "unk: fetched only $FETCHED of $LSIZE bytes (proven-only streams to the file)"
ok "unk: /deep.txt right, proven-only ($FETCHED of $LSIZE bytes fetched), counted unknown_key"

say "swap: the index blob replaced after signing -> not trusted"
deep swap
[ "$(trust bad_signature)" = 1 ] || fail "swap: bad_signature count is $(trust bad_signature)"
grep -q "layer $LAYER: gzip index sha256:[0-9a-f]* bad_signature: the signed statement names index" "$T/snap.log" ||
	fail "swap: no log line with the reason"
[ "$(stat_of "$LAYER" gzip_index.trusted)" = false ] || fail "swap: the index is trusted"
[ "$FETCHED" -gt $((LSIZE * 3 / 4)) ] || fail "swap: fetched only $FETCHED of $LSIZE bytes"
[ "$(trust signed)" = 1 ] || fail "swap: counted signed"
ok "swap: mounted proven-only, /deep.txt right, counted bad_signature"

say "a container of sig prints the deep file"
lp_run "$T/run.out" "$T/run.err" timeout 60 ctr --address "$CSOCK" run --rm \
	--snapshotter lazypull "$R/sig/bb:v1" c-sig md5sum /deep.txt ||
	{ show_err "$T/run.err"; fail "ctr run sig"; }
[ "$(cut -d' ' -f1 "$T/run.out")" = "$(md5sum <"$T/pad/deep.txt" | cut -d' ' -f1)" ] ||
	fail "the container's md5sum: $(cat "$T/run.out")"
ok "the sig container's md5sum of /deep.txt is the file's"

say "proven once: a daemon with the background fetch on proves unk's index; the next trusts it"
LAYER_UNK=$(sha_of "$T/unk.tar.gz")
stop_snapshotter
start_snapshotter
wait_for 60 "unk's proving pass to record its index" \
	grep -q "layer $LAYER_UNK: gzip index proven once: $ROOT/indexes/" "$T/snap.log"
ls "$ROOT/indexes/${LAYER_UNK#sha256:}".*.proven >/dev/null || fail "no .proven record of unk"
[ "$(trust proven)" = 0 ] || fail "proven counted before any record existed"
stop_snapshotter
start_snapshotter --no-background-fetch
wait_for 20 "unk's layer to be resumed" \
	grep -q "layer $LAYER_UNK: gzip index sha256:[0-9a-f]* trusted: proven once on this node" "$T/snap.log"
[ "$(trust proven)" -ge 1 ] || fail "proven count is $(trust proven)"
[ "$(stat_of "$LAYER_UNK" gzip_index.trusted)" = true ] || fail "unk: the resumed mount does not trust its index"
cmp "$ROOT/layers/${LAYER_UNK#sha256:}/deep.txt" "$T/pad/deep.txt" || fail "unk: /deep.txt differs after the resume"
ok "unk: proven by a pass, recorded; the next daemon trusts its index from the start (counted proven)"

say "lazypull mount --index with the --output sidecar: trusted with key A, not with B"
mkdir -p "$T/outdir"
lp_run "$T/out.index.out" "$T/out.index.err" timeout 120 "$LAZYPULL" index --plain-http \
	--span-size 256K --sign-key "$T/a.pem" --output "$T/outdir" "$R/sig/bb:v1" ||
	{ show_err "$T/out.index.err"; fail "lazypull index --output --sign-key"; }
SIDECAR=$(sed -n 's/^manifest=.* signature=\([^ ]*\) key=.*/\1/p' "$T/out.index.out")
[ -s "$SIDECAR" ] || fail "no signature sidecar in $(cat "$T/out.index.out")"
LAYER_SIG=$(sha_of "$T/sig.tar.gz")
cli_mount() { # cli_mount KEY: mount sig's layer trusting KEY, read /deep.txt
	MOUNTS=()
	lp_mount "$T/mnt.$1" --layer 0 --plain-http --no-background-fetch \
		--index "$T/outdir/${LAYER_SIG#sha256:}.gzidx" --index-signature "$SIDECAR" \
		--index-trusted-key "$T/$1.pub" --log-file "$T/mount.$1.log" "$R/sig/bb:v1"
	cmp "$T/mnt.$1/deep.txt" "$T/pad/deep.txt" || fail "mount $1: /deep.txt differs"
	CLI_TRUSTED=$(python3 -c 'import json,sys; print(str(json.load(open(sys.argv[1]))["gzip_index"]["trusted"]).lower())' \
		"$T/mnt.$1/.lazypull/stats")
	CLI_FETCHED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fetched_bytes"])' \
		"$T/mnt.$1/.lazypull/stats")
	lp_umount "$T/mnt.$1"
}
cli_mount a
[ "$CLI_TRUSTED" = true ] || fail "mount with key A: the index is not trusted"
[ "$CLI_FETCHED" -lt $((LSIZE / 4)) ] || fail "mount with key A: fetched $CLI_FETCHED of $LSIZE bytes"
A_FETCHED=$CLI_FETCHED
cli_mount b
[ "$CLI_TRUSTED" = false ] || fail "mount with key B: the index is trusted"
grep -q "gzip index unknown_key: signed by key" "$T/mount.b.log" "$T/mount.err" ||
	fail "mount with key B: no log line with the reason"
[ "$CLI_FETCHED" -gt $((LSIZE * 3 / 4)) ] || fail "mount with key B: fetched only $CLI_FETCHED bytes"
ok "lazypull mount --index-signature: trusted with A ($A_FETCHED of $LSIZE bytes fetched), proven-only with B ($CLI_FETCHED)"
done_ok
