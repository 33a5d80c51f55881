#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The memory budget holds under a read-everything workload: a generated
# layer of ~48 MiB (three big chunked files and ~170 smaller ones) is
# mounted with --mem-cache 8M and every file is read by four parallel
# readers and checked; the daemon's peak RSS (VmHWM) must stay under the
# budget + its RSS at rest with an empty cache + a fixed allowance for data
# in flight (chunks being fetched and decoded, chunks pinned by readers),
# and far under the bytes read. Without the daemon's malloc settings glibc
# kept every freed chunk buffer and RSS followed the bytes read (~80 MiB).
#
# "At rest" is measured, not assumed: the RSS right after mounting moved
# by ~6 MiB from run to run (8.7-14.8 MB), as the background fetch had put
# more or less of the layer in the cache by then, and that moved the
# limits. The base is an idle mount of the same layer with nothing fetched
# (--no-background-fetch, no reads but the stats file), and the RSS after
# reading is taken once the background fetch is done and the RSS has
# stopped moving.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse

BUDGET_MIB=8
# over the idle base: 4 readers + background: claimed runs being decoded,
# pins (VmHWM - idle - budget was 36-46 MiB in 9 runs)
INFLIGHT_MIB=56
# at rest, over the idle base + budget: the FUSE workers' and fetch
# threads' stacks, 2 malloc arenas (14.8-18.3 MiB in 9 runs)
REST_MIB=24
M="$T/mnt"
cleanup() {
	if mountpoint -q "$M" 2>/dev/null; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

say "generate and convert a ~48 MiB layer"
python3 - "$T/tree" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(7)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(2000)]
def content(n):
    out = bytearray()
    while len(out) < n:
        if r.random() < 0.3:
            out += r.randbytes(4096)  # incompressible stretches
        else:
            out += b" ".join(r.choice(words) for _ in range(600)) + b"\n"
    return bytes(out[:n])
sizes = [r.choice([3000, 20000, 150000, 400000]) for _ in range(170)]
sizes += [12 << 20, 9 << 20, 6 << 20]
for i, n in enumerate(sizes):
    d = os.path.join(root, "d%02d" % (i % 17))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d.bin" % i), "wb") as f:
        f.write(content(n))
PY
tar -C "$T/tree" -cf "$T/layer.tar" .
"$LAZYPULL" layer convert --level 1 "$T/layer.tar" "$T/layer.esgz" >"$T/convert.out" ||
	fail "convert failed"
toc=$(toc_digest_of "$T/convert.out")
total=$(du -sb "$T/tree" | cut -f1)
ok "$((total >> 20)) MiB in $(find "$T/tree" -type f | wc -l) files, blob $(($(stat -c %s "$T/layer.esgz") >> 20)) MiB"

mkdir -p "$M"
# mount_layer ARGS...: mount the layer on $M, sets $pid
mount_layer() {
	"$LAZYPULL" mount --toc-digest "$toc" --mem-cache ${BUDGET_MIB}M --no-prefetch \
		--log-file "$T/mnt.log" "$@" "$T/layer.esgz" "$M" || fail "mount failed"
	pid=$(pgrep -f -x -- "$LAZYPULL .* $M") || fail "no daemon"
}
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
stat_of() { # KEY.KEY...: a value of the mount's stats file
	python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$M/.lazypull/stats" "$1"
}
# rss_at_rest: VmRSS once it has not moved by more than 256 kB for 1 s
# (5 samples; bounded: the last sample after 30 s)
rss_at_rest() {
	local prev now i same=0
	prev=$(kb VmRSS)
	for i in $(seq 150); do
		sleep 0.2
		now=$(kb VmRSS)
		if [ $((now - prev)) -le 256 ] && [ $((prev - now)) -le 256 ]; then
			same=$((same + 1))
			[ $same -lt 5 ] || break
		else
			same=0
		fi
		prev=$now
	done
	echo "$now"
}

say "base: RSS of an idle mount, nothing fetched"
mount_layer --no-background-fetch
stat_of format >/dev/null || fail "no stats file"
base=$(rss_at_rest)
[ "$(stat_of fetched_bytes)" = 0 ] || fail "the idle mount fetched something"
fusermount3 -u "$M"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
ok "idle RSS ${base} kB"

say "mount with --mem-cache ${BUDGET_MIB}M and read everything, 4 readers"
mount_layer
(cd "$T/tree" && find . -type f -print0 | sort -z) >"$T/list"
(cd "$M" && xargs -0 -P4 -n16 sha256sum <"$T/list") | sort -k2 >"$T/got"
(cd "$T/tree" && xargs -0 sha256sum <"$T/list") | sort -k2 >"$T/want"
same_file "$T/want" "$T/got" "file digests"
ok "every file read through the mount matches"
# at rest: the background fetch (which fills the cache too; without a disk
# tier it stops when the memory budget is full) has ended, and the RSS is
# steady
for i in $(seq 600); do
	bg=$(stat_of background.state)
	[ "$bg" = running ] || [ "$bg" = pending ] || break
	sleep 0.1
done
[ "$bg" = done ] || [ "$bg" = stopped ] || fail "background fetch: $bg"
hwm=$(kb VmHWM)
rss=$(rss_at_rest)
peak=$(stat_of cache.memory_peak_bytes)
limit=$((BUDGET_MIB * 1024 + base + INFLIGHT_MIB * 1024))
say "idle RSS ${base} kB; after reading $((total >> 20)) MiB: peak ${hwm} kB, now ${rss} kB; cache peak $((peak >> 10)) kB"
[ "$peak" -le $((BUDGET_MIB << 20)) ] || fail "the cache itself went over budget: $peak"
[ "$hwm" -le "$limit" ] ||
	fail "peak RSS ${hwm} kB over budget ${BUDGET_MIB} MiB + base ${base} kB + ${INFLIGHT_MIB} MiB in flight"
ok "peak RSS ${hwm} kB <= ${limit} kB (budget + base + in-flight allowance)"
[ "$rss" -le $((BUDGET_MIB * 1024 + base + REST_MIB * 1024)) ] ||
	fail "RSS at rest ${rss} kB: freed chunk memory is kept"
ok "RSS at rest ${rss} kB <= budget + base + ${REST_MIB} MiB"
fusermount3 -u "$M"
done_ok
