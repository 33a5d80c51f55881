#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 6 through the snapshotter: an image made by `lazypull optimize` runs
# under containerd with every file its workload reads already prefetched.
# The 4-layer busybox-static image of test_optimize.sh (tar+gzip layers) is
# pushed to Debian's docker-registry on loopback, then
#   opt:  `lazypull optimize` (the image's own command, `cat /etc/a.conf
#         /data/b.txt`) -> eStargz with those files before .prefetch.landmark
#   conv: `lazypull convert` (no profile) -> eStargz, nothing prioritised
# `lazypull snapshotter` (prefetch on, Prepare waits for it; background
# fetch off) and containerd 1.6 pull each with `ctr-remote images rpull`
# and run the workload with `ctr run`. Checked from every layer's
# /.lazypull/stats and /metrics: opt's layers made no on-demand fetch at
# all while the output is right; conv's run (the control) made some.
# Everything runs under a temporary directory and is stopped in the trap.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init

cleanup() {
	local rc=$? m st c
	set +e
	lp_stack_stop
	# containers of an optimize that died without cleaning up
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

# --- registry and the two images ------------------------------------------
mkdir -p "$T/tmp"
lp_stack_registry "{level: error, accesslog: {disabled: true}}" "{filesystem: {rootdirectory: $T/reg}}"

say "building the images: optimized and plainly converted"
python3 "$LP_SOURCE_DIR/tests/integration/make_optimize_image.py" "$T/src" ||
	fail "could not build the test image"
skopeo copy -q --dest-tls-verify=false "oci:$T/src:app" "docker://$R/src/app:v1" ||
	fail "skopeo copy"
TMPDIR="$T/tmp" lp_run "$T/opt.out" "$T/opt.err" timeout 60 "$LAZYPULL" optimize \
	"$R/src/app:v1" "$R/opt/app:v1" || { show_err "$T/opt.err"; fail "lazypull optimize"; }
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	"$R/src/app:v1" "$R/conv/app:v1" || { show_err "$T/conv.err"; fail "lazypull convert"; }
OPT="$R/opt/app:v1" CONV="$R/conv/app:v1"
layer_digests() { # the layer digests of a registry image, one a line
	curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/v1" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]:
    assert "containerd.io/snapshot/stargz/toc.digest" in l.get("annotations", {}), l
    print(l["digest"])'
}
layer_digests opt/app >"$T/opt.layers" || fail "opt manifest"
layer_digests conv/app >"$T/conv.layers" || fail "conv manifest"
[ "$(wc -l <"$T/opt.layers")" = 4 ] && [ "$(wc -l <"$T/conv.layers")" = 4 ] ||
	fail "expected 4 layers each"
ok "optimized and plain eStargz images pushed (4 layers each)"

# --- snapshotter and containerd ---------------------------------------------
"$LAZYPULL" -v snapshotter --root "$ROOT" --address "$SOCK" \
	--metrics-address "127.0.0.1:$MPORT" --no-background-fetch \
	--prefetch-timeout 20000 >"$T/snap.log" 2>&1 &
SNAP_PID=$!
wait_for 20 "the snapshotter to serve" grep -q 'snapshotter: serving' "$T/snap.log"
lp_stack_containerd io.containerd.grpc.v1.cri ""

# run_image REF NAME: rpull REF lazily and run its command; output in $T/NAME.out
run_image() {
	lp_run "$T/$2.rpull" "$T/$2.rpull.err" ctr-remote --address "$CSOCK" images rpull \
		--plain-http --snapshotter lazypull "$1" || { show_err "$T/$2.rpull.err"; fail "rpull $1"; }
	lp_run "$T/$2.out" "$T/$2.err" timeout 30 ctr --address "$CSOCK" run --rm \
		--snapshotter lazypull "$1" "$2" || { show_err "$T/$2.err"; fail "ctr run $1"; }
	grep -qx 'a.conf: setting=layer2' "$T/$2.out" && grep -qx 'b.txt: hello from layer 2' "$T/$2.out" ||
		fail "$1: the workload printed '$(cat "$T/$2.out")'"
}

# stats LAYERS: per layer "digest prefetch-state on-demand-fetches
# fetched-bytes blob-bytes" from its mount's /.lazypull/stats; the
# histogram's _count in /metrics must agree
stats() {
	curl -fsS "http://127.0.0.1:$MPORT/metrics" >"$T/metrics.txt" || fail "GET /metrics"
	python3 - "$1" "$ROOT/layers" "$T/metrics.txt" <<'PY'
import json, re, sys
layers = open(sys.argv[1]).read().split()
count = {}
for line in open(sys.argv[3]):
    m = re.match(r'^lazypull_layer_on_demand_fetch_seconds_count\{layer="([^"]+)"\} (\S+)$', line)
    if m:
        count[m.group(1)] = int(float(m.group(2)))
for d in layers:
    s = json.load(open("%s/%s/.lazypull/stats" % (sys.argv[2], d.split(":")[1])))
    n = s["on_demand"]["fetches"]
    assert count.get(d) == n, ("metrics and stats disagree", d, count.get(d), n)
    print(d, s["prefetch"]["state"], n, s["fetched_bytes"], s["blob_bytes"])
PY
}

# --- the optimized image: no on-demand fetch --------------------------------
say "optimized image: rpull, run, per-layer stats"
run_image "$OPT" opt
stats "$T/opt.layers" >"$T/opt.stats" || fail "stats of the optimized image's layers"
sed 's/^/    /' "$T/opt.stats"
awk '$3 != 0 { bad = 1 } END { exit bad }' "$T/opt.stats" ||
	fail "on-demand fetches in the optimized image's layers: $(cat "$T/opt.stats")"
# the layers the workload read were prefetched, and not in full
awk '$2 == "done" { n++ } END { exit n >= 2 ? 0 : 1 }' "$T/opt.stats" ||
	fail "expected layers 0 and 2 prefetched: $(cat "$T/opt.stats")"
l2=$(sed -n 3p "$T/opt.stats")
set -- $l2
[ "$2" = done ] && [ "$4" -lt $(($5 / 2)) ] || fail "layer 2: prefetched $4 of $5 bytes (big.bin should stay out)"
ok "optimized: workload output right, 0 on-demand fetches in all 4 layers (prefetch done; layer 2 fetched $4 of $5 bytes)"

# --- the control: plainly converted, fetched on demand ------------------------
say "plain eStargz image (control): rpull, run"
# the chunks are the same (same files): empty the shared disk cache so the
# control fetches from the registry, not from what the first run cached
# (files that vanish are misses to fs/, and its count errs high)
rm -rf "$ROOT"/cache/chunks/*
run_image "$CONV" conv
stats "$T/conv.layers" >"$T/conv.stats" || fail "stats of the plain image's layers"
sed 's/^/    /' "$T/conv.stats"
n=$(awk '{ s += $3 } END { print s + 0 }' "$T/conv.stats")
b=$(awk '{ s += $4 } END { print s + 0 }' "$T/conv.stats")
[ "$n" -gt 0 ] && [ "$b" -gt 0 ] ||
	fail "the plain image's run made no on-demand fetch: $(cat "$T/conv.stats")"
ok "control: the plain image's run made $n on-demand fetches ($b bytes from the registry)"

# --- stop ----------------------------------------------------------------------
kill "$CTRD_PID"
wait "$CTRD_PID" 2>/dev/null || true
CTRD_PID=
kill "$SNAP_PID"
wait "$SNAP_PID" || fail "the snapshotter exited with $?"
SNAP_PID=
"$LAZYPULL" snapshotter --root "$ROOT" --teardown >>"$T/snap.log" 2>&1 || fail "--teardown"
[ -z "$(mounts_under "$ROOT")" ] || fail "mounts left: $(mounts_under "$ROOT")"
ok "SIGTERM, then --teardown: no mounts left"
done_ok
