#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Memory benchmark (docs/benchmarks.md, "FUSE filesystem", resident memory):
# layers of 10k entries each, lazily mounted over a loopback registry in
# ONE process, the production shape:
#   - lazypull: tests/bench/mem_driver (the snapshotter's layer pool,
#     snapshot/layers.c, without containerd, with the snapshotter's one
#     process-wide memory budget and its chunk disk tier under its root)
#   - the reference: tests/bench/refmount (its fs package, one process for
#     all layers), when golang-go and Debian's Go sources are there
# Both run in each of MODES (default "off defaults"):
#   off       prefetch and background fetch off (mem_driver's default,
#             refmount -no-prefetch -no-background-fetch): only metadata
#             and the serving machinery are measured
#   defaults  prefetch and background fetch on, as users run it (mem_driver
#             --defaults, refmount without flags); measured once every
#             layer's background fetch is done and SETTLE_S (20) seconds
#             after the mounts were ready, whichever is later (the
#             reference: SETTLE_S after ready)
# After mounting, every mount is walked as a container start would: a stat
# of every entry (find -printf) and a read of 100 files.
# Each is measured with each number of layers in SERIES (default "1 LAYERS
# BIG", LAYERS=10, BIG=100; a fresh process each, over an image of exactly
# that many layers; the reference only up to REF_MAX_LAYERS=LAYERS): the
# totals, and the cost of one more mounted layer, (M[LAYERS] - M[1]) /
# (LAYERS - 1), which leaves out what a process pays once (libraries, main
# heap).
# Prints RSS/PSS/anonymous memory of each process, the ratios and, for
# lazypull with LAYERS layers, where its resident bytes are (mappings by
# kind, malloc statistics), per mode.
# Root, /dev/fuse and docker-registry needed.
# Usage: mem-bench.sh [BUILD_DIR]...  (LAYERS=10 BIG=100 ENTRIES=10000 by
# default; several build dirs are measured interleaved against one
# reference run, e.g. a baseline build and the current one (a baseline
# mem_driver without --defaults is run with "off" only);
# MEM_BENCH_BLOBS=DIR keeps the generated layers there between runs;
# MEM_DRIVER_WRAP="valgrind --tool=massif --vgdb=yes" runs the driver
# under a profiler that replaces the process, MEM_BENCH_HOOK=CMD runs
# CMD PID once everything is mounted and walked)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/bench/bench_lib.sh"
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$SRC/build-rel")
BUILD=${BUILDS[-1]}
LP=$BUILD/cmd/lazypull
CLIENT=$BUILD/tests/reg_client
LAYERS=${LAYERS:-10}
ENTRIES=${ENTRIES:-10000}
BIG=${BIG:-100}
SERIES=${SERIES:-1 $LAYERS $BIG}
MODES=${MODES:-off defaults}
REF_MAX_LAYERS=${REF_MAX_LAYERS:-$LAYERS}
SETTLE_S=${SETTLE_S:-20}
[ "$LAYERS" -ge 2 ] || { echo "LAYERS must be at least 2" >&2; exit 1; }
MAXL=0
for n in $SERIES; do [ "$n" -le "$MAXL" ] || MAXL=$n; done
for b in "${BUILDS[@]}"; do
	for x in "$b/cmd/lazypull" "$b/tests/reg_client" "$b/tests/mem_driver"; do
		[ -x "$x" ] || { echo "build $b first (lazypull, reg_client, mem_driver)" >&2; exit 1; }
	done
done
T=$(mktemp -d /tmp/lp-mem-bench.XXXXXX)
BLOBS=${MEM_BENCH_BLOBS:-$T/blobs}
mkdir -p "$BLOBS"
PIDS=()
cleanup() {
	local m p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for m in $(awk -v t="$T/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
say() { echo "== $*" >&2; }

# ---- registry ----
bench_start_registry

# ---- the layers: ENTRIES entries each (dirs of 100 small files) ----
blobs=()
for l in $(seq 0 $((MAXL - 1))); do
	b=$BLOBS/l$l-$ENTRIES.esgz
	if [ ! -s "$b.toc" ]; then
		say "generating layer $l"
		python3 - "$T/t$l" "$l" "$ENTRIES" <<'PY'
import os, sys
root, l, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n - n // 100):
    d = "%s/usr/share/d%02d" % (root, i % 100)
    os.makedirs(d, exist_ok=True)
    with open("%s/file-%05d.txt" % (d, i), "w") as f:
        f.write("layer %s file %d\n" % (l, i))
PY
		tar -C "$T/t$l" --sort=name -cf "$T/l.tar" .
		"$LP" layer convert --level 6 "$T/l.tar" "$b" | sed -n 's/^toc-digest=//p' >"$b.toc"
		rm -rf "$T/t$l" "$T/l.tar"
	fi
	blobs+=("$b")
done
descs=() args=()
for b in "${blobs[@]}"; do
	read -r dg size < <("$CLIENT" push-blob "$R/bench/mem:v1" "$b")
	descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$dg\",\"size\":$size,\"annotations\":{\"containerd.io/snapshot/stargz/toc.digest\":\"$(cat "$b.toc")\"}}")
	args+=("$dg" "$(cat "$b.toc")")
done
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
read -r cdg csize < <("$CLIENT" push-blob "$R/bench/mem:v1" "$T/config")
# one image per point of the series, bench/mem:nN of the first N layers:
# the layer pool mounts the layers a manifest lists after the one asked
# for ahead of use, so a point must not see more layers than it measures
for n in $SERIES; do
	layers=$(IFS=,; echo "${descs[*]:0:n}")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
		"$cdg" "$csize" "$layers" >"$T/manifest"
	"$CLIENT" push-manifest "$R/bench/mem:n$n" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null
done

# touch MNT...: what a container start does to its lower layers, roughly
touch_mounts() {
	local m
	for m in "$@"; do
		find "$m" -printf '%s %m %U\n' >/dev/null
		(find "$m" -type f || true) | head -100 | xargs cat >/dev/null
	done
}
wait_ready() { # OUT PID
	for i in $(seq 1200); do
		grep -q '^ready' "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
kb() { awk -v k="$2" '$1 == k":" {print $2}' "$1"; }
# measure NAME MODE N PID: one row of the table, kept in $T/rows
measure() {
	local st=/proc/$4/status sr=/proc/$4/smaps_rollup
	printf '%s %s %s %s %s %s %s\n' "$1" "$2" "$3" "$(kb $st VmRSS)" "$(kb $sr Pss)" \
		"$(kb $st RssAnon)" "$(kb $st Threads)" | tee -a "$T/rows" >&2
}
# settle MODE START MNT...: in mode defaults, wait until every mount's
# background fetch has ended (at most 300 s) and SETTLE_S have passed since
# START (seconds since the epoch); in mode off, 1 s
settle() {
	local mode=$1 start=$2 m st i busy
	shift 2
	if [ "$mode" != defaults ]; then
		sleep 1
		return 0
	fi
	for i in $(seq 300); do
		busy=0
		for m in "$@"; do
			st=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["background"]["state"])' \
				"$m/.lazypull/stats" 2>/dev/null || echo gone)
			case $st in pending | running) busy=1; break ;; esac
		done
		[ $busy = 1 ] || break
		sleep 1
	done
	[ $busy = 0 ] || say "background fetch still running after 300 s"
	while [ $(($(date +%s) - start)) -lt "$SETTLE_S" ]; do sleep 1; done
}
# breakdown PID: resident kB by mapping kind
breakdown() {
	python3 - "/proc/$1/smaps" <<'PY'
import re, sys
cur = None; maps = []
for line in open(sys.argv[1]):
    f = line.split()
    if re.match(r'^[0-9a-f]+-[0-9a-f]+ ', line):
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        cur = {"size": hi - lo, "perm": f[1], "path": f[5] if len(f) > 5 else "", "Rss": 0, "Pss": 0, "Anonymous": 0}
        maps.append(cur)
    elif f[0].rstrip(':') in ("Rss", "Pss", "Anonymous"):
        cur[f[0].rstrip(':')] = int(f[1])
kinds = {}
for m in maps:
    p = m["path"]
    if p == "[heap]": k = "main heap (brk)"
    elif p == "[stack]": k = "main stack"
    elif p.startswith("["): k = "other " + p
    elif p: k = "executable" if "mem_driver" in p or "lazypull" in p else "libraries and files"
    elif m["size"] == 8 << 20: k = "thread stacks (8 MiB maps)"
    else: k = "anon mmaps (malloc arenas, big blocks)"
    a = kinds.setdefault(k, [0, 0, 0, 0])
    a[0] += m["Rss"]; a[1] += m["Pss"]; a[2] += m["Anonymous"]; a[3] += 1
print("%-40s %9s %9s %9s %6s" % ("  mapping kind", "RSS kB", "PSS kB", "anon kB", "maps"))
for k, a in sorted(kinds.items(), key=lambda x: -x[1][0]):
    print("  %-38s %9d %9d %9d %6d" % (k, a[0], a[1], a[2], a[3]))
PY
}

# run_lp BUILD N NAME MODE: mem_driver serving the first N layers, walked,
# measured
run_lp() {
	local drv=$1/tests/mem_driver n=$2 name=$3 mode=$4 dpid start flags=()
	say "$name ($mode): $n layers x $ENTRIES entries in one process"
	rm -rf "$T/lproot"
	mkdir -p "$T/lproot"
	[ "$mode" = off ] || flags=(--defaults)
	start=$(date +%s)
	${MEM_DRIVER_WRAP:-} "$drv" "${flags[@]}" "$T/lproot" "$R/bench/mem:n$n" "$R" "${args[@]:0:2*n}" >"$T/drv.out" 2>"$T/drv.log" &
	dpid=$!
	PIDS+=($dpid)
	wait_ready "$T/drv.out" $dpid || { echo "mem_driver failed: $(tail -5 "$T/drv.log")" >&2; exit 1; }
	mapfile -t lmnts < <(grep -v '^ready' "$T/drv.out")
	touch_mounts "${lmnts[@]}"
	settle "$mode" "$start" "${lmnts[@]}"
	measure "$name" "$mode" "$n" $dpid
	if [ "$n" = "$LAYERS" ] && [ "$1" = "$BUILD" ]; then
		[ -z "${MEM_BENCH_HOOK:-}" ] || $MEM_BENCH_HOOK $dpid
		cp "/proc/$dpid/smaps" "$T/lp-$mode.smaps"
		breakdown $dpid >"$T/lp-$mode.breakdown"
		python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["cache"]; print("memory tier (process-wide): %d of %d bytes, peak %d" % (c.get("process_memory_bytes", -1), c["memory_budget_bytes"], c.get("process_memory_peak_bytes", -1)))' \
			"${lmnts[0]}/.lazypull/stats" >"$T/lp-$mode.tier" 2>/dev/null || true
		kill -USR1 $dpid
		sleep 0.5
		grep '^mallinfo2' "$T/drv.log" | tail -1 >"$T/lp-$mode.malloc" || true
	fi
	kill $dpid
	wait $dpid 2>/dev/null || true
}
# run_ref N MODE: the reference serving the first N layers
run_ref() {
	local n=$1 mode=$2 l rpid flags=()
	[ "$mode" != off ] || flags=(-no-prefetch -no-background-fetch)
	say "reference ($mode): $n layers in one process"
	rargs=() rmnts=()
	rm -rf "$T/refroot" "$T"/rr*
	for l in $(seq 0 $((n - 1))); do
		mkdir -p "$T/rr$l"
		rmnts+=("$T/rr$l")
		rargs+=("$T/rr$l" "${args[2 * l]}" "${args[2 * l + 1]}")
	done
	mkdir -p "$T/refroot"
	"$REFMOUNT" "${flags[@]}" "$T/refroot" "$R/bench/mem:n$n" "${rargs[@]}" >"$T/ref.out" 2>"$T/ref.log" &
	rpid=$!
	PIDS+=($rpid)
	if wait_ready "$T/ref.out" $rpid; then
		touch_mounts "${rmnts[@]}"
		if [ "$mode" = defaults ]; then sleep "$SETTLE_S"; else sleep 2; fi
		measure reference "$mode" "$n" $rpid
	else
		say "reference mount failed: $(tail -3 "$T/ref.log")"
	fi
	kill $rpid
	wait $rpid 2>/dev/null || true
	for l in "${rmnts[@]}"; do
		fusermount3 -u "$l" 2>/dev/null || umount -l "$l" 2>/dev/null || true
	done
}

: >"$T/rows"
bench_build_refmount
for mode in $MODES; do
	for n in $SERIES; do
		k=0
		for b in "${BUILDS[@]}"; do
			name=lazypull
			[ ${#BUILDS[@]} -eq 1 ] || name="lazypull#$k"
			k=$((k + 1))
			# a baseline's driver may not know --defaults
			[ "$mode" = off ] || grep -q -- --defaults "$b/tests/mem_driver" || continue
			run_lp "$b" "$n" "$name" "$mode"
		done
		[ -z "$REFMOUNT" ] || [ "$n" -gt "$REF_MAX_LAYERS" ] || run_ref "$n" "$mode"
	done
done
[ ${#BUILDS[@]} -eq 1 ] || for k in "${!BUILDS[@]}"; do printf '\nlazypull#%d = %s' "$k" "${BUILDS[k]}"; done
printf '\n'
python3 - "$T/rows" "$LAYERS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
top = int(sys.argv[2])
m = {}
for name, mode, n, rss, pss, anon, thr in rows:
    m[(name, mode, int(n))] = [int(rss), int(pss), int(anon), int(thr)]
keys = list(dict.fromkeys((r[0], r[1]) for r in rows))
print("%-22s %-9s %6s %9s %9s %9s %8s" % ("one process", "mode", "layers", "RSS kB", "PSS kB", "anon kB", "threads"))
for name, mode in keys:
    for (nm, md, n), v in sorted(m.items(), key=lambda x: x[0][2]):
        if (nm, md) == (name, mode):
            print("%-22s %-9s %6d %9d %9d %9d %8d" % (name, mode, n, *v))
per = {}
for name, mode in keys:
    if (name, mode, 1) in m and (name, mode, top) in m:
        a, b = m[(name, mode, 1)], m[(name, mode, top)]
        per[(name, mode)] = [(b[i] - a[i]) / (top - 1) for i in range(4)]
        print("%-22s %-9s %6s %9.0f %9.0f %9.0f %8.1f" % (name, mode, "+1", *per[(name, mode)]))
ref = "reference"
for name, mode in keys:
    if name == ref or (name, mode, top) not in m or (ref, mode, top) not in m:
        continue
    t = [m[(name, mode, top)][i] / m[(ref, mode, top)][i] for i in range(3)]
    print("ratio %-16s %-9s %d layers: RSS %.3f PSS %.3f anon %.3f" % (name, mode, top, *t))
    if (name, mode) in per and (ref, mode) in per:
        p = [per[(name, mode)][i] / per[(ref, mode)][i] for i in range(3)]
        print("ratio %-16s %-9s per layer: RSS %.3f PSS %.3f anon %.3f" % (name, mode, *p))
PY
for mode in $MODES; do
	[ -s "$T/lp-$mode.breakdown" ] || continue
	printf '\nlazypull (%s, %s), %s layers, resident memory by mapping kind:\n' "$BUILD" "$mode" "$LAYERS"
	cat "$T/lp-$mode.breakdown"
	printf 'lazypull malloc: %s\n' "$(cat "$T/lp-$mode.malloc")"
	[ ! -s "$T/lp-$mode.tier" ] || cat "$T/lp-$mode.tier"
	if [ -n "${MEM_BENCH_KEEP_SMAPS:-}" ]; then
		cp "$T/lp-$mode.smaps" "$MEM_BENCH_KEEP_SMAPS.$mode"
	fi
done
