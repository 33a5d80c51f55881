#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end: `lazypull snapshotter` as containerd's proxy snapshotter, with
# a real containerd 1.6, runc and Debian's docker-registry on loopback, all
# under a temporary directory (start order: registry, snapshotter,
# containerd; stopped in reverse). A two-layer busybox image is converted
# with `lazypull convert` and pushed; its gzip original is pushed too.
#   1. ctr-remote rpull takes the remote path (layers mounted lazily,
#      fetched bytes < blob bytes) and `ctr run` prints the expected output
#   2. the upper layer's whiteout and opaque directory show in the rootfs
#   3. `ctr image pull` of the gzip image takes the plain path (metric) and
#      runs
#   4. CRI PullImage (python3-grpcio, message encoded by hand) takes the
#      remote path with the cri.* labels
#   5. kill -9 of the daemon: it starts again, resumes the layers' FUSE
#      connections from its fd holder (no remount), and a new container
#      runs (test_restart.sh covers restarts under running containers)
#   6. `ctr image rm` + GC leave no mounts, snapshot directories or rows
#   7. several containers at once
# Finally SIGTERM: the daemon exits and leaves its layers to its fd holder;
# --teardown then unmounts everything and stops the holder.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lp_stack_init

cleanup() {
	local rc=$? m
	set +e
	lp_stack_stop
	for m in $(mounts_under "$T"); do
		umount -l "$m" 2>/dev/null
	done
	lp_stack_finish $rc 40 20
}
trap cleanup EXIT

start_snapshotter() {
	local started
	started=$(grep -c "snapshotter: serving" "$T/snap.log" 2>/dev/null || true)
	"$LAZYPULL" -v snapshotter --root "$ROOT" --address "$SOCK" \
		--metrics-address "127.0.0.1:$MPORT" --no-background-fetch \
		>>"$T/snap.log" 2>&1 &
	SNAP_PID=$!
	wait_for 20 "the snapshotter to serve" sh -c \
		"[ \$(grep -c 'snapshotter: serving' '$T/snap.log') -gt ${started:-0} ]"
}

# --- registry ------------------------------------------------------------
lp_stack_registry "{level: error}" "{filesystem: {rootdirectory: $T/reg}, delete: {enabled: true}}"
REG=$R

say "building and pushing the test images"
python3 "$LP_SOURCE_DIR/tests/integration/make_snap_image.py" "$T/layout"
lp_run "$T/conv.out" "$T/conv.err" "$LAZYPULL" convert --plain-http -q \
	"oci:$T/layout:two" "$REG/bb:esgz" || { show_err "$T/conv.err"; fail "lazypull convert"; }
skopeo copy -q --dest-tls-verify=false "oci:$T/layout:two" "docker://$REG/bb:gzip" ||
	fail "skopeo copy of the gzip image"
ESGZ="$REG/bb:esgz" GZ="$REG/bb:gzip"
BLOB_BYTES=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/bb/manifests/esgz" | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert all("containerd.io/snapshot/stargz/toc.digest" in l.get("annotations", {}) for l in m["layers"]), "no TOC digest annotations"
print(sum(l["size"] for l in m["layers"]))')
ok "converted image pushed ($BLOB_BYTES bytes of eStargz layers), gzip original pushed"

# --- snapshotter and containerd --------------------------------------------
start_snapshotter
lp_stack_containerd "" "$(cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = false
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "lazypull"
  disable_snapshot_annotations = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$T/cni/bin"
  conf_dir = "$T/cni/conf"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REG"]
  endpoint = ["http://$REG"]
EOF
)"

# --- 1. remote path --------------------------------------------------------
say "1. ctr-remote rpull takes the remote path"
lp_run "$T/rpull.out" "$T/rpull.err" ctr-remote --address "$CSOCK" images rpull \
	--plain-http --snapshotter lazypull "$ESGZ" || { show_err "$T/rpull.err"; fail "rpull"; }
n=$(grep -c "remote snapshot sha256:" "$T/snap.log" || true)
[ "$n" = 2 ] || fail "expected 2 remote snapshots, the log shows $n"
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "expected 2 lazy layer mounts, found $n"
ok "both layers mounted lazily, committed as remote snapshots"
ctr_ snapshots --snapshotter lazypull ls >"$T/snaps.txt"
grep -q Committed "$T/snaps.txt" || fail "no committed snapshot listed: $(cat "$T/snaps.txt")"
top=$(awk '$3 == "Committed" && $2 != "" { print $1 }' "$T/snaps.txt" | head -1)
[ -n "$top" ] || fail "no committed snapshot with a parent: $(cat "$T/snaps.txt")"
ctr_ snapshots --snapshotter lazypull label "$top" lazypull.test=yes >/dev/null
ctr_ snapshots --snapshotter lazypull info "$top" >"$T/info.json"
python3 - "$T/info.json" <<'PY' || fail "snapshot info: $(cat "$T/info.json")"
import json, sys
i = json.load(open(sys.argv[1]))
l = i["Labels"]
assert i["Kind"].lower() == "committed", i
assert l["lazypull.test"] == "yes", l
assert l["containerd.io/snapshot/remote"], l
assert l["containerd.io/snapshot/stargz/toc.digest"].startswith("sha256:"), l
PY
ctr_ snapshots --snapshotter lazypull label "$top" lazypull.test= >/dev/null
ctr_ snapshots --snapshotter lazypull info "$top" | grep -q lazypull.test && fail "label not removed"
ctr_ snapshots --snapshotter lazypull usage >/dev/null || fail "snapshots usage"
ok "Stat, Update (set and delete a label), Usage, List"
out=$(ctr_ run --rm --snapshotter lazypull "$ESGZ" c1)
[ "$out" = "hello from lazypull" ] || fail "ctr run printed '$out'"
ok "ctr run prints the image's output"
fetched=$(metric lazypull_layer_fetched_bytes_total)
[ "$fetched" -gt 0 ] && [ "$fetched" -lt "$BLOB_BYTES" ] ||
	fail "fetched $fetched bytes of $BLOB_BYTES"
ok "fetched $fetched of $BLOB_BYTES blob bytes (lazy)"
curl -fsS "http://127.0.0.1:$MPORT/metrics" >"$T/metrics.txt"
ondemand=$(python3 - "$T/metrics.txt" "$ROOT/layers" <<'PY'
import glob, json, os, re, sys
text = open(sys.argv[1]).read()
H = "lazypull_layer_on_demand_fetch_seconds"
assert "# TYPE %s histogram\n" % H in text, "no histogram TYPE line"
assert "# TYPE lazypull_layer_fuse_ops_total counter\n" in text
samples = {}
for line in text.splitlines():
    m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', line)
    if m:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))
# the per-layer stats files, by layer digest (the mount's directory is its hex)
stats = {}
for f in glob.glob(os.path.join(sys.argv[2], "*", ".lazypull", "stats")):
    stats["sha256:" + f.split("/")[-3]] = json.load(open(f))
assert len(stats) == 2, stats.keys()
total = 0
for layer, s in stats.items():
    buckets = [(l["le"], v) for l, v in samples[H + "_bucket"] if l["layer"] == layer]
    assert buckets and buckets[-1][0] == "+Inf", buckets
    les = [float(le) for le, _ in buckets[:-1]]
    assert les == sorted(les) and les[0] <= 0.001 and les[-1] >= 10, les
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), ("buckets not monotonic", layer, counts)
    count = [v for l, v in samples[H + "_count"] if l["layer"] == layer]
    assert count == [counts[-1]], (count, counts[-1])
    # _count is the number of on-demand fetches fs/ counted
    assert count[0] == s["on_demand"]["fetches"], (layer, count, s["on_demand"])
    total += count[0]
    ops = {l["op"]: v for l, v in samples["lazypull_layer_fuse_ops_total"] if l["layer"] == layer}
    assert ops["lookup"] > 0, (layer, ops)  # overlayfs looks up in every lower layer
    assert set(ops) >= {"lookup", "getattr", "open", "read", "readdir", "readdirplus"}, ops
served = [l for l, s in stats.items() if s["fuse_ops"]["read"] > 0]
assert served, "no layer served a read"
for l in served:
    ops = {x["op"]: v for x, v in samples["lazypull_layer_fuse_ops_total"] if x["layer"] == l}
    assert ops["open"] > 0 and ops["read"] > 0, ops
assert total > 0, "no on-demand fetch counted"
# one disk cache for all layers: one count, seen by every layer
disk = {s["cache"]["disk_bytes"] for s in stats.values()}
assert len(disk) == 1 and disk.pop() > 0, ("disk cache not shared", disk)
print(int(total))
PY
) || fail "metrics: on-demand fetch histogram / FUSE op counters"
ok "metrics: an on-demand fetch histogram per layer (buckets monotonic, _count = the layers' $ondemand on-demand fetches), FUSE op counters > 0"

# --- 2. whiteouts and opaque directories ------------------------------------
say "2. the merged tree"
out=$(ctr_ run --rm --snapshotter lazypull "$ESGZ" c2 sh -c \
	'ls /data/dir | tr "\n" " "; [ -e /etc/hostname ] && echo hostname || echo no-hostname; cat /data/keep')
[ "$out" = "c no-hostname
kept" ] || fail "merged tree: got '$out'"
ok "whiteout hides /etc/hostname, opaque /data/dir shows only c"
out=$(ctr_ run --rm --snapshotter lazypull "$ESGZ" c3 sh -c \
	'echo new >/data/dir/d && rm /data/keep && ls /data/dir | tr "\n" " " && ls /data')
case $out in "c d "*) ;; *) fail "writes in the container: got '$out'" ;; esac
ok "the container writes over the lazy layers (copy-up, delete)"

# --- 3. plain path ----------------------------------------------------------
say "3. ctr image pull of a gzip image takes the plain path"
fb0=$(metric lazypull_fallbacks_total)
lp_run "$T/pull.out" "$T/pull.err" ctr_ images pull --plain-http --snapshotter lazypull "$GZ" ||
	{ show_err "$T/pull.err"; fail "ctr images pull"; }
fb1=$(metric lazypull_fallbacks_total)
[ $((fb1 - fb0)) -eq 2 ] || fail "expected 2 fallbacks, metric went $fb0 -> $fb1"
grep -q "plain path" "$T/snap.log" || fail "no plain-path log line"
out=$(ctr_ run --rm --snapshotter lazypull "$GZ" c4 sh -c 'cat /hello.txt; ls /data/dir')
[ "$out" = "hello from lazypull
c" ] || fail "gzip image: got '$out'"
ok "plain path: layers applied by containerd, container runs ($((fb1 - fb0)) fallbacks logged)"

# --- 7. several containers at once -------------------------------------------
say "7. several containers at once"
# each writes what it read to a file in a bind-mounted host directory:
# ctr's own stdout copy can lose the tail of a task that exits at once
pids=()
mkdir -p "$T/par"
for i in 1 2 3 4; do
	ctr_ run --rm --snapshotter lazypull --mount "type=bind,src=$T/par,dst=/out,options=rbind:rw" \
		"$ESGZ" "p$i" sh -c "{ cat /hello.txt; md5sum /bin/busybox | cut -c1-8; } >/out/$i.tmp && mv /out/$i.tmp /out/$i" \
		>"$T/par$i.out" 2>"$T/par$i.err" &
	pids+=($!)
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || { show_err "$T/par$i.err"; fail "parallel container $i"; }
done
want="hello from lazypull
$(md5sum /bin/busybox | cut -c1-8)"
for i in 1 2 3 4; do
	[ -e "$T/par/$i" ] || fail "parallel container $i wrote nothing (its stdout: '$(cat "$T/par$i.out")', stderr: '$(cat "$T/par$i.err")')"
	[ "$(cat "$T/par/$i")" = "$want" ] ||
		fail "parallel container $i read '$(cat "$T/par/$i")' (its stderr: '$(cat "$T/par$i.err")')"
done
ok "4 containers at once, same output"

# --- 5. kill -9 and restart --------------------------------------------------
say "5. kill -9 of the snapshotter, restart"
kill -9 "$SNAP_PID"
wait "$SNAP_PID" 2>/dev/null || true
SNAP_PID=
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "expected 2 held mounts after kill -9, found $n"
start_snapshotter
grep -q "resumed 2 layer(s) from the fd holder" "$T/snap.log" ||
	fail "the layers were not resumed: $(grep -i 'holder\|resum\|stale' "$T/snap.log" | tail -3)"
grep -q "cleared [0-9]* stale mount" "$T/snap.log" && fail "a resumed layer was cleared as stale"
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "expected 2 layer mounts after the restart, found $n"
ok "2 layers resumed from the fd holder, nothing remounted"
# containerd's connection to the old daemon broke: it redials on use
wait_for 10 "containerd to reconnect" ctr_ snapshots --snapshotter lazypull ls
out=$(ctr_ run --rm --snapshotter lazypull "$ESGZ" c5 cat /data/dir/c /hello.txt)
[ "$out" = "c
hello from lazypull" ] || fail "after restart: got '$out'"
ok "a new container runs after the restart"

# --- 6. image removal ----------------------------------------------------------
say "6. ctr image rm leaves nothing behind"
ctr_ images rm --sync "$ESGZ" "$GZ" >/dev/null
n=50
while [ -n "$(ctr_ snapshots --snapshotter lazypull ls | tail -n +2)" ]; do
	n=$((n - 1))
	[ $n -gt 0 ] || fail "snapshots left after image rm: $(ctr_ snapshots --snapshotter lazypull ls)"
	sleep 0.2
done
n=$(mounts_under "$ROOT" | wc -l)
[ "$n" = 0 ] || fail "mounts left: $(mounts_under "$ROOT")"
left=$(ls "$ROOT/snapshots" "$ROOT/layers")
[ -z "$(ls -A "$ROOT/snapshots")" ] && [ -z "$(ls -A "$ROOT/layers")" ] ||
	fail "directories left: $left"
ok "no snapshots, mounts or directories left"

# --- 4. CRI ---------------------------------------------------------------
say "4. CRI PullImage takes the remote path with the cri.* labels"
n0=$(grep -c "remote snapshot sha256:" "$T/snap.log" || true)
# runtime.v1.ImageService/PullImage, the message encoded by hand:
# PullImageRequest{image: ImageSpec{image: REF}}
/usr/bin/python3 - "$CSOCK" "$ESGZ" >"$T/cri.out" 2>"$T/cri.err" <<'PY' ||
import sys, grpc
def ld(field, b):
    n, v = len(b), b""
    while True:
        v += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            break
    return bytes([field << 3 | 2]) + v + b
ch = grpc.insecure_channel("unix:" + sys.argv[1])
pull = ch.unary_unary("/runtime.v1.ImageService/PullImage",
                      request_serializer=lambda x: x,
                      response_deserializer=lambda x: x)
resp = pull(ld(1, ld(1, sys.argv[2].encode())), timeout=60)
print(resp[2:].decode())  # PullImageResponse{image_ref}
PY
	{ show_err "$T/cri.err"; fail "CRI PullImage"; }
grep -q "^sha256:" "$T/cri.out" || fail "CRI PullImage answered '$(cat "$T/cri.out")'"
n1=$(grep -c "remote snapshot sha256:" "$T/snap.log" || true)
[ $((n1 - n0)) -eq 2 ] || fail "CRI pull: expected 2 more remote snapshots, got $((n1 - n0))"
ctr --address "$CSOCK" -n k8s.io snapshots --snapshotter lazypull ls >"$T/k8s.txt"
top=$(awk '$3 == "Committed" && $2 != "" { print $1 }' "$T/k8s.txt" | head -1)
ctr --address "$CSOCK" -n k8s.io snapshots --snapshotter lazypull info "$top" |
	grep -q '"containerd.io/snapshot/cri.layer-digest"' || fail "no cri.* labels on $top"
ok "CRI PullImage: 2 layers mounted lazily from the cri.* labels"

# --- SIGTERM -----------------------------------------------------------------
say "clean stop"
ctr-remote --address "$CSOCK" images rpull --plain-http --snapshotter lazypull "$ESGZ" >/dev/null 2>&1 ||
	fail "second rpull"
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "expected 2 layer mounts again, found $n"
kill "$CTRD_PID"
wait "$CTRD_PID" 2>/dev/null || true
CTRD_PID=
kill "$SNAP_PID"
wait "$SNAP_PID" || fail "the snapshotter exited with $?"
SNAP_PID=
[ ! -e "$SOCK" ] || fail "the socket is left behind"
n=$(mounts_under "$ROOT/layers" | wc -l)
[ "$n" = 2 ] || fail "SIGTERM: expected the 2 layers left to the fd holder, found $n"
ok "SIGTERM: socket removed, layers left mounted for the next daemon"
"$LAZYPULL" snapshotter --root "$ROOT" --teardown >>"$T/snap.log" 2>&1 || fail "--teardown"
n=$(mounts_under "$ROOT" | wc -l)
[ "$n" = 0 ] || fail "--teardown left mounts: $(mounts_under "$ROOT")"
pgrep -f "[f]dholder --root $ROOT" >/dev/null && fail "--teardown left the fd holder"
ok "--teardown: every mount gone, fd holder stopped"

done_ok
