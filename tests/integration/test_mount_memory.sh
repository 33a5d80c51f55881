#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The memory budget holds under a read-everything workload: a generated
# layer of ~120 MiB (three big chunked files and ~170 smaller ones) is
# mounted with --mem-cache 8M and every file is read by four parallel
# readers and checked. Measured by this script, never taken from the
# daemon's own counters: the daemon's RSS, sampled from /proc/PID/status
# every 20 ms while it works, and the kernel's high-water mark (VmHWM).
# Bounds are derived from the configured budget and the idle RSS, and kept
# well under the layer's size, so that a cache that keeps what it should
# evict breaks them:
#   peak RSS    <= idle + budget + IN-FLIGHT allowance (64 MiB total over
#                  idle, about half of the bytes read)
#   RSS at rest <= idle + budget + REST allowance (after the reads and the
#                  background fetch)
# The script proves its bounds can fail: a control run of the same
# workload with a budget as large as the layer (a cache that never evicts,
# which is what a leak looks like from outside) must break both, or the
# test fails. Without the daemon's malloc settings glibc kept every freed
# chunk buffer and RSS followed the bytes read, which the control shows too.
#
# "Idle" is measured, not assumed: the RSS right after mounting moved by
# ~6 MiB from run to run (8.7-14.8 MB), as the background fetch had put
# more or less of the layer in the cache by then, and that moved the
# limits. The base is an idle mount of the same layer with nothing fetched
# (--no-background-fetch, no reads but the stats file), and the RSS after
# reading is taken once the background fetch is done and the RSS has
# stopped moving.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require_fuse

BUDGET_MIB=8
# Over idle + budget while 4 readers and the background fetch work: each
# holds a claimed run (a 4 MiB chunk, plus up to 4 MiB read-ahead on a
# sequential read) compressed and decoded, and chunks pinned by readers
# may keep the cache over its budget for a moment. VmHWM - idle - budget
# was 36-46 MiB in 9 runs with the 48 MiB layer this test used before.
INFLIGHT_MIB=56
# At rest, over idle + budget: the FUSE workers' and fetch threads' stacks,
# 2 malloc arenas (14.8-18.3 MiB in 9 runs).
REST_MIB=24
# The control's budget: more than the whole layer, nothing is evicted.
CONTROL_BUDGET_MIB=1024
M="$T/mnt"
SAMPLER=
cleanup() {
	[ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true
	if mountpoint -q "$M" 2>/dev/null; then
		fusermount3 -u "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

say "generate and convert a ~120 MiB layer"
python3 - "$T/tree" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(7)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(2000)]
# 1 MiB of text; files take slices of it at random offsets, mixed with
# incompressible stretches (compressed size about half, every chunk
# different)
text = bytearray()
while len(text) < 1 << 20:
    text += b" ".join(r.choice(words) for _ in range(600)) + b"\n"
text = bytes(text)
def content(n):
    out = bytearray()
    while len(out) < n:
        if r.random() < 0.3:
            out += r.randbytes(4096)
        else:
            o = r.randrange(0, len(text) - 65536)
            out += text[o:o + r.randrange(4096, 65536)]
    return bytes(out[:n])
sizes = [r.choice([3000, 20000, 150000, 400000]) for _ in range(170)]
sizes += [40 << 20, 32 << 20, 24 << 20]
for i, n in enumerate(sizes):
    d = os.path.join(root, "d%02d" % (i % 17))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d.bin" % i), "wb") as f:
        f.write(content(n))
PY
tar -C "$T/tree" -cf "$T/layer.tar" .
"$LAZYPULL" layer convert --level 1 "$T/layer.tar" "$T/layer.esgz" >"$T/convert.out" ||
	fail "convert failed"
rm -f "$T/layer.tar"
toc=$(toc_digest_of "$T/convert.out")
total=$(du -sb "$T/tree" | cut -f1)
total_kb=$((total >> 10))
ok "$((total >> 20)) MiB in $(find "$T/tree" -type f | wc -l) files, blob $(($(stat -c %s "$T/layer.esgz") >> 20)) MiB"
(cd "$T/tree" && find . -type f -print0 | sort -z) >"$T/list"
(cd "$T/tree" && xargs -0 sha256sum <"$T/list") | sort -k2 >"$T/want"

# The bounds must sit well under what a cache holding everything would
# use, or the test could not fail: checked before anything is measured.
[ $(((BUDGET_MIB + INFLIGHT_MIB) * 1024 * 3 / 2)) -le "$total_kb" ] ||
	fail "layer of ${total_kb} kB too small for the bounds (budget + in flight must be <= 2/3 of it)"

mkdir -p "$M"
# mount_layer BUDGET_MIB ARGS...: mount the layer on $M, sets $pid
mount_layer() {
	local budget=$1
	shift
	"$LAZYPULL" mount --toc-digest "$toc" --mem-cache "${budget}M" --no-prefetch \
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
# sampler_start FILE / sampler_stop: VmRSS of $pid every 20 ms into FILE
# (one kB value a line), by this script, while the workload runs
sampler_start() {
	local f=$1
	: >"$f"
	(
		while kill -0 "$pid" 2>/dev/null; do
			awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status" >>"$f" 2>/dev/null || break
			sleep 0.02
		done
	) &
	SAMPLER=$!
}
sampler_stop() {
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
}
unmount() {
	fusermount3 -u "$M"
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || fail "the daemon outlived its unmount"
}

# workload BUDGET_MIB TAG: mount with that budget, read everything with 4
# readers while sampling; sets peak (max of the samples and VmHWM, kB),
# samples (how many), rss (at rest, kB) and cache_peak (the daemon's own
# view, bytes)
workload() {
	local budget=$1 tag=$2 bg hwm smax
	mount_layer "$budget"
	sampler_start "$T/rss-$tag"
	(cd "$M" && xargs -0 -P4 -n16 sha256sum <"$T/list") | sort -k2 >"$T/got-$tag"
	same_file "$T/want" "$T/got-$tag" "file digests ($tag)"
	# at rest: the background fetch (which fills the cache too; without a
	# disk tier it stops when the memory budget is full) has ended, and the
	# RSS is steady
	for i in $(seq 600); do
		bg=$(stat_of background.state)
		[ "$bg" = running ] || [ "$bg" = pending ] || break
		sleep 0.1
	done
	[ "$bg" = done ] || [ "$bg" = stopped ] || fail "background fetch ($tag): $bg"
	sampler_stop
	hwm=$(kb VmHWM)
	rss=$(rss_at_rest)
	samples=$(wc -l <"$T/rss-$tag")
	[ "$samples" -ge 10 ] || fail "only $samples RSS samples of the daemon ($tag)"
	smax=$(sort -n "$T/rss-$tag" | tail -1)
	peak=$((hwm > smax ? hwm : smax))
	cache_peak=$(stat_of cache.memory_peak_bytes)
	unmount
	say "$tag: sampled max ${smax} kB ($samples samples), VmHWM ${hwm} kB, at rest ${rss} kB; daemon's cache peak $((cache_peak >> 10)) kB"
}

say "base: RSS of an idle mount, nothing fetched"
mount_layer $BUDGET_MIB --no-background-fetch
stat_of format >/dev/null || fail "no stats file"
base=$(rss_at_rest)
[ "$(stat_of fetched_bytes)" = 0 ] || fail "the idle mount fetched something"
unmount
ok "idle RSS ${base} kB"

limit=$((base + BUDGET_MIB * 1024 + INFLIGHT_MIB * 1024))
rest_limit=$((base + BUDGET_MIB * 1024 + REST_MIB * 1024))
say "bounds from the budget: peak <= ${limit} kB, at rest <= ${rest_limit} kB; layer ${total_kb} kB"

say "control: --mem-cache ${CONTROL_BUDGET_MIB}M (nothing evicted) must break the bounds"
workload $CONTROL_BUDGET_MIB control
[ "$peak" -gt "$limit" ] ||
	fail "control peak ${peak} kB within ${limit} kB: the peak bound cannot tell a cache that keeps everything"
[ "$rss" -gt "$rest_limit" ] ||
	fail "control RSS at rest ${rss} kB within ${rest_limit} kB: the rest bound cannot tell a cache that keeps everything"
ok "a cache that keeps everything breaks both bounds (peak ${peak} kB, at rest ${rss} kB)"

say "mount with --mem-cache ${BUDGET_MIB}M and read everything, 4 readers"
workload $BUDGET_MIB budget
ok "every file read through the mount matches"
[ "$peak" -le "$limit" ] ||
	fail "peak RSS ${peak} kB over budget ${BUDGET_MIB} MiB + idle ${base} kB + ${INFLIGHT_MIB} MiB in flight"
ok "peak RSS ${peak} kB <= ${limit} kB (idle + budget + in-flight allowance), $((total >> 20)) MiB read"
[ "$rss" -le "$rest_limit" ] ||
	fail "RSS at rest ${rss} kB over idle + budget + ${REST_MIB} MiB: freed chunk memory is kept"
ok "RSS at rest ${rss} kB <= ${rest_limit} kB (idle + budget + ${REST_MIB} MiB)"
# the daemon's own view must agree with the budget too (not evidence by
# itself: the RSS checks above are)
[ "$cache_peak" -le $((BUDGET_MIB << 20)) ] || fail "the daemon reports its cache over budget: $cache_peak"
ok "the daemon's cache peak $((cache_peak >> 10)) kB <= budget"
done_ok
