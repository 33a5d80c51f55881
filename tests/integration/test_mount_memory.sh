#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The memory budget holds under a read-everything workload: a generated
# layer of ~48 MiB (three big chunked files and ~170 smaller ones) is
# mounted with --mem-cache 8M and every file is read by four parallel
# readers and checked; the daemon's peak RSS (VmHWM) must stay under the
# budget + its RSS right after mounting + a fixed allowance for data in
# flight (chunks being fetched and decoded, chunks pinned by readers), and
# far under the bytes read. Without the daemon's malloc settings glibc kept
# every freed chunk buffer and RSS followed the bytes read (~80 MiB).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -e /dev/fuse ] || fail "/dev/fuse missing"
command -v fusermount3 >/dev/null || fail "fusermount3 missing (install fuse3)"

BUDGET_MIB=8
INFLIGHT_MIB=40 # 4 readers + background: claimed runs being decoded, pins
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

say "mount with --mem-cache ${BUDGET_MIB}M and read everything, 4 readers"
mkdir -p "$M"
"$LAZYPULL" mount --toc-digest "$toc" --mem-cache ${BUDGET_MIB}M --no-prefetch \
	--log-file "$T/mnt.log" "$T/layer.esgz" "$M" || fail "mount failed"
pid=$(pgrep -f -x -- "$LAZYPULL .* $M") || fail "no daemon"
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
base=$(kb VmRSS)
(cd "$T/tree" && find . -type f -print0 | sort -z) >"$T/list"
(cd "$M" && xargs -0 -P4 -n16 sha256sum <"$T/list") | sort -k2 >"$T/got"
(cd "$T/tree" && xargs -0 sha256sum <"$T/list") | sort -k2 >"$T/want"
same_file "$T/want" "$T/got" "file digests"
ok "every file read through the mount matches"
hwm=$(kb VmHWM)
rss=$(kb VmRSS)
peak=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cache"]["memory_peak_bytes"])' \
	"$M/.lazypull/stats")
limit=$((BUDGET_MIB * 1024 + base + INFLIGHT_MIB * 1024))
say "RSS after mount ${base} kB; after reading $((total >> 20)) MiB: peak ${hwm} kB, now ${rss} kB; cache peak $((peak >> 10)) kB"
[ "$peak" -le $((BUDGET_MIB << 20)) ] || fail "the cache itself went over budget: $peak"
[ "$hwm" -le "$limit" ] ||
	fail "peak RSS ${hwm} kB over budget ${BUDGET_MIB} MiB + base ${base} kB + ${INFLIGHT_MIB} MiB in flight"
ok "peak RSS ${hwm} kB <= ${limit} kB (budget + base + in-flight allowance)"
[ "$rss" -le $((BUDGET_MIB * 1024 + base + 12 * 1024)) ] ||
	fail "RSS at rest ${rss} kB: freed chunk memory is kept"
ok "RSS at rest ${rss} kB <= budget + base + 12 MiB"
fusermount3 -u "$M"
done_ok
