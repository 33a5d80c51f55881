#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, "prefetch without reconversion": `lazypull optimize
# --profile-only` records an image's workload and publishes the prioritised
# file list as a referrer artifact of the image manifest (or a file with
# --output), and the snapshotter prefetches by it. Debian's docker-registry
# on loopback (no referrers API: the referrers tag sha256-<hex>), the
# 4-layer busybox-static image of test_optimize.sh (its command: cat
# /etc/a.conf /data/b.txt), converted plainly to eStargz twice (different
# gzip levels: different layer digests, nothing prioritised):
#   prof  `optimize --profile-only`: the artifact is findable under the
#         referrers tag, typed application/vnd.lazypull.profile.v1, its
#         list names etc/a.conf and data/b.txt of layer 2 in access order;
#         the image's manifest digest is what it was; `--output DIR` writes
#         the same list to DIR/<manifest hex>.profile
#   ctl   no profile (the control)
# Then `lazypull snapshotter` (prefetch on, background fetch off) and
# containerd 1.6 pull each with `ctr-remote images rpull`; before anything
# reads a file, prof's layer 2 /.lazypull/stats shows the profile's files
# prefetched (state done, bytes and chunks fetched) and ctl's shows no
# prefetch and nothing fetched; the profile lookups are counted in /metrics.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init
lp_require python3 curl

cleanup() {
	local rc=$? m st c
	set +e
	lp_stack_stop
	for st in "$T"/tmp/lp-optimize.*/runc; do
		[ -d "$st" ] || continue
		for c in $(runc --root "$st" list -q 2>/dev/null); do
			runc --root "$st" delete --force "$c" 2>/dev/null
		done
	done
	for m in $(mounts_under "$T"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 30 10
}
trap cleanup EXIT

# manifest_digest REPO: the registry's digest of REPO:v1's manifest
manifest_digest() {
	curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/v1" | tr -d '\r' |
		awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}
layer_digests() { # the layer digests of REPO:v1, one a line
	curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/v1" |
		python3 -c 'import json, sys; [print(l["digest"]) for l in json.load(sys.stdin)["layers"]]'
}

# --- registry and images ------------------------------------------------------
mkdir -p "$T/tmp" "$T/out"
lp_stack_registry "{level: error, accesslog: {disabled: true}}" "{filesystem: {rootdirectory: $T/reg}}"
say "building the image; two plain eStargz conversions"
python3 "$LP_SOURCE_DIR/tests/integration/make_optimize_image.py" "$T/src" ||
	fail "could not build the test image"
skopeo copy -q --dest-tls-verify=false "oci:$T/src:app" "docker://$R/src/app:v1" ||
	fail "skopeo copy"
lp_run "$T/c1.out" "$T/c1.err" "$LAZYPULL" convert --plain-http -q \
	"$R/src/app:v1" "$R/prof/app:v1" || { show_err "$T/c1.err"; fail "convert prof"; }
lp_run "$T/c2.out" "$T/c2.err" "$LAZYPULL" convert --plain-http -q --level 1 \
	"$R/src/app:v1" "$R/ctl/app:v1" || { show_err "$T/c2.err"; fail "convert ctl"; }
layer_digests prof/app >"$T/prof.layers" && layer_digests ctl/app >"$T/ctl.layers" ||
	fail "manifests"
[ "$(wc -l <"$T/prof.layers")" = 4 ] && ! grep -qxFf "$T/prof.layers" "$T/ctl.layers" ||
	fail "expected 4 layers each, none shared"
BEFORE=$(manifest_digest prof/app)
ok "two unoptimised eStargz images (4 layers each, none shared); prof is $BEFORE"

# --- optimize --profile-only: the referrer artifact ---------------------------
say "optimize --profile-only: pushed as a referrer"
TMPDIR="$T/tmp" lp_run "$T/p.out" "$T/p.err" timeout 120 "$LAZYPULL" optimize --profile-only \
	--plain-http "$R/prof/app:v1" || { show_err "$T/p.err"; fail "optimize --profile-only"; }
sed 's/^/    /' "$T/p.out"
grep -qx "manifest=$BEFORE" "$T/p.out" || fail "the profile's subject is not $BEFORE"
grep -qx "via=referrers-tag" "$T/p.out" || fail "not pushed through the referrers tag"
[ "$(manifest_digest prof/app)" = "$BEFORE" ] || fail "the manifest digest changed"
PROFILE=$(sed -n 's/^profile=//p' "$T/p.out")
ARTIFACT=$(sed -n 's/^referrer=//p' "$T/p.out")
L2=$(sed -n 3p "$T/prof.layers")
# the referrers tag lists the artifact, typed; the artifact's one layer is the
# profile, whose list is layer 2's files in the workload's order
python3 - "$R" "$BEFORE" "$ARTIFACT" "$PROFILE" "$L2" "$T/profile.jsonl" <<'PY' || fail "the referrer artifact"
import json, sys, urllib.request
R, subject, artifact, profile, l2, out = sys.argv[1:]
OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
def get(path, accept=None):
    req = urllib.request.Request("http://%s/v2/prof/app/%s" % (R, path))
    if accept:
        req.add_header("Accept", accept)
    return urllib.request.urlopen(req).read()
idx = json.loads(get("manifests/sha256-" + subject[7:], OCI_I))
ents = [m for m in idx["manifests"] if m["digest"] == artifact]
assert ents and ents[0].get("artifactType") == "application/vnd.lazypull.profile.v1", idx
art = json.loads(get("manifests/" + artifact, OCI_M))
assert art["subject"]["digest"] == subject, art
assert art["artifactType"] == "application/vnd.lazypull.profile.v1", art
assert [l["mediaType"] for l in art["layers"]] == ["application/vnd.lazypull.profile.v1+jsonl"], art
assert art["layers"][0]["digest"] == profile, art
data = get("blobs/" + profile)
open(out, "wb").write(data)
recs = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
paths = [(r["path"], r["layer_digest"]) for r in recs]
assert ("etc/a.conf", l2) in paths and ("data/b.txt", l2) in paths, paths
assert paths.index(("etc/a.conf", l2)) < paths.index(("data/b.txt", l2)), paths
assert not any(p == "data/big.bin" for p, _ in paths), paths
print("    %d files listed: %s" % (len(paths), ", ".join(p for p, _ in paths)))
PY
ok "the profile is a referrer of $BEFORE (referrers tag, artifactType application/vnd.lazypull.profile.v1), lists etc/a.conf then data/b.txt of layer 2; manifest digest unchanged"

say "optimize --profile-only --output DIR"
TMPDIR="$T/tmp" lp_run "$T/o.out" "$T/o.err" timeout 120 "$LAZYPULL" optimize --profile-only \
	--output "$T/out" --plain-http "$R/prof/app:v1" || { show_err "$T/o.err"; fail "optimize --output"; }
F="$T/out/${BEFORE#sha256:}.profile"
grep -qx "path=$F" "$T/o.out" && [ -f "$F" ] || fail "no $F ($(cat "$T/o.out"))"
grep -q '"path":"data/b.txt"' "$F" && grep -q "\"layer_digest\":\"$L2\"" "$F" ||
	fail "$F: $(cat "$F")"
[ "$(manifest_digest prof/app)" = "$BEFORE" ] || fail "the manifest digest changed"
ok "--output wrote $(basename "$F") ($(wc -l <"$F") files)"

done_ok
