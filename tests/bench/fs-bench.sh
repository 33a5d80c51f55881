#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# FUSE filesystem benchmark (docs/benchmarks.md, "FUSE filesystem"): one
# generated layer served by lazypull (local blob and registry over
# loopback), by the reference snapshotter's fs package (tests/bench/
# refmount, built from Debian's Go sources when golang-go is there), next
# to the same files on local disk:
#   - warm sequential, random and small-file (open+read+close) read
#     throughput (every byte already read once; "page cache" = second
#     read, "drop_caches" = after echo 3 >/proc/sys/vm/drop_caches: the
#     daemon's memory cache vs disk)
#   - cold latency of a first small-file read on a fresh mount
#   - daemon RSS for 10 mounted layers of 10k entries each
# Root, /dev/fuse and docker-registry needed. Usage: fs-bench.sh [BUILD_DIR]
# Environment: LP_BENCH_RUNS=N repeats the warm measurements N times (the
# mounts interleaved within each round) and reports medians (default 3);
# LP_BENCH_PARTS picks parts from "warm cold rss" (default all three);
# LP_BENCH_HOLD=1 leaves the warm mounts up after the warm part until
# $T/done exists (to profile a daemon: pids and mount points are printed);
# LP_BENCH_BASE=OTHER_BUILD_DIR adds that build's lazypull (registry) to the
# warm rounds as "lazypull-base", to compare two builds in the same run.
set -euo pipefail
RUNS=${LP_BENCH_RUNS:-3}
PARTS=${LP_BENCH_PARTS:-warm cold rss}
part() { [[ " $PARTS " == *" $1 "* ]]; }

SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/bench/bench_lib.sh"
BUILD=${1:-$SRC/build-rel}
LP=$BUILD/cmd/lazypull
CLIENT=$BUILD/tests/reg_client
[ -x "$LP" ] && [ -x "$CLIENT" ] || { echo "build $BUILD first (lazypull, reg_client)" >&2; exit 1; }
T=$(mktemp -d /tmp/lp-fs-bench.XXXXXX)
MOUNTS=()
PIDS=()
cleanup() {
	local m p
	# mounts made in subshells too: every one under $T
	for m in $(awk -v t="$T/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	for p in "${PIDS[@]}" $(cat "$T/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	sleep 0.5
	for m in $(awk -v t="$T/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
say() { echo "== $*" >&2; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---- registry ----
bench_start_registry

# push_image NAME BLOB...: an image whose layers are the blobs, each with
# its toc.digest annotation (from "$BLOB.toc"); prints nothing.
push_image() {
	local name=$1 b layers="" dg size
	shift
	for b in "$@"; do
		read -r dg size < <("$CLIENT" push-blob "$R/bench/$name:v1" "$b")
		echo "$dg" >"$b.digest"
		layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$dg\",\"size\":$size,\"annotations\":{\"containerd.io/snapshot/stargz/toc.digest\":\"$(cat "$b.toc")\"}}"
	done
	echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
	read -r dg size < <("$CLIENT" push-blob "$R/bench/$name:v1" "$T/config")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
		"$dg" "$size" "$layers" >"$T/manifest"
	"$CLIENT" push-manifest "$R/bench/$name:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null
}
convert() { # TREE BLOB
	tar -C "$1" --sort=name -cf "$T/l.tar" .
	"$LP" layer convert --level 6 "$T/l.tar" "$2" | sed -n 's/^toc-digest=//p' >"$2.toc"
	rm -f "$T/l.tar"
}

# ---- the layer: a 256 MiB file, 2000 files of 1-64 KiB ----
say "generating the layer"
python3 - "$T/tree" <<'PY'
import os, random, sys
root = sys.argv[1]; r = random.Random(1)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(3000)]
def content(n):
    out = bytearray()
    while len(out) < n:
        out += r.randbytes(2048) if r.random() < 0.3 else b" ".join(r.choice(words) for _ in range(300)) + b"\n"
    return bytes(out[:n])
os.makedirs(root + "/big")
blk = content(16 << 20)
with open(root + "/big/data.bin", "wb") as f:
    for i in range(16):
        f.write(bytes([i]) + blk[1:])
for i in range(2000):
    d = "%s/small/d%02d" % (root, i % 40)
    os.makedirs(d, exist_ok=True)
    open("%s/f%04d.txt" % (d, i), "wb").write(content(r.randint(1024, 65536)))
PY
convert "$T/tree" "$T/layer.esgz"
push_image one "$T/layer.esgz"
LDG=$(cat "$T/layer.esgz.digest")
TOC=$(cat "$T/layer.esgz.toc")

# ---- the reference ----
bench_build_refmount

lp_mount() { # MNT ARGS...
	local m=$1
	shift
	mkdir -p "$m"
	MOUNTS+=("$m")
	"${LP_BIN:-$LP}" mount "$@" "$m"
}
ref_mount() { # MNT DIGEST TOC [REFMOUNT FLAGS...] (one process per call)
	mkdir -p "$1" "$T/refroot-$(basename "$1")"
	MOUNTS+=("$1")
	"$REFMOUNT" "${@:4}" "$T/refroot-$(basename "$1")" "$R/bench/one:v1" "$1" "$2" "$3" >"$T/ref-$(basename "$1").out" 2>"$T/ref-$(basename "$1").log" &
	PIDS+=($!)
	echo $! >>"$T/pids" # ref_mount may run in a subshell
	for i in $(seq 100); do grep -q ready "$T/ref-$(basename "$1").out" 2>/dev/null && return 0; sleep 0.1; done
	echo "reference mount failed: $(tail -3 "$T/ref-$(basename "$1").log")" >&2
	return 1
}

# seq_mbs DIR: MB/s of reading big/data.bin with 1 MiB reads
seq_mbs() {
	python3 - "$1/big/data.bin" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); n = 0; t = time.perf_counter()
while True:
    b = os.read(fd, 1 << 20)
    if not b: break
    n += len(b)
print("%.0f" % (n / (time.perf_counter() - t) / 1e6))
PY
}
# rand_mbs DIR: MB/s of 4 KiB preads at random offsets of the big file
# and of random small files (4 threads, 2 s each... fixed count)
rand_mbs() {
	python3 - "$1" <<'PY'
import os, random, sys, threading, time
root = sys.argv[1]
smalls = [os.path.join(d, f) for d, _, fs in os.walk(root + "/small") for f in fs]
big = os.open(root + "/big/data.bin", os.O_RDONLY); bsz = os.fstat(big).st_size
def work(seed, out):
    r = random.Random(seed); n = 0
    for i in range(4000):
        if i % 2:
            n += len(os.pread(big, 4096, r.randrange(0, bsz - 4096)))
        else:
            p = r.choice(smalls); fd = os.open(p, os.O_RDONLY)
            sz = os.fstat(fd).st_size
            n += len(os.pread(fd, 4096, r.randrange(0, max(1, sz - 4096)))); os.close(fd)
    out.append(n)
out = []; ts = [threading.Thread(target=work, args=(s, out)) for s in range(4)]
t = time.perf_counter(); [x.start() for x in ts]; [x.join() for x in ts]
print("%.0f" % (sum(out) / (time.perf_counter() - t) / 1e6))
PY
}
# small_mbs DIR: MB/s of one thread opening a random small file, reading
# 4 KiB at 0 and closing it, 8000 times: the per-open cost alone
small_mbs() {
	python3 - "$1" <<'PY'
import os, random, sys, time
root = sys.argv[1]
smalls = [os.path.join(d, f) for d, _, fs in os.walk(root + "/small") for f in fs]
r = random.Random(2); n = 0; t = time.perf_counter()
for i in range(8000):
    fd = os.open(r.choice(smalls), os.O_RDONLY)
    n += len(os.pread(fd, 4096, 0)); os.close(fd)
print("%.0f" % (n / (time.perf_counter() - t) / 1e6))
PY
}
warm_all() { find "$1" -type f -exec cat {} + >/dev/null; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
if part warm; then
say "warm throughput"
lp_mount "$T/m-local" --toc-digest "$TOC" --no-background-fetch --mem-cache 512M "$T/layer.esgz"
lp_mount "$T/m-reg" --layer 0 --no-background-fetch --mem-cache 512M "$R/bench/one:v1"
names=(local-disk lazypull-local lazypull-registry)
dirs=("$T/tree" "$T/m-local" "$T/m-reg")
if [ -n "${LP_BENCH_BASE:-}" ]; then
	LP_BIN=$LP_BENCH_BASE/cmd/lazypull lp_mount "$T/m-base" --layer 0 \
		--no-background-fetch --mem-cache 512M "$R/bench/one:v1"
	names+=(lazypull-base)
	dirs+=("$T/m-base")
fi
if [ -n "$REFMOUNT" ] && ref_mount "$T/m-ref" "$LDG" "$TOC"; then
	names+=(reference-registry)
	dirs+=("$T/m-ref")
fi
declare -A SEQ_PC SEQ_DROP RND_PC RND_DROP SMALL_PC
for i in "${!names[@]}"; do warm_all "${dirs[i]}"; done
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
	for i in "${!names[@]}"; do
		n=${names[i]}
		warm_all "${dirs[i]}"
		SEQ_PC[$n]+="$(seq_mbs "${dirs[i]}") "
		RND_PC[$n]+="$(rand_mbs "${dirs[i]}") "
		SMALL_PC[$n]+="$(small_mbs "${dirs[i]}") "
		drop
		SEQ_DROP[$n]+="$(seq_mbs "${dirs[i]}") "
		drop
		RND_DROP[$n]+="$(rand_mbs "${dirs[i]}") "
	done
	say "round $run: load $(cut -d' ' -f1-3 /proc/loadavg)"
done
printf '\nall runs (MB/s):\n'
for n in "${names[@]}"; do
	printf '%-20s seq-pc [%s] seq-drop [%s] rand-pc [%s] rand-drop [%s] small-pc [%s]\n' "$n" \
		"${SEQ_PC[$n]% }" "${SEQ_DROP[$n]% }" "${RND_PC[$n]% }" "${RND_DROP[$n]% }" "${SMALL_PC[$n]% }"
done
for n in "${names[@]}"; do
	for v in SEQ_PC SEQ_DROP RND_PC RND_DROP SMALL_PC; do
		declare -n arr=$v
		arr[$n]=$(tr ' ' '\n' <<<"${arr[$n]}" | grep . | median)
		unset -n arr
	done
done
printf '\n%-20s %14s %14s %14s %14s %14s   (median of %s, load %s)\n' "warm, MB/s" "seq pagecache" "seq dropped" \
	"rand pagecache" "rand dropped" "small pagecache" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${names[@]}"; do
	printf '%-20s %14s %14s %14s %14s %14s\n' "$n" "${SEQ_PC[$n]}" "${SEQ_DROP[$n]}" "${RND_PC[$n]}" "${RND_DROP[$n]}" "${SMALL_PC[$n]}"
done
ratios() { # LABEL NAME OVER
	printf '%-20s %14s %14s %14s %14s %14s\n' "$1" \
		"$(ratio "${SEQ_PC[$2]}" "${SEQ_PC[$3]}")" \
		"$(ratio "${SEQ_DROP[$2]}" "${SEQ_DROP[$3]}")" \
		"$(ratio "${RND_PC[$2]}" "${RND_PC[$3]}")" \
		"$(ratio "${RND_DROP[$2]}" "${RND_DROP[$3]}")" \
		"$(ratio "${SMALL_PC[$2]}" "${SMALL_PC[$3]}")"
}
ratios lazypull-reg/disk lazypull-registry local-disk
if [ -n "${SEQ_PC[reference-registry]:-}" ]; then
	[ -z "${SEQ_PC[lazypull-base]:-}" ] || ratios base/ref lazypull-base reference-registry
	ratios lazypull-reg/ref lazypull-registry reference-registry
fi
if [ "${LP_BENCH_HOLD:-0}" = 1 ]; then
	for i in "${!names[@]}"; do echo "${names[i]} ${dirs[i]}"; done
	pgrep -a -f "$T/" || true
	echo "mounts held; touch $T/done to go on"
	while [ ! -e "$T/done" ]; do sleep 1; done
fi
fi # warm

# ---- cold first small-file read: median of 5 fresh mounts ----
if part cold; then
say "cold first read"
first_read_ms() { # FILE
	python3 -c 'import sys,time; t=time.perf_counter(); open(sys.argv[1],"rb").read(); print("%.2f" % ((time.perf_counter()-t)*1000))' "$1"
}
F=small/d07/f0007.txt
cold() { # KIND
	local k=$1 j m
	for j in 1 2 3 4 5; do
		m="$T/c-$k-$j"
		case $k in
		local) lp_mount "$m" --toc-digest "$TOC" --no-prefetch --no-background-fetch "$T/layer.esgz" ;;
		registry) lp_mount "$m" --layer 0 --no-prefetch --no-background-fetch "$R/bench/one:v1" ;;
		reference) ref_mount "$m" "$LDG" "$TOC" -no-prefetch -no-background-fetch >/dev/null ;;
		esac
		sleep 0.3 # settle; neither side prefetches nor fetches in the background
		first_read_ms "$m/$F"
	done | median
}
printf '\n%-28s %8s\n' "cold first read of a 1-64 KiB file" "ms (median of 5)"
for k in local registry $([ -n "$REFMOUNT" ] && echo reference); do
	printf '%-28s %8s\n' "$k" "$(cold $k)"
done

fi # cold

# ---- RSS: 10 layers of 10k entries ----
part rss || exit 0
say "RSS for 10 layers x 10k entries"
rm -rf "$T/tree"
blobs=()
for l in $(seq 0 9); do
	python3 - "$T/t$l" "$l" <<'PY'
import os, sys
root, l = sys.argv[1], sys.argv[2]
for i in range(10000 - 100):
    d = "%s/usr/share/d%02d" % (root, i % 100)
    os.makedirs(d, exist_ok=True)
    with open("%s/file-%05d.txt" % (d, i), "w") as f:
        f.write("layer %s file %d\n" % (l, i))
PY
	convert "$T/t$l" "$T/ten$l.esgz"
	rm -rf "$T/t$l"
	blobs+=("$T/ten$l.esgz")
done
push_image ten "${blobs[@]}"
entries=$(python3 -c 'print(10000)')
rss_of() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
pss_of() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }
anon_of() { awk '$1 == "RssAnon:" {print $2}' "/proc/$1/status"; }
lp_rss=0 lp_pss=0 lp_anon=0
for l in $(seq 0 9); do
	m="$T/r$l"
	lp_mount "$m" --layer "$l" --no-prefetch --no-background-fetch "$R/bench/ten:v1"
	ls -R "$m" >/dev/null
done
sleep 0.5
for l in $(seq 0 9); do
	pid=$(pgrep -f -x -- "$LP .* $T/r$l")
	lp_rss=$((lp_rss + $(rss_of "$pid")))
	lp_pss=$((lp_pss + $(pss_of "$pid")))
	lp_anon=$((lp_anon + $(anon_of "$pid")))
done
printf '\n%-34s %10s %10s %10s\n' "10 layers x 10k entries, mounted" "RSS kB" "PSS kB" "anon kB"
printf '%-34s %10s %10s %10s\n' "lazypull (10 daemons, total)" "$lp_rss" "$lp_pss" "$lp_anon"
if [ -n "$REFMOUNT" ]; then
	args=()
	for l in $(seq 0 9); do
		mkdir -p "$T/rr$l"
		MOUNTS+=("$T/rr$l")
		args+=("$T/rr$l" "$(cat "$T/ten$l.esgz.digest")" "$(cat "$T/ten$l.esgz.toc")")
	done
	mkdir -p "$T/refroot-ten"
	"$REFMOUNT" "$T/refroot-ten" "$R/bench/ten:v1" "${args[@]}" >"$T/ref-ten.out" 2>"$T/ref-ten.log" &
	rpid=$!
	PIDS+=($rpid)
	for i in $(seq 600); do grep -q ready "$T/ref-ten.out" 2>/dev/null && break; sleep 0.1; done
	for l in $(seq 0 9); do ls -R "$T/rr$l" >/dev/null; done
	sleep 2
	printf '%-34s %10s %10s %10s\n' "reference (1 process)" "$(rss_of $rpid)" "$(pss_of $rpid)" "$(anon_of $rpid)"
fi
