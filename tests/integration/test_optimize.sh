#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lazypull optimize` end to end: a 4-layer busybox-static image (plain
# tar+gzip layers, make_optimize_image.py) in Debian's docker-registry on
# loopback and in an OCI layout. The workload `cat /etc/a.conf /data/b.txt`
# runs under runc on lazypull's own FUSE mounts + overlayfs; afterwards the
# files it read (and busybox, /bin/sh) sit before .prefetch.landmark in the
# layer that served them (a.conf from layer 2, not the shadowed copy in
# layer 1), the 4 MiB file it never read after it, and layers it never read
# start with .no.prefetch.landmark. Also: an eStargz source mounted lazily
# from the registry, --wait-line and --period stopping a long workload,
# SIGTERM, the record accepted by `convert --prioritize` and `layer convert
# --prioritize` ("./" paths too), the prefetched files served by a lazy
# mount with no on-demand fetch, and bad input (a missing binary, no
# command, --period 0) failing clearly with DST untouched. No container,
# mount or temporary directory may be left behind.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_require docker-registry runc skopeo
lp_require_root "FUSE, overlayfs, runc"
lp_require_fuse

PIDS=()
cleanup() {
	local st m
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	# containers of an optimize that died without cleaning up
	for st in "$T"/tmp/lp-optimize.*/runc; do
		[ -d "$st" ] || continue
		for c in $(runc --root "$st" list -q 2>/dev/null); do
			runc --root "$st" delete --force "$c" 2>/dev/null
		done
	done
	# mounts under $T, deepest first
	awk -v t="$T" '$2 ~ "^"t {print $2}' /proc/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

lp_start_registry

# optimize ARGS...: output in $T/out, stderr in $T/err
optimize() { lp_run "$T/out" "$T/err" timeout 60 "$LAZYPULL" optimize "$@"; }
fetch_blob() { curl -sf -o "$3" "http://$R/v2/$1/blobs/$2" || fail "GET blob $2 from $1"; }
raw() { skopeo inspect --raw --tls-verify=false "docker://$1"; }
no_tag() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$R/v2/$1/manifests/$2")
	[ "$code" = 404 ] || fail "$1:$2 exists after a failed optimize (HTTP $code)"
}
# nothing left behind: mounts, temporary directories
clean_after() {
	# this test's mounts only: test_optimize_snapshotter may run an
	# optimize (fsname lazypull-optimize:N) at the same time under ctest -j
	! grep -q " $T/" /proc/mounts || fail "$1: mounts left: $(grep " $T/" /proc/mounts)"
	[ -z "$(ls -A "$T/tmp")" ] || fail "$1: temporary files left: $(ls "$T/tmp")"
}
# names TOC: non-chunk entry names of a blob's TOC, in order, "./" dropped
names() {
	"$LAZYPULL" layer inspect --toc "$1" | python3 -c '
import json, sys
t = sys.stdin.read()
for e in json.loads(t[t.index("{"):])["entries"]:
    if e["type"] != "chunk":
        n = e["name"][2:] if e["name"].startswith("./") else e["name"]
        print(n.rstrip("/"))'
}
# layers REF: "digest toc-digest" of each layer of a registry image
layers() {
	raw "$1" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]:
    print(l["digest"], l["annotations"]["containerd.io/snapshot/stargz/toc.digest"])'
}
# check_order BLOB BEFORE AFTER NOLANDMARK: names in BEFORE (space separated)
# precede .prefetch.landmark, those in AFTER follow it; NOLANDMARK=1 wants
# .no.prefetch.landmark first instead
check_order() {
	names "$1" >"$T/names"
	python3 - "$T/names" "$2" "$3" "$4" <<'PY'
import sys
names = open(sys.argv[1]).read().split("\n")
before, after, nolm = sys.argv[2].split(), sys.argv[3].split(), sys.argv[4] == "1"
if nolm:
    assert names[0] == ".no.prefetch.landmark", names[:3]
    assert ".prefetch.landmark" not in names
    sys.exit(0)
i = names.index(".prefetch.landmark")
for b in before:
    assert b in names[:i], (b, "not before the landmark", names[:i + 1])
for a in after:
    assert a in names[i:], (a, "not after the landmark", names[:i + 1])
PY
}

say "building the test image (busybox-static, 4 tar+gzip layers)"
python3 "$LP_SOURCE_DIR/tests/integration/make_optimize_image.py" "$T/src/layout" ||
	fail "could not build the test image"
SRC="$T/src/layout"
skopeo copy -q --dest-tls-verify=false "oci:$SRC:app" "docker://$R/src/app:v1" || fail "skopeo copy app"
skopeo copy -q --dest-tls-verify=false "oci:$SRC:nocmd" "docker://$R/src/app:nocmd" || fail "skopeo copy nocmd"
raw "$R/src/app:v1" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]: print(l["digest"])' >"$T/src.digests"

say "registry -> registry, the image's own command"
optimize --record-out "$T/rec.jsonl" "$R/src/app:v1" "$R/opt/app:v1" ||
	{ show_err "$T/err"; fail "optimize"; }
grep -q '^stop=exited$' "$T/out" && grep -q '^exit-status=0$' "$T/out" || fail "summary: $(cat "$T/out")"
grep -q 'a.conf: setting=layer2' "$T/err" && grep -q 'b.txt: hello from layer 2' "$T/err" ||
	{ show_err "$T/err"; fail "the workload's output was not passed through"; }
python3 - "$T/rec.jsonl" "$T/src.digests" <<'PY' || fail "record: $(cat "$T/rec.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
digests = open(sys.argv[2]).read().split()
where = {}
for r in recs:
    assert set(r) == {"path", "layer_digest", "layer_index"}, r
    assert r["layer_digest"] == digests[r["layer_index"]], r
    where.setdefault(r["path"], []).append(r["layer_index"])
assert where["etc/a.conf"] == [2], where  # the top copy only
assert where["data/b.txt"] == [2], where
assert where["bin/busybox"] == [0], where
assert "data/big.bin" not in where and "opt/never/x.txt" not in where, where
assert not any(i in (1, 3) for v in where.values() for i in v), where
PY
ok "record: $(wc -l <"$T/rec.jsonl") files; a.conf from layer 2 (not the shadowed layer 1), b.txt, busybox; nothing from layers 1, 3"
layers "$R/opt/app:v1" >"$T/layers"
[ "$(wc -l <"$T/layers")" = 4 ] || fail "DST has $(wc -l <"$T/layers") layers"
n=0
while read -r dig toc; do
	fetch_blob opt/app "$dig" "$T/l$n.esgz"
	"$LAZYPULL" layer verify --toc-digest "$toc" "$T/l$n.esgz" >/dev/null 2>"$T/verr" ||
		{ show_err "$T/verr"; fail "layer $n does not verify"; }
	n=$((n + 1))
done <"$T/layers"
check_order "$T/l0.esgz" "bin/busybox bin/sh" "bin/ls usr/bin/wc" 0 || fail "layer 0 order"
check_order "$T/l1.esgz" "" "" 1 || fail "layer 1 (shadowed, unread) should be .no.prefetch"
check_order "$T/l2.esgz" "etc/a.conf data/b.txt" "data/big.bin" 0 || fail "layer 2 order"
check_order "$T/l3.esgz" "" "" 1 || fail "layer 3 (unread) should be .no.prefetch"
for i in 0 2; do
	"$LAZYPULL" layer inspect "$T/l$i.esgz" >"$T/insp"
	say "  layer $i: prefetch $(sed -n 's/^prefetch-size=//p' "$T/insp") of $(sed -n 's/^size=//p' "$T/insp") bytes"
done
ok "DST layers verify; busybox, sh / a.conf, b.txt before .prefetch.landmark, big.bin after; layers 1, 3 .no.prefetch.landmark"
clean_after "first run"
ok "no mounts, containers or temporary files left"

say "the prefetched files are served by a lazy mount with no on-demand fetch"
L2TOC=$(sed -n 3p "$T/layers" | cut -d' ' -f2)
mkdir -p "$T/mnt"
"$LAZYPULL" mount --no-background-fetch --prefetch-wait 30 --layer 2 "$R/opt/app:v1" "$T/mnt" 2>"$T/merr" ||
	{ show_err "$T/merr"; fail "mount layer 2"; }
cat "$T/mnt/etc/a.conf" "$T/mnt/data/b.txt" >/dev/null
python3 - "$T/mnt/.lazypull/stats" <<'PY' || { fusermount3 -u "$T/mnt"; fail "on-demand fetches for prefetched files"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["prefetch"]["state"] == "done", s["prefetch"]
assert s["on_demand"]["fetches"] == 0, ("on-demand fetches", s)
assert s["fetched_bytes"] < s["blob_bytes"] / 2, s  # big.bin was not fetched
PY
fusermount3 -u "$T/mnt"
ok "a.conf and b.txt read through a mount of the DST layer after prefetch: 0 on-demand fetches"

say "eStargz source (mounted lazily from the registry), CMD after --"
optimize --record-out "$T/rec2.jsonl" "$R/opt/app:v1" "oci:$T/out2:v2" -- cat /data/b.txt ||
	{ show_err "$T/err"; fail "optimize of an eStargz image"; }
grep -q 'is not eStargz' "$T/err" && fail "an eStargz layer was converted to be mounted"
python3 - "$T/rec2.jsonl" <<'PY' || fail "record 2: $(cat "$T/rec2.jsonl")"
import json, sys
paths = [json.loads(l)["path"] for l in open(sys.argv[1])]
assert "data/b.txt" in paths and "etc/a.conf" not in paths, paths
PY
l2=$(python3 -c "
import json
idx = json.load(open('$T/out2/index.json'))
m = json.load(open('$T/out2/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(m['layers'][2]['digest'][7:])")
check_order "$T/out2/blobs/sha256/$l2" "data/b.txt" "etc/a.conf data/big.bin" 0 || fail "eStargz source: layer 2 order"
clean_after "eStargz source"
ok "eStargz source: layers mounted from the registry; new order b.txt only; oci DST"

say "the record is what convert --prioritize and layer convert --prioritize take"
lp_run "$T/cout" "$T/cerr" "$LAZYPULL" convert -q --prioritize "$T/rec.jsonl" "oci:$SRC:app" "oci:$T/out3:p" ||
	{ show_err "$T/cerr"; fail "convert --prioritize RECORD"; }
l2=$(python3 -c "
import json
idx = json.load(open('$T/out3/index.json'))
m = json.load(open('$T/out3/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(m['layers'][2]['digest'][7:])")
cmp -s "$T/out3/blobs/sha256/$l2" "$T/l2.esgz" || fail "convert --prioritize RECORD gave another layer 2 than optimize"
"$LAZYPULL" layer convert --prioritize "$T/rec.jsonl" "$T/src/layer2.tar.gz" "$T/lc.esgz" >/dev/null ||
	fail "layer convert --prioritize RECORD"
check_order "$T/lc.esgz" "etc/a.conf data/b.txt" "data/big.bin" 0 || fail "layer convert --prioritize RECORD order"
printf '{"path":"./data/b.txt","layer_index":2}\n' >"$T/dot.jsonl"
"$LAZYPULL" layer convert --prioritize "$T/dot.jsonl" "$T/src/layer2.tar.gz" "$T/lc2.esgz" >/dev/null ||
	fail "layer convert --prioritize ./path"
check_order "$T/lc2.esgz" "data/b.txt" "etc/a.conf data/big.bin" 0 || fail "./data/b.txt not matched"
ok "convert --prioritize RECORD = optimize's layers; layer convert takes it and './' paths"

say "--wait-line stops a long-running workload"
start=$(date +%s)
optimize --wait-line '^READY [0-9]+$' --period 40 "oci:$SRC:app" "oci:$T/out4:w" -- \
	sh -c 'cat /etc/a.conf; /bin/busybox stat -c "ROOTMODE %a" /; echo "READY 42"; sleep 100' ||
	{ show_err "$T/err"; fail "--wait-line"; }
took=$(($(date +%s) - start))
grep -q '^stop=wait-line$' "$T/out" || fail "stop: $(cat "$T/out")"
# the container's / has the image's root mode, not the overlay upper dir's
grep -q 'ROOTMODE 755' "$T/err" || fail "container root mode: $(grep ROOTMODE "$T/err")"
# before the 40 s period, whatever the load: the line, not the period, ended it
[ "$took" -lt 40 ] || fail "--wait-line took $took s (the period is 40 s)"
clean_after "--wait-line"
ok "--wait-line: stopped at the line after $took s (period 40, sleep 100)"

say "--period stops a long-running workload"
start=$(date +%s)
optimize --period 2 --record-out "$T/rec5.jsonl" "oci:$SRC:app" "oci:$T/out5:p" -- sh -c 'cat /data/b.txt; sleep 100' ||
	{ show_err "$T/err"; fail "--period"; }
took=$(($(date +%s) - start))
grep -q '^stop=period$' "$T/out" || fail "stop: $(cat "$T/out")"
grep -q '"data/b.txt"' "$T/rec5.jsonl" || fail "--period: b.txt not recorded"
[ "$took" -lt 15 ] || fail "--period 2 took $took s"
clean_after "--period"
ok "--period 2: stopped after $took s, what was read is recorded"

say "SIGTERM stops it: nothing converted, nothing left"
timeout 60 "$LAZYPULL" optimize "oci:$SRC:app" "$R/bad/sig:t1" -- sh -c 'echo up; sleep 100' >"$T/out" 2>"$T/err" &
opid=$!
for _ in $(seq 1 100); do grep -q '^up$' "$T/err" && break; sleep 0.1; done
kill -TERM "$opid"
rc=0
wait "$opid" || rc=$?
[ "$rc" = 1 ] || { show_err "$T/err"; fail "SIGTERM: exit $rc"; }
grep -q 'interrupted' "$T/err" || { show_err "$T/err"; fail "SIGTERM: no message"; }
no_tag bad/sig t1
clean_after "SIGTERM"
ok "SIGTERM: exit 1, 'interrupted', no tag, no mounts"

say "bad input: clear errors, DST untouched"
# expect_fail WHAT RC PATTERN ARGS...
expect_fail() {
	local what=$1 want=$2 pat=$3 rc=0
	shift 3
	optimize "$@" || rc=$?
	[ "$rc" = "$want" ] || { show_err "$T/err"; fail "$what: exit $rc, not $want"; }
	grep -q -- "$pat" "$T/err" || { show_err "$T/err"; fail "$what: no '$pat' in the error"; }
	ok "$what: $(grep '^lazypull' "$T/err" | head -1 | cut -c1-150)"
}
expect_fail "missing binary" 1 "could not start.*nothere" "$R/src/app:v1" "$R/bad/a:t1" -- /bin/nothere
no_tag bad/a t1
clean_after "missing binary"
expect_fail "no command" 1 "no command" "$R/src/app:nocmd" "$R/bad/b:t1"
no_tag bad/b t1
expect_fail "--period 0" 2 "period" --period 0 "$R/src/app:v1" "$R/bad/c:t1"
expect_fail "--period -1" 2 "period" --period -1 "$R/src/app:v1" "$R/bad/c:t1"
no_tag bad/c t1
expect_fail "bad --wait-line" 1 "wait-line" --wait-line '(' "$R/src/app:v1" "$R/bad/d:t1"
no_tag bad/d t1
expect_fail "missing image" 1 "nothere\|not found\|404" "$R/src/nothere:v1" "oci:$T/bad-e:t1"
[ ! -e "$T/bad-e/index.json" ] || fail "index.json written after a failure"
clean_after "bad input"
ok "bad input: nothing tagged, nothing left"

# The same check through `lazypull snapshotter` and containerd (a container
# of DST whose workload files were all prefetched, against a plainly
# converted control) is test_optimize_snapshotter.sh.
done_ok
