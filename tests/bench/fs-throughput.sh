#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sequential read throughput of one big file through `lazypull mount` (the
# table in docs/fs.md, "Measured"): a generated file of 152 MiB (text
# slices and incompressible stretches, about half compressible) in a layer
# converted by lazypull at gzip level 1 with 4 MiB chunks, mounted from the
# local blob, read with dd bs=1M:
#   - cold, through the mount: every chunk fetched, inflated and verified
#     (no background fetch, no prefetch, memory tier only)
#   - cold, writing the disk tier too (--cache-dir)
#   - remount, served by the disk tier (verify on read)
#   - memory tier, after drop_caches (the daemon's cache, no page cache)
#   - kernel page cache through the mount (a second read)
#   - the same file on local disk after drop_caches (the baseline)
# Each row is the median of LP_BENCH_RUNS runs (default 3). Root and
# /dev/fuse needed (drop_caches, mounts). Usage: fs-throughput.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
LP=$BUILD/cmd/lazypull
RUNS=${LP_BENCH_RUNS:-3}
SIZE_MIB=152
[ -x "$LP" ] || { echo "build $BUILD first (lazypull)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "fs-throughput.sh: needs root (drop_caches, mounts)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "fs-throughput.sh: /dev/fuse missing" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/lp-fs-throughput.XXXXXX")
M="$T/mnt"
cleanup() {
	if mountpoint -q "$M" 2>/dev/null; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
say() { echo "== $*" >&2; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

say "generate a ${SIZE_MIB} MiB file and convert it (level 1, 4 MiB chunks)"
mkdir -p "$T/tree" "$M"
python3 - "$T/tree/big.bin" "$SIZE_MIB" <<'PY'
import random, sys
r = random.Random(152)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(2000)]
text = bytearray()
while len(text) < 1 << 20:
    text += b" ".join(r.choice(words) for _ in range(600)) + b"\n"
text = bytes(text)
n = int(sys.argv[2]) << 20
with open(sys.argv[1], "wb") as f:
    done = 0
    while done < n:
        if r.random() < 0.3:
            b = r.randbytes(4096)
        else:
            o = r.randrange(0, len(text) - 65536)
            b = text[o:o + r.randrange(4096, 65536)]
        b = b[:n - done]
        f.write(b)
        done += len(b)
PY
tar -C "$T/tree" -cf "$T/layer.tar" .
"$LP" layer convert --level 1 --chunk-size 4M "$T/layer.tar" "$T/layer.esgz" >"$T/convert.out"
rm -f "$T/layer.tar"
toc=$(sed -n 's/^toc-digest=//p' "$T/convert.out")
say "blob $(($(stat -c %s "$T/layer.esgz") >> 20)) MiB"

# mb_per_s FILE: read FILE with dd bs=1M, print MB/s (10^6 bytes, as dd)
mb_per_s() {
	local t0 t1 bytes
	bytes=$(stat -L -c %s "$1")
	t0=$(date +%s%N)
	dd if="$1" of=/dev/null bs=1M status=none
	t1=$(date +%s%N)
	awk -v b="$bytes" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f\n", b / (ns / 1e9) / 1e6 }'
}
mnt() { "$LP" mount --toc-digest "$toc" --no-prefetch --no-background-fetch "$@" "$T/layer.esgz" "$M"; }
umnt() {
	local pid
	pid=$(pgrep -f -x -- "$LP .* $M" || true)
	fusermount3 -u "$M"
	for _ in $(seq 100); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A res
for run in $(seq "$RUNS"); do
	say "round $run of $RUNS"
	# memory tier only: cold, then memory tier (after drop_caches), then
	# the page cache
	drop
	mnt
	res[cold]+="$(mb_per_s "$M/big.bin") "
	drop
	res[mem]+="$(mb_per_s "$M/big.bin") "
	res[page]+="$(mb_per_s "$M/big.bin") "
	umnt
	# disk tier: cold while writing it, then a remount served by it
	rm -rf "$T/cache"
	drop
	mnt --cache-dir "$T/cache"
	res[cold_disk]+="$(mb_per_s "$M/big.bin") "
	umnt
	drop
	mnt --cache-dir "$T/cache"
	res[disk]+="$(mb_per_s "$M/big.bin") "
	umnt
	drop
	res[local]+="$(mb_per_s "$T/tree/big.bin") "
done

row() { printf '  %-49s %5s MB/s\n' "$1" "$(tr ' ' '\n' <<<"${res[$2]}" | grep . | median)"; }
echo "dd if=MNT/big.bin of=/dev/null bs=1M   (${SIZE_MIB} MiB file, gzip level 1, 4 MiB chunks, local blob; median of $RUNS, $(nproc) CPUs)"
row "cold, through the mount (fetch+inflate+verify)" cold
row "cold, writing the disk tier too" cold_disk
row "remount, served by the disk tier (verify on read)" disk
row "memory tier, after drop_caches" mem
row "kernel page cache through the mount" page
row "local file (tmp dir), drop_caches" local
