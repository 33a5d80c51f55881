#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One memory budget for the whole daemon, not one per layer: LAYERS layers
# of ~24 MiB each are mounted in ONE process by the snapshotter's layer
# pool (tests/mem_driver: snapshot/layers.c without containerd, the
# daemon's malloc settings and disk tier) over docker-registry on loopback,
# with memory_cache_bytes = 16 MiB, and every file of every layer is read
# by four parallel readers and checked. Measured by this script from
# /proc/PID/status (not the daemon's counters): the RSS at rest after the
# reads must stay within idle + budget + REST allowance, and the peak
# within idle + budget + IN-FLIGHT allowance; with a budget per layer
# (the old design) the layers could hold LAYERS x 16 MiB, which breaks the
# rest bound. A control run with one budget as large as all the layers (a
# tier that keeps everything) must break the bound, or the test fails:
# the bound can tell. The daemon's own process-wide figure
# (process_memory_peak_bytes) must agree with the budget too.
# Prefetch and background fetch are off: what is measured is what reads
# leave in memory (with them on, background chunks go to the disk tier
# only: tests/unit/test_fs.c test_background_not_kept).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DRIVER="$LP_BUILD_DIR/tests/mem_driver"
CLIENT="$LP_BUILD_DIR/tests/reg_client"
lp_require docker-registry
lp_require_root "the layer pool mounts"
lp_require_fuse
[ -x "$DRIVER" ] || fail "$DRIVER not built (target mem_driver)"
[ -x "$CLIENT" ] || fail "$CLIENT not built (target reg_client)"

LAYERS=6
BUDGET_MIB=16
# over idle + budget at rest: FUSE workers' stacks and request buffers of
# LAYERS mounts, 2 malloc arenas' free space (measured 1-2 MiB; before idle
# decoders gave back their output scratch, ~5 MiB each, it was ~40 MiB)
REST_MIB=16
# over idle + budget while 4 readers work (test_mount_memory.sh's figure)
INFLIGHT_MIB=56
CONTROL_BUDGET_MIB=1024

PIDS=()
DPID=
SAMPLER=
cleanup() {
	local p m
	[ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true
	[ -z "$DPID" ] || kill "$DPID" 2>/dev/null || true
	[ -z "$DPID" ] || wait "$DPID" 2>/dev/null || true
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for m in $(mounts_under "$T"); do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
lp_start_registry

say "generate, convert and push $LAYERS layers of ~24 MiB"
descs=() args=()
for l in $(seq 0 $((LAYERS - 1))); do
	python3 - "$T/tree$l" "$l" <<'PY'
import os, random, sys
root, l = sys.argv[1], int(sys.argv[2])
r = random.Random(100 + l)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(2000)]
text = bytearray()
while len(text) < 1 << 20:
    text += b" ".join(r.choice(words) for _ in range(600)) + b"\n"
text = bytes(text)
def content(n):
    # half text slices, half incompressible: every chunk different
    out = bytearray()
    while len(out) < n:
        if r.random() < 0.3:
            out += r.randbytes(4096)
        else:
            o = r.randrange(0, len(text) - 65536)
            out += text[o:o + r.randrange(4096, 65536)]
    return bytes(out[:n])
os.makedirs(os.path.join(root, "d"), exist_ok=True)
for i, n in enumerate([10 << 20, 8 << 20, 6 << 20] + [100000] * 8):
    with open(os.path.join(root, "d", "l%d-f%02d.bin" % (l, i)), "wb") as f:
        f.write(content(n))
PY
	tar -C "$T/tree$l" -cf "$T/layer.tar" .
	"$LAZYPULL" layer convert --level 1 "$T/layer.tar" "$T/l$l.esgz" >"$T/convert.out" ||
		fail "convert of layer $l failed"
	toc=$(toc_digest_of "$T/convert.out")
	read -r dg size < <(timeout 60 "$CLIENT" push-blob "$R/mem/img:v1" "$T/l$l.esgz")
	descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$dg\",\"size\":$size,\"annotations\":{\"containerd.io/snapshot/stargz/toc.digest\":\"$toc\"}}")
	args+=("$dg" "$toc")
	rm -f "$T/layer.tar" "$T/l$l.esgz"
done
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
read -r cdg csize < <(timeout 60 "$CLIENT" push-blob "$R/mem/img:v1" "$T/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
	"$cdg" "$csize" "$(IFS=,; echo "${descs[*]}")" >"$T/manifest"
timeout 60 "$CLIENT" push-manifest "$R/mem/img:v1" application/vnd.oci.image.manifest.v1+json "$T/manifest" >/dev/null
total=$(cat "$T"/tree*/d/* | wc -c)
total_kb=$((total >> 10))
# sha256sum lines as "DIGEST NAME" (names are unique across the layers)
names() { awk '{n = $2; sub(".*/", "", n); print $1, n}'; }
(cd "$T" && find tree*/d -type f -print0 | xargs -0 sha256sum) | names | sort -k2 >"$T/want"
rm -rf "$T"/tree*
ok "pushed $LAYERS layers, $((total >> 20)) MiB in $(wc -l <"$T/want") files"

# the bounds must sit well under what a tier per layer would hold, or the
# test could not tell one budget from LAYERS of them
[ $(((BUDGET_MIB + REST_MIB) * 2)) -le $((LAYERS * BUDGET_MIB)) ] ||
	fail "LAYERS x budget too close to the rest bound"
[ $(((BUDGET_MIB + INFLIGHT_MIB) * 1024 * 3 / 2)) -le "$total_kb" ] ||
	fail "layers of ${total_kb} kB too small for the peak bound"

kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$DPID/status"; }
stat_of() { # MNT KEY.KEY...: a value of that mount's stats file
	python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$1/.lazypull/stats" "$2"
}
# rss_at_rest: VmRSS once it has not moved by more than 256 kB for 1 s
rss_at_rest() {
	local prev now same=0
	prev=$(kb VmRSS)
	for _ in $(seq 150); do
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

# run BUDGET_MIB TAG: mount every layer in one driver with that budget,
# measure idle, read everything with 4 readers while sampling; sets idle,
# peak, rss (at rest), tier_peak (bytes, the daemon's process-wide view)
# and tier_sum (the layers' shares at rest)
run() {
	local budget=$1 tag=$2 hwm smax m
	rm -rf "$T/root"
	mkdir -p "$T/root"
	"$DRIVER" --mem-cache $((budget << 20)) "$T/root" "$R/mem/img:v1" "$R" "${args[@]}" \
		>"$T/drv.out" 2>"$T/drv.log" &
	DPID=$!
	for _ in $(seq 600); do
		grep -q '^ready' "$T/drv.out" 2>/dev/null && break
		kill -0 "$DPID" 2>/dev/null || { show_err "$T/drv.log"; fail "mem_driver ($tag) failed"; }
		sleep 0.1
	done
	grep -q '^ready' "$T/drv.out" || fail "mem_driver ($tag) not ready in 60 s"
	mapfile -t mnts < <(grep -v '^ready' "$T/drv.out")
	[ ${#mnts[@]} = $LAYERS ] || fail "mem_driver ($tag) mounted ${#mnts[@]} layers"
	for m in "${mnts[@]}"; do
		[ "$(stat_of "$m" fetched_bytes)" = 0 ] || fail "an idle mount fetched something ($tag)"
	done
	idle=$(rss_at_rest)
	: >"$T/rss-$tag"
	(
		while kill -0 "$DPID" 2>/dev/null; do
			awk '$1 == "VmRSS:" {print $2}' "/proc/$DPID/status" >>"$T/rss-$tag" 2>/dev/null || break
			sleep 0.02
		done
	) &
	SAMPLER=$!
	# every layer's files, layer after layer
	for m in "${mnts[@]}"; do
		(cd "$m" && find d -type f -printf "$m/%p\0")
	done | xargs -0 -P4 -n4 sha256sum | names | sort -k2 >"$T/got-$tag"
	same_file "$T/want" "$T/got-$tag" "file digests ($tag)"
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
	hwm=$(kb VmHWM)
	rss=$(rss_at_rest)
	smax=$(sort -n "$T/rss-$tag" | tail -1)
	peak=$((hwm > smax ? hwm : smax))
	tier_peak=$(stat_of "${mnts[0]}" cache.process_memory_peak_bytes)
	tier_sum=0
	for m in "${mnts[@]}"; do
		tier_sum=$((tier_sum + $(stat_of "$m" cache.memory_bytes)))
	done
	kill "$DPID"
	wait "$DPID" 2>/dev/null || true
	DPID=
	[ -z "$(mounts_under "$T/root")" ] || fail "mounts left after the driver ($tag)"
	say "$tag: idle ${idle} kB, peak ${peak} kB, at rest ${rss} kB; the tiers: peak $((tier_peak >> 10)) kB, at rest $((tier_sum >> 10)) kB in all"
}

say "control: one budget of ${CONTROL_BUDGET_MIB} MiB (nothing evicted) must break the rest bound"
run $CONTROL_BUDGET_MIB control
limit=$((idle + (BUDGET_MIB + REST_MIB) * 1024))
[ "$rss" -gt "$limit" ] ||
	fail "control RSS at rest ${rss} kB within idle + ${BUDGET_MIB} MiB + ${REST_MIB} MiB (${limit} kB): the bound cannot tell"
[ "$tier_sum" -gt $((LAYERS * BUDGET_MIB << 19)) ] ||
	fail "control: the tiers hold only ${tier_sum} bytes"
ok "a tier that keeps everything breaks the bound (at rest ${rss} kB > ${limit} kB)"

say "one budget of ${BUDGET_MIB} MiB for $LAYERS layers, read everything, 4 readers"
run $BUDGET_MIB budget
ok "every file of every layer read through the mounts matches"
limit=$((idle + (BUDGET_MIB + REST_MIB) * 1024))
[ "$rss" -le "$limit" ] ||
	fail "RSS at rest ${rss} kB over idle ${idle} kB + ${BUDGET_MIB} MiB + ${REST_MIB} MiB: more than one budget is kept"
ok "RSS at rest ${rss} kB <= ${limit} kB (idle + one budget + ${REST_MIB} MiB)"
plimit=$((idle + (BUDGET_MIB + INFLIGHT_MIB) * 1024))
[ "$peak" -le "$plimit" ] ||
	fail "peak RSS ${peak} kB over idle ${idle} kB + ${BUDGET_MIB} MiB + ${INFLIGHT_MIB} MiB in flight"
ok "peak RSS ${peak} kB <= ${plimit} kB (idle + one budget + in-flight allowance)"
# the daemon's own view agrees (not evidence by itself: the RSS is)
[ "$tier_peak" -le $((BUDGET_MIB << 20)) ] ||
	fail "the daemon reports its tiers over the budget: $tier_peak"
[ "$tier_sum" -le $((BUDGET_MIB << 20)) ] ||
	fail "the layers' shares add up to $tier_sum bytes, over the budget"
ok "the daemon's process-wide peak $((tier_peak >> 10)) kB <= ${BUDGET_MIB} MiB, shares at rest $((tier_sum >> 10)) kB"
done_ok
