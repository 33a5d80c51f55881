#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# restart-bench.sh: what a restart of `lazypull snapshotter` costs readers
# (docs/benchmarks.md, "Restarts"). An image of NLAYERS layers (default 50)
# of NFILES 2 KiB files each is pulled lazily through containerd 1.6
# (ctr-remote rpull: every layer mounted); one reader on the host reads
# files it has not read before, round robin over the layers' mounts, 1 ms
# apart (each
# read: open, a FUSE lookup and read, an on-demand fetch from a loopback
# registry, checked against the layer's sha256 list), and records each
# read's start and end. After WARM s the daemon is killed (SIGKILL, then in
# a second round SIGTERM) and a new one started at once. Reported per
# round: the time from the old daemon's exit to the first read the new
# one served, the daemon's start to "serving", and read latencies (p50,
# p99, max) of the WINDOW s around the restart against those before it.
#
# Usage: tests/bench/restart-bench.sh     (root; containerd, runc,
#        docker-registry, ctr-remote; LAZYPULL or build/cmd/lazypull)
# Environment: NLAYERS (50), NFILES (400), WARM (5), AFTER (5).
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"

lp_stack_init
NLAYERS=${NLAYERS:-50}
NFILES=${NFILES:-400}
WARM=${WARM:-5}
AFTER=${AFTER:-5}
READER_PID=

cleanup() {
	local rc=$? m
	set +e
	[ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null
	lp_stack_stop
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 30 10
}
trap cleanup EXIT

start_snapshotter() {
	local started
	started=$(grep -c "snapshotter: serving" "$T/snap.log" 2>/dev/null || true)
	"$LAZYPULL" snapshotter --root "$ROOT" --address "$SOCK" \
		--no-background-fetch >>"$T/snap.log" 2>&1 &
	SNAP_PID=$!
	wait_for 60 "the snapshotter to serve" sh -c \
		"[ \$(grep -c 'snapshotter: serving' '$T/snap.log') -gt ${started:-0} ]"
}

lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}}"
say "building a $NLAYERS-layer image of $NFILES files per layer"
python3 "$LP_SOURCE_DIR/tests/integration/make_restart_image.py" "$T/layout" "$NFILES" "$NLAYERS"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	"oci:$T/layout:many" "$R/many:esgz" || { show_err "$T/conv.err"; fail "convert"; }
start_snapshotter
lp_stack_containerd "" ""
lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "$R/many:esgz" || { show_err "$T/rpull.err"; fail "rpull"; }
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = "$NLAYERS" ] || fail "$n layers mounted, want $NLAYERS"
say "$n layers mounted lazily"

cat >"$T/reader.py" <<'PY'
import glob, hashlib, os, sys, time
mounts, seconds, out, first = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
dirs, sums = {}, {}
for m in glob.glob(mounts + "/*"):
    for e in os.listdir(m):
        if e.startswith("l"):
            dirs[int(e[1:])] = os.path.join(m, e)
for k, d in dirs.items():
    sums[k] = dict(reversed(l.split()) for l in open(d + "/SUMS"))
K, i, bad = len(dirs), first, 0
end = time.time() + seconds
with open(out, "w") as f:
    while time.time() < end:
        k, n = i % K, i // K
        t0 = time.time()
        with open("%s/f%d" % (dirs[k], n), "rb") as g:
            b = g.read()
        t1 = time.time()
        if hashlib.sha256(b).hexdigest() != sums[k]["f%d" % n]:
            bad += 1
        f.write("%.6f %.6f\n" % (t0, t1))
        i += 1
        time.sleep(0.001)  # a busy workload, not a tight loop
print(i - first, bad)
PY

# round SIGNAL FIRST: one restart under the reader, starting at file FIRST
round() {
	local sig=$1 first=$2 t_kill t_exit t_serve res
	python3 "$T/reader.py" "$ROOT/layers" $((WARM + AFTER)) "$T/reads.$sig" "$first" >"$T/reader.$sig" &
	READER_PID=$!
	sleep "$WARM"
	t_kill=$(date +%s.%N)
	kill -"$sig" "$SNAP_PID"
	wait "$SNAP_PID" 2>/dev/null || true
	t_exit=$(date +%s.%N)
	start_snapshotter
	t_serve=$(date +%s.%N)
	wait "$READER_PID"
	READER_PID=
	read -r res bad <"$T/reader.$sig"
	[ "$bad" = 0 ] || fail "$sig: $bad reads returned wrong bytes"
	NEXT=$((first + res))
	python3 - "$T/reads.$sig" "$t_kill" "$t_exit" "$t_serve" "$sig" "$res" <<'PY'
import sys
recs = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
t_kill, t_exit, t_serve = map(float, sys.argv[2:5])
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")
before = [b - a for a, b in recs if b < t_kill]
across = [b - a for a, b in recs if b >= t_kill]
first = min(b for a, b in recs if b > t_exit)
print("| %s | %d | %.0f | %.0f | %.2f / %.2f / %.1f | %.2f / %.2f / %.0f |" % (
    sys.argv[5], int(sys.argv[6]), (first - t_exit) * 1000, (t_serve - t_exit) * 1000,
    q(before, .5), q(before, .99), max(before) * 1000,
    q(across, .5), q(across, .99), max(across) * 1000))
PY
}

say "reads across a restart ($WARM s before, $AFTER s after)"
echo "| stop | reads | exit → first read served (ms) | exit → new daemon serving gRPC (ms) | before: p50 / p99 / max (ms) | from the stop on: p50 / p99 / max (ms) |"
echo "|---|---|---|---|---|---|"
round KILL 0
round TERM "$NEXT"
grep -q "resumed $NLAYERS layer(s)" "$T/snap.log" || fail "not every layer was resumed"
